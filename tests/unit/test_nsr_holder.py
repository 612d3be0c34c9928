"""NSR crash survival, piece by piece: the socket holder (holder.py), the log-before-send
ring and the kernel's write position (crash.TxLog, plan_tx), and peers reading in peek mode
that continue a session after their engine "died" in the middle of a message
(crash.PeekReader, Peer.adopt with the rest of a partial message)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from appliance.bgp.family import prefix_to_key
from appliance.bgp.packet.message import KEEPALIVE, split_messages
from appliance.nsr import crash
from appliance.nsr.crash import PeekReader, RecoverError, TxLog, kernel_tx_position, plan_tx
from appliance.nsr.holder import Holder, HolderClient, HolderError
from tests.unit.test_peer_loopback import Pair, ipv4_update, until

pytestmark = pytest.mark.timeout(60)


# -- the holder ----------------------------------------------------------------------------------
@pytest.fixture
def holder(tmp_path):
    """A holder serving in a thread; yields (path, Holder)."""
    path = str(tmp_path / "h.sock")
    h = Holder(path, grace=0.5)
    h.bind()
    t = threading.Thread(target=h.serve, args=(False,), daemon=True)
    t.start()
    yield path, h
    h.stopping = True
    with contextlib.suppress(OSError):  # wake the select
        HolderClient(path, 1.0).connect()
    t.join(5)


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    """A connected loopback TCP pair (client, server side)."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    c = socket.create_connection(ls.getsockname())
    s, _ = ls.accept()
    ls.close()
    return c, s


def eof_within(sock: socket.socket, timeout: float) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(100) == b""
    except TimeoutError:
        return False


def test_holder_keeps_a_connection_until_dropped(holder):
    path, _h = holder
    ours, theirs = tcp_pair()
    with HolderClient(path) as c:
        c.hello("e0")
        c.put("10.0.0.2", ours.fileno(), {"snapshot": {"x": 1}})
        ours.close()  # the engine's own descriptor goes: the holder's keeps the connection
        assert not eof_within(theirs, 0.3)
        st = c.status()
        assert [s["key"] for s in st["sessions"]] == ["10.0.0.2"] and not st["sessions"][0]["orphan"]
        assert c.drop("10.0.0.2") is True
        assert eof_within(theirs, 2.0)  # the last reference: FIN
        assert c.drop("10.0.0.2") is False


def test_orphans_are_taken_by_the_next_engine_only_after_the_owner_died(holder):
    path, _h = holder
    ours, theirs = tcp_pair()
    a = HolderClient(path)
    a.connect()
    a.hello("e0", 4242)
    a.put("10.0.0.2", ours.fileno(), {"tx-log": "/x"})
    b = HolderClient(path)
    b.connect()
    assert b.hello("e1")["orphans"] == []
    assert b.take() == {}  # a live engine's sessions are not given away
    with pytest.raises(HolderError, match="alive"):
        b.put("10.0.0.2", ours.fileno(), {})
    a.close()  # the engine died (no bye)
    time.sleep(0.1)
    hello = b.hello("e1")
    assert hello["orphans"] == ["10.0.0.2"] and hello["previous"] == [["e0", 4242]]
    got = b.take()
    assert list(got) == ["10.0.0.2"] and got["10.0.0.2"][1] == {"tx-log": "/x"}
    sock = got["10.0.0.2"][0]
    ours.close()
    sock.sendall(b"still here")
    theirs.settimeout(2)
    assert theirs.recv(100) == b"still here"
    assert not b.status()["sessions"][0]["orphan"]
    b.bye()  # clean exit: everything b owns is closed
    sock.close()
    assert eof_within(theirs, 2.0)


def test_orphans_expire_after_the_grace_time(holder):
    path, _h = holder
    ours, theirs = tcp_pair()
    a = HolderClient(path)
    a.connect()
    a.hello("e0")
    a.put("k", ours.fileno(), {})
    ours.close()
    a.close()
    assert not eof_within(theirs, 0.2)
    assert eof_within(theirs, 3.0)  # grace 0.5 s, then closed
    st = HolderClient(path)
    with st:
        assert st.status()["sessions"] == []


def test_bfd_worker_pipes_survive_the_engine_and_are_reattached(holder):
    path, _h = holder
    # a stand-in worker: echoes lines, exits at stdin EOF, chatty on stdout meanwhile
    code = ("import sys,time\n"
            "for line in sys.stdin:\n"
            "    sys.stdout.write(line); sys.stdout.flush()\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        a = HolderClient(path)
        a.connect()
        a.hello("e0")
        a.bfd_put(proc.pid, proc.stdin.fileno(), proc.stdout.fileno())
        for _ in range(1000):  # 50 KB of events while the engine lives... then it dies
            proc.stdin.write(b"x" * 49 + b"\n")
        proc.stdin.flush()
        proc.stdin.close()
        proc.stdout.close()
        a.close()
        time.sleep(0.2)  # (the fixture's grace is 0.5 s)
        assert proc.poll() is None  # no EOF on its stdin: the holder keeps the write end
        b = HolderClient(path)
        b.connect()
        assert b.hello("e1")["bfd-orphan"] is True
        pid, fin, fout = b.bfd_take()
        assert pid == proc.pid
        with os.fdopen(fin, "w", buffering=1) as w, os.fdopen(fout, "r") as r:
            w.write("\nping\n")
            for _ in range(10_000):  # what the holder had not drained yet comes first
                if r.readline() == "ping\n":
                    break
            else:
                pytest.fail("no echo from the re-attached worker")
            b.bye()
        proc.wait(5)  # every write end closed: the worker exits
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_holder_refuses_a_second_server_and_bad_requests(holder, tmp_path):
    path, _h = holder
    h2 = Holder(path)
    with pytest.raises(HolderError, match="another holder"):
        h2.bind()
    with HolderClient(path) as c:
        with pytest.raises(HolderError, match="unknown op"):
            c.call("nope")
        with pytest.raises(HolderError, match="descriptor"):
            c.call("put", key="k", meta={})


# -- the transmit log ----------------------------------------------------------------------------
def msg(n: int, fill: int = 0) -> bytes:
    """A BGP-framed message of n octets (type UPDATE)."""
    return b"\xff" * 16 + struct.pack("!HB", n, 2) + bytes([fill & 0xFF]) * (n - 19)


def test_txlog_append_sync_wrap_and_read(tmp_path):
    p = str(tmp_path / "t.tx")
    log = TxLog.create(p, 1000, cap=256)
    a, b, c = msg(100, 1), msg(100, 2), msg(40, 3)
    log.append([a, b], buffered=0)
    assert TxLog.read(p) == (1000, 1200, a + b, 0)
    log.sync(buffered=50)  # the kernel has a and half of b: a can go
    assert TxLog.read(p)[:3] == (1100, 1200, b)
    log.append([c, a], buffered=50)  # wraps around the end of the 256-byte ring
    assert TxLog.read(p) == (1100, 1340, b + c + a, 0)
    log.sync(buffered=0)  # all in the kernel: empty, and the ring starts over
    assert TxLog.read(p) == (1340, 1340, b"", 0)
    log.append([b], buffered=0)
    assert log.origin == 1340 and TxLog.read(p)[2] == b
    log.sync(0)
    log.append([msg(200), msg(100)], buffered=0)  # more than the ring: marked, counted
    base, end, _data, flags = TxLog.read(p)
    assert flags & crash.F_INCOMPLETE and end - base == 300
    log.sync(0)  # empty again: usable again
    assert TxLog.read(p)[3] == 0
    log.close()
    assert not os.path.exists(p)


def test_txlog_is_consistent_at_every_step_seen_from_another_process(tmp_path):
    """Whatever instant a writer dies at, a reader finds whole messages from base to end."""
    p = str(tmp_path / "t.tx")
    log = TxLog.create(p, 0, cap=4096)
    rng = random.Random(7)
    sent = bytearray()
    for i in range(500):
        batch = [msg(rng.randrange(19, 400), i) for _ in range(rng.randrange(1, 4))]
        buffered = rng.randrange(0, 300)
        log.append(batch, buffered=min(buffered, log.end - log.base))
        for m in batch:
            sent += m
        log.sync(buffered=min(rng.randrange(0, 300), log.end - log.base))
        base, end, data, flags = TxLog.read(p)
        assert flags == 0 and end == len(sent) and data == bytes(sent[base:end])
        assert crash.message_ends(data)[-1:] in ([], [len(data)])
    log.close()


def test_plan_tx_finds_the_partial_message_from_the_kernels_position(tmp_path):
    c, s = tcp_pair()
    try:
        k0 = kernel_tx_position(c)
        p = str(tmp_path / "c.tx")
        log = TxLog.create(p, k0)
        m1, m2, m3 = msg(300, 1), msg(500, 2), msg(200, 3)
        log.append([m1, m2, m3], buffered=0)  # logged before the "send"...
        c.sendall(m1 + m2[:123])  # ...and the engine died with this much in the kernel
        start, whole, rest = plan_tx(c, p)
        assert (start, whole, rest) == (k0 + 300, m2, m2[123:])
        c.sendall(rest)  # what the next engine writes first
        c.sendall(KEEPALIVE)
        got = b""
        s.settimeout(2)
        while len(got) < 300 + 500 + 19:
            got += s.recv(4096)
        msgs, used = split_messages(got, 4096)
        assert used == len(got) and [len(b) + 19 for _t, b in msgs] == [300, 500, 19]
        assert kernel_tx_position(c) == k0 + 819
        # at a boundary nothing is owed; outside the log it cannot be continued
        log2 = TxLog.create(str(tmp_path / "d.tx"), k0 + 819)
        assert plan_tx(c, log2.path) == (k0 + 819, b"", b"")
        log3 = TxLog.create(str(tmp_path / "e.tx"), k0 + 900)
        with pytest.raises(RecoverError, match="outside the log"):
            plan_tx(c, log3.path)
    finally:
        c.close()
        s.close()


# -- peers in peek mode, continued after a crash -------------------------------------------------
class _Hooks:
    """The part of CrashGuard a peer calls: every connection reads in peek mode."""

    def __init__(self) -> None:
        self.readers: list[PeekReader] = []

    def connection_made(self, proto, transport) -> None:
        proto.peek = PeekReader.install(proto, transport)
        self.readers.append(proto.peek)

    def state_changed(self, peer, old, new) -> None:
        pass


def _inq(sock: socket.socket) -> int:
    import fcntl

    return struct.unpack("=i", fcntl.ioctl(sock.fileno(), 0x541B, b"\0\0\0\0"))[0]


def test_peek_mode_takes_only_whole_messages_out_of_the_kernel():
    async def main():
        async with Pair(a_passive=False, b_passive=True) as p:
            p.rb.nsr_hooks = _Hooks()
            p.b.start()
            p.a.start()
            await until(lambda: p.a.state == p.b.state == "Established", what="Established")
            sb = p.b._primary.transport.get_extra_info("socket")
            assert p.b._primary.proto.peek is not None
            u1 = ipv4_update(["10.1.0.0/16"], 65001, "127.0.0.1")
            u2 = ipv4_update([f"10.2.{i}.0/24" for i in range(200)], 65001, "127.0.0.1")
            ta = p.a._primary.transport
            ta.write(u1 + u2[:100])  # one and a bit
            await until(lambda: len(p.rb.updates) == 1, what="first UPDATE")
            await asyncio.sleep(0.2)
            assert _inq(sb) == 100 and not p.b._primary.proto.buf  # the bit stays in the kernel
            assert p.b._primary.proto.peek.lowat == len(u2)
            ta.write(u2[100:])
            await until(lambda: len(p.rb.updates) == 2, what="second UPDATE")
            assert len(p.rb.updates[1].announced[0][2]) == 200 and _inq(sb) == 0
            ta.write(u1[:50])  # the peer dies in the middle of a message: B sees the end
            await asyncio.sleep(0.1)
            ta.abort()
            await until(lambda: any(e[0] == "down" for e in p.rb.events), what="B down")

    asyncio.run(asyncio.wait_for(main(), 45))


def big_update(i: int, n: int = 4000) -> bytes:
    """One UPDATE of ~16 KB (extended messages) whose prefixes say its index i."""
    from appliance.bgp.family import IPV4_UNICAST
    from appliance.bgp.packet.pathattrs import PathAttributes
    from appliance.bgp.packet.update import encode_attributes, pack_updates

    attrs = PathAttributes(origin=0, as_path=((2, (65002,)),), next_hop=socket.inet_aton("127.0.0.2"))
    raw = encode_attributes(attrs, four_octet_as=True, family=IPV4_UNICAST)
    keys = [prefix_to_key(f"{10 + i}.{j >> 8}.{j & 255}.0/24") for j in range(n)]
    out = pack_updates(IPV4_UNICAST, raw, b"", keys, max_len=65535)
    assert len(out) == 1
    return out[0]


SIZES = {1: 4000, 2: 15900, 3: 15990}  # prefixes per UPDATE: ~16 KB, and ~64 KB (> one skb)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_session_continues_after_its_engine_died_mid_message(tmp_path, seed):
    """B sends big UPDATEs while A does not read, so B's kernel ends up holding part of a
    message and asyncio the rest; B "dies" (its transport let go, nothing flushed) and a
    new peer object continues from the held socket: it writes the rest of the message
    first, then a KEEPALIVE. A sees a clean stream — UPDATEs 0..j, the last one the
    completed message, none after, none broken — and both sides stay Established."""
    async def main():
        async with Pair(a_passive=False, b_passive=True) as p:
            hooks = _Hooks()
            p.rb.nsr_hooks = hooks
            p.b.start()
            p.a.start()
            await until(lambda: p.a.state == p.b.state == "Established", what="Established")
            assert p.a.negotiated.max_message_len == 65535
            sb = p.b._primary.transport.get_extra_info("socket")
            tb = p.b._primary.transport
            await until(lambda: not tb.get_write_buffer_size(), what="B drained")
            for h in p.b._primary.timers.values():  # no KEEPALIVE from B in between
                h.cancel()
            p.b._primary.timers.clear()
            txl = TxLog.create(str(tmp_path / "b.tx"), kernel_tx_position(sb))
            p.b._primary.proto.tx_log = txl
            snap = p.b.session_snapshot()
            seen = len(p.ra.updates)
            p.a.handover_pause()  # A stops reading: B's send buffer fills up
            sb.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096 * (1 + seed))
            ends = []
            n = 0
            while not tb.get_write_buffer_size() and n < 150:
                p.b.send_raw([big_update(n, SIZES[seed])])
                ends.append(txl.end)
                n += 1
            assert tb.get_write_buffer_size(), "asyncio never had to buffer"
            if seed > 1:  # A reads a little: the kernel takes part of what asyncio holds
                p.a.handover_resume()
                await asyncio.sleep(0.001 * seed)
                p.a.handover_pause()
                while not tb.get_write_buffer_size() and n < 150:
                    p.b.send_raw([big_update(n, SIZES[seed])])
                    ends.append(txl.end)
                    n += 1
            # B's engine dies: the holder's duplicate keeps the connection, nothing flushed
            held = socket.socket(fileno=os.dup(sb.fileno()))
            p.b._primary.proto.session = None
            p.b._primary.proto.tx_log = None  # a dead process runs no clean-up
            tb.abort()
            await asyncio.sleep(0)
            k = kernel_tx_position(held)
            start, whole, rest = plan_tx(held, txl.path)
            partial = k != start
            assert partial == bool(rest)
            # ~64 KB messages span two socket buffers: the kernel stops inside one (Linux 6)
            assert partial or seed == 1, "expected the kernel to hold part of a message"
            expect = sum(1 for e in ends if e <= k) + (1 if partial else 0)
            assert 0 < expect <= n
            from appliance.bgp.peer import Peer

            rb2 = type(p.rb)()
            rb2.nsr_hooks = hooks
            b2 = Peer(p.b.config, p.b.local, rb2, rng=random.Random(3))
            log2 = TxLog.create(str(tmp_path / "b2.tx"), start, whole)
            await b2.adopt(crash._fresh(snap), held, tx_log=log2, tx_prefix=rest)
            p.holder["b"] = b2
            p.a.handover_resume()
            await until(lambda: len(p.ra.updates) >= seen + expect, what="A got the UPDATEs")
            await asyncio.sleep(0.5)
            got = [next(iter(u.announced[0][2]))[1] - 10 for u in p.ra.updates[seen:]]
            assert got == list(range(expect)), (got, expect, partial)
            assert all(len(u.announced[0][2]) == SIZES[seed] for u in p.ra.updates[seen:])
            assert p.a.state == "Established" and b2.state == "Established"
            assert p.a.stats.last_notification_received is None
            assert p.a.stats.last_notification_sent is None
            p.a.send_raw([ipv4_update(["192.0.2.0/24"], 65001, "127.0.0.1")])
            await until(lambda: rb2.updates, what="UPDATE at the new B")
            await asyncio.sleep(1.5)  # keepalives both ways over the continued connection
            assert p.a.state == b2.state == "Established"
            print(f"seed {seed}: {n} UPDATEs written, kernel at +{k - ends[0] + len(big_update(0, SIZES[seed]))}"
                  f", partial {partial} ({len(rest)} of {len(whole)} octets owed), A got {expect}")
            await b2.shutdown()
            log2.close()
            txl.close()

    asyncio.run(asyncio.wait_for(main(), 45))


def test_guard_holds_established_sessions_and_drops_them_when_they_end(holder, tmp_path):
    """CrashGuard on real peers: every connection logs before it sends from its first
    byte, an Established session is put in the holder with its snapshot, and a session
    that ends is dropped there (so its FIN goes out) with its log removed."""
    from types import SimpleNamespace

    path, _h = holder

    async def main():
        async with Pair(a_passive=False, b_passive=True) as p:
            eng = SimpleNamespace(bgp=SimpleNamespace(peers={}), bfd=None, nsr=None)
            guard = crash.CrashGuard(eng, path, "e0", run_dir=str(tmp_path / "tx"), spawn_holder=False)
            await guard.start()
            p.rb.nsr_hooks = guard
            p.rb.state_changed = guard.state_changed
            eng.bgp.peers["127.0.0.1"] = p.b
            p.b.start()
            p.a.start()
            await until(lambda: p.a.state == p.b.state == "Established", what="Established")

            def held():
                with HolderClient(path) as c:
                    return c.status()["sessions"]

            await until(lambda: [s["key"] for s in held()] == ["127.0.0.1"], what="held")
            proto = p.b._primary.proto
            assert proto.peek is not None and proto.tx_log is not None
            logged = proto.tx_log.path
            assert os.path.exists(logged)
            with HolderClient(path) as c:  # what a new engine would get (once this one died)
                assert c.hello("probe")["orphans"] == []
            # UPDATEs and keepalives keep flowing through the logged, peeking connection
            p.a.send_raw([ipv4_update(["198.51.100.0/24"], 65001, "127.0.0.1")])
            p.b.send_raw([ipv4_update(["203.0.113.0/24"], 65002, "127.0.0.2")])
            await until(lambda: p.rb.updates and p.ra.updates, what="UPDATEs both ways")
            base, end, _data, _flags = TxLog.read(logged)
            assert base == end  # everything B wrote is in the kernel: nothing kept
            await p.a.shutdown("bye")  # the peer ends the session: B drops its duplicate
            await until(lambda: held() == [], what="dropped")
            await until(lambda: not os.path.exists(logged), what="log removed")
            await guard.stop()

    asyncio.run(asyncio.wait_for(main(), 45))


class _LoggingHooks(_Hooks):
    """As CrashGuard: peek reader and a transmit/receive record from the first byte."""

    def __init__(self, d) -> None:
        super().__init__()
        self.d = d

    def connection_made(self, proto, transport) -> None:
        super().connection_made(proto, transport)
        sock = transport.get_extra_info("socket")
        proto.tx_log = TxLog.create(str(self.d / f"{id(proto)}.tx"), kernel_tx_position(sock))


@pytest.mark.parametrize("complete_first", [False, True])
def test_a_partial_message_taken_out_of_the_kernel_survives_the_engine(tmp_path, complete_first):
    """When the kernel wakes the reader below SO_RCVLOWAT (memory pressure, small window)
    the partial message leaves the kernel, recorded first with the kernel's read position.
    An engine that dies then is continued with those bytes in front of the queue; once the
    message completed, the record retires by itself (the position moved on)."""
    async def main():
        async with Pair(a_passive=False, b_passive=True) as p:
            hooks = _LoggingHooks(tmp_path)
            p.rb.nsr_hooks = hooks
            p.b.start()
            p.a.start()
            await until(lambda: p.a.state == p.b.state == "Established", what="Established")
            proto = p.b._primary.proto
            sb = p.b._primary.transport.get_extra_info("socket")
            u1 = ipv4_update(["10.1.0.0/16"], 65001, "127.0.0.1")
            u2 = ipv4_update([f"10.2.{i}.0/24" for i in range(200)], 65001, "127.0.0.1")
            ta = p.a._primary.transport
            ta.write(u1 + u2[:100])
            await until(lambda: len(p.rb.updates) == 1 and _inq(sb) == 100, what="one and a bit")
            proto.peek.ready()  # a wake-up below SO_RCVLOWAT
            assert proto.peek.spills == 1 and _inq(sb) == 0 and bytes(proto.buf) == u2[:100]
            pos, data = TxLog.read_rx(proto.tx_log.path)
            assert data == u2[:100] and pos == crash.kernel_rx_consumed(sb)
            if complete_first:
                ta.write(u2[100:])
                await until(lambda: len(p.rb.updates) == 2, what="second UPDATE")
                assert crash.kernel_rx_consumed(sb) != pos  # retired
            snap = p.b.session_snapshot()
            held = socket.socket(fileno=os.dup(sb.fileno()))
            path = proto.tx_log.path
            proto.session = None
            proto.tx_log = None  # a dead process runs no clean-up
            p.b._primary.transport.abort()
            for h in p.b._primary.timers.values():
                h.cancel()
            await asyncio.sleep(0)
            # what CrashGuard.recover does with the record
            start, whole, rest = plan_tx(held, path)
            rx_pos, rx_data = TxLog.read_rx(path)
            if rx_pos != crash.kernel_rx_consumed(held):
                rx_data = b""
            assert rx_data == (b"" if complete_first else u2[:100])
            from appliance.bgp.peer import Peer

            rb2 = type(p.rb)()
            rb2.nsr_hooks = hooks
            b2 = Peer(p.b.config, p.b.local, rb2, rng=random.Random(3))
            log2 = TxLog.create(str(tmp_path / "b2.tx"), start, whole)
            await b2.adopt(crash._fresh(snap, rx_data), held, tx_log=log2, tx_prefix=rest)
            p.holder["b"] = b2
            if not complete_first:
                ta.write(u2[100:])
                await until(lambda: rb2.updates, what="the completed UPDATE at the new B")
                assert len(rb2.updates[0].announced[0][2]) == 200
            ta.write(u1)
            await until(lambda: len(rb2.updates) == (2 if not complete_first else 1), what="next UPDATE")
            await asyncio.sleep(1.2)
            assert p.a.state == b2.state == "Established"
            await b2.shutdown()

    asyncio.run(asyncio.wait_for(main(), 45))


def test_closing_a_peek_mode_connection_sends_fin_not_rst():
    """Bytes a peek-mode reader left in the kernel (a partial message) are taken out before
    a normal close, as a plain reader would have: the peer sees NOTIFICATION + FIN, not RST."""
    async def main():
        async with Pair(a_passive=False, b_passive=True) as p:
            p.rb.nsr_hooks = _Hooks()
            p.b.start()
            p.a.start()
            await until(lambda: p.a.state == p.b.state == "Established", what="Established")
            sb = p.b._primary.transport.get_extra_info("socket")
            u = ipv4_update([f"10.2.{i}.0/24" for i in range(200)], 65001, "127.0.0.1")
            p.a._primary.transport.write(u[:300])
            await until(lambda: _inq(sb) == 300, what="a partial message queued at B")
            aborts = _abort_on_close()
            await p.b.shutdown("bye")
            await until(lambda: any(e[0] == "down" for e in p.ra.events), what="A down")
            reason = next(e[1] for e in p.ra.events if e[0] == "down")
            assert "bye" in reason, reason
            assert _abort_on_close() == aborts  # the kernel's count of RSTs for unread data

    asyncio.run(asyncio.wait_for(main(), 45))


def _abort_on_close() -> int:
    """TcpExt TCPAbortOnClose of this network namespace: closes that sent RST because
    received data was left unread."""
    with open("/proc/net/netstat") as f:
        lines = f.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split()[1:], values.split()[1:], strict=False))["TCPAbortOnClose"])
    return 0
