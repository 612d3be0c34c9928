"""BFD Control packet codec: round trips, every §6.8.6 rejection, SHA1 authentication."""

from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.bfd.packet import (
    A_BIT,
    Auth,
    AuthType,
    BfdDecodeError,
    ControlPacket,
    State,
    check_sha1,
    decode,
    encode,
)

u32 = st.integers(0, 0xFFFFFFFF)


@st.composite
def packets(draw):
    state = draw(st.sampled_from(list(State)))
    your = draw(u32) if state in (State.DOWN, State.ADMIN_DOWN) else draw(st.integers(1, 0xFFFFFFFF))
    poll = draw(st.booleans())
    auth = None
    if draw(st.booleans()):
        auth = Auth(draw(st.sampled_from([AuthType.KEYED_SHA1, AuthType.METICULOUS_KEYED_SHA1])),
                    draw(st.integers(0, 255)), draw(u32))
    return ControlPacket(
        state=state, diag=draw(st.integers(0, 31)), detect_mult=draw(st.integers(1, 255)),
        my_discr=draw(st.integers(1, 0xFFFFFFFF)), your_discr=your,
        desired_min_tx=draw(u32), required_min_rx=draw(u32), required_min_echo_rx=draw(u32),
        poll=poll, final=not poll and draw(st.booleans()), cpi=draw(st.booleans()),
        demand=draw(st.booleans()), auth=auth,
    )


@given(packets(), st.binary(min_size=1, max_size=20))
def test_round_trip(pkt, key):
    wire = encode(pkt, key)
    assert len(wire) == pkt.length == wire[3]
    got = decode(wire)
    if pkt.auth is None:
        assert got == pkt
    else:
        assert got.auth.digest and len(got.auth.digest) == 20
        assert got == ControlPacket(**{**_fields(pkt), "auth": Auth(pkt.auth.auth_type, pkt.auth.key_id, pkt.auth.sequence, got.auth.digest)})
        assert check_sha1(wire, key)
        assert encode(got, key) == wire


def _fields(p):
    return {k: getattr(p, k) for k in ControlPacket.__slots__}


def test_wire_layout():
    pkt = ControlPacket(state=State.UP, diag=3, detect_mult=3, my_discr=1, your_discr=2,
                        desired_min_tx=50_000, required_min_rx=60_000, poll=True)
    wire = encode(pkt)
    assert wire == bytes([0x23, 0xE0, 3, 24]) + struct.pack("!IIIII", 1, 2, 50_000, 60_000, 0)


GOOD = encode(ControlPacket(state=State.UP, my_discr=7, your_discr=9))


def _patch(b: bytes, i: int, v: int) -> bytes:
    return b[:i] + bytes([v]) + b[i + 1:]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (GOOD[:23], "short"),
        (_patch(GOOD, 0, 0x40), "version"),                  # version 2
        (_patch(GOOD, 0, 0x00), "version"),                  # version 0
        (_patch(GOOD, 3, 23), "length"),                     # Length below 24
        (_patch(GOOD, 3, 25), "length"),                     # Length beyond the payload
        (_patch(_patch(GOOD, 1, 0xC0 | A_BIT), 3, 25) + b"\x04", "length"),  # A bit: at least 26
        (_patch(GOOD, 2, 0), "detect-mult"),
        (_patch(GOOD, 1, 0xC1), "multipoint"),
        (GOOD[:4] + bytes(4) + GOOD[8:], "my-discriminator"),
        (GOOD[:8] + bytes(4) + GOOD[12:], "your-discriminator"),  # Up with Your Discr 0
        (_patch(GOOD[:8] + bytes(4) + GOOD[12:], 1, 0x80), "your-discriminator"),  # Init too
        (_patch(GOOD, 1, 0xF0), "poll-final"),
        (_patch(_patch(GOOD, 1, 0xC0 | A_BIT), 3, 26) + b"\x09\x02", "auth-type"),
        (_patch(_patch(GOOD, 1, 0xC0 | A_BIT), 3, 30) + b"\x04\x06" + bytes(4), "auth-length"),
        (_patch(_patch(GOOD, 1, 0xC0 | A_BIT), 3, 26) + b"\x04\x1c", "auth-length"),
    ],
)
def test_rejections(data, reason):
    with pytest.raises(BfdDecodeError) as ei:
        decode(data)
    assert ei.value.reason == reason


def test_your_discriminator_zero_allowed_in_down_and_admin_down():
    for state in (State.DOWN, State.ADMIN_DOWN):
        assert decode(encode(ControlPacket(state=state, my_discr=1))).your_discr == 0


def test_trailing_octets_after_length_ignored():
    assert decode(GOOD + b"xx") == decode(GOOD)


def test_sha1_digest_is_over_packet_with_key_in_place():
    pkt = ControlPacket(state=State.DOWN, my_discr=5, auth=Auth(AuthType.KEYED_SHA1, 3, 1000))
    wire = encode(pkt, b"secret")
    body = wire[:32] + b"secret" + bytes(14)
    assert wire[32:] == hashlib.sha1(body).digest()
    assert wire[24:28] == bytes([4, 28, 3, 0])
    assert struct.unpack("!I", wire[28:32])[0] == 1000


def test_sha1_bad_digest_and_wrong_key():
    pkt = ControlPacket(state=State.DOWN, my_discr=5, auth=Auth(AuthType.METICULOUS_KEYED_SHA1, 1, 1))
    wire = encode(pkt, b"k1")
    assert check_sha1(wire, b"k1")
    assert not check_sha1(wire, b"k2")
    assert not check_sha1(wire[:-1] + bytes([wire[-1] ^ 1]), b"k1")
    tampered = wire[:16] + b"\xff" + wire[17:]  # Desired Min TX changed under the digest
    assert decode(tampered).auth is not None and not check_sha1(tampered, b"k1")
    assert not check_sha1(wire[:40], b"k1")


def test_other_auth_types_decoded_not_trusted():
    wire = _patch(_patch(GOOD, 1, 0xC0 | A_BIT), 3, 24 + 7) + b"\x01\x07\x01pass"
    p = decode(wire)
    assert p.auth.auth_type == AuthType.SIMPLE_PASSWORD and p.auth.digest == b"pass"
