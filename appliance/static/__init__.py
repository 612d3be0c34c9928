"""Static and controller-pushed routes (docs/rib.md)."""

from .config import StaticConfig, StaticConfigError, StaticNextHop, StaticRoute, parse_static
from .manager import StaticRoutes, state_is_up

__all__ = ["StaticConfig", "StaticConfigError", "StaticNextHop", "StaticRoute", "StaticRoutes",
           "parse_static", "state_is_up"]
