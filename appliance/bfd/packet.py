"""BFD Control packet codec (RFC 5880 §4), with no I/O.

``decode`` parses a UDP payload into a `ControlPacket` and applies every reception
check of §6.8.6 that does not need a session (version, length, detect mult, M bit,
discriminators, A bit vs. auth section). ``encode`` builds the wire form; with keyed
SHA1 or meticulous keyed SHA1 (§4.4, §6.7.4) it computes the digest over the whole
packet with the key (zero-padded to 20 octets) in the Auth Key/Hash field.
``check_sha1`` verifies a received digest the same way. Sequence-number windows need
session state and live in fsm.py.

The only exception that leaves this module is `BfdDecodeError`.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass
from enum import IntEnum

VERSION = 1
HEADER_LEN = 24
SHA1_AUTH_LEN = 28          # type, len, key id, reserved, seq (4), digest (20)
SHA1_DIGEST_LEN = 20
MAX_PACKET_LEN = 255        # the Length field is one octet


class State(IntEnum):
    ADMIN_DOWN = 0
    DOWN = 1
    INIT = 2
    UP = 3


STATE_NAMES = {State.ADMIN_DOWN: "AdminDown", State.DOWN: "Down", State.INIT: "Init", State.UP: "Up"}


class Diag(IntEnum):
    """§4.1 diagnostic codes."""

    NONE = 0
    CONTROL_DETECTION_TIME_EXPIRED = 1
    ECHO_FAILED = 2
    NEIGHBOR_SIGNALED_DOWN = 3
    FORWARDING_PLANE_RESET = 4
    PATH_DOWN = 5
    CONCATENATED_PATH_DOWN = 6
    ADMIN_DOWN = 7
    REVERSE_CONCATENATED_PATH_DOWN = 8


DIAG_NAMES = {
    0: "none",
    1: "control-detection-time-expired",
    2: "echo-function-failed",
    3: "neighbor-signaled-session-down",
    4: "forwarding-plane-reset",
    5: "path-down",
    6: "concatenated-path-down",
    7: "administratively-down",
    8: "reverse-concatenated-path-down",
}


class AuthType(IntEnum):
    NONE = 0
    SIMPLE_PASSWORD = 1
    KEYED_MD5 = 2
    METICULOUS_KEYED_MD5 = 3
    KEYED_SHA1 = 4
    METICULOUS_KEYED_SHA1 = 5


SHA1_TYPES = (AuthType.KEYED_SHA1, AuthType.METICULOUS_KEYED_SHA1)

# Flag bits of the second octet (after the 2-bit state).
P_BIT = 0x20
F_BIT = 0x10
C_BIT = 0x08
A_BIT = 0x04
D_BIT = 0x02
M_BIT = 0x01


class BfdDecodeError(ValueError):
    """A received packet that §6.8.6 says to discard; ``reason`` is a short token."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Auth:
    """The authentication section. For SHA1 types ``digest`` is the received hash."""

    auth_type: int
    key_id: int = 0
    sequence: int = 0
    digest: bytes = b""      # SHA1: 20 octets; other types: the raw type-specific bytes


@dataclass(frozen=True, slots=True)
class ControlPacket:
    state: int = State.DOWN
    diag: int = Diag.NONE
    detect_mult: int = 3
    my_discr: int = 0
    your_discr: int = 0
    desired_min_tx: int = 1_000_000      # µs
    required_min_rx: int = 1_000_000     # µs
    required_min_echo_rx: int = 0        # µs
    poll: bool = False
    final: bool = False
    cpi: bool = False                    # C: control plane independent
    demand: bool = False
    multipoint: bool = False
    auth: Auth | None = None
    version: int = VERSION

    @property
    def length(self) -> int:
        if self.auth is None:
            return HEADER_LEN
        if self.auth.auth_type in SHA1_TYPES:
            return HEADER_LEN + SHA1_AUTH_LEN
        return HEADER_LEN + 3 + len(self.auth.digest)


_HDR = struct.Struct("!BBBBIIIII")
_SHA1 = struct.Struct("!BBBBI")
_PAD = bytes(SHA1_DIGEST_LEN)


def sha1_key(key: bytes) -> bytes:
    """The key as it sits in the Auth Key/Hash field while hashing (§6.7.4)."""
    if len(key) > SHA1_DIGEST_LEN:
        raise ValueError("a SHA1 key is at most 20 octets")
    return key + _PAD[len(key):]


def encode(pkt: ControlPacket, key: bytes = b"") -> bytes:
    """Wire form of ``pkt``. With a SHA1 auth section, ``key`` signs it (§6.7.4)."""
    flags = (pkt.state & 3) << 6
    if pkt.poll:
        flags |= P_BIT
    if pkt.final:
        flags |= F_BIT
    if pkt.cpi:
        flags |= C_BIT
    if pkt.auth is not None:
        flags |= A_BIT
    if pkt.demand:
        flags |= D_BIT
    if pkt.multipoint:
        flags |= M_BIT
    head = _HDR.pack(
        ((pkt.version & 7) << 5) | (pkt.diag & 0x1F), flags, pkt.detect_mult, pkt.length,
        pkt.my_discr, pkt.your_discr, pkt.desired_min_tx, pkt.required_min_rx,
        pkt.required_min_echo_rx,
    )
    a = pkt.auth
    if a is None:
        return head
    if a.auth_type in SHA1_TYPES:
        sec = _SHA1.pack(a.auth_type, SHA1_AUTH_LEN, a.key_id, 0, a.sequence)
        digest = hashlib.sha1(head + sec + sha1_key(key)).digest()
        return head + sec + digest
    return head + bytes((a.auth_type, 3 + len(a.digest), a.key_id)) + a.digest


def check_sha1(data: bytes, key: bytes) -> bool:
    """True when the SHA1 digest of a received packet (already decoded) matches ``key``."""
    end = HEADER_LEN + SHA1_AUTH_LEN
    if len(data) < end:
        return False
    body = data[: end - SHA1_DIGEST_LEN]
    try:
        padded = sha1_key(key)
    except ValueError:
        return False
    expect = hashlib.sha1(body + padded).digest()
    return hmac.compare_digest(expect, data[end - SHA1_DIGEST_LEN : end])


def decode(data: bytes) -> ControlPacket:
    """Parse a UDP payload; raise `BfdDecodeError` for anything §6.8.6 discards."""
    n = len(data)
    if n < HEADER_LEN:
        raise BfdDecodeError("short", f"{n} octets")
    vd, flags, mult, length, my_d, your_d, tx, rx, echo = _HDR.unpack_from(data)
    version = vd >> 5
    if version != VERSION:
        raise BfdDecodeError("version", str(version))
    a_bit = bool(flags & A_BIT)
    if length < (HEADER_LEN + 2 if a_bit else HEADER_LEN):
        raise BfdDecodeError("length", f"Length {length} too small")
    if length > n:
        raise BfdDecodeError("length", f"Length {length} beyond payload {n}")
    if mult == 0:
        raise BfdDecodeError("detect-mult", "Detect Mult 0")
    if flags & M_BIT:
        raise BfdDecodeError("multipoint", "M bit set")
    if my_d == 0:
        raise BfdDecodeError("my-discriminator", "My Discriminator 0")
    state = flags >> 6
    if your_d == 0 and state not in (State.DOWN, State.ADMIN_DOWN):
        raise BfdDecodeError("your-discriminator", f"0 in state {STATE_NAMES[State(state)]}")
    if (flags & (P_BIT | F_BIT)) == (P_BIT | F_BIT):
        raise BfdDecodeError("poll-final", "P and F both set")
    auth = None
    if a_bit:
        atype, alen = data[HEADER_LEN], data[HEADER_LEN + 1]
        if HEADER_LEN + alen > length or alen < 2:
            raise BfdDecodeError("auth-length", f"Auth Len {alen} in Length {length}")
        if atype in SHA1_TYPES:
            if alen != SHA1_AUTH_LEN:
                raise BfdDecodeError("auth-length", f"SHA1 Auth Len {alen}")
            _, _, key_id, _, seq = _SHA1.unpack_from(data, HEADER_LEN)
            digest = bytes(data[HEADER_LEN + 8 : HEADER_LEN + SHA1_AUTH_LEN])
            auth = Auth(atype, key_id, seq, digest)
        elif atype in (AuthType.SIMPLE_PASSWORD, AuthType.KEYED_MD5, AuthType.METICULOUS_KEYED_MD5):
            if alen < 3:
                raise BfdDecodeError("auth-length", f"Auth Len {alen}")
            auth = Auth(atype, data[HEADER_LEN + 2], 0, bytes(data[HEADER_LEN + 3 : HEADER_LEN + alen]))
        else:
            raise BfdDecodeError("auth-type", f"unknown Auth Type {atype}")
    return ControlPacket(
        state=state,
        diag=vd & 0x1F,
        detect_mult=mult,
        my_discr=my_d,
        your_discr=your_d,
        desired_min_tx=tx,
        required_min_rx=rx,
        required_min_echo_rx=echo,
        poll=bool(flags & P_BIT),
        final=bool(flags & F_BIT),
        cpi=bool(flags & C_BIT),
        demand=bool(flags & D_BIT),
        multipoint=False,
        auth=auth,
        version=version,
    )
