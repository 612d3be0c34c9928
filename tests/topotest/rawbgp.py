"""A minimal blocking BGP speaker for tests that need to send exactly the bytes they choose.

Independent of appliance.bgp on purpose: it builds OPEN / KEEPALIVE / UPDATE with struct so a
bug in the product codec cannot hide in the test. IPv4 unicast only, no timers of its own:
the caller keeps the session alive by calling `poll` (which answers nothing, but sends a
KEEPALIVE every ``keepalive`` seconds).
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import time
from dataclasses import dataclass, field

from .netns import Host

MARKER = b"\xff" * 16
OPEN, UPDATE, NOTIFICATION, KEEPALIVE, ROUTE_REFRESH = 1, 2, 3, 4, 5
AS_TRANS = 23456

# attribute flags
OPTIONAL, TRANSITIVE, PARTIAL, EXTENDED = 0x80, 0x40, 0x20, 0x10
WELL_KNOWN = TRANSITIVE


class RawBgpError(RuntimeError):
    pass


class NotificationReceived(RawBgpError):
    def __init__(self, code: int, subcode: int, data: bytes) -> None:
        super().__init__(f"NOTIFICATION {code}/{subcode} data={data!r}")
        self.code, self.subcode, self.data = code, subcode, data


# -- encoders -------------------------------------------------------------------------------
def message(msg_type: int, body: bytes = b"") -> bytes:
    return MARKER + struct.pack("!HB", 19 + len(body), msg_type) + body


def keepalive() -> bytes:
    return message(KEEPALIVE)


def capability(code: int, value: bytes = b"") -> bytes:
    return struct.pack("!BB", code, len(value)) + value


def open_message(my_as: int, hold_time: int, router_id: str, four_octet: bool = True,
                 families: tuple[tuple[int, int], ...] = ((1, 1),),
                 extra_caps: bytes = b"") -> bytes:
    """OPEN with multiprotocol, route refresh, [4-octet AS] and ``extra_caps`` (encoded
    with `capability`) in one Capabilities parameter."""
    caps = b"".join(capability(1, struct.pack("!HBB", afi, 0, safi)) for afi, safi in families)
    caps += capability(2)  # route refresh
    if four_octet:
        caps += capability(65, struct.pack("!I", my_as))
    caps += extra_caps
    opt = struct.pack("!BB", 2, len(caps)) + caps  # one Capabilities optional parameter
    two_octet_as = my_as if my_as <= 0xFFFF else AS_TRANS
    body = struct.pack("!BHH4sB", 4, two_octet_as, hold_time,
                       ipaddress.IPv4Address(router_id).packed, len(opt)) + opt
    return message(OPEN, body)


def attr(flags: int, type_code: int, value: bytes) -> bytes:
    if len(value) > 255 or flags & EXTENDED:
        return struct.pack("!BBH", flags | EXTENDED, type_code, len(value)) + value
    return struct.pack("!BBB", flags, type_code, len(value)) + value


def origin(value: int = 0) -> bytes:
    return attr(WELL_KNOWN, 1, bytes([value]))


def as_path(asns: list[int], four_octet: bool = True) -> bytes:
    if not asns:
        return attr(WELL_KNOWN, 2, b"")
    fmt = "!I" if four_octet else "!H"
    seg = struct.pack("!BB", 2, len(asns)) + b"".join(struct.pack(fmt, a) for a in asns)
    return attr(WELL_KNOWN, 2, seg)


def next_hop(address: str) -> bytes:
    return attr(WELL_KNOWN, 3, ipaddress.IPv4Address(address).packed)


def med(value: int) -> bytes:
    return attr(OPTIONAL, 4, struct.pack("!I", value))


def local_pref(value: int) -> bytes:
    return attr(WELL_KNOWN, 5, struct.pack("!I", value))


def atomic_aggregate() -> bytes:
    return attr(WELL_KNOWN, 6, b"")


def graceful_restart_cap(restart_time: int, families: tuple[tuple[int, int, int], ...] = ((1, 1, 0),),
                         restart_state: bool = False) -> bytes:
    """Graceful Restart capability (RFC 4724 §3): families are (afi, safi, flags); flags
    0x80 is the Forwarding State bit."""
    head = (0x8000 if restart_state else 0) | (restart_time & 0x0FFF)
    return capability(64, struct.pack("!H", head) + b"".join(
        struct.pack("!HBB", afi, safi, flags) for afi, safi, flags in families))


def end_of_rib_ipv4() -> bytes:
    """IPv4 unicast End-of-RIB: an UPDATE with nothing in it (RFC 4724 §2)."""
    return update()


def nlri(prefix: str) -> bytes:
    net = ipaddress.IPv4Network(prefix)
    plen = net.prefixlen
    return bytes([plen]) + net.network_address.packed[: (plen + 7) // 8]


def raw_nlri(prefix_len: int, addr_bytes: bytes) -> bytes:
    """An NLRI with any length octet (e.g. 33 for an invalid IPv4 prefix)."""
    return bytes([prefix_len]) + addr_bytes


def update(withdrawn: bytes = b"", attrs: bytes = b"", nlri_bytes: bytes = b"") -> bytes:
    body = struct.pack("!H", len(withdrawn)) + withdrawn
    body += struct.pack("!H", len(attrs)) + attrs + nlri_bytes
    return message(UPDATE, body)


# -- decoder --------------------------------------------------------------------------------
@dataclass
class PeerOpen:
    version: int
    my_as: int
    hold_time: int
    router_id: str
    capabilities: dict[int, list[bytes]] = field(default_factory=dict)

    @property
    def four_octet_as(self) -> int | None:
        vals = self.capabilities.get(65)
        return struct.unpack("!I", vals[0])[0] if vals else None


def parse_open(body: bytes) -> PeerOpen:
    version, my_as, hold, rid, opt_len = struct.unpack("!BHH4sB", body[:10])
    caps: dict[int, list[bytes]] = {}
    opts = body[10:10 + opt_len]
    i = 0
    while i + 2 <= len(opts):
        ptype, plen = opts[i], opts[i + 1]
        pval = opts[i + 2:i + 2 + plen]
        i += 2 + plen
        if ptype != 2:
            continue
        j = 0
        while j + 2 <= len(pval):
            code, clen = pval[j], pval[j + 1]
            caps.setdefault(code, []).append(pval[j + 2:j + 2 + clen])
            j += 2 + clen
    return PeerOpen(version, my_as, hold, str(ipaddress.IPv4Address(rid)), caps)


# -- the speaker ----------------------------------------------------------------------------
class RawBgpSpeaker:
    """A blocking BGP speaker on one TCP connection."""

    def __init__(self, sock: socket.socket, my_as: int, router_id: str, *,
                 hold_time: int = 90, keepalive_interval: float = 10.0,
                 four_octet: bool = True, extra_caps: bytes = b"") -> None:
        self.sock = sock
        self.my_as = my_as
        self.router_id = router_id
        self.hold_time = hold_time
        self.keepalive_interval = keepalive_interval
        self.four_octet = four_octet
        self.extra_caps = extra_caps
        self.buf = b""
        self.received: list[tuple[int, bytes]] = []
        self.peer_open: PeerOpen | None = None
        self._last_keepalive = 0.0

    @classmethod
    def connect(cls, host: Host, local: str, remote: str, my_as: int, router_id: str, *,
                port: int = 179, timeout: float = 10.0, **kw) -> RawBgpSpeaker:
        """Connect from namespace ``host`` (bound to ``local``) to ``remote``:``port``."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        for _ in range(int(timeout / 0.2) + 1):  # the peer may not listen yet
            s = host.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.settimeout(2.0)
                s.bind((local, 0))
                s.connect((remote, port))
                return cls(s, my_as, router_id, **kw)
            except OSError as exc:
                last = exc
                s.close()
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        raise RawBgpError(f"cannot connect to {remote}:{port}: {last!r}")

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_keepalive(self) -> None:
        self.send(keepalive())
        self._last_keepalive = time.monotonic()

    def recv(self, timeout: float = 5.0) -> tuple[int, bytes] | None:
        """Next message (type, body), or None when nothing arrived within ``timeout``.

        Raises RawBgpError when the peer closed the connection."""
        deadline = time.monotonic() + timeout
        for _ in range(10_000):
            if len(self.buf) >= 19:
                length, mtype = struct.unpack("!HB", self.buf[16:19])
                if self.buf[:16] != MARKER or length < 19:
                    raise RawBgpError(f"bad header from peer: {self.buf[:19]!r}")
                if len(self.buf) >= length:
                    body = self.buf[19:length]
                    self.buf = self.buf[length:]
                    self.received.append((mtype, body))
                    return mtype, body
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(min(left, 1.0))
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                raise RawBgpError("connection closed by peer")
            self.buf += chunk
        return None

    def establish(self, timeout: float = 10.0) -> PeerOpen:
        """Send OPEN, read the peer's OPEN, exchange KEEPALIVEs."""
        self.send(open_message(self.my_as, self.hold_time, self.router_id, self.four_octet,
                               extra_caps=self.extra_caps))
        deadline = time.monotonic() + timeout
        got_keepalive = False
        for _ in range(100):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            msg = self.recv(left)
            if msg is None:
                break
            mtype, body = msg
            if mtype == NOTIFICATION:
                raise NotificationReceived(body[0], body[1], body[2:])
            if mtype == OPEN:
                self.peer_open = parse_open(body)
                self.send_keepalive()
            elif mtype == KEEPALIVE and self.peer_open is not None:
                got_keepalive = True
            if self.peer_open is not None and got_keepalive:
                return self.peer_open
        raise RawBgpError("session did not reach Established")

    def poll(self, duration: float) -> list[tuple[int, bytes]]:
        """Read for ``duration`` seconds (keeping the session alive); return what came.

        Raises NotificationReceived on a NOTIFICATION."""
        end = time.monotonic() + duration
        got = []
        for _ in range(10_000):
            now = time.monotonic()
            if now >= end:
                break
            if now - self._last_keepalive >= self.keepalive_interval:
                self.send_keepalive()
            msg = self.recv(min(end - now, 0.5))
            if msg is None:
                continue
            got.append(msg)
            if msg[0] == NOTIFICATION:
                raise NotificationReceived(msg[1][0], msg[1][1], msg[1][2:])
        return got

    def wait_notification(self, timeout: float = 10.0) -> NotificationReceived:
        try:
            self.poll(timeout)
        except NotificationReceived as n:
            return n
        raise RawBgpError(f"no NOTIFICATION within {timeout}s")


@dataclass
class ParsedUpdate:
    withdrawn: list[str]
    attrs: dict[int, tuple[int, bytes]]  # type -> (flags, value)
    nlri: list[str]

    def as_path(self, four_octet: bool) -> list[int]:
        return parse_as_path(self.attrs[2][1], four_octet) if 2 in self.attrs else []

    def as4_path(self) -> list[int] | None:
        return parse_as_path(self.attrs[17][1], True) if 17 in self.attrs else None


def _prefixes(data: bytes) -> list[str]:
    out, i = [], 0
    while i < len(data):
        plen = data[i]
        n = (plen + 7) // 8
        addr = data[i + 1:i + 1 + n] + b"\x00" * (4 - n)
        out.append(f"{ipaddress.IPv4Address(addr[:4])}/{plen}")
        i += 1 + n
    return out


def parse_as_path(value: bytes, four_octet: bool) -> list[int]:
    size, fmt = (4, "!I") if four_octet else (2, "!H")
    out, i = [], 0
    while i + 2 <= len(value):
        count = value[i + 1]
        i += 2
        for _ in range(count):
            out.append(struct.unpack(fmt, value[i:i + size])[0])
            i += size
    return out


def parse_update(body: bytes) -> ParsedUpdate:
    """Decode an IPv4 unicast UPDATE body (attributes kept raw)."""
    wlen = struct.unpack("!H", body[:2])[0]
    withdrawn = _prefixes(body[2:2 + wlen])
    i = 2 + wlen
    alen = struct.unpack("!H", body[i:i + 2])[0]
    i += 2
    attrs: dict[int, tuple[int, bytes]] = {}
    end = i + alen
    while i < end:
        flags, code = body[i], body[i + 1]
        if flags & EXTENDED:
            length = struct.unpack("!H", body[i + 2:i + 4])[0]
            i += 4
        else:
            length = body[i + 2]
            i += 3
        attrs[code] = (flags, body[i:i + length])
        i += length
    return ParsedUpdate(withdrawn, attrs, _prefixes(body[end:]))
