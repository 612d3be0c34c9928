"""The pure BFD session FSM: handshake, detection, Poll/Final, AdminDown, auth, checkpoints."""

from __future__ import annotations

import json
import random

from appliance.bfd.config import AuthConfig, SessionConfig
from appliance.bfd.fsm import BfdFsm
from appliance.bfd.packet import AuthType, ControlPacket, Diag, State, decode, encode

FAST = dict(desired_min_tx=50_000, required_min_rx=50_000, detect_mult=3)


def pair(auth=None, **kw):
    opts = {**FAST, **kw}
    a = BfdFsm(SessionConfig("10.0.0.2", auth=auth, **opts), 1, 0.0, random.Random(1))
    b = BfdFsm(SessionConfig("10.0.0.1", auth=auth, **opts), 2, 0.0, random.Random(2))
    return a, b


class Wire:
    """Runs two FSMs against each other in simulated time; ``drop`` loses packets."""

    def __init__(self, a, b):
        self.a, self.b, self.t = a, b, 0.0
        self.changes: list = []
        self.drop = {"a": False, "b": False}

    def deliver(self, src, dst, data, name):
        if self.drop[name]:
            return
        r = dst.receive(decode(data), self.t, data)
        assert r.error is None, r.error
        if r.transition:
            self.changes.append((self.t, dst.local_discr, r.transition))
        if r.reply:
            self.deliver(dst, src, r.reply, "b" if name == "a" else "a")

    def run(self, seconds, step=0.001):
        for _ in range(int(seconds / step)):
            self.t += step
            for src, dst, name in ((self.a, self.b, "a"), (self.b, self.a, "b")):
                out, ch = src.on_timer(self.t)
                if ch:
                    self.changes.append((self.t, src.local_discr, ch))
                if out:
                    self.deliver(src, dst, out, name)


def test_three_way_handshake():
    a, b = pair()
    w = Wire(a, b)
    w.run(3.0)
    assert a.state == b.state == State.UP
    seq = [(d, c.old, c.new) for _, d, c in w.changes]
    assert (2, State.DOWN, State.INIT) in seq
    assert (1, State.DOWN, State.UP) in seq or (1, State.INIT, State.UP) in seq
    # after the Poll/Final that follows Up, both run at 50 ms
    assert a.tx_interval_us() == b.tx_interval_us() == 50_000
    assert a.detection_time_us() == b.detection_time_us() == 150_000
    assert not a.poll_active and not b.poll_active
    assert a.counters.polls_sent >= 1 and b.counters.finals_sent >= 1


def test_slow_rate_while_not_up():
    a, _ = pair()
    t, sent = 0.0, []
    for _ in range(5000):
        t += 0.001
        out, _ = a.on_timer(t)
        if out:
            sent.append(t)
            assert decode(out).desired_min_tx == 1_000_000
    gaps = [y - x for x, y in zip(sent, sent[1:], strict=False)]
    assert gaps and all(0.749 <= g <= 1.001 for g in gaps)


def test_jitter_bounds():
    for mult, hi in ((3, 1.0), (1, 0.90)):
        f = BfdFsm(SessionConfig("10.0.0.2", **{**FAST, "detect_mult": mult}), 1, 0.0, random.Random(3))
        vals = [f._jittered(1_000_000) for _ in range(2000)]
        assert min(vals) >= 0.75 and max(vals) <= hi
        assert max(vals) - min(vals) > 0.1


def test_detection_timeout():
    a, b = pair()
    w = Wire(a, b)
    w.run(3.0)
    w.drop["b"] = True                 # b's packets lost
    start = w.t
    w.changes.clear()
    w.run(0.5)
    downs = [(t, c) for t, d, c in w.changes if d == 1 and c.new == State.DOWN]
    assert downs
    t, c = downs[0]
    assert c.diag == Diag.CONTROL_DETECTION_TIME_EXPIRED
    assert t - start <= 0.150 + 0.002
    assert a.remote_discr == 0
    assert a.last_down_reason == "control-detection-time-expired"
    # b then hears a's Down and goes Down with diag 3
    assert any(d == 2 and c.new == State.DOWN and c.diag == Diag.NEIGHBOR_SIGNALED_DOWN for _, d, c in w.changes)


def test_poll_final_on_timer_change():
    a, b = pair()
    w = Wire(a, b)
    w.run(3.0)
    # a slows down its TX: takes effect only after b's Final
    a.update_config(SessionConfig("10.0.0.2", **{**FAST, "desired_min_tx": 200_000}), w.t)
    assert a.poll_active and a.desired_min_tx == 200_000 and a.tx_in_use == 50_000
    out = a.build()
    p = decode(out)
    assert p.poll and p.desired_min_tx == 200_000
    r = b.receive(p, w.t, out)
    f = decode(r.reply)
    assert f.final and not f.poll
    assert b.detection_time_us() == 600_000           # b uses the slower rate at once
    a.receive(f, w.t, r.reply)
    assert not a.poll_active and a.tx_in_use == 200_000 and a.tx_interval_us() == 200_000
    w.run(2.0)
    assert a.state == b.state == State.UP


def test_lower_rx_waits_for_final():
    a, b = pair(required_min_rx=300_000)
    w = Wire(a, b)
    w.run(3.0)
    assert a.detection_time_us() == 900_000
    a.update_config(SessionConfig("10.0.0.2", **FAST), w.t)
    assert a.poll_active and a.rx_in_use == 300_000   # old value until the Final
    w.run(0.5)
    assert not a.poll_active and a.detection_time_us() == 150_000


def test_admin_down_local_and_remote():
    a, b = pair()
    w = Wire(a, b)
    w.run(3.0)
    w.changes.clear()
    ch = a.admin_down(w.t)
    assert ch.new == State.ADMIN_DOWN and a.local_diag == Diag.ADMIN_DOWN
    w.run(1.5)
    assert a.state == State.ADMIN_DOWN
    assert b.state == State.DOWN and b.local_diag == Diag.NEIGHBOR_SIGNALED_DOWN
    assert b.last_down_reason == "neighbor-signaled-admin-down"
    # AdminDown ignores what it receives: b's packets do not move it
    assert all(d != 1 for _, d, c in w.changes[1:])
    a.admin_up(w.t)
    w.run(3.0)
    assert a.state == b.state == State.UP


def test_remote_down_takes_up_down_with_diag3():
    a, b = pair()
    w = Wire(a, b)
    w.run(3.0)
    p = ControlPacket(state=State.DOWN, my_discr=2, your_discr=1, desired_min_tx=1_000_000,
                      required_min_rx=50_000)
    r = a.receive(p, w.t, encode(p))
    assert r.transition.new == State.DOWN and r.transition.diag == Diag.NEIGHBOR_SIGNALED_DOWN


def test_wrong_your_discriminator_discarded():
    a, _ = pair()
    p = ControlPacket(state=State.DOWN, my_discr=2, your_discr=99)
    assert a.receive(p, 0.1, encode(p)).error == "your-discriminator"
    assert a.counters.rx_discarded == 1


def test_final_only_answers_poll():
    a, _ = pair()
    p = ControlPacket(state=State.DOWN, my_discr=2, poll=True)
    r = a.receive(p, 0.1, encode(p))
    assert decode(r.reply).final and r.transition.new == State.INIT


def test_remote_min_rx_zero_stops_periodic_tx():
    a, _ = pair()
    p = ControlPacket(state=State.DOWN, my_discr=2, required_min_rx=0)
    a.receive(p, 0.0, encode(p))
    assert all(a.on_timer(t / 100)[0] is None for t in range(1, 300))


def _auth(meticulous=False, key=b"s3cret"):
    t = AuthType.METICULOUS_KEYED_SHA1 if meticulous else AuthType.KEYED_SHA1
    return AuthConfig(t, 7, key)


def test_sha1_handshake_and_sequence_numbers():
    for meticulous in (False, True):
        a, b = pair(auth=_auth(meticulous))
        Wire(a, b).run(3.0)
        assert a.state == b.state == State.UP
        assert b.auth_seq_known and b.rcv_auth_seq == a.xmit_auth_seq


def test_sha1_rejections():
    a, b = pair(auth=_auth(True))
    w = Wire(a, b)
    w.run(3.0)
    out = a.build()
    assert b.receive(decode(out), w.t, out).error is None
    # replay of the same sequence number: meticulous refuses it
    assert b.receive(decode(out), w.t, out).error == "auth-sequence"
    # too far ahead: more than 3 × Detect Mult
    a.xmit_auth_seq += 20
    out = a.build()
    assert b.receive(decode(out), w.t, out).error == "auth-sequence"
    # bad digest
    out = a.build()
    bad = out[:-1] + bytes([out[-1] ^ 0xFF])
    assert b.receive(decode(bad), w.t, bad).error == "auth-digest"
    # wrong key id, wrong type, missing auth
    c = BfdFsm(SessionConfig("10.0.0.1", auth=AuthConfig(AuthType.METICULOUS_KEYED_SHA1, 8, b"s3cret"), **FAST), 9, 0, random.Random(4))
    out = c.build()
    assert b.receive(decode(out), w.t, out).error == "auth-key-id"
    c = BfdFsm(SessionConfig("10.0.0.1", auth=AuthConfig(AuthType.KEYED_SHA1, 7, b"s3cret"), **FAST), 9, 0, random.Random(4))
    out = c.build()
    assert b.receive(decode(out), w.t, out).error == "auth-type"
    p = ControlPacket(state=State.DOWN, my_discr=3)
    assert b.receive(p, w.t, encode(p)).error == "auth-missing"
    n = BfdFsm(SessionConfig("10.0.0.1", **FAST), 9, 0, random.Random(4))
    out = c.build()
    assert n.receive(decode(out), w.t, out).error == "auth-unexpected"
    assert b.counters.rx_auth_failures == 6


def test_keyed_sha1_accepts_repeat_and_seq_wraps():
    a, b = pair(auth=_auth(False))
    a.xmit_auth_seq = 0xFFFFFFFE
    w = Wire(a, b)
    w.run(3.0)
    assert a.state == b.state == State.UP
    out = a.build()
    assert b.receive(decode(out), w.t, out).error is None
    assert b.receive(decode(out), w.t, out).error is None   # keyed: same number allowed


def test_auth_seq_known_ages_out():
    a, b = pair(auth=_auth(True))
    w = Wire(a, b)
    w.run(3.0)
    w.drop["a"] = True
    w.run(1.0)                          # > 2 × detection time without a packet
    assert not b.auth_seq_known
    a.xmit_auth_seq += 1000             # a far jump is accepted once the number is unknown
    out = a.build()
    assert b.receive(decode(out), w.t, out).error is None


def _rounded(d):
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in d.items()}


def test_checkpoint_round_trip():
    a, b = pair(auth=_auth(True))
    w = Wire(a, b)
    w.run(3.0)
    d = json.loads(json.dumps(a.to_dict(w.t)))
    # restore on another "engine" whose monotonic clock reads differently
    r = BfdFsm.from_dict(d, a.cfg, 1000.0 + w.t, random.Random(9))
    assert _rounded(r.to_dict(1000.0 + w.t)) == _rounded(d)
    for k in ("state", "local_discr", "remote_discr", "xmit_auth_seq", "rcv_auth_seq",
              "tx_in_use", "remote_min_rx", "counters"):
        assert getattr(r, k) == getattr(a, k)
    assert abs((r.detect_at - 1000.0) - a.detect_at) < 1e-9
    # the restored session carries on with the peer without a flap
    w2 = Wire(r, b)
    w2.t = 1000.0 + w.t
    b_shift = 1000.0
    b.detect_at += b_shift
    b.next_tx += b_shift
    b.last_rx += b_shift
    b.last_tx += b_shift
    b.last_change += b_shift
    w2.run(2.0)
    assert r.state == b.state == State.UP and not w2.changes
