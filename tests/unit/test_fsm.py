"""The pure RFC 4271 FSM: transitions, timers, backoff, checkpoints."""

from __future__ import annotations

import json
import math
import random

from appliance.bgp.fsm import (
    CONNECT_RETRY,
    HOLD,
    IDLE_HOLD,
    KEEPALIVE,
    Connect,
    DropConnection,
    Event,
    Fsm,
    FsmConfig,
    FsmState,
    Notify,
    OpenArgs,
    SendKeepalive,
    SendNotification,
    SendOpen,
    SessionDown,
    SessionEstablished,
    StartTimer,
    State,
    StopTimer,
)
from appliance.bgp.packet.constants import CeaseSubcode, ErrorCode, FsmSubcode

CFG = FsmConfig(connect_retry=10, connect_retry_max=80, jitter=0.0)


def types(actions):
    return [type(a) for a in actions]


def established(cfg: FsmConfig = CFG, now: float = 0.0) -> Fsm:
    f = Fsm(cfg, rng=random.Random(1))
    f.handle(Event.MANUAL_START, now)
    f.handle(Event.TCP_CR_ACKED, now)
    f.handle(Event.BGP_OPEN, now, OpenArgs(9, 3))
    f.handle(Event.KEEPALIVE_MSG, now)
    assert f.state is State.ESTABLISHED
    return f


def test_happy_path_active():
    f = Fsm(CFG)
    a = f.handle(Event.MANUAL_START, 0)
    assert f.state is State.CONNECT
    assert StartTimer(CONNECT_RETRY, 10) in a and Connect() in a
    a = f.handle(Event.TCP_CR_ACKED, 1)
    assert f.state is State.OPEN_SENT
    assert StopTimer(CONNECT_RETRY) in a and SendOpen() in a and StartTimer(HOLD, 240) in a
    a = f.handle(Event.BGP_OPEN, 2, OpenArgs(90, 30))
    assert f.state is State.OPEN_CONFIRM
    assert SendKeepalive() in a and StartTimer(HOLD, 90) in a and StartTimer(KEEPALIVE, 30) in a
    a = f.handle(Event.KEEPALIVE_MSG, 3)
    assert f.state is State.ESTABLISHED and SessionEstablished() in a
    assert f.handle(Event.UPDATE_MSG, 4) == [StartTimer(HOLD, 90)]
    assert f.s.deadlines[HOLD] == 94


def test_passive_start_waits_in_active_without_dialing():
    f = Fsm(FsmConfig(passive=True))
    a = f.handle(Event.MANUAL_START_PASSIVE, 0)
    assert f.state is State.ACTIVE and Connect() not in a and CONNECT_RETRY not in f.s.deadlines
    f.handle(Event.TCP_CONNECTION_CONFIRMED, 1)
    assert f.state is State.OPEN_SENT


def test_idle_refuses_connections_and_ignores_stop():
    f = Fsm(CFG)
    assert f.handle(Event.TCP_CONNECTION_CONFIRMED, 0) == [DropConnection()]
    assert f.handle(Event.MANUAL_STOP, 0) == []
    assert f.handle(Event.KEEPALIVE_MSG, 0) == []
    assert f.state is State.IDLE


def test_keepalive_timer():
    f = established()
    a = f.handle(Event.KEEPALIVE_TIMER_EXPIRES, 3)
    assert a == [SendKeepalive(), StartTimer(KEEPALIVE, 3)]


def test_hold_expiry_sends_notification_and_restarts_later():
    f = established()
    f.handle(Event.KEEPALIVE_MSG, 5)            # hold now due at 14
    assert f.handle(Event.HOLD_TIMER_EXPIRES, 9) == []  # stale: restarted since armed
    a = f.handle(Event.HOLD_TIMER_EXPIRES, 14)
    assert SendNotification(ErrorCode.HOLD_TIMER_EXPIRED, 0) in a
    assert DropConnection() in a
    assert any(isinstance(x, SessionDown) for x in a)
    assert f.state is State.IDLE
    assert StartTimer(IDLE_HOLD, 1.0) in a
    assert f.s.connect_retry_counter == 1
    a = f.handle(Event.IDLE_HOLD_TIMER_EXPIRES, 15)
    assert f.state is State.CONNECT and Connect() in a


def test_stopped_timer_expiry_is_ignored():
    f = established()
    f.handle(Event.MANUAL_STOP, 1)
    assert f.handle(Event.HOLD_TIMER_EXPIRES, 100) == []


def test_manual_stop_sends_cease_and_stays_idle():
    f = established()
    a = f.handle(Event.MANUAL_STOP, 1, Notify(ErrorCode.CEASE, CeaseSubcode.ADMIN_SHUTDOWN, b"\x02hi"))
    assert a[0] == SendNotification(ErrorCode.CEASE, CeaseSubcode.ADMIN_SHUTDOWN, b"\x02hi")
    assert f.state is State.IDLE and not f.s.auto_restart and not f.s.deadlines
    assert not any(isinstance(x, StartTimer) for x in a)


def test_automatic_stop_with_idle_hold_override():
    f = established()
    a = f.handle(Event.AUTOMATIC_STOP, 1, Notify(ErrorCode.CEASE, CeaseSubcode.MAX_PREFIXES, b"", 30.0))
    assert SendNotification(ErrorCode.CEASE, CeaseSubcode.MAX_PREFIXES) in a
    assert StartTimer(IDLE_HOLD, 30.0) in a
    f2 = established()
    f2.handle(Event.AUTOMATIC_STOP, 1, Notify(ErrorCode.CEASE, CeaseSubcode.MAX_PREFIXES, b"", math.inf))
    assert f2.state is State.IDLE and not f2.s.deadlines and not f2.s.auto_restart


def test_collision_dump_in_opensent_and_openconfirm():
    for args in ([], [OpenArgs(90, 30)]):
        f = Fsm(CFG)
        f.handle(Event.MANUAL_START, 0)
        f.handle(Event.TCP_CR_ACKED, 0)
        for arg in args:
            f.handle(Event.BGP_OPEN, 0, arg)
        a = f.handle(Event.OPEN_COLLISION_DUMP, 1)
        assert a[0] == SendNotification(ErrorCode.CEASE, CeaseSubcode.CONNECTION_COLLISION)
        assert DropConnection() in a and f.state is State.IDLE
        assert not any(isinstance(x, SessionDown) for x in a)


def test_unexpected_messages_are_fsm_errors():
    f = Fsm(CFG)
    f.handle(Event.MANUAL_START, 0)
    f.handle(Event.TCP_CR_ACKED, 0)
    a = f.handle(Event.UPDATE_MSG, 1)
    assert a[0] == SendNotification(ErrorCode.FSM, FsmSubcode.UNEXPECTED_IN_OPENSENT)
    f = established()
    a = f.handle(Event.BGP_OPEN, 1)
    assert a[0] == SendNotification(ErrorCode.FSM, FsmSubcode.UNEXPECTED_IN_ESTABLISHED)


def test_message_errors_send_given_notification():
    f = established()
    a = f.handle(Event.UPDATE_MSG_ERR, 1, Notify(3, 1, b"x"))
    assert a[0] == SendNotification(3, 1, b"x")
    assert f.state is State.IDLE


def test_notification_received_drops_without_answer():
    f = established()
    a = f.handle(Event.NOTIF_MSG, 1, "peer said bye")
    assert not any(isinstance(x, SendNotification) for x in a)
    assert SessionDown("peer said bye") in a


def test_tcp_failure_in_opensent_goes_active():
    f = Fsm(CFG)
    f.handle(Event.MANUAL_START, 0)
    f.handle(Event.TCP_CR_ACKED, 0)
    f.handle(Event.TCP_CONNECTION_FAILS, 1)
    assert f.state is State.ACTIVE and CONNECT_RETRY in f.s.deadlines


def test_connect_retry_backoff_doubles_to_max():
    f = Fsm(CFG)
    f.handle(Event.MANUAL_START, 0)
    now, waits = 0.0, []
    for _ in range(6):
        now = f.s.deadlines[CONNECT_RETRY]
        a = f.handle(Event.CONNECT_RETRY_TIMER_EXPIRES, now)
        assert DropConnection() in a and Connect() in a
        waits.append(next(x.seconds for x in a if isinstance(x, StartTimer)))
    assert waits == [20, 40, 80, 80, 80, 80]
    # Established resets the backoff.
    f.handle(Event.TCP_CR_ACKED, now)
    f.handle(Event.BGP_OPEN, now, OpenArgs(90, 30))
    f.handle(Event.KEEPALIVE_MSG, now)
    assert f.s.connect_retry_time == 0.0


def test_connect_retry_jitter_is_bounded_and_deterministic():
    def first_wait(seed):
        f = Fsm(FsmConfig(connect_retry=100), rng=random.Random(seed))
        a = f.handle(Event.MANUAL_START, 0)
        return next(x.seconds for x in a if isinstance(x, StartTimer))

    vals = [first_wait(s) for s in range(50)]
    assert all(75 <= v <= 125 for v in vals)
    assert len(set(vals)) > 10
    assert first_wait(7) == first_wait(7)


def test_damping_idle_hold_doubles_and_resets_after_stable_session():
    cfg = FsmConfig(idle_hold_base=1, idle_hold_max=8, stable_time=60, jitter=0)
    f = Fsm(cfg)
    f.handle(Event.MANUAL_START, 0)
    holds = []
    now = 0.0
    for _ in range(5):
        f.handle(Event.TCP_CR_ACKED, now)
        a = f.handle(Event.NOTIF_MSG, now)
        holds.append(next(x.seconds for x in a if isinstance(x, StartTimer) and x.name == IDLE_HOLD))
        now = f.s.deadlines[IDLE_HOLD]
        f.handle(Event.IDLE_HOLD_TIMER_EXPIRES, now)
    assert holds == [1, 2, 4, 8, 8]
    # A session that stayed up for stable_time resets the damping.
    f.handle(Event.TCP_CR_ACKED, now)
    f.handle(Event.BGP_OPEN, now, OpenArgs(0, 0))
    f.handle(Event.KEEPALIVE_MSG, now)
    a = f.handle(Event.NOTIF_MSG, now + 100)
    assert StartTimer(IDLE_HOLD, 1) in a


def test_zero_hold_time_means_no_timers():
    f = Fsm(CFG)
    f.handle(Event.MANUAL_START, 0)
    f.handle(Event.TCP_CR_ACKED, 0)
    f.handle(Event.BGP_OPEN, 0, OpenArgs(0, 0))
    f.handle(Event.KEEPALIVE_MSG, 0)
    assert f.state is State.ESTABLISHED and f.s.deadlines == {}
    assert f.handle(Event.UPDATE_MSG, 5) == []


def test_to_dict_from_dict_round_trip_with_remaining_time():
    f = established(now=100.0)
    f.handle(Event.KEEPALIVE_MSG, 101.0)
    d = f.to_dict(102.0)
    d = json.loads(json.dumps(d))  # a checkpoint is plain JSON
    assert d["state"] == "Established"
    assert d["timers"] == {HOLD: 8.0, KEEPALIVE: 1.0}
    # Restore on an engine whose clock reads 5000.
    g = Fsm.from_dict(d, 5000.0, CFG)
    assert g.state is State.ESTABLISHED
    assert g.s.deadlines == {HOLD: 5008.0, KEEPALIVE: 5001.0}
    assert g.to_dict(5000.0) == d
    assert g.handle(Event.KEEPALIVE_TIMER_EXPIRES, 5001.0)[0] == SendKeepalive()
    assert FsmState.from_dict(FsmState().to_dict(0), 0) == FsmState()
