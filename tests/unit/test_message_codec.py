"""Framing and the non-UPDATE messages: round trips and every error subcode."""

from __future__ import annotations

import struct

import pytest

from appliance.bgp.packet.capability import FourOctetAs, Multiprotocol
from appliance.bgp.packet.capability import RouteRefresh as RrCap
from appliance.bgp.packet.constants import (
    AS_TRANS,
    MARKER,
    CeaseSubcode,
    ErrorCode,
    HeaderSubcode,
    MsgType,
    OpenSubcode,
    RouteRefreshErrorSubcode,
)
from appliance.bgp.packet.errors import NotificationError
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


def raw(length: int, mtype: int, body: bytes = b"") -> bytes:
    return MARKER + struct.pack("!HB", length, mtype) + body


def header_error(buf: bytes, max_len: int = 4096) -> NotificationError:
    with pytest.raises(NotificationError) as ei:
        split_messages(buf, max_len)
    assert ei.value.code == ErrorCode.MESSAGE_HEADER
    return ei.value


# --- framing ---------------------------------------------------------------------------


def test_keepalive_is_19_octets():
    assert KEEPALIVE == MARKER + b"\x00\x13\x04"


def test_split_many_and_partial():
    upd = encode_message(MsgType.UPDATE, b"\x00\x00\x00\x00")
    buf = bytearray(KEEPALIVE + upd + KEEPALIVE + upd[:7])
    msgs, used = split_messages(buf, 4096)
    assert msgs == [(4, b""), (2, b"\x00\x00\x00\x00"), (4, b"")]
    assert used == 19 + 23 + 19
    del buf[:used]
    buf += upd[7:]
    assert split_messages(buf, 4096) == ([(2, b"\x00\x00\x00\x00")], 23)


def test_split_incomplete_header_waits():
    assert split_messages(KEEPALIVE[:18], 4096) == ([], 0)
    assert split_messages(b"", 4096) == ([], 0)


def test_split_bad_marker():
    err = header_error(b"\x00" * 16 + b"\x00\x13\x04")
    assert err.subcode == HeaderSubcode.CONNECTION_NOT_SYNCHRONIZED


@pytest.mark.parametrize(
    "length,mtype",
    [
        (18, MsgType.KEEPALIVE),   # below the header
        (20, MsgType.KEEPALIVE),   # KEEPALIVE is exactly 19
        (28, MsgType.OPEN),        # OPEN >= 29
        (22, MsgType.UPDATE),      # UPDATE >= 23
        (20, MsgType.NOTIFICATION),  # NOTIFICATION >= 21
        (22, MsgType.ROUTE_REFRESH),  # ROUTE-REFRESH >= 23
        (4097, MsgType.UPDATE),    # above max_len
    ],
)
def test_split_bad_length(length, mtype):
    err = header_error(raw(length, mtype))
    assert err.subcode == HeaderSubcode.BAD_MESSAGE_LENGTH
    assert err.data == struct.pack("!H", length)


def test_split_extended_length_accepted_when_allowed():
    body = b"\x00\x00\x00\x00" + b"\x00" * 5000
    msg = encode_message(MsgType.UPDATE, body)
    header_error(msg, 4096)
    assert split_messages(msg, 65535) == ([(2, body)], len(msg))


@pytest.mark.parametrize("mtype", [0, 6, 255])
def test_split_bad_type(mtype):
    err = header_error(raw(19, mtype))
    assert err.subcode == HeaderSubcode.BAD_MESSAGE_TYPE
    assert err.data == bytes((mtype,))


def test_split_accepts_memory_efficiently_large_stream():
    upd = encode_message(MsgType.UPDATE, b"\x00\x00\x00\x00" + b"\x01" * 100)
    buf = bytearray(upd * 10_000)
    msgs, used = split_messages(buf, 4096)
    assert len(msgs) == 10_000 and used == len(buf)


# --- OPEN ------------------------------------------------------------------------------


def test_open_round_trip_4_octet_as():
    o = Open(4, 4_200_000_000, 90, "10.0.0.1", (Multiprotocol(1, 1), FourOctetAs(4_200_000_000), RrCap()))
    wire = o.encode()
    msgs, _ = split_messages(wire, 4096)
    assert msgs[0][0] == MsgType.OPEN
    body = msgs[0][1]
    assert struct.unpack_from("!H", body, 1)[0] == AS_TRANS
    assert decode_open(body) == o


def test_open_2_octet_as_without_capability():
    o = Open(4, 65001, 180, "192.0.2.1", ())
    assert decode_open(o.encode()[19:]) == o


def test_open_many_capabilities_uses_rfc9072_extended_form():
    caps = tuple(Multiprotocol(1, s) for s in range(1, 80))
    o = Open(4, 65001, 90, "192.0.2.1", caps)
    body = o.encode()[19:]
    assert body[9] == 255 and body[10] == 255
    assert decode_open(body) == o


def open_error(body: bytes) -> NotificationError:
    with pytest.raises(NotificationError) as ei:
        decode_open(body)
    assert ei.value.code == ErrorCode.OPEN_MESSAGE
    return ei.value


def test_open_bad_version():
    body = bytearray(Open(4, 65001, 90, "1.1.1.1").encode()[19:])
    body[0] = 3
    err = open_error(bytes(body))
    assert err.subcode == OpenSubcode.UNSUPPORTED_VERSION
    assert err.data == b"\x00\x04"


@pytest.mark.parametrize("hold", [1, 2])
def test_open_unacceptable_hold(hold):
    err = open_error(Open(4, 65001, hold, "1.1.1.1").encode()[19:])
    assert err.subcode == OpenSubcode.UNACCEPTABLE_HOLD_TIME


@pytest.mark.parametrize("hold", [0, 3, 65535])
def test_open_acceptable_hold(hold):
    assert decode_open(Open(4, 65001, hold, "1.1.1.1").encode()[19:]).hold_time == hold


def test_open_bad_identifier():
    err = open_error(Open(4, 65001, 90, "0.0.0.0").encode()[19:])
    assert err.subcode == OpenSubcode.BAD_BGP_IDENTIFIER


def test_open_unsupported_optional_parameter():
    body = struct.pack("!BHH", 4, 65001, 90) + bytes(4 * [1]) + b"\x04\x01\x02\xaa\xbb"
    err = open_error(body)
    assert err.subcode == OpenSubcode.UNSUPPORTED_OPTIONAL_PARAMETER


def test_open_parameter_length_mismatch():
    body = struct.pack("!BHH", 4, 65001, 90) + bytes(4 * [1]) + b"\x05\x02\x02\x02\x00"
    err = open_error(body)
    assert err.subcode == 0


def test_open_truncated_capability():
    body = struct.pack("!BHH", 4, 65001, 90) + bytes(4 * [1]) + b"\x04\x02\x02\x41\x04"
    assert open_error(body).subcode == 0


# --- NOTIFICATION ----------------------------------------------------------------------


def test_notification_round_trip():
    n = Notification(ErrorCode.UPDATE_MESSAGE, 3, b"\x01\x02")
    assert decode_notification(n.encode()[19:]) == n
    assert n.shutdown_communication is None


def test_shutdown_communication():
    n = shutdown_notification(CeaseSubcode.ADMIN_SHUTDOWN, "maintenance ✓")
    back = decode_notification(n.encode()[19:])
    assert back.shutdown_communication == "maintenance ✓"
    reset = shutdown_notification(CeaseSubcode.ADMIN_RESET, "bye")
    assert reset.shutdown_communication == "bye"
    assert shutdown_notification(CeaseSubcode.ADMIN_SHUTDOWN, "").data == b""


def test_shutdown_communication_truncates_on_char_boundary():
    n = shutdown_notification(CeaseSubcode.ADMIN_SHUTDOWN, "é" * 200)  # 400 octets
    assert n.data[0] <= 255 and n.data[0] == len(n.data) - 1
    assert n.shutdown_communication == "é" * 127


def test_shutdown_communication_malformed_is_none():
    assert Notification(6, 2, b"\x05ab").shutdown_communication is None
    assert Notification(6, 2, b"\x02\xff\xfe").shutdown_communication is None
    assert Notification(6, 7, b"\x02ab").shutdown_communication is None


# --- ROUTE-REFRESH ---------------------------------------------------------------------


@pytest.mark.parametrize("subtype", [0, 1, 2])
def test_route_refresh_round_trip(subtype):
    rr = RouteRefresh(2, 1, subtype)
    wire = rr.encode()
    assert len(wire) == 23
    msgs, _ = split_messages(wire, 4096)
    assert decode_route_refresh(msgs[0][1]) == rr


def test_route_refresh_bad_length():
    msg = encode_message(MsgType.ROUTE_REFRESH, b"\x00\x01\x01\x01\x00")
    msgs, _ = split_messages(msg, 4096)
    with pytest.raises(NotificationError) as ei:
        decode_route_refresh(msgs[0][1])
    assert ei.value.code == ErrorCode.ROUTE_REFRESH
    assert ei.value.subcode == RouteRefreshErrorSubcode.INVALID_MESSAGE_LENGTH
    assert ei.value.data == msg
