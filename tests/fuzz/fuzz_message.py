"""Fuzz targets for framing, OPEN, NOTIFICATION, ROUTE-REFRESH and capabilities.

Each target feeds bytes to one decoder; only BgpCodecError may escape
(tests/fuzz/runner.py). Decoded values are re-encoded and decoded again where
the codec promises a round trip, so the fuzzer also checks encode/decode agree.
"""

from __future__ import annotations

from appliance.bgp.packet.capability import (
    EnhancedRouteRefresh,
    ExtendedMessage,
    FourOctetAs,
    GracefulRestart,
    Multiprotocol,
    UnknownCapability,
    decode_optional_parameters,
    encode_optional_parameters,
)
from appliance.bgp.packet.capability import (
    RouteRefresh as RrCap,
)
from appliance.bgp.packet.constants import MAX_EXTENDED_MESSAGE_LEN, MsgType
from appliance.bgp.packet.message import (
    KEEPALIVE,
    Notification,
    Open,
    RouteRefresh,
    decode_notification,
    decode_open,
    decode_route_refresh,
    encode_message,
    shutdown_notification,
    split_messages,
)

_CAPS = (
    Multiprotocol(1, 1),
    Multiprotocol(2, 1),
    RrCap(),
    EnhancedRouteRefresh(),
    FourOctetAs(4_200_000_000),
    GracefulRestart(False, 120, ((1, 1, 0x80), (2, 1, 0))),
    ExtendedMessage(),
    UnknownCapability(73, b"\x05host1\x00"),
)


def fuzz_split(data: bytes) -> None:
    for max_len in (4096, MAX_EXTENDED_MESSAGE_LEN):
        msgs, used = split_messages(bytearray(data), max_len)
        assert 0 <= used <= len(data)
        assert used == sum(19 + len(b) for _, b in msgs)
        assert b"".join(encode_message(t, b) for t, b in msgs) == data[:used]


def seeds_split() -> list[bytes]:
    o = Open(4, 65001, 90, "1.1.1.1", _CAPS).encode()
    return [
        KEEPALIVE,
        o + KEEPALIVE,
        encode_message(MsgType.UPDATE, b"\x00\x00\x00\x00") * 3,
        Notification(6, 2, b"\x03bye").encode() + KEEPALIVE[:10],
        RouteRefresh(1, 1, 1).encode(),
    ]


def fuzz_open(data: bytes) -> None:
    o = decode_open(data)
    assert decode_open(o.encode()[19:]) == o


def seeds_open() -> list[bytes]:
    return [
        Open(4, 65001, 90, "1.1.1.1", _CAPS).encode()[19:],
        Open(4, 65001, 0, "10.0.0.1", ()).encode()[19:],
        Open(4, 65001, 180, "10.0.0.1", tuple(Multiprotocol(1, s) for s in range(1, 70))).encode()[19:],
    ]


def fuzz_notification(data: bytes) -> None:
    n = decode_notification(data)
    text = n.shutdown_communication
    if text is not None:
        again = shutdown_notification(n.subcode, text)
        assert again.shutdown_communication == text
    assert decode_notification(n.encode()[19:]) == n


def seeds_notification() -> list[bytes]:
    return [
        shutdown_notification(2, "maintenance ✓").encode()[19:],
        shutdown_notification(4, "x" * 300).encode()[19:],
        Notification(3, 1).encode()[19:],
        Notification(1, 2, b"\x00\x12").encode()[19:],
    ]


def fuzz_route_refresh(data: bytes) -> None:
    rr = decode_route_refresh(data)
    assert decode_route_refresh(rr.encode()[19:]) == rr


def seeds_route_refresh() -> list[bytes]:
    return [RouteRefresh(1, 1, s).encode()[19:] for s in range(3)]


def fuzz_capabilities(data: bytes) -> None:
    caps = decode_optional_parameters(data)
    for c in caps:
        c.to_dict()
    assert decode_optional_parameters(encode_optional_parameters(caps)) == caps


def seeds_capabilities() -> list[bytes]:
    return [
        encode_optional_parameters(_CAPS),
        encode_optional_parameters(tuple(Multiprotocol(1, s) for s in range(1, 70))),
        b"\x00",
        b"\x08\x02\x06\x01\x04\x00\x02\x00\x01",
    ]


TARGETS = {
    "split": (fuzz_split, seeds_split),
    "open": (fuzz_open, seeds_open),
    "notification": (fuzz_notification, seeds_notification),
    "route-refresh": (fuzz_route_refresh, seeds_route_refresh),
    "capabilities": (fuzz_capabilities, seeds_capabilities),
}
