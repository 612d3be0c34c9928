"""Minimal BGP sink for the benchmark: connect, establish, count announced IPv4 NLRI.

Counts announced IPv4-unicast prefixes per UPDATE without decoding them one by one when
they are all /24s (the feed only has /24s; otherwise it walks the length octets). It stops
when it has counted --expect prefixes or when it sees the IPv4 End-of-RIB, whichever comes
first, and prints one JSON line per event on stdout:

    {"event": "established", "t": ...}
    {"event": "done", "t": ..., "count": N, "eor": bool, "distinct": N, ...}
    {"event": "timeout", "t": ..., "count": N, ...}  or  {"event": "error", ...}

The distinct count is computed after the timed part, from the NLRI blobs kept aside while
counting, to check that the receiver sent every prefix once (a re-announcement would be
counted twice by the fast count). Times are time.monotonic().
"""

from __future__ import annotations

import argparse
import contextlib
import struct
import sys
import time

sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
import feed  # noqa: E402  (bench-local encoder/session, independent of the code under test)


def count_nlri(nlri: bytes) -> int:
    n = len(nlri)
    if n == 0:
        return 0
    if n % 4 == 0 and nlri[::4].count(24) == n // 4:
        return n // 4
    count = off = 0
    while off < n:
        off += 1 + (nlri[off] + 7) // 8
        count += 1
    return count


def mp_reach_ipv4_nlri(attrs: bytes) -> bytes:
    """IPv4-unicast NLRI carried in MP_REACH_NLRI (only looked at when the classic field is empty)."""
    off = 0
    while off + 3 <= len(attrs):
        flags, code = attrs[off], attrs[off + 1]
        if flags & 0x10:
            (alen,) = struct.unpack_from("!H", attrs, off + 2)
            voff = off + 4
        else:
            alen = attrs[off + 2]
            voff = off + 3
        if code == 14:
            v = attrs[voff:voff + alen]
            afi, safi, nhlen = struct.unpack_from("!HBB", v, 0)
            if afi == 1 and safi == 1:
                return v[4 + nhlen + 1:]
            return b""
        off = voff + alen
    return b""


def distinct_prefixes(blobs: list[bytes]) -> int:
    seen = set()
    for nlri in blobs:
        off = 0
        n = len(nlri)
        while off < n:
            end = off + 1 + (nlri[off] + 7) // 8
            seen.add(nlri[off:end])
            off = end
    return len(seen)


class Counter:
    """Scans a receive buffer message by message without copying message bodies."""

    def __init__(self, keep_nlri: bool = True):
        self.count = 0
        self.updates = 0
        self.eor = False
        self.notification: bytes | None = None
        self.keep_nlri = keep_nlri
        self.nlri = bytearray()  # every announced NLRI, for the distinct check afterwards
        self.t_first: float | None = None
        self.t_99: float | None = None  # when 99% of the expected prefixes had arrived
        self.mark_99: int | None = None

    def scan(self, buf: bytearray, end: int) -> int:
        """Consume the whole messages in buf[:end]; return the offset after the last one."""
        unpack = struct.unpack_from
        off = 0
        count = 0
        updates = 0
        keep = self.nlri if self.keep_nlri else None
        while off + 19 <= end:
            length, typ = unpack("!HB", buf, off + 16)
            if length < 19:
                raise feed.SessionError(f"bad message length {length}")
            mend = off + length
            if mend > end:
                break
            if typ == 2:
                updates += 1
                p = off + 21 + ((buf[off + 19] << 8) | buf[off + 20])
                alen = (buf[p] << 8) | buf[p + 1]
                nstart = p + 2 + alen
                nlen = mend - nstart
                if nlen == 4 and buf[nstart] == 24:
                    count += 1
                    if keep is not None:
                        keep += buf[nstart:mend]
                elif nlen > 0:
                    blob = bytes(buf[nstart:mend])
                    count += count_nlri(blob)
                    if keep is not None:
                        keep += blob
                elif alen == 0:
                    if p == off + 21:
                        self.eor = True
                else:
                    blob = mp_reach_ipv4_nlri(bytes(buf[p + 2:nstart]))
                    count += count_nlri(blob)
                    if keep is not None:
                        keep += blob
            elif typ == 3:
                self.notification = bytes(buf[off + 19:mend])
            off = mend
        if count and self.t_first is None:
            self.t_first = time.monotonic()
        self.count += count
        self.updates += updates
        if self.t_99 is None and self.mark_99 is not None and self.count >= self.mark_99:
            self.t_99 = time.monotonic()
        return off


def distinct_in(blob: bytes) -> int:
    """Distinct prefixes in a concatenation of NLRI (fast path: all /24s)."""
    n = len(blob)
    if n % 4 == 0 and blob[::4].count(24) == n // 4:
        view = memoryview(blob).cast("I")
        return len(set(view))
    return distinct_prefixes([blob])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="BGP sink that counts announced IPv4 prefixes")
    p.add_argument("--connect", required=True)
    p.add_argument("--port", type=int, default=179)
    p.add_argument("--local-address")
    p.add_argument("--local-as", type=int, default=65002)
    p.add_argument("--router-id", required=True)
    p.add_argument("--hold-time", type=int, default=180)
    p.add_argument("--expect", type=int, default=1_000_000)
    p.add_argument("--timeout", type=float, default=180.0, help="seconds after Established")
    p.add_argument("--connect-timeout", type=float, default=30.0)
    p.add_argument("--no-distinct", action="store_true", help="skip the distinct check")
    args = p.parse_args(argv)

    feed._install_signal_exit()
    sess = feed.Session(args.local_as, args.router_id, args.hold_time)
    ctr = Counter(keep_nlri=not args.no_distinct)
    ctr.mark_99 = (args.expect * 99 + 99) // 100
    try:
        sess.connect(args.connect, args.port, args.local_address, args.connect_timeout)
        t_est = sess.handshake()
        feed.emit(event="established", t=t_est, hold=sess.negotiated_hold)
        sess.start_keepalives()
        deadline = t_est + args.timeout
        sock = sess.sock
        sock.settimeout(0.5)
        buf = bytearray(sess.buf)  # whatever followed the handshake
        chunk = bytearray(4 << 20)
        view = memoryview(chunk)
        for _ in range(100_000_000):
            if buf:
                used = ctr.scan(buf, len(buf))
                del buf[:used]
            if ctr.count >= args.expect or ctr.eor:
                t_done = time.monotonic()
                with contextlib.suppress(OSError):
                    sess.send(feed.notification(6, 2))  # Cease / administrative shutdown
                cpu_before_distinct = time.process_time()
                distinct = distinct_in(bytes(ctr.nlri)) if ctr.keep_nlri else None
                feed.emit(event="done", t=t_done, count=ctr.count, eor=ctr.eor,
                          updates=ctr.updates, t_first=ctr.t_first, t_99=ctr.t_99, distinct=distinct,
                          cpu_s=round(cpu_before_distinct, 3))
                return 0
            if ctr.notification is not None:
                feed.emit(event="error", t=time.monotonic(), count=ctr.count,
                          error=f"NOTIFICATION {ctr.notification[:2].hex()}")
                return 1
            if time.monotonic() > deadline:
                feed.emit(event="timeout", t=time.monotonic(), count=ctr.count,
                          updates=ctr.updates, eor=ctr.eor)
                return 2
            try:
                got = sock.recv_into(view)
            except TimeoutError:
                continue
            if got == 0:
                raise feed.SessionError("connection closed by peer")
            buf += view[:got]
        return 1
    except (feed.SessionError, OSError) as e:
        feed.emit(event="error", t=time.monotonic(), count=ctr.count, error=str(e))
        return 1
    finally:
        sess.close()


if __name__ == "__main__":
    sys.exit(main())
