"""The BGP finite state machine of RFC 4271 §8, as a pure function of events.

No sockets, no asyncio, no clock: the caller passes ``now`` (a monotonic clock
reading) with every event and carries out the returned actions. The state is a
plain dataclass that dumps timers as *remaining* seconds, so a checkpoint taken
on one routing engine can be restored on another whose clock differs.

Choices within what §8 allows (and why):
- DelayOpen and the OpenDelay timer are not implemented (optional, §8.1.1).
- Connect-retry backs off exponentially (``connect_retry`` doubling up to
  ``connect_retry_max``) with ±25 % jitter, so many peers that failed together do
  not retry in lock step.
- After an error the FSM goes to Idle and, when automatic restart is on, starts
  the IdleHoldTimer; its value doubles on every drop of a session that was not
  stable (DampPeerOscillations, §8.1.1), and returns to the base once a session
  stayed Established for ``stable_time``.
- A NOTIFICATION received in OpenSent drops the connection without answering
  with an FSM-error NOTIFICATION: the peer is closing anyway.
- AutomaticStop (Event 8) carries the NOTIFICATION to send and an optional idle
  hold override; the peer's ``reset()`` uses it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any

from .packet.constants import CeaseSubcode, ErrorCode, FsmSubcode


class State(StrEnum):
    IDLE = "Idle"
    CONNECT = "Connect"
    ACTIVE = "Active"
    OPEN_SENT = "OpenSent"
    OPEN_CONFIRM = "OpenConfirm"
    ESTABLISHED = "Established"


class Event(Enum):
    """RFC 4271 §8.1 event names (numbers in comments)."""

    MANUAL_START = "ManualStart"                                          # 1
    MANUAL_STOP = "ManualStop"                                            # 2
    AUTOMATIC_START = "AutomaticStart"                                    # 3
    MANUAL_START_PASSIVE = "ManualStart_with_PassiveTcpEstablishment"     # 4
    AUTOMATIC_START_PASSIVE = "AutomaticStart_with_PassiveTcpEstablishment"  # 5
    AUTOMATIC_STOP = "AutomaticStop"                                      # 8
    CONNECT_RETRY_TIMER_EXPIRES = "ConnectRetryTimer_Expires"             # 9
    HOLD_TIMER_EXPIRES = "HoldTimer_Expires"                              # 10
    KEEPALIVE_TIMER_EXPIRES = "KeepaliveTimer_Expires"                    # 11
    IDLE_HOLD_TIMER_EXPIRES = "IdleHoldTimer_Expires"                     # 13
    TCP_CONNECTION_VALID = "TcpConnection_Valid"                          # 14
    TCP_CR_INVALID = "Tcp_CR_Invalid"                                     # 15
    TCP_CR_ACKED = "Tcp_CR_Acked"                                         # 16
    TCP_CONNECTION_CONFIRMED = "TcpConnectionConfirmed"                   # 17
    TCP_CONNECTION_FAILS = "TcpConnectionFails"                           # 18
    BGP_OPEN = "BGPOpen"                                                  # 19
    BGP_HEADER_ERR = "BGPHeaderErr"                                       # 21
    BGP_OPEN_MSG_ERR = "BGPOpenMsgErr"                                    # 22
    OPEN_COLLISION_DUMP = "OpenCollisionDump"                             # 23
    NOTIF_MSG_VER_ERR = "NotifMsgVerErr"                                  # 24
    NOTIF_MSG = "NotifMsg"                                                # 25
    KEEPALIVE_MSG = "KeepAliveMsg"                                        # 26
    UPDATE_MSG = "UpdateMsg"                                              # 27
    UPDATE_MSG_ERR = "UpdateMsgErr"                                       # 28


CONNECT_RETRY = "connect_retry"
HOLD = "hold"
KEEPALIVE = "keepalive"
IDLE_HOLD = "idle_hold"
TIMER_EVENTS = {
    CONNECT_RETRY: Event.CONNECT_RETRY_TIMER_EXPIRES,
    HOLD: Event.HOLD_TIMER_EXPIRES,
    KEEPALIVE: Event.KEEPALIVE_TIMER_EXPIRES,
    IDLE_HOLD: Event.IDLE_HOLD_TIMER_EXPIRES,
}


# --- event arguments ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenArgs:
    """With BGPOpen: the negotiated timers."""

    hold_time: int
    keepalive_interval: float


@dataclass(frozen=True, slots=True)
class Notify:
    """With error events, ManualStop and AutomaticStop: the NOTIFICATION to send."""

    code: int
    subcode: int
    data: bytes = b""
    idle_hold: float | None = None   # AutomaticStop only: None = damping value, inf = stay down


# --- actions ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Connect:
    """Initiate the outgoing TCP connection."""


@dataclass(frozen=True, slots=True)
class DropConnection:
    """Close the TCP connection (after flushing what was written) or abort the attempt."""


@dataclass(frozen=True, slots=True)
class SendOpen:
    pass


@dataclass(frozen=True, slots=True)
class SendKeepalive:
    pass


@dataclass(frozen=True, slots=True)
class SendNotification:
    code: int
    subcode: int
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class StartTimer:
    name: str
    seconds: float


@dataclass(frozen=True, slots=True)
class StopTimer:
    name: str


@dataclass(frozen=True, slots=True)
class SessionEstablished:
    pass


@dataclass(frozen=True, slots=True)
class SessionDown:
    reason: str


@dataclass(frozen=True, slots=True)
class StateChanged:
    old: str
    new: str
    event: str


Action = (
    Connect
    | DropConnection
    | SendOpen
    | SendKeepalive
    | SendNotification
    | StartTimer
    | StopTimer
    | SessionEstablished
    | SessionDown
    | StateChanged
)


# --- configuration and state -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FsmConfig:
    connect_retry: float = 30.0
    connect_retry_max: float = 120.0
    hold_time: int = 90               # configured (the negotiated one comes with BGPOpen)
    passive: bool = False             # never connect out
    open_hold_time: float = 240.0     # "large value" before the OPEN arrives (§8.2.2)
    idle_hold_base: float = 1.0
    idle_hold_max: float = 120.0
    stable_time: float = 60.0         # Established this long: the damping resets
    jitter: float = 0.25


@dataclass
class FsmState:
    state: State = State.IDLE
    connect_retry_counter: int = 0
    connect_retry_time: float = 0.0   # current (backed-off) ConnectRetryTime; 0 = base
    idle_hold_time: float = 0.0       # next IdleHoldTime; 0 = base
    auto_restart: bool = False        # restart after errors (off after ManualStop)
    hold_time: float = 0.0            # negotiated, once OPEN arrived
    keepalive_interval: float = 0.0
    established_at: float | None = None   # monotonic, of the caller's clock
    deadlines: dict[str, float] = field(default_factory=dict)

    def to_dict(self, now: float) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "connect-retry-counter": self.connect_retry_counter,
            "connect-retry-time": self.connect_retry_time,
            "idle-hold-time": self.idle_hold_time,
            "auto-restart": self.auto_restart,
            "hold-time": self.hold_time,
            "keepalive-interval": self.keepalive_interval,
            "established-for": None if self.established_at is None else max(0.0, now - self.established_at),
            "timers": {k: max(0.0, v - now) for k, v in sorted(self.deadlines.items())},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], now: float) -> FsmState:
        est = d.get("established-for")
        return cls(
            state=State(d["state"]),
            connect_retry_counter=int(d["connect-retry-counter"]),
            connect_retry_time=float(d["connect-retry-time"]),
            idle_hold_time=float(d["idle-hold-time"]),
            auto_restart=bool(d["auto-restart"]),
            hold_time=float(d["hold-time"]),
            keepalive_interval=float(d["keepalive-interval"]),
            established_at=None if est is None else now - float(est),
            deadlines={k: now + float(v) for k, v in d.get("timers", {}).items()},
        )


_ERROR_STATES_SUBCODE = {
    State.OPEN_SENT: FsmSubcode.UNEXPECTED_IN_OPENSENT,
    State.OPEN_CONFIRM: FsmSubcode.UNEXPECTED_IN_OPENCONFIRM,
    State.ESTABLISHED: FsmSubcode.UNEXPECTED_IN_ESTABLISHED,
}
_STARTS = (
    Event.MANUAL_START,
    Event.AUTOMATIC_START,
    Event.MANUAL_START_PASSIVE,
    Event.AUTOMATIC_START_PASSIVE,
)
_TCP_UP = (Event.TCP_CR_ACKED, Event.TCP_CONNECTION_CONFIRMED)


class Fsm:
    """One BGP connection's state machine. ``handle`` is the only mutator."""

    def __init__(
        self,
        config: FsmConfig,
        state: FsmState | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.s = state if state is not None else FsmState()
        # Injected so tests (and replays) are deterministic.
        self._rng = rng if rng is not None else random.Random()
        self._out: list[Action] = []

    @property
    def state(self) -> State:
        return self.s.state

    # -- helpers that append to the pending action list ---------------------------------

    def _start(self, name: str, seconds: float, now: float) -> None:
        self.s.deadlines[name] = now + seconds
        self._out.append(StartTimer(name, seconds))

    def _stop(self, name: str) -> None:
        if self.s.deadlines.pop(name, None) is not None:
            self._out.append(StopTimer(name))

    def _stop_all(self) -> None:
        for name in list(self.s.deadlines):
            self._stop(name)

    def _goto(self, new: State, event: Event) -> None:
        old = self.s.state
        if new is not old:
            self.s.state = new
            self._out.append(StateChanged(old.value, new.value, event.value))

    def _jittered(self, value: float) -> float:
        j = self.config.jitter
        return value * self._rng.uniform(1.0 - j, 1.0 + j) if j else value

    def _start_connect_retry(self, now: float) -> None:
        if not self.s.connect_retry_time:
            self.s.connect_retry_time = self.config.connect_retry
        self._start(CONNECT_RETRY, self._jittered(self.s.connect_retry_time), now)

    def _back_off_connect_retry(self) -> None:
        cur = self.s.connect_retry_time or self.config.connect_retry
        self.s.connect_retry_time = min(cur * 2, max(self.config.connect_retry_max, self.config.connect_retry))

    def _notify(self, code: int, subcode: int, data: bytes = b"") -> None:
        self._out.append(SendNotification(int(code), int(subcode), data))

    def _to_idle(self, event: Event, now: float, reason: str, *, count: bool = True,
                 idle_hold: float | None = None) -> None:
        """Release everything and go to Idle; schedule the automatic restart."""
        was_established = self.s.state is State.ESTABLISHED
        self._stop_all()
        self._out.append(DropConnection())
        if count:
            self.s.connect_retry_counter += 1
        if was_established:
            self._out.append(SessionDown(reason))
            stable = self.s.established_at is not None and now - self.s.established_at >= self.config.stable_time
            if stable:
                self.s.idle_hold_time = 0.0
        self.s.established_at = None
        self.s.hold_time = self.s.keepalive_interval = 0.0
        self._goto(State.IDLE, event)
        if idle_hold is not None and math.isinf(idle_hold):
            self.s.auto_restart = False
        if not self.s.auto_restart:
            return
        if idle_hold is None:  # DampPeerOscillations: double on every unstable drop
            idle_hold = self.s.idle_hold_time or self.config.idle_hold_base
            self.s.idle_hold_time = min(idle_hold * 2, self.config.idle_hold_max)
        self._start(IDLE_HOLD, max(0.0, idle_hold), now)

    def _fsm_error(self, event: Event, now: float) -> None:
        sub = _ERROR_STATES_SUBCODE.get(self.s.state, FsmSubcode.UNSPECIFIED)
        self._notify(ErrorCode.FSM, sub)
        self._to_idle(event, now, f"fsm error: {event.value} in {self.s.state.value}")

    def _start_session(self, event: Event, now: float) -> None:
        passive = self.config.passive or event in (Event.MANUAL_START_PASSIVE, Event.AUTOMATIC_START_PASSIVE)
        if event in (Event.MANUAL_START, Event.MANUAL_START_PASSIVE):
            self.s.connect_retry_counter = 0
            self.s.connect_retry_time = 0.0
            self.s.idle_hold_time = 0.0
        self.s.auto_restart = True
        self._stop(IDLE_HOLD)
        if passive:
            # A passive speaker waits for the peer; no ConnectRetryTimer, so it never dials.
            self._goto(State.ACTIVE, event)
        else:
            self._start_connect_retry(now)
            self._out.append(Connect())
            self._goto(State.CONNECT, event)

    def _tcp_up(self, event: Event, now: float) -> None:
        self._stop(CONNECT_RETRY)
        self._out.append(SendOpen())
        self._start(HOLD, self.config.open_hold_time, now)
        self._goto(State.OPEN_SENT, event)

    def _manual_stop(self, event: Event, now: float, arg: Notify | None) -> None:
        if self.s.state in (State.OPEN_SENT, State.OPEN_CONFIRM, State.ESTABLISHED):
            n = arg or Notify(ErrorCode.CEASE, CeaseSubcode.ADMIN_SHUTDOWN)
            self._notify(n.code, n.subcode, n.data)
        self.s.auto_restart = False
        self._to_idle(event, now, "administratively stopped", count=False)
        self.s.connect_retry_counter = 0

    # -- the transition function ------------------------------------------------------------

    def handle(self, event: Event, now: float, arg: Any = None) -> list[Action]:
        """Process one event; return the actions to carry out, in order."""
        self._out = out = []
        st = self.s.state
        if event is Event.MANUAL_STOP:
            if st is not State.IDLE or self.s.auto_restart:
                self._manual_stop(event, now, arg)
            return out
        if event is Event.AUTOMATIC_STOP:
            if st is not State.IDLE or self.s.auto_restart:
                n = arg or Notify(ErrorCode.CEASE, CeaseSubcode.ADMIN_RESET)
                if st in (State.OPEN_SENT, State.OPEN_CONFIRM, State.ESTABLISHED):
                    self._notify(n.code, n.subcode, n.data)
                self._to_idle(event, now, f"reset (code {n.code} subcode {n.subcode})", idle_hold=n.idle_hold)
            return out
        timer = _timer_of(event)
        if timer is not None and timer not in self.s.deadlines:
            return out  # a stale expiry of a timer that was stopped or restarted
        if timer is not None:
            if now + 1e-3 < self.s.deadlines[timer]:
                return out  # restarted since it was armed: not due yet
            del self.s.deadlines[timer]
        handler = _HANDLERS[st]
        handler(self, event, now, arg)
        return out

    # Per-state handlers: (self, event, now, arg) -> None; they append to self._out.

    def _idle(self, event: Event, now: float, arg: Any) -> None:
        if event in _STARTS:
            self._start_session(event, now)
        elif event is Event.IDLE_HOLD_TIMER_EXPIRES:
            self._start_session(
                Event.AUTOMATIC_START_PASSIVE if self.config.passive else Event.AUTOMATIC_START, now
            )
        elif event in _TCP_UP or event is Event.TCP_CONNECTION_VALID:
            self._out.append(DropConnection())  # Idle refuses connections (§8.2.2)
        # Every other event is ignored in Idle.

    def _connect(self, event: Event, now: float, arg: Any) -> None:
        if event in _STARTS or event is Event.TCP_CONNECTION_VALID:
            return
        if event is Event.CONNECT_RETRY_TIMER_EXPIRES:
            self._out.append(DropConnection())
            self._back_off_connect_retry()
            self._start_connect_retry(now)
            self._out.append(Connect())
        elif event in _TCP_UP:
            self._tcp_up(event, now)
        elif event is Event.TCP_CONNECTION_FAILS:
            # §8.2.2: keep listening in Active; ConnectRetryTimer (backed off) dials again.
            self._stop(CONNECT_RETRY)
            self._back_off_connect_retry()
            self._start_connect_retry(now)
            self._goto(State.ACTIVE, event)
        elif event is Event.TCP_CR_INVALID:
            return
        else:
            self._to_idle(event, now, f"{event.value} in Connect")

    def _active(self, event: Event, now: float, arg: Any) -> None:
        if event in _STARTS or event in (Event.TCP_CONNECTION_VALID, Event.TCP_CR_INVALID):
            return
        if event is Event.CONNECT_RETRY_TIMER_EXPIRES:
            self._start_connect_retry(now)
            self._out.append(Connect())
            self._goto(State.CONNECT, event)
        elif event in _TCP_UP:
            self._tcp_up(event, now)
        elif event is Event.TCP_CONNECTION_FAILS:
            return  # an incoming connection died before OPEN; keep waiting
        else:
            self._to_idle(event, now, f"{event.value} in Active")

    def _error_with_notify(self, event: Event, now: float, arg: Any) -> bool:
        """Shared handling of error events in OpenSent/OpenConfirm/Established."""
        if event is Event.HOLD_TIMER_EXPIRES:
            self._notify(ErrorCode.HOLD_TIMER_EXPIRED, 0)
            self._to_idle(event, now, "hold timer expired")
        elif event in (Event.BGP_HEADER_ERR, Event.BGP_OPEN_MSG_ERR, Event.UPDATE_MSG_ERR):
            n = arg if isinstance(arg, Notify) else Notify(ErrorCode.FSM, FsmSubcode.UNSPECIFIED)
            self._notify(n.code, n.subcode, n.data)
            self._to_idle(event, now, f"error sent: code {n.code} subcode {n.subcode}")
        elif event is Event.OPEN_COLLISION_DUMP:
            self._notify(ErrorCode.CEASE, CeaseSubcode.CONNECTION_COLLISION)
            self._to_idle(event, now, "connection collision")
        elif event is Event.TCP_CONNECTION_FAILS:
            if self.s.state is State.OPEN_SENT:
                # §8.2.2: back to Active, ConnectRetryTimer dials again.
                self._stop_all()
                self._out.append(DropConnection())
                if not self.config.passive:
                    self._start_connect_retry(now)
                self._goto(State.ACTIVE, event)
            else:
                self._to_idle(event, now, arg if isinstance(arg, str) else "connection closed by peer")
        elif event is Event.NOTIF_MSG_VER_ERR:
            self._to_idle(event, now, arg if isinstance(arg, str) else "notification received", count=False)
        elif event is Event.NOTIF_MSG:
            self._to_idle(event, now, arg if isinstance(arg, str) else "notification received")
        else:
            return False
        return True

    def _open_sent(self, event: Event, now: float, arg: Any) -> None:
        if event in _STARTS or event is Event.TCP_CONNECTION_VALID:
            return
        if self._error_with_notify(event, now, arg):
            return
        if event is Event.BGP_OPEN:
            a: OpenArgs = arg
            self._stop(CONNECT_RETRY)
            self._out.append(SendKeepalive())
            self.s.hold_time = a.hold_time
            self.s.keepalive_interval = a.keepalive_interval
            if a.hold_time:
                self._start(KEEPALIVE, a.keepalive_interval, now)
                self._start(HOLD, a.hold_time, now)
            else:
                self._stop(HOLD)
            self._goto(State.OPEN_CONFIRM, event)
        else:
            self._fsm_error(event, now)

    def _open_confirm(self, event: Event, now: float, arg: Any) -> None:
        if event in _STARTS or event is Event.TCP_CONNECTION_VALID:
            return
        if self._error_with_notify(event, now, arg):
            return
        if event is Event.KEEPALIVE_TIMER_EXPIRES:
            self._out.append(SendKeepalive())
            self._start(KEEPALIVE, self.s.keepalive_interval, now)
        elif event is Event.KEEPALIVE_MSG:
            if self.s.hold_time:
                self._start(HOLD, self.s.hold_time, now)
            self.s.established_at = now
            self.s.connect_retry_time = 0.0
            self._goto(State.ESTABLISHED, event)
            self._out.append(SessionEstablished())
        else:
            self._fsm_error(event, now)

    def _established(self, event: Event, now: float, arg: Any) -> None:
        if event in _STARTS or event is Event.TCP_CONNECTION_VALID:
            return
        if event is Event.KEEPALIVE_MSG or event is Event.UPDATE_MSG:
            # The hot path (every UPDATE of a full table): restart the hold timer only.
            if self.s.hold_time:
                self._start(HOLD, self.s.hold_time, now)
            return
        if self._error_with_notify(event, now, arg):
            return
        if event is Event.KEEPALIVE_TIMER_EXPIRES:
            self._out.append(SendKeepalive())
            self._start(KEEPALIVE, self.s.keepalive_interval, now)
        else:
            self._fsm_error(event, now)

    # -- checkpoints ---------------------------------------------------------------------------

    def to_dict(self, now: float) -> dict[str, Any]:
        return self.s.to_dict(now)

    @classmethod
    def from_dict(
        cls, d: dict[str, Any], now: float, config: FsmConfig, rng: random.Random | None = None
    ) -> Fsm:
        return cls(config, FsmState.from_dict(d, now), rng)

    def restart_hold(self, now: float) -> bool:
        """Fast path of UpdateMsg in Established (one call per UPDATE of a full table).

        Same state change as ``handle(Event.UPDATE_MSG, now)`` there: the hold timer
        restarts, nothing else happens. It skips building the action list: the peer's
        hold-timer handle already re-arms itself when it fires before the deadline, so
        the StartTimer action would be a no-op. Returns False (and changes nothing)
        outside Established, where the caller must use ``handle``.
        """
        s = self.s
        if s.state is not State.ESTABLISHED:
            return False
        if s.hold_time:
            s.deadlines[HOLD] = now + s.hold_time
        return True

    def timers(self) -> dict[str, float]:
        """Running timers as name -> deadline (to re-arm after a restore)."""
        return dict(self.s.deadlines)


def _timer_of(event: Event) -> str | None:
    return _TIMER_OF_EVENT.get(event)


_TIMER_OF_EVENT = {v: k for k, v in TIMER_EVENTS.items()}
_HANDLERS = {
    State.IDLE: Fsm._idle,
    State.CONNECT: Fsm._connect,
    State.ACTIVE: Fsm._active,
    State.OPEN_SENT: Fsm._open_sent,
    State.OPEN_CONFIRM: Fsm._open_confirm,
    State.ESTABLISHED: Fsm._established,
}
