"""BGP capabilities (RFC 5492) and their negotiation.

One small class per capability, registered by code. Capabilities travel in the
OPEN's optional parameters; ``encode_optional_parameters`` /
``decode_optional_parameters`` handle that field *including* its length octet
(the tail of the OPEN body after the BGP Identifier), so the RFC 9072 extended
form (Non-Ext OP Len = 255, Non-Ext OP Type = 255, 2-octet lengths) is handled
in one place.

No I/O here; every decode error is a ``NotificationError``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ..family import IPV4_UNICAST, AfiSafi
from .constants import (
    MAX_EXTENDED_MESSAGE_LEN,
    MAX_MESSAGE_LEN,
    CapabilityCode,
    ErrorCode,
    OpenSubcode,
)
from .errors import NotificationError

if TYPE_CHECKING:
    from .message import Open

PARAM_CAPABILITIES = 2        # RFC 5492 optional parameter type
PARAM_EXTENDED = 255          # RFC 9072 Non-Ext OP Type marking the extended form
OPEN_UNSPECIFIC = 0           # OPEN Message Error with no more specific subcode


def _malformed(reason: str) -> NotificationError:
    # RFC 5492 names no subcode for a garbled capability; "unspecific" is what
    # other speakers send and what operators recognise.
    return NotificationError(ErrorCode.OPEN_MESSAGE, OPEN_UNSPECIFIC, b"", reason)


class Capability:
    """Base: ``code`` identifies the class; ``value()`` is the capability value octets."""

    code: ClassVar[int] = -1

    def value(self) -> bytes:
        raise NotImplementedError

    def encode(self) -> bytes:
        v = self.value()
        if len(v) > 255:
            raise ValueError("capability value longer than 255 octets")
        return bytes((self.code, len(v))) + v

    @classmethod
    def decode(cls, value: bytes) -> Capability:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "name": type(self).__name__}


_REGISTRY: dict[int, type[Capability]] = {}


def _register(cls: type[Capability]) -> type[Capability]:
    _REGISTRY[cls.code] = cls
    return cls


def _empty(cls: type[Capability], value: bytes) -> None:
    if value:
        raise _malformed(f"{cls.__name__} capability must be empty, has {len(value)} octets")


@_register
@dataclass(frozen=True, slots=True)
class Multiprotocol(Capability):
    afi: int
    safi: int
    code: ClassVar[int] = CapabilityCode.MULTIPROTOCOL

    def value(self) -> bytes:
        return struct.pack("!HBB", self.afi, 0, self.safi)

    @classmethod
    def decode(cls, value: bytes) -> Multiprotocol:
        if len(value) != 4:
            raise _malformed(f"multiprotocol capability length {len(value)} != 4")
        afi, _reserved, safi = struct.unpack("!HBB", value)
        return cls(afi, safi)

    @property
    def family(self) -> AfiSafi:
        return AfiSafi(self.afi, self.safi)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "name": "multiprotocol", "family": self.family.name}


@_register
@dataclass(frozen=True, slots=True)
class RouteRefresh(Capability):
    code: ClassVar[int] = CapabilityCode.ROUTE_REFRESH

    def value(self) -> bytes:
        return b""

    @classmethod
    def decode(cls, value: bytes) -> RouteRefresh:
        _empty(cls, value)
        return cls()


@_register
@dataclass(frozen=True, slots=True)
class EnhancedRouteRefresh(Capability):
    code: ClassVar[int] = CapabilityCode.ENHANCED_ROUTE_REFRESH

    def value(self) -> bytes:
        return b""

    @classmethod
    def decode(cls, value: bytes) -> EnhancedRouteRefresh:
        _empty(cls, value)
        return cls()


@_register
@dataclass(frozen=True, slots=True)
class ExtendedMessage(Capability):
    code: ClassVar[int] = CapabilityCode.EXTENDED_MESSAGE

    def value(self) -> bytes:
        return b""

    @classmethod
    def decode(cls, value: bytes) -> ExtendedMessage:
        _empty(cls, value)
        return cls()


@_register
@dataclass(frozen=True, slots=True)
class FourOctetAs(Capability):
    asn: int
    code: ClassVar[int] = CapabilityCode.FOUR_OCTET_AS

    def value(self) -> bytes:
        return struct.pack("!I", self.asn)

    @classmethod
    def decode(cls, value: bytes) -> FourOctetAs:
        if len(value) != 4:
            raise _malformed(f"4-octet AS capability length {len(value)} != 4")
        return cls(struct.unpack("!I", value)[0])

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "name": "four-octet-as", "asn": self.asn}


GR_RESTART_STATE = 0x8000     # R bit (RFC 4724)
GR_NOTIFICATION = 0x4000      # N bit (RFC 8538), kept in ``flags_high``
GR_FORWARDING = 0x80          # per-family F bit


@_register
@dataclass(frozen=True, slots=True)
class GracefulRestart(Capability):
    restart_state: bool
    restart_time: int
    families: tuple[tuple[int, int, int], ...] = ()   # (afi, safi, flags)
    notification: bool = False                        # RFC 8538 N bit
    code: ClassVar[int] = CapabilityCode.GRACEFUL_RESTART

    def value(self) -> bytes:
        head = (self.restart_time & 0x0FFF) | (GR_RESTART_STATE if self.restart_state else 0)
        head |= GR_NOTIFICATION if self.notification else 0
        parts = [struct.pack("!H", head)]
        parts.extend(struct.pack("!HBB", a, s, f) for a, s, f in self.families)
        return b"".join(parts)

    @classmethod
    def decode(cls, value: bytes) -> GracefulRestart:
        if len(value) < 2 or (len(value) - 2) % 4:
            raise _malformed(f"graceful-restart capability length {len(value)}")
        (head,) = struct.unpack_from("!H", value)
        fams = tuple(struct.unpack_from("!HBB", value, off) for off in range(2, len(value), 4))
        return cls(bool(head & GR_RESTART_STATE), head & 0x0FFF, fams, bool(head & GR_NOTIFICATION))

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": "graceful-restart",
            "restart-state": self.restart_state,
            "restart-time": self.restart_time,
            "notification": self.notification,
            "families": [
                {"family": AfiSafi(a, s).name, "forwarding-preserved": bool(f & GR_FORWARDING)}
                for a, s, f in self.families
            ],
        }


@dataclass(frozen=True, slots=True)
class UnknownCapability(Capability):
    """Any capability we do not implement: kept verbatim (and ignored, RFC 5492 §3)."""

    code: int  # type: ignore[misc]  # per instance here, a ClassVar elsewhere
    raw: bytes = b""

    def value(self) -> bytes:
        return self.raw

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "name": "unknown", "value": self.raw.hex()}


def decode_capability(code: int, value: bytes) -> Capability:
    cls = _REGISTRY.get(code)
    if cls is None:
        return UnknownCapability(code, bytes(value))
    return cls.decode(bytes(value))


def _decode_capabilities(value: bytes, out: list[Capability]) -> None:
    off, end = 0, len(value)
    while off < end:
        if off + 2 > end:
            raise _malformed("truncated capability header")
        code, length = value[off], value[off + 1]
        off += 2
        if off + length > end:
            raise _malformed(f"capability {code} length {length} overruns its parameter")
        out.append(decode_capability(code, value[off : off + length]))
        off += length


def decode_optional_parameters(data: bytes) -> tuple[Capability, ...]:
    """Decode the OPEN body from the Opt Parm Len octet to the end.

    Raises NotificationError(OPEN_MESSAGE, UNSUPPORTED_OPTIONAL_PARAMETER) for any
    parameter other than Capabilities (RFC 4271 §6.2, RFC 5492).
    """
    data = bytes(data)
    if not data:
        raise _malformed("missing optional parameters length")
    extended = len(data) >= 2 and data[0] == 255 and data[1] == PARAM_EXTENDED
    if extended:  # RFC 9072
        if len(data) < 4:
            raise _malformed("truncated extended optional parameters length")
        total = struct.unpack_from("!H", data, 2)[0]
        off, hdr = 4, 3
    else:
        total = data[0]
        off, hdr = 1, 2
    if off + total != len(data):
        raise _malformed(f"optional parameters length {total} does not match the message")
    end = off + total
    caps: list[Capability] = []
    while off < end:
        if off + hdr > end:
            raise _malformed("truncated optional parameter header")
        ptype = data[off]
        plen = struct.unpack_from("!H", data, off + 1)[0] if extended else data[off + 1]
        off += hdr
        if off + plen > end:
            raise _malformed(f"optional parameter {ptype} length {plen} overruns the message")
        if ptype != PARAM_CAPABILITIES:
            raise NotificationError(
                ErrorCode.OPEN_MESSAGE,
                OpenSubcode.UNSUPPORTED_OPTIONAL_PARAMETER,
                b"",
                f"unsupported optional parameter type {ptype}",
            )
        _decode_capabilities(data[off : off + plen], caps)
        off += plen
    return tuple(caps)


def encode_optional_parameters(caps: tuple[Capability, ...] | list[Capability]) -> bytes:
    """Encode capabilities as the OPEN tail (length octet included).

    All capabilities share one Capabilities parameter; beyond 255 octets the
    RFC 9072 extended form is used.
    """
    value = b"".join(c.encode() for c in caps)
    if not value:
        return b"\x00"
    if len(value) + 2 <= 255:
        return bytes((len(value) + 2, PARAM_CAPABILITIES, len(value))) + value
    param = struct.pack("!BH", PARAM_CAPABILITIES, len(value)) + value
    return bytes((255, PARAM_EXTENDED)) + struct.pack("!H", len(param)) + param


# --- negotiation -------------------------------------------------------------------

_ROUTE_REFRESH_CODES = (CapabilityCode.ROUTE_REFRESH, CapabilityCode.ROUTE_REFRESH_CISCO)


def _has(caps: tuple[Capability, ...], *codes: int) -> bool:
    return any(c.code in codes for c in caps)


def _families(caps: tuple[Capability, ...]) -> frozenset[AfiSafi]:
    fams = frozenset(c.family for c in caps if isinstance(c, Multiprotocol))
    # RFC 4760 §8 (and RFC 4271 itself): a speaker that sends no MP capability
    # speaks IPv4 unicast only.
    return fams or frozenset((IPV4_UNICAST,))


@dataclass(frozen=True, slots=True)
class Negotiated:
    families: frozenset[AfiSafi]
    four_octet_as: bool
    route_refresh: bool
    enhanced_route_refresh: bool
    extended_message: bool
    max_message_len: int
    hold_time: int
    keepalive_interval: float
    peer_asn: int
    peer_router_id: str
    peer_graceful_restart: GracefulRestart | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "families": sorted(f.name for f in self.families),
            "four-octet-as": self.four_octet_as,
            "route-refresh": self.route_refresh,
            "enhanced-route-refresh": self.enhanced_route_refresh,
            "extended-message": self.extended_message,
            "max-message-length": self.max_message_len,
            "hold-time": self.hold_time,
            "keepalive-interval": self.keepalive_interval,
            "peer-as": self.peer_asn,
            "peer-router-id": self.peer_router_id,
            "peer-graceful-restart": (
                self.peer_graceful_restart.to_dict() if self.peer_graceful_restart else None
            ),
        }


def negotiate(local: Open, remote: Open, configured_keepalive: int) -> Negotiated:
    """What both sides agreed on, from the two OPENs (RFC 4271 §4.2, 5492, 6793, 8654)."""
    lc, rc = local.capabilities, remote.capabilities
    hold = min(local.hold_time, remote.hold_time)
    # Hold time 0 means no keepalives at all (RFC 4271 §4.4).
    keepalive = min(float(configured_keepalive), hold / 3.0) if hold else 0.0
    if keepalive <= 0 and hold:
        keepalive = hold / 3.0
    extended = _has(lc, CapabilityCode.EXTENDED_MESSAGE) and _has(rc, CapabilityCode.EXTENDED_MESSAGE)
    gr = next((c for c in rc if isinstance(c, GracefulRestart)), None)
    return Negotiated(
        families=_families(lc) & _families(rc),
        four_octet_as=_has(lc, CapabilityCode.FOUR_OCTET_AS) and _has(rc, CapabilityCode.FOUR_OCTET_AS),
        route_refresh=_has(lc, *_ROUTE_REFRESH_CODES) and _has(rc, *_ROUTE_REFRESH_CODES),
        enhanced_route_refresh=(
            _has(lc, CapabilityCode.ENHANCED_ROUTE_REFRESH)
            and _has(rc, CapabilityCode.ENHANCED_ROUTE_REFRESH)
        ),
        extended_message=extended,
        max_message_len=MAX_EXTENDED_MESSAGE_LEN if extended else MAX_MESSAGE_LEN,
        hold_time=hold,
        keepalive_interval=keepalive,
        peer_asn=remote.asn,
        peer_router_id=remote.bgp_id,
        peer_graceful_restart=gr,
    )
