"""Non-stop-routing handover of BFD sessions between two owners on one box (ISSU).

Real sockets on loopback, real worker processes. Addresses 127.0.0.2x/3x/4x so a
concurrent run of test_bfd_loopback (127.0.0.1/.2) cannot collide with these.
The peer C is an in-process BfdManager; what matters is that C never leaves Up.
"""

from __future__ import annotations

import os
import socket
import time

import pytest

from appliance.bfd import AuthConfig, AuthType, BfdManager, SessionConfig
from appliance.bfd.session import ADOPTED
from appliance.bfd.worker import BfdProcess

pytestmark = pytest.mark.timeout(60)

FAST = dict(desired_min_tx=50_000, required_min_rx=50_000, detect_mult=3)
BFD_PORTS = (3784, 4784)


def udp_sockets(pid: int) -> set[tuple[str, int]]:
    """(local address, port) of every UDP socket process ``pid`` holds (/proc, no psutil)."""
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            link = os.readlink(f"{fd_dir}/{fd}")
        except OSError:          # closed meanwhile
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    out = set()
    for name, fam in (("udp", socket.AF_INET), ("udp6", socket.AF_INET6)):
        with open(f"/proc/{pid}/net/{name}") as f:
            next(f)
            for line in f:
                cols = line.split()
                if cols[9] not in inodes:
                    continue
                hexaddr, hexport = cols[1].split(":")
                raw = bytes.fromhex(hexaddr)
                if fam == socket.AF_INET:
                    raw = raw[::-1]
                else:               # four host-order 32-bit words
                    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                out.add((socket.inet_ntop(fam, raw), int(hexport, 16)))
    return out


def bfd_ports(pid: int, addr: str | None = None) -> set[tuple[str, int]]:
    return {(a, p) for a, p in udp_sockets(pid) if p in BFD_PORTS and (addr is None or a == addr)}


def wait_until(pred, timeout: float, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / step) + 2):
        if pred():
            return True
        if time.monotonic() >= deadline:
            break
        time.sleep(step)
    return False


def _settle(mgr, peer: str, timeout: float = 5.0) -> bool:
    """Up with the Poll Sequence after Up (1 s -> configured intervals) finished."""
    def ok():
        s = mgr.session(peer)
        return s is not None and s["state"] == "Up" and not s["poll-in-progress"] \
            and s["negotiated-tx-interval"] == FAST["desired_min_tx"]
    return wait_until(ok, timeout)


def test_handover_between_workers_peer_stays_up():
    """A (worker) -> B (standby worker, no sockets) while C at 50 ms x 3 stays Up."""
    a_addr, c_addr = "127.0.0.21", "127.0.0.22"
    c = BfdManager(listen_v4=c_addr)
    a = BfdProcess(listen_v4=a_addr)
    b = BfdProcess(listen_v4=a_addr)              # the new engine's worker, same box
    a_events: list = []
    b_events: list = []
    c_events: list = []
    procs = []
    try:
        c.start()
        a.start()
        procs.append(a)
        a.add_listener(lambda *e: a_events.append(e))
        c.add_session(SessionConfig(a_addr, local_address=c_addr, **FAST))
        a.add_session(SessionConfig(c_addr, local_address=a_addr, **FAST))
        assert _settle(a, c_addr) and _settle(c, a_addr), (a.session(c_addr), c.session(a_addr))
        time.sleep(0.3)
        assert bfd_ports(a.pid) == {(a_addr, 3784)}

        b.start()
        procs.append(b)
        b.add_listener(lambda *e: b_events.append(e))
        assert udp_sockets(b.pid) == set()        # a standby binds nothing at all

        c.add_listener(lambda *e: c_events.append((time.monotonic(), *e)))
        before = c.session(a_addr)
        n_a = len(a_events)
        t0 = time.perf_counter()
        exported = a.export_sessions()
        t1 = time.perf_counter()
        b.adopt_sessions(exported)
        t2 = time.perf_counter()

        assert set(exported) == {c_addr}
        ck = exported[c_addr]
        assert ck["config"]["peer_address"] == c_addr and ck["fsm"]["state"] == 3   # Up
        assert a.sessions() == [] and udp_sockets(a.pid) == set()    # old owner: silent, unbound
        assert b.state(c_addr) == "Up"
        assert b_events == [(c_addr, "Up", "Up", ADOPTED)]
        sb = b.session(c_addr)
        assert sb["local-discriminator"] == ck["fsm"]["local_discr"]
        assert sb["remote-discriminator"] == ck["fsm"]["remote_discr"]
        assert sb["source-port"] == ck["source-port"]          # RFC 5881 §4: same source port
        assert bfd_ports(b.pid) == {(a_addr, 3784)}
        adopt = b.stats["last-adopt"]

        time.sleep(1.0)                           # 20 C packets to B, 20 B packets to C
        after = c.session(a_addr)
        sb = b.session(c_addr)
        print(f"\nhandover: export {1000 * (t1 - t0):.2f} ms + adopt {1000 * (t2 - t1):.2f} ms "
              f"(calls over the worker pipes); old owner's last packet -> new owner's first "
              f"{adopt['max-tx-gap-ms']:.2f} ms (transit {adopt['transit-ms']:.2f} ms); peer's worst "
              f"rx gap {before['rx-max-gap-ms']:.1f} ms before, {after['rx-max-gap-ms']:.1f} ms after")
        assert c_events == []                     # C never left Up
        assert after["state"] == "Up"
        for k in ("down_count", "transitions", "up_count"):
            assert after["counters"][k] == before["counters"][k], k
        assert after["counters"]["rx_packets"] >= before["counters"]["rx_packets"] + 10
        assert after["rx-max-gap-ms"] < 150
        assert sb["counters"]["rx_packets"] >= ck["fsm"]["counters"]["rx_packets"] + 10
        assert sb["counters"]["down_count"] == 0
        assert adopt["sessions"] == 1 and adopt["max-tx-gap-ms"] < 150
        assert a_events[n_a:] == []               # the old owner reports nothing (no Down)

        c.stop()                                  # the peer dies: B must detect it
        assert b.wait_state(c_addr, "Down", 5), b.session(c_addr)
        assert wait_until(lambda: len(b_events) >= 2, 2)
        assert b_events[1] == (c_addr, "Up", "Down", "control-detection-time-expired")
        assert a_events[n_a:] == [] and "Down" not in [e[2] for e in a_events]
    finally:
        for p in procs:
            p.stop()
        c.stop()


def test_handover_continues_meticulous_sha1_sequence():
    """In-process managers A -> B: the auth sequence goes on; a restart from an old
    sequence number is refused by the peer, so the check is not vacuous."""
    a_addr, c_addr = "127.0.0.31", "127.0.0.32"
    auth = AuthConfig(AuthType.METICULOUS_KEYED_SHA1, 7, b"handover-key")
    c = BfdManager(listen_v4=c_addr)
    a = BfdManager(listen_v4=a_addr)
    b = BfdManager(listen_v4=a_addr)
    c_events: list = []
    try:
        for m in (c, a, b):
            m.start()
        c.add_session(SessionConfig(a_addr, local_address=c_addr, auth=auth, **FAST))
        a.add_session(SessionConfig(c_addr, local_address=a_addr, auth=auth, **FAST))
        assert _settle(a, c_addr) and _settle(c, a_addr)
        c.add_listener(lambda *e: c_events.append(e))
        before = c.checkpoint()[a_addr]
        exported = a.export_sessions([c_addr])
        b.adopt_sessions(exported)
        seq0 = exported[c_addr]["fsm"]["xmit_auth_seq"]
        time.sleep(0.5)
        seq1 = b.checkpoint()[c_addr]["xmit_auth_seq"]
        cc = c.checkpoint()[a_addr]
        assert (seq1 - seq0) % (1 << 32) >= 5     # B went on from A's number ...
        assert 0 < (cc["rcv_auth_seq"] - seq0) % (1 << 32) <= (seq1 - seq0) % (1 << 32)
        assert cc["counters"]["rx_auth_failures"] == before["counters"]["rx_auth_failures"] == 0
        assert c_events == [] and c.state(a_addr) == "Up"   # ... and C accepted every packet
        assert b.session(c_addr)["counters"]["rx_auth_failures"] == 0

        # Negative control: hand back to A with the sequence wound back 100: C discards.
        exported = b.export_sessions()
        exported[c_addr]["fsm"]["xmit_auth_seq"] = (exported[c_addr]["fsm"]["xmit_auth_seq"] - 100) % (1 << 32)
        a.adopt_sessions(exported)
        assert wait_until(lambda: c.session(a_addr)["counters"]["rx_auth_failures"] >= 2, 2)
    finally:
        for m in (a, b, c):
            m.stop()


def test_export_unknown_peer_and_adopt_rollback():
    """KeyError and nothing exported for an unknown peer; adopt is all-or-nothing; the
    receive socket follows the sessions (bound with the first, closed with the last)."""
    a_addr = "127.0.0.41"
    a = BfdManager(listen_v4=a_addr)
    b = BfdManager(listen_v4=a_addr)
    me = os.getpid()
    try:
        a.start()
        b.start()
        assert bfd_ports(me, a_addr) == set()
        assert a.export_sessions() == {} and a.export_sessions([]) == {}
        a.add_session(SessionConfig("127.0.0.42", local_address=a_addr, **FAST))
        a.add_session(SessionConfig("127.0.0.43", local_address=a_addr, **FAST))
        assert bfd_ports(me, a_addr) == {(a_addr, 3784)}
        with pytest.raises(KeyError):
            a.export_sessions(["127.0.0.42", "127.0.0.99"])
        with pytest.raises(KeyError):
            a.export_sessions(["not-an-address"])
        assert {s["peer-address"] for s in a.sessions()} == {"127.0.0.42", "127.0.0.43"}

        # Part of A's sessions: A keeps 3784, so B cannot bind it and adopts nothing.
        part = a.export_sessions(["127.0.0.42"])
        with pytest.raises(OSError):
            b.adopt_sessions(part)
        assert b.sessions() == [] and b.stats.get("last-adopt") is None
        a.adopt_sessions(part)                   # the export goes back to its owner
        assert {s["peer-address"] for s in a.sessions()} == {"127.0.0.42", "127.0.0.43"}
        with pytest.raises(ValueError):          # session exists: all or nothing
            a.adopt_sessions(part)

        # Everything: A unbinds, B binds.
        allx = a.export_sessions()
        assert set(allx) == {"127.0.0.42", "127.0.0.43"}
        assert a.sessions() == [] and bfd_ports(me, a_addr) == set()
        b.adopt_sessions(allx)
        assert {s["peer-address"] for s in b.sessions()} == {"127.0.0.42", "127.0.0.43"}
        assert bfd_ports(me, a_addr) == {(a_addr, 3784)}
        b.remove_session("127.0.0.42", admin_down=False)
        assert bfd_ports(me, a_addr) == {(a_addr, 3784)}
        b.remove_session("127.0.0.43", admin_down=False)
        assert bfd_ports(me, a_addr) == set()
    finally:
        a.stop()
        b.stop()


def test_worker_export_unknown_peer_raises_keyerror():
    a = BfdProcess(listen_v4="127.0.0.45")
    a.start()
    try:
        assert a.export_sessions() == {}
        with pytest.raises(KeyError):
            a.export_sessions(["127.0.0.46"])
        assert udp_sockets(a.pid) == set()
    finally:
        a.stop()
