"""Full-table feed for the BGP benchmark: pre-encoded UPDATEs plus a minimal sender.

Self-contained on purpose: the sender must not depend on the code under test, so this file
has its own small struct-based BGP encoder (OPEN, KEEPALIVE, UPDATE, End-of-RIB) and a tiny
blocking-socket session. ``sink.py`` reuses the session part.

Feeds (N distinct IPv4 /24 prefixes, default N = 1,000,000, all valid unicast):

- ``a``: N / 16 attribute sets, 16 prefixes per set -> one UPDATE per set. The sets differ
  in AS_PATH, MED and COMMUNITIES.
- ``b``: all N prefixes under one attribute set, packed into UPDATEs of at most 4096 octets.

Both end with an IPv4-unicast End-of-RIB marker.

Usage (normally driven by bench/bgp_table.py):

    python bench/feed.py build --feed a --prefixes 1000000 --next-hop 10.0.1.1
    python bench/feed.py send --connect 10.0.1.2 --local-as 65001 --router-id 10.0.1.1 \
        --feed-file bench/results/feed-a-1000000-10.0.1.1.bin

``send`` prints one JSON object per line on stdout: {"event": "established", "t": ...},
{"event": "sent", "t": ..., "bytes": ...}, and {"event": "error", ...} on failure.
Times are time.monotonic() (CLOCK_MONOTONIC, shared by all processes on the machine).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import signal
import socket
import struct
import sys
import threading
import time

MARKER = b"\xff" * 16
OPEN, UPDATE, NOTIFICATION, KEEPALIVE, ROUTE_REFRESH = 1, 2, 3, 4, 5
MAX_MESSAGE = 4096
AS_TRANS = 23456
PREFIXES_PER_SET = 16
FEED_FORMAT = 3  # bump when the encoding changes: cached files are keyed by it

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

# First octets (and a few finer ranges) that are not ordinary global unicast space.
_SKIP_NETS = [
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
        "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
        "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/3",
    )
]
_SKIP_RANGES = sorted((int(n.network_address) >> 8, int(n.broadcast_address) >> 8) for n in _SKIP_NETS)


# --------------------------------------------------------------------------- encoding


def message(msg_type: int, body: bytes) -> bytes:
    return MARKER + struct.pack("!HB", 19 + len(body), msg_type) + body


def keepalive() -> bytes:
    return message(KEEPALIVE, b"")


def end_of_rib_ipv4() -> bytes:
    return message(UPDATE, b"\x00\x00\x00\x00")


def open_message(local_as: int, hold_time: int, router_id: str) -> bytes:
    caps = b"".join(
        (
            b"\x01\x04" + struct.pack("!HBB", 1, 0, 1),  # multiprotocol IPv4 unicast
            b"\x02\x00",  # route refresh
            b"\x41\x04" + struct.pack("!I", local_as),  # 4-octet AS
        )
    )
    # One capability per optional parameter would also do; one parameter holding all is fine.
    params = b"\x02" + bytes([len(caps)]) + caps
    my_as = local_as if local_as <= 0xFFFF else AS_TRANS
    body = struct.pack("!BHH4sB", 4, my_as, hold_time, socket.inet_aton(router_id), len(params))
    return message(OPEN, body + params)


def notification(code: int, subcode: int, data: bytes = b"") -> bytes:
    return message(NOTIFICATION, bytes([code, subcode]) + data)


def _attr(flags: int, type_code: int, value: bytes) -> bytes:
    if len(value) > 255:
        return struct.pack("!BBH", flags | 0x10, type_code, len(value)) + value
    return struct.pack("!BBB", flags, type_code, len(value)) + value


def path_attributes(as_path: list[int], next_hop: str, med: int | None,
                    communities: list[int]) -> bytes:
    out = [_attr(0x40, 1, b"\x00")]  # ORIGIN IGP
    seg = struct.pack("!BB", 2, len(as_path)) + struct.pack(f"!{len(as_path)}I", *as_path)
    out.append(_attr(0x40, 2, seg))  # AS_PATH, 4-octet ASNs (4-octet AS negotiated)
    out.append(_attr(0x40, 3, socket.inet_aton(next_hop)))  # NEXT_HOP
    if med is not None:
        out.append(_attr(0x80, 4, struct.pack("!I", med)))  # MULTI_EXIT_DISC
    if communities:
        out.append(_attr(0xC0, 8, struct.pack(f"!{len(communities)}I", *communities)))
    return b"".join(out)


def update(attrs: bytes, nlri: bytes) -> bytes:
    return message(UPDATE, b"\x00\x00" + struct.pack("!H", len(attrs)) + attrs + nlri)


def prefix_slash24s(n: int):
    """The first n valid unicast /24s from 1.0.0.0 upward, as 24-bit network numbers."""
    cur = 1 << 16  # 1.0.0.0 >> 8
    ranges = iter(_SKIP_RANGES)
    skip = next(ranges, None)
    produced = 0
    while produced < n:
        while skip is not None and cur > skip[1]:
            skip = next(ranges, None)
        if skip is not None and skip[0] <= cur <= skip[1]:
            cur = skip[1] + 1
            continue
        if cur >= (224 << 16):
            raise ValueError("too many prefixes requested")
        # produce a run up to the next skipped range
        end = skip[0] if skip is not None else (224 << 16)
        take = min(n - produced, end - cur)
        yield from range(cur, cur + take)
        produced += take
        cur += take


def nlri_blob(n: int) -> bytes:
    """Wire NLRI of the first n /24s, 4 octets each (length 24 + 3 address octets)."""
    out = bytearray(4 * n)
    pack = struct.pack_into
    off = 0
    for net in prefix_slash24s(n):
        pack("!I", out, off, 0x18000000 | net)
        off += 4
    return bytes(out)


def build_feed_a(n: int, next_hop: str, local_as: int) -> bytes:
    nlri = nlri_blob(n)
    parts = []
    sets = (n + PREFIXES_PER_SET - 1) // PREFIXES_PER_SET
    step = 4 * PREFIXES_PER_SET
    for i in range(sets):
        # Distinct per set: AS_PATH (length 2..4, varying ASNs), MED and a community.
        path = [local_as, 4200000000 + i]
        # private ASNs 64512..64911: never the receiver's (65000) or the sink's (65002)
        path.extend(64512 + ((i >> 4) + k) % 400 for k in range(i % 3))
        # (no well-known communities: 65535:x would change the daemons' behaviour)
        attrs = path_attributes(path, next_hop, i, [(local_as << 16) | (i & 0xFFFF),
                                                    (64512 << 16) | (100 + i % 7)])
        parts.append(update(attrs, nlri[i * step:(i + 1) * step]))
    parts.append(end_of_rib_ipv4())
    return b"".join(parts)


def build_feed_b(n: int, next_hop: str, local_as: int) -> bytes:
    nlri = nlri_blob(n)
    attrs = path_attributes([local_as, 4200000000], next_hop, 0, [(local_as << 16) | 1])
    room = (MAX_MESSAGE - 19 - 4 - len(attrs)) // 4 * 4
    parts = [update(attrs, nlri[off:off + room]) for off in range(0, len(nlri), room)]
    parts.append(end_of_rib_ipv4())
    return b"".join(parts)


def feed_path(kind: str, n: int, next_hop: str, local_as: int) -> str:
    return os.path.join(RESULTS_DIR, f"feed{FEED_FORMAT}-{kind}-{n}-{next_hop}-as{local_as}.bin")


def ensure_feed(kind: str, n: int, next_hop: str, local_as: int) -> str:
    """Build the feed file once (cached under bench/results/) and return its path."""
    path = feed_path(kind, n, next_hop, local_as)
    if os.path.exists(path):
        return path
    os.makedirs(RESULTS_DIR, exist_ok=True)
    builder = {"a": build_feed_a, "b": build_feed_b}[kind]
    data = builder(n, next_hop, local_as)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return path


def split_chunks(data: bytes, target: int = 256 * 1024) -> list[memoryview]:
    """Cut a stream of messages into chunks of about `target` octets on message boundaries."""
    view = memoryview(data)
    chunks = []
    start = off = 0
    total = len(data)
    while off < total:
        (length,) = struct.unpack_from("!H", data, off + 16)
        off += length
        if off - start >= target or off >= total:
            chunks.append(view[start:off])
            start = off
    return chunks


# --------------------------------------------------------------------------- session


def emit(**event) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


class SessionError(Exception):
    pass


class Session:
    """A blocking BGP session: connect, OPEN/KEEPALIVE handshake, framed reads, keepalives.

    Writes are serialized by a lock so the keepalive thread never splits a message.
    """

    def __init__(self, local_as: int, router_id: str, hold_time: int = 180):
        self.local_as = local_as
        self.router_id = router_id
        self.hold_time = hold_time
        self.sock: socket.socket | None = None
        self.buf = bytearray()
        self.wlock = threading.Lock()
        self.closed = threading.Event()
        self.peer_open: bytes = b""
        self.negotiated_hold = hold_time

    def connect(self, address: str, port: int, local: str | None, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        attempt = 0
        while True:
            attempt += 1
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if local:
                s.bind((local, 0))
            s.settimeout(2.0)
            try:
                s.connect((address, port))
                s.settimeout(None)
                self.sock = s
                return
            except OSError as e:
                s.close()
                if time.monotonic() >= deadline or attempt >= 10000:
                    raise SessionError(f"connect {address}:{port}: {e}") from e
                time.sleep(0.05)

    def send(self, data) -> None:
        with self.wlock:
            self.sock.sendall(data)

    def read_message(self) -> tuple[int, bytes]:
        while True:
            if len(self.buf) >= 19:
                (length,) = struct.unpack_from("!H", self.buf, 16)
                if length < 19 or length > 65535:
                    raise SessionError(f"bad message length {length}")
                if len(self.buf) >= length:
                    msg_type = self.buf[18]
                    body = bytes(self.buf[19:length])
                    del self.buf[:length]
                    return msg_type, body
            data = self.sock.recv(1 << 20)
            if not data:
                raise SessionError("connection closed by peer")
            self.buf += data

    def handshake(self, timeout: float = 30.0) -> float:
        """OPEN/KEEPALIVE exchange; returns the monotonic time of reaching Established."""
        self.sock.settimeout(timeout)
        self.send(open_message(self.local_as, self.hold_time, self.router_id))
        got_open = False
        for _ in range(100):
            msg_type, body = self.read_message()
            if msg_type == OPEN and not got_open:
                got_open = True
                self.peer_open = body
                (peer_hold,) = struct.unpack_from("!H", body, 3)
                self.negotiated_hold = min(self.hold_time, peer_hold)
                self.send(keepalive())
            elif msg_type == KEEPALIVE and got_open:
                self.sock.settimeout(None)
                return time.monotonic()
            elif msg_type == NOTIFICATION:
                raise SessionError(f"NOTIFICATION during handshake: {body[:2].hex()} {body[2:]!r}")
        raise SessionError("handshake did not complete")

    def start_keepalives(self) -> None:
        if self.negotiated_hold == 0:
            return
        interval = max(1.0, self.negotiated_hold / 3.0)

        def run():
            while not self.closed.wait(interval):
                try:
                    self.send(keepalive())
                except OSError:
                    return

        threading.Thread(target=run, name="keepalive", daemon=True).start()

    def close(self) -> None:
        self.closed.set()
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass


def _install_signal_exit() -> None:
    def handler(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def cmd_send(args) -> int:
    _install_signal_exit()
    with open(args.feed_file, "rb") as f:
        data = f.read()
    chunks = split_chunks(data)
    sess = Session(args.local_as, args.router_id, args.hold_time)
    hard_deadline = time.monotonic() + args.max_seconds
    try:
        sess.connect(args.connect, args.port, args.local_address, args.connect_timeout)
        t_est = sess.handshake()
        emit(event="established", t=t_est, hold=sess.negotiated_hold)
        sess.start_keepalives()
        failure: list[str] = []

        def reader():
            # Drain whatever the receiver sends (keepalives, maybe updates); stop on error.
            try:
                while not sess.closed.is_set():
                    msg_type, body = sess.read_message()
                    if msg_type == NOTIFICATION:
                        failure.append(f"NOTIFICATION {body[:2].hex()} {body[2:]!r}")
                        emit(event="error", error=failure[-1], t=time.monotonic())
                        sess.closed.set()
                        return
            except (OSError, SessionError) as e:
                if not sess.closed.is_set():
                    failure.append(str(e))
                    emit(event="error", error=str(e), t=time.monotonic())
                    sess.closed.set()

        threading.Thread(target=reader, name="reader", daemon=True).start()
        for chunk in chunks:
            if sess.closed.is_set():
                return 1
            sess.send(chunk)
        emit(event="sent", t=time.monotonic(), bytes=len(data))
        # Hold the session up until told to stop (SIGTERM) or the hard deadline.
        while not sess.closed.wait(0.5):
            if time.monotonic() > hard_deadline:
                emit(event="error", error="max-seconds reached", t=time.monotonic())
                return 1
        return 1 if failure else 0
    except SessionError as e:
        emit(event="error", error=str(e), t=time.monotonic())
        return 1
    finally:
        sess.close()


def cmd_build(args) -> int:
    t0 = time.monotonic()
    path = ensure_feed(args.feed, args.prefixes, args.next_hop, args.local_as)
    emit(event="built", path=path, seconds=round(time.monotonic() - t0, 3),
         bytes=os.path.getsize(path))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build (or reuse) a cached feed file")
    b.add_argument("--feed", choices=("a", "b"), required=True)
    b.add_argument("--prefixes", type=int, default=1_000_000)
    b.add_argument("--next-hop", default="10.0.1.1")
    b.add_argument("--local-as", type=int, default=65001)
    s = sub.add_parser("send", help="connect, establish, blast a feed file, hold the session")
    s.add_argument("--connect", required=True)
    s.add_argument("--port", type=int, default=179)
    s.add_argument("--local-address")
    s.add_argument("--local-as", type=int, default=65001)
    s.add_argument("--router-id", required=True)
    s.add_argument("--hold-time", type=int, default=180)
    s.add_argument("--feed-file", required=True)
    s.add_argument("--connect-timeout", type=float, default=30.0)
    s.add_argument("--max-seconds", type=float, default=1800.0)
    args = p.parse_args(argv)
    return {"build": cmd_build, "send": cmd_send}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
