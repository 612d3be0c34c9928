"""Fuzz target for the BFD Control packet decoder (appliance/bfd/packet.py).

Only BfdDecodeError may leave the decoder; it is caught here because the runner only
knows the BGP codec's error. Accepted packets are re-encoded and must decode the same,
and a session FSM must swallow them without raising.
"""

from __future__ import annotations

import random

from appliance.bfd.config import AuthConfig, SessionConfig
from appliance.bfd.fsm import BfdFsm
from appliance.bfd.packet import (
    Auth,
    AuthType,
    BfdDecodeError,
    ControlPacket,
    State,
    check_sha1,
    decode,
    encode,
)

_KEY = b"fuzz-key"
_CFG = SessionConfig("192.0.2.1", desired_min_tx=50_000, required_min_rx=50_000)
_CFG_AUTH = SessionConfig(
    "192.0.2.1", desired_min_tx=50_000, required_min_rx=50_000,
    auth=AuthConfig(AuthType.METICULOUS_KEYED_SHA1, 1, _KEY),
)


def fuzz_packet(data: bytes) -> None:
    try:
        pkt = decode(data)
    except BfdDecodeError:
        return
    assert 24 <= pkt.length or pkt.auth is not None
    if pkt.auth is None or pkt.auth.auth_type in (AuthType.KEYED_SHA1, AuthType.METICULOUS_KEYED_SHA1):
        again = decode(encode(pkt, _KEY))
        if pkt.auth is None:
            assert again == pkt
        else:
            assert (again.state, again.my_discr, again.auth.sequence) == (
                pkt.state, pkt.my_discr, pkt.auth.sequence)
    check_sha1(data, _KEY)
    for cfg in (_CFG, _CFG_AUTH):
        fsm = BfdFsm(cfg, pkt.your_discr or 1, 0.0, random.Random(0))
        fsm.receive(pkt, 0.01, data)
        fsm.on_timer(0.02)
        fsm.state_dict(0.03)


def seeds_packet() -> list[bytes]:
    out = []
    for st in State:
        your = 0 if st in (State.DOWN, State.ADMIN_DOWN) else 1
        out.append(encode(ControlPacket(state=st, my_discr=5, your_discr=your, poll=st == State.UP)))
        out.append(encode(ControlPacket(state=st, my_discr=5, your_discr=your,
                                        auth=Auth(AuthType.METICULOUS_KEYED_SHA1, 1, 7)), _KEY))
        out.append(encode(ControlPacket(state=st, my_discr=5, your_discr=your,
                                        auth=Auth(AuthType.KEYED_SHA1, 2, 0xFFFFFFFF)), b"x"))
    out.append(encode(ControlPacket(my_discr=5, auth=Auth(AuthType.SIMPLE_PASSWORD, 1, 0, b"pw"))))
    return out


TARGETS = {"bfd-packet": (fuzz_packet, seeds_packet)}
