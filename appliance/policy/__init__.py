"""Routing policy: defined sets, policy definitions, the compiled engine and BGP hooks.

See docs/policy.md.
"""

from .config import PolicyConfigError, RoutingPolicyConfig, parse_routing_policy
from .engine import NEXT_HOP_SELF, PolicyEngine, PolicyResult, RouteContext, aspath_text
from .hooks import ExportHook, ImportHook, make_export_hook, make_import_hook

__all__ = [
    "NEXT_HOP_SELF",
    "ExportHook",
    "ImportHook",
    "PolicyConfigError",
    "PolicyEngine",
    "PolicyResult",
    "RouteContext",
    "RoutingPolicyConfig",
    "aspath_text",
    "make_export_hook",
    "make_import_hook",
    "parse_routing_policy",
]
