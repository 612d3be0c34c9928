"""BFD (RFC 5880/5881/5883): packet codec, pure session FSM, and threaded I/O.

    from appliance.bfd import BfdManager, SessionConfig
    mgr = BfdManager(); mgr.start()
    mgr.add_listener(lambda peer, old, new, diag: ...)
    mgr.add_session(SessionConfig("10.0.1.2", desired_min_tx=50_000, required_min_rx=50_000))

See docs/bfd.md.
"""

from .config import AuthConfig, BfdConfigError, SessionConfig
from .packet import AuthType, BfdDecodeError
from .session import BfdManager

__all__ = [
    "AuthConfig",
    "AuthType",
    "BfdConfigError",
    "BfdDecodeError",
    "BfdManager",
    "SessionConfig",
]
