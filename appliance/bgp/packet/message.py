"""BGP message framing and the non-UPDATE messages (RFC 4271 §4, 2918, 7313, 8203, 9003).

``split_messages`` is on the hot path of a full-table transfer: it walks a
buffer by offset and slices out each body once, never re-copying the rest of
the buffer. Everything else is plain value objects with ``encode``/``decode``.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from .capability import (
    Capability,
    FourOctetAs,
    decode_optional_parameters,
    encode_optional_parameters,
)
from .constants import (
    AS_TRANS,
    HEADER_LEN,
    MARKER,
    MAX_MESSAGE_LEN,
    CeaseSubcode,
    ErrorCode,
    HeaderSubcode,
    MsgType,
    OpenSubcode,
    RouteRefreshErrorSubcode,
)
from .errors import NotificationError

BGP_VERSION = 4
OPEN_HOLD_MIN = 3             # hold times 1 and 2 are unacceptable (RFC 4271 §4.2)
MAX_SHUTDOWN_COMMUNICATION = 255  # RFC 9003 (was 128 in RFC 8203)

# Minimum total message length per type; KEEPALIVE is exact (RFC 4271 §4.1, §6.1).
# ROUTE-REFRESH is a minimum here: RFC 7313 §5 wants a wrong length answered with
# the ROUTE-REFRESH error code, which decode_route_refresh does.
_MIN_LEN = {
    MsgType.OPEN: 29,
    MsgType.UPDATE: 23,
    MsgType.NOTIFICATION: 21,
    MsgType.KEEPALIVE: 19,
    MsgType.ROUTE_REFRESH: 23,
}
_MIN_BY_TYPE = [0] * 256
for _t, _n in _MIN_LEN.items():
    _MIN_BY_TYPE[_t] = _n
_EXACT_KEEPALIVE = MsgType.KEEPALIVE
_UNPACK_LEN_TYPE = struct.Struct("!HB").unpack_from


def _bad_length(length: int, why: str) -> NotificationError:
    return NotificationError(
        ErrorCode.MESSAGE_HEADER, HeaderSubcode.BAD_MESSAGE_LENGTH, struct.pack("!H", length), why
    )


def split_messages(buf: bytes | bytearray, max_len: int) -> tuple[list[tuple[int, bytes]], int]:
    """Frame as many complete messages as ``buf`` holds.

    Returns ``([(msg_type, body), ...], consumed)``; an incomplete trailing
    message is left for the next call. Header errors raise NotificationError
    (RFC 4271 §6.1) as soon as the header is complete.
    """
    out: list[tuple[int, bytes]] = []
    off = 0
    end = len(buf)
    view = memoryview(buf)
    try:
        while end - off >= HEADER_LEN:
            if view[off : off + 16] != MARKER:
                raise NotificationError(
                    ErrorCode.MESSAGE_HEADER,
                    HeaderSubcode.CONNECTION_NOT_SYNCHRONIZED,
                    b"",
                    "bad marker",
                )
            length, mtype = _UNPACK_LEN_TYPE(buf, off + 16)
            minimum = _MIN_BY_TYPE[mtype]
            if length < HEADER_LEN or length > max_len:
                raise _bad_length(length, f"message length {length} outside 19..{max_len}")
            if not minimum:
                raise NotificationError(
                    ErrorCode.MESSAGE_HEADER,
                    HeaderSubcode.BAD_MESSAGE_TYPE,
                    bytes((mtype,)),
                    f"bad message type {mtype}",
                )
            if length < minimum or (mtype == _EXACT_KEEPALIVE and length != HEADER_LEN):
                raise _bad_length(length, f"message length {length} invalid for type {mtype}")
            if end - off < length:
                break
            out.append((mtype, bytes(view[off + HEADER_LEN : off + length])))
            off += length
    finally:
        view.release()
    return out, off


def encode_message(msg_type: int, body: bytes) -> bytes:
    return MARKER + struct.pack("!HB", HEADER_LEN + len(body), msg_type) + body


KEEPALIVE: bytes = encode_message(MsgType.KEEPALIVE, b"")


# --- OPEN ----------------------------------------------------------------------------


def _open_error(subcode: int, reason: str, data: bytes = b"") -> NotificationError:
    return NotificationError(ErrorCode.OPEN_MESSAGE, subcode, data, reason)


@dataclass(frozen=True, slots=True)
class Open:
    version: int
    asn: int
    hold_time: int
    bgp_id: str
    capabilities: tuple[Capability, ...] = ()

    def encode(self) -> bytes:
        my_as = self.asn if self.asn <= 0xFFFF else AS_TRANS  # RFC 6793 §4.1
        body = (
            struct.pack("!BHH", self.version, my_as, self.hold_time)
            + ipaddress.IPv4Address(self.bgp_id).packed
            + encode_optional_parameters(self.capabilities)
        )
        return encode_message(MsgType.OPEN, body)

    def capability(self, cls: type) -> Capability | None:
        return next((c for c in self.capabilities if isinstance(c, cls)), None)


def decode_open(body: bytes) -> Open:
    """Decode and check an OPEN body (RFC 4271 §6.2, RFC 6286, RFC 9072).

    Peer-specific checks (expected AS, identifier equal to ours) are the peer's.
    """
    if len(body) < 10:
        raise _bad_length(len(body) + HEADER_LEN, "OPEN shorter than 29 octets")
    version, my_as, hold = struct.unpack_from("!BHH", body)
    if version != BGP_VERSION:
        # Data: the largest locally supported version below the peer's bid.
        raise _open_error(
            OpenSubcode.UNSUPPORTED_VERSION, f"unsupported version {version}", struct.pack("!H", BGP_VERSION)
        )
    if 0 < hold < OPEN_HOLD_MIN:
        raise _open_error(OpenSubcode.UNACCEPTABLE_HOLD_TIME, f"unacceptable hold time {hold}")
    raw_id = bytes(body[5:9])
    if raw_id == b"\x00\x00\x00\x00":  # RFC 6286 §2.2: any non-zero value is valid
        raise _open_error(OpenSubcode.BAD_BGP_IDENTIFIER, "BGP identifier 0.0.0.0")
    caps = decode_optional_parameters(bytes(body[9:]))
    four = next((c for c in caps if isinstance(c, FourOctetAs)), None)
    asn = four.asn if four is not None else my_as
    if asn == 0:
        raise _open_error(OpenSubcode.BAD_PEER_AS, "peer AS 0", struct.pack("!H", my_as))
    return Open(version, asn, hold, str(ipaddress.IPv4Address(raw_id)), caps)


# --- NOTIFICATION ----------------------------------------------------------------------

_SHUTDOWN_SUBCODES = (CeaseSubcode.ADMIN_SHUTDOWN, CeaseSubcode.ADMIN_RESET)


@dataclass(frozen=True, slots=True)
class Notification:
    code: int
    subcode: int
    data: bytes = b""

    def encode(self) -> bytes:
        return encode_message(MsgType.NOTIFICATION, struct.pack("!BB", self.code, self.subcode) + self.data)

    @property
    def shutdown_communication(self) -> str | None:
        """The RFC 8203/9003 operator message, or None (absent or malformed).

        A malformed one is not returned at all: RFC 8203 §4 says not to log it.
        """
        if self.code != ErrorCode.CEASE or self.subcode not in _SHUTDOWN_SUBCODES or not self.data:
            return None
        n = self.data[0]
        if n == 0 or len(self.data) < 1 + n:  # length 0: no communication (RFC 8203 §2)
            return None
        try:
            return self.data[1 : 1 + n].decode("utf-8")
        except UnicodeDecodeError:
            return None

    def describe(self) -> str:
        text = self.shutdown_communication
        base = f"code={self.code} subcode={self.subcode}"
        return f"{base} message={text!r}" if text else base

    @classmethod
    def from_error(cls, err: NotificationError) -> Notification:
        return cls(err.code, err.subcode, err.data)


def decode_notification(body: bytes) -> Notification:
    if len(body) < 2:
        raise _bad_length(len(body) + HEADER_LEN, "NOTIFICATION shorter than 21 octets")
    return Notification(body[0], body[1], bytes(body[2:]))


def shutdown_notification(subcode: int, message: str) -> Notification:
    """CEASE with an RFC 8203 message, cut to 255 octets on a character boundary."""
    raw = message.encode("utf-8")
    if len(raw) > MAX_SHUTDOWN_COMMUNICATION:
        raw = raw[:MAX_SHUTDOWN_COMMUNICATION]
        # Drop a partial trailing character rather than send invalid UTF-8.
        raw = raw.decode("utf-8", errors="ignore").encode("utf-8")
    data = bytes((len(raw),)) + raw if raw else b""
    return Notification(ErrorCode.CEASE, subcode, data)


# --- ROUTE-REFRESH ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RouteRefresh:
    afi: int
    safi: int
    subtype: int = 0

    def encode(self) -> bytes:
        return encode_message(MsgType.ROUTE_REFRESH, struct.pack("!HBB", self.afi, self.subtype, self.safi))


def decode_route_refresh(body: bytes) -> RouteRefresh:
    # RFC 7313 §5: a ROUTE-REFRESH whose body is not 4 octets is answered with
    # ROUTE-REFRESH Message Error / Invalid Message Length, data = the message.
    if len(body) != 4:
        raise NotificationError(
            ErrorCode.ROUTE_REFRESH,
            RouteRefreshErrorSubcode.INVALID_MESSAGE_LENGTH,
            encode_message(MsgType.ROUTE_REFRESH, bytes(body))[: MAX_MESSAGE_LEN - 21],
            f"ROUTE-REFRESH body of {len(body)} octets",
        )
    afi, subtype, safi = struct.unpack("!HBB", body)
    return RouteRefresh(afi, safi, subtype)
