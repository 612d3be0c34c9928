"""RIB manager and FIB programming (docs/rib.md)."""

from .config import RoutingConfig, RoutingConfigError
from .manager import Candidate, NextHop, RibManager, Selected

__all__ = ["Candidate", "NextHop", "RibManager", "RoutingConfig", "RoutingConfigError",
           "Selected"]
