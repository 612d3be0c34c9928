"""Two BfdManagers in one process on 127.0.0.1 / 127.0.0.2: real sockets, real thread."""

from __future__ import annotations

import asyncio
import time

import pytest

from appliance.bfd import AuthConfig, AuthType, BfdManager, SessionConfig

pytestmark = pytest.mark.timeout(60)

FAST = dict(desired_min_tx=50_000, required_min_rx=50_000, detect_mult=3)


def _pair(auth_a=None, auth_b=None):
    a = BfdManager(listen_v4="127.0.0.1")
    b = BfdManager(listen_v4="127.0.0.2")
    a.start()
    b.start()
    a.add_session(SessionConfig("127.0.0.2", local_address="127.0.0.1", auth=auth_a, **FAST))
    b.add_session(SessionConfig("127.0.0.1", local_address="127.0.0.2", auth=auth_b, **FAST))
    return a, b


def test_up_at_50ms_and_detection_on_stop():
    a, b = _pair()
    events: list = []
    a.add_listener(lambda *e: events.append((time.monotonic(), *e)))
    try:
        assert a.wait_state("127.0.0.2", "Up", 5) and b.wait_state("127.0.0.1", "Up", 5)
        time.sleep(1.0)
        s = a.session("127.0.0.2")
        assert s["negotiated-tx-interval"] == 50_000 and s["detection-time"] == 150_000
        assert s["counters"]["down_count"] == 0 and s["counters"]["rx_packets"] >= 15
        t0 = time.monotonic()
        b.stop()                                    # no AdminDown: a crash, as seen by a
        assert a.wait_state("127.0.0.2", "Down", 2)
        down = [e for e in events if e[3] == "Down"]
        took = down[0][0] - t0
        print(f"\nloopback detection time: {took * 1000:.1f} ms (detection time 150 ms)")
        assert down[0][1:] == ("127.0.0.2", "Up", "Down", "control-detection-time-expired")
        assert took <= 0.150 + 0.050
        assert a.session("127.0.0.2")["last-down-reason"] == "control-detection-time-expired"
    finally:
        a.stop()
        b.stop()


def test_admin_down_on_remove_and_listener_in_asyncio_loop():
    a, b = _pair()

    async def main():
        q: asyncio.Queue = asyncio.Queue()
        a.add_listener(lambda *e: q.put_nowait(e))          # captures the running loop
        # The listener may join while the session is still coming up (Down -> Init -> Up):
        # take events until Up, bounded in count and time.
        for _ in range(3):
            ev = await asyncio.wait_for(q.get(), 5)
            if ev[2] == "Up":
                break
        assert ev[2] == "Up", ev
        b.remove_session("127.0.0.1")                       # sends AdminDown
        ev = await asyncio.wait_for(q.get(), 2)
        return ev

    try:
        ev = asyncio.run(main())
        assert ev == ("127.0.0.2", "Up", "Down", "neighbor-signaled-session-down")
        assert a.session("127.0.0.2")["last-down-reason"] == "neighbor-signaled-admin-down"
    finally:
        a.stop()
        b.stop()


def test_sha1_auth_between_two_managers():
    good = AuthConfig(AuthType.METICULOUS_KEYED_SHA1, 3, b"secret")
    a, b = _pair(good, good)
    try:
        assert a.wait_state("127.0.0.2", "Up", 5)
        time.sleep(0.5)
        assert a.session("127.0.0.2")["counters"]["rx_auth_failures"] == 0
    finally:
        a.stop()
        b.stop()
    a, b = _pair(good, AuthConfig(AuthType.METICULOUS_KEYED_SHA1, 3, b"other"))
    try:
        time.sleep(2.5)
        assert a.state("127.0.0.2") == "Down" and b.state("127.0.0.1") == "Down"
        assert a.session("127.0.0.2")["counters"]["rx_auth_failures"] > 0
    finally:
        a.stop()
        b.stop()


def test_ttl_below_255_dropped():
    a = BfdManager(listen_v4="127.0.0.1")
    a.start()
    import socket

    from appliance.bfd.packet import ControlPacket, encode
    try:
        a.add_session(SessionConfig("127.0.0.2", local_address="127.0.0.1", **FAST))
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 254)
        s.bind(("127.0.0.2", 50000))
        s.sendto(encode(ControlPacket(my_discr=77)), ("127.0.0.1", 3784))
        s.close()
        for _ in range(100):
            if a.stats["rx-ttl-drops"]:
                break
            time.sleep(0.01)
        assert a.stats["rx-ttl-drops"] == 1
        assert a.session("127.0.0.2")["counters"]["rx_packets"] == 0
    finally:
        a.stop()


def test_apply_and_checkpoint_restore():
    a, b = _pair()
    try:
        assert a.wait_state("127.0.0.2", "Up", 5)
        ck = a.checkpoint()["127.0.0.2"]
        cfg = SessionConfig("127.0.0.2", local_address="127.0.0.1", **FAST)
        a.stop()                                        # old engine: silent
        a = BfdManager(listen_v4="127.0.0.1")
        a.start()
        a.add_session(cfg, checkpoint=ck)              # new engine takes over, same discriminators
        assert a.state("127.0.0.2") == "Up"
        time.sleep(1.0)
        assert b.session("127.0.0.1")["counters"]["down_count"] == 0
        assert a.session("127.0.0.2")["local-discriminator"] == ck["local_discr"]
        a.apply([SessionConfig("127.0.0.2", local_address="127.0.0.1", **{**FAST, "desired_min_tx": 100_000})])
        time.sleep(0.5)
        assert b.session("127.0.0.1")["remote-desired-min-tx-interval"] == 100_000
        a.apply([])
        assert a.sessions() == []
    finally:
        a.stop()
        b.stop()


def test_worker_process_same_api():
    from appliance.bfd.worker import BfdProcess

    a, b = BfdProcess(listen_v4="127.0.0.1"), BfdManager(listen_v4="127.0.0.2")
    events: list = []
    a.start()
    b.start()
    try:
        a.add_listener(lambda *e: events.append(e))
        a.add_session(SessionConfig("127.0.0.2", local_address="127.0.0.1", **FAST))
        b.add_session(SessionConfig("127.0.0.1", local_address="127.0.0.2", **FAST))
        assert a.wait_state("127.0.0.2", "Up", 5)
        with pytest.raises(ValueError):
            a.add_session(SessionConfig("127.0.0.2", local_address="127.0.0.1", **FAST))
        assert "127.0.0.2" in a.checkpoint()
        b.stop()
        # Detection is 3 x FAST intervals; the bound is generous because the worker
        # answers state queries over a pipe and the suite may load both cores. Seen once
        # in a full make test run still Up after 2 s: the session dict says why if again.
        assert a.wait_state("127.0.0.2", "Down", 5), a.session("127.0.0.2")
        for _ in range(100):
            if any(e[2] == "Down" for e in events):
                break
            time.sleep(0.01)
        assert ("127.0.0.2", "Up", "Down", "control-detection-time-expired") in events
    finally:
        a.stop()
        b.stop()
