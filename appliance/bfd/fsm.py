"""One BFD session's state machine (RFC 5880 §6), as plain data and pure methods.

No sockets, no threads, no clock: every method takes ``now`` (a monotonic reading in
seconds) and returns what to send and which state change happened; the caller
(session.py) does the I/O. Jitter comes from an injected ``random.Random``.

What is implemented, by section:
- §6.2 states Down/Init/Up/AdminDown, three-way handshake, §6.8.6 reception rules that
  need a session (Your Discriminator match, A bit vs. configured auth, the state table,
  Poll → immediate Final), §6.8.4 detection time
  ``remote Detect Mult × max(bfd.RequiredMinRxInterval, last received Desired Min TX)``.
- §6.8.3 timers: while not Up the advertised Desired Min TX is at least 1 s; a change of
  the advertised intervals while Up starts a Poll Sequence (P set in every packet until a
  packet with F arrives). Increasing our TX interval, or lowering our RX interval, only
  takes effect when the Poll Sequence ends; the opposite changes take effect at once.
- §6.8.7 transmission: interval ``max(DesiredMinTx, RemoteMinRx)`` less 0-25 % jitter
  (with Detect Mult 1: 10-25 %, i.e. 75-90 % of the interval); nothing is sent periodically
  while RemoteMinRx is 0 or the remote is in Demand mode with both sides Up (we never ask
  for Demand mode ourselves). A Final is sent at once, outside the schedule.
- §6.7.4 keyed SHA1 / meticulous keyed SHA1: sequence number incremented on every packet
  we send; received sequence numbers must lie in ``[RcvAuthSeq, RcvAuthSeq + 3×DetectMult]``
  (meticulous: from ``RcvAuthSeq + 1``), modulo 2^32, with DetectMult the received one;
  ``AuthSeqKnown`` is cleared after 2 × detection time without a packet.
- AdminDown (§6.8.16): we send AdminDown with diag 7 and ignore what arrives; a remote
  AdminDown takes us Down with diag 3.

`to_dict`/`from_dict` dump and restore everything (deadlines as remaining time) for
non-stop routing checkpoints (DESIGN.md invariant 3).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, NamedTuple

from .config import SLOW_TX, AuthConfig, SessionConfig
from .packet import (
    DIAG_NAMES,
    STATE_NAMES,
    Auth,
    ControlPacket,
    Diag,
    State,
    check_sha1,
    encode,
)

_U32 = 1 << 32


class Transition(NamedTuple):
    old: State
    new: State
    diag: Diag


class RxResult(NamedTuple):
    transition: Transition | None = None
    reply: bytes | None = None          # a Final to send at once
    error: str | None = None            # set when the packet was discarded


def state_name(state: int) -> str:
    return STATE_NAMES[State(state)]


@dataclass(slots=True)
class Counters:
    rx_packets: int = 0
    tx_packets: int = 0
    rx_discarded: int = 0
    rx_auth_failures: int = 0
    transitions: int = 0
    up_count: int = 0
    down_count: int = 0
    polls_sent: int = 0
    finals_sent: int = 0

    def to_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}

    @classmethod
    def from_dict(cls, d: dict[str, int]) -> Counters:
        return cls(**{k: int(d.get(k, 0)) for k in cls.__slots__})


class BfdFsm:
    """The RFC 5880 state variables of one session (``bfd.*`` names in comments)."""

    def __init__(
        self,
        cfg: SessionConfig,
        local_discr: int,
        now: float,
        rng: random.Random | None = None,
        xmit_auth_seq: int | None = None,
    ) -> None:
        if not 0 < local_discr < _U32:
            raise ValueError("local discriminator must be 1..2^32-1")
        self.cfg = cfg
        self.rng = rng or random.Random()
        self.state = State.ADMIN_DOWN if not cfg.enabled else State.DOWN   # bfd.SessionState
        self.remote_state = State.DOWN                   # bfd.RemoteSessionState
        self.local_discr = local_discr                   # bfd.LocalDiscr
        self.remote_discr = 0                            # bfd.RemoteDiscr
        self.local_diag = Diag.ADMIN_DOWN if not cfg.enabled else Diag.NONE  # bfd.LocalDiag
        self.remote_diag = Diag.NONE
        self.desired_min_tx = max(cfg.desired_min_tx, SLOW_TX)   # bfd.DesiredMinTxInterval
        self.required_min_rx = cfg.required_min_rx               # bfd.RequiredMinRxInterval
        self.tx_in_use = self.desired_min_tx     # the DesiredMinTx the TX interval is computed from
        self.rx_in_use = self.required_min_rx    # the RequiredMinRx the detection time uses
        self.remote_min_rx = 1                   # bfd.RemoteMinRxInterval (initial value 1 µs)
        self.remote_desired_min_tx = 0           # last received Desired Min TX
        self.remote_detect_mult = 0
        self.remote_demand = False               # bfd.RemoteDemandMode
        self.poll_active = False
        self.xmit_auth_seq = (                   # bfd.XmitAuthSeq
            self.rng.getrandbits(32) if xmit_auth_seq is None else xmit_auth_seq % _U32
        )
        self.rcv_auth_seq = 0                    # bfd.RcvAuthSeq
        self.auth_seq_known = False              # bfd.AuthSeqKnown
        self.next_tx = now                       # deadline of the next periodic packet
        self.detect_at: float | None = None      # deadline of the detection timer
        self.last_rx: float | None = None
        self.last_tx: float | None = None
        self.last_change = now
        self.last_down_diag = Diag.NONE
        self.last_down_reason = ""
        self.tx_max_gap = 0.0                    # s, worst gap between our packets while Up
        self.rx_max_gap = 0.0                    # s, worst gap between received packets while Up
        self.counters = Counters()

    # -- derived values --------------------------------------------------------------------
    def tx_interval_us(self) -> int:
        """§6.8.7, before jitter."""
        return max(self.tx_in_use, self.remote_min_rx)

    def detection_time_us(self) -> int | None:
        """§6.8.4 (asynchronous mode); None before anything was received."""
        if not self.remote_detect_mult:
            return None
        return self.remote_detect_mult * max(self.rx_in_use, self.remote_desired_min_tx)

    def _jittered(self, us: int) -> float:
        hi = 0.90 if self.cfg.detect_mult == 1 else 1.0
        return us * self.rng.uniform(0.75, hi) / 1e6

    def _periodic_allowed(self) -> bool:
        if self.remote_min_rx == 0:
            return False
        return not (self.remote_demand and self.state == State.UP and self.remote_state == State.UP)

    def next_deadline(self) -> float:
        d = self.next_tx
        if self.detect_at is not None and self.detect_at < d:
            d = self.detect_at
        return d

    # -- timers (§6.8.3) -------------------------------------------------------------------
    def _update_timers(self, now: float) -> None:
        up = self.state == State.UP
        want_tx = self.cfg.desired_min_tx if up else max(self.cfg.desired_min_tx, SLOW_TX)
        want_rx = self.cfg.required_min_rx
        old_interval = self.tx_interval_us()
        changed = want_tx != self.desired_min_tx or want_rx != self.required_min_rx
        self.desired_min_tx, self.required_min_rx = want_tx, want_rx
        if not up:
            self.poll_active = False
            self.tx_in_use, self.rx_in_use = want_tx, want_rx
        else:
            if changed:
                self.poll_active = True
            if want_tx <= self.tx_in_use:       # faster TX: at once; slower waits for Final
                self.tx_in_use = want_tx
            if want_rx >= self.rx_in_use:       # slower RX: at once; faster waits for Final
                self.rx_in_use = want_rx
        self._reschedule(now, old_interval)

    def _reschedule(self, now: float, old_interval: int) -> None:
        """A shorter TX interval applies to the packet being waited for."""
        new = self.tx_interval_us()
        if new < old_interval:
            base = self.last_tx if self.last_tx is not None else now
            self.next_tx = min(self.next_tx, max(now, base + self._jittered(new)))

    def _end_poll(self, now: float) -> None:
        old_interval = self.tx_interval_us()
        self.poll_active = False
        self.tx_in_use, self.rx_in_use = self.desired_min_tx, self.required_min_rx
        self._reschedule(now, old_interval)

    # -- state changes ---------------------------------------------------------------------
    def _change(self, new: State, diag: Diag, now: float, reason: str = "") -> Transition:
        old = self.state
        self.state = new
        self.local_diag = Diag.NONE if new == State.UP else diag
        self.last_change = now
        c = self.counters
        c.transitions += 1
        if new == State.UP:
            c.up_count += 1
            self.tx_max_gap = self.rx_max_gap = 0.0
        elif old == State.UP:
            c.down_count += 1
        if new in (State.DOWN, State.ADMIN_DOWN) and old != new:
            self.last_down_diag = diag
            self.last_down_reason = reason or DIAG_NAMES.get(int(diag), str(int(diag)))
        if new in (State.DOWN, State.ADMIN_DOWN):
            self.poll_active = False
        self._update_timers(now)
        return Transition(old, new, diag)

    def admin_down(self, now: float) -> Transition | None:
        if self.state == State.ADMIN_DOWN:
            return None
        self.detect_at = None
        return self._change(State.ADMIN_DOWN, Diag.ADMIN_DOWN, now, "administratively-down")

    def admin_up(self, now: float) -> Transition | None:
        if self.state != State.ADMIN_DOWN:
            return None
        return self._change(State.DOWN, Diag.NONE, now)

    def update_config(self, cfg: SessionConfig, now: float) -> Transition | None:
        """New configuration for the same peer; timers change through a Poll Sequence."""
        old = self.cfg
        self.cfg = cfg
        if old.auth != cfg.auth:
            self.auth_seq_known = False
        self._update_timers(now)
        if cfg.enabled and not old.enabled:
            return self.admin_up(now)
        if old.enabled and not cfg.enabled:
            return self.admin_down(now)
        return None

    # -- transmission (§6.8.7) ---------------------------------------------------------------
    def build(self, final: bool = False) -> bytes:
        """The next packet's wire form; each call consumes an auth sequence number."""
        a: AuthConfig | None = self.cfg.auth
        auth = None
        if a is not None:
            self.xmit_auth_seq = (self.xmit_auth_seq + 1) % _U32
            auth = Auth(a.auth_type, a.key_id, self.xmit_auth_seq)
        pkt = ControlPacket(
            state=self.state,
            diag=self.local_diag,
            detect_mult=self.cfg.detect_mult,
            my_discr=self.local_discr,
            your_discr=self.remote_discr,
            desired_min_tx=self.desired_min_tx,
            required_min_rx=self.required_min_rx,
            required_min_echo_rx=0,
            poll=self.poll_active and not final,
            final=final,
            auth=auth,
        )
        return encode(pkt, a.key if a is not None else b"")

    def on_timer(self, now: float) -> tuple[bytes | None, Transition | None]:
        """Run expired timers: detection first, then the periodic packet if due."""
        change = None
        if self.detect_at is not None and now >= self.detect_at:
            self.detect_at = None
            self.remote_discr = 0                      # §6.8.1 bfd.RemoteDiscr
            self.remote_state = State.DOWN
            if self.state in (State.INIT, State.UP):
                change = self._change(State.DOWN, Diag.CONTROL_DETECTION_TIME_EXPIRED, now)
        self._age_auth(now)
        out = None
        if now >= self.next_tx:
            if self._periodic_allowed():
                out = self.build()
                self.counters.tx_packets += 1
                if self.poll_active:
                    self.counters.polls_sent += 1
                if (self.last_tx is not None and self.state == State.UP
                        and self.last_tx >= self.last_change):
                    gap = now - self.last_tx
                    if gap > self.tx_max_gap:
                        self.tx_max_gap = gap
                self.last_tx = now
            self.next_tx = now + self._jittered(self.tx_interval_us())
        return out, change

    def _age_auth(self, now: float) -> None:
        if self.auth_seq_known and self.last_rx is not None:
            dt = self.detection_time_us()
            if dt is not None and now - self.last_rx > 2 * dt / 1e6:
                self.auth_seq_known = False

    # -- reception (§6.8.6) ----------------------------------------------------------------
    def _check_auth(self, pkt: ControlPacket, raw: bytes) -> str | None:
        a = self.cfg.auth
        if a is None:
            return "auth-unexpected" if pkt.auth is not None else None
        if pkt.auth is None:
            return "auth-missing"
        if pkt.auth.auth_type != a.auth_type:
            return "auth-type"
        if pkt.auth.key_id != a.key_id:
            return "auth-key-id"
        if not check_sha1(raw, a.key):
            return "auth-digest"
        seq = pkt.auth.sequence
        if self.auth_seq_known:
            lo = 1 if a.meticulous else 0
            ahead = (seq - self.rcv_auth_seq) % _U32
            if not lo <= ahead <= 3 * pkt.detect_mult:
                return "auth-sequence"
        self.rcv_auth_seq = seq
        self.auth_seq_known = True
        return None

    def receive(self, pkt: ControlPacket, now: float, raw: bytes = b"") -> RxResult:
        """A decoded packet (packet.decode already applied the context-free checks)."""
        if pkt.your_discr != 0 and pkt.your_discr != self.local_discr:
            self.counters.rx_discarded += 1
            return RxResult(error="your-discriminator")
        self._age_auth(now)
        err = self._check_auth(pkt, raw)
        if err is not None:
            self.counters.rx_discarded += 1
            self.counters.rx_auth_failures += 1
            return RxResult(error=err)
        c = self.counters
        c.rx_packets += 1
        if self.last_rx is not None and self.state == State.UP and self.last_rx >= self.last_change:
            gap = now - self.last_rx
            if gap > self.rx_max_gap:
                self.rx_max_gap = gap
        self.last_rx = now
        self.remote_discr = pkt.my_discr
        self.remote_state = State(pkt.state)
        self.remote_diag = pkt.diag
        self.remote_demand = pkt.demand
        old_interval = self.tx_interval_us()
        self.remote_min_rx = pkt.required_min_rx
        self.remote_desired_min_tx = pkt.desired_min_tx
        self.remote_detect_mult = pkt.detect_mult
        if pkt.final and self.poll_active:
            self._end_poll(now)
        else:
            self._reschedule(now, old_interval)
        if self.state == State.ADMIN_DOWN:
            return RxResult(reply=self._final() if pkt.poll else None)
        change = None
        rs = pkt.state
        st = self.state
        if rs == State.ADMIN_DOWN:
            if st != State.DOWN:
                change = self._change(State.DOWN, Diag.NEIGHBOR_SIGNALED_DOWN, now,
                                      "neighbor-signaled-admin-down")
        elif st == State.DOWN:
            if rs == State.DOWN:
                change = self._change(State.INIT, Diag.NONE, now)
            elif rs == State.INIT:
                change = self._change(State.UP, Diag.NONE, now)
        elif st == State.INIT:
            if rs in (State.INIT, State.UP):
                change = self._change(State.UP, Diag.NONE, now)
        elif rs == State.DOWN:  # Up
            change = self._change(State.DOWN, Diag.NEIGHBOR_SIGNALED_DOWN, now)
        dt = self.detection_time_us()
        self.detect_at = now + dt / 1e6 if dt is not None else None
        return RxResult(transition=change, reply=self._final() if pkt.poll else None)

    def _final(self) -> bytes:
        self.counters.tx_packets += 1
        self.counters.finals_sent += 1
        return self.build(final=True)

    # -- views and checkpoints ---------------------------------------------------------------
    def state_dict(self, now: float) -> dict[str, Any]:
        """Operational state for NETCONF/CLI (intervals in µs, times in ms)."""
        dt = self.detection_time_us()
        return {
            "peer-address": self.cfg.peer_address,
            "local-address": self.cfg.local_address,
            "interface": self.cfg.interface,
            "multihop": self.cfg.multihop,
            "state": state_name(self.state),
            "remote-state": state_name(self.remote_state),
            "local-discriminator": self.local_discr,
            "remote-discriminator": self.remote_discr,
            "local-diagnostic": DIAG_NAMES.get(int(self.local_diag), str(int(self.local_diag))),
            "remote-diagnostic": DIAG_NAMES.get(int(self.remote_diag), str(int(self.remote_diag))),
            "detection-multiplier": self.cfg.detect_mult,
            "remote-detection-multiplier": self.remote_detect_mult,
            "desired-min-tx-interval": self.desired_min_tx,
            "required-min-rx-interval": self.required_min_rx,
            "remote-desired-min-tx-interval": self.remote_desired_min_tx,
            "remote-required-min-rx-interval": self.remote_min_rx,
            "negotiated-tx-interval": self.tx_interval_us(),
            "negotiated-rx-interval": max(self.rx_in_use, self.remote_desired_min_tx),
            "detection-time": dt,
            "poll-in-progress": self.poll_active,
            "authentication": None if self.cfg.auth is None else int(self.cfg.auth.auth_type),
            "last-state-change-ms": round((now - self.last_change) * 1000),
            "last-down-diagnostic": DIAG_NAMES.get(int(self.last_down_diag), ""),
            "last-down-reason": self.last_down_reason,
            "tx-max-gap-ms": round(self.tx_max_gap * 1000, 3),
            "rx-max-gap-ms": round(self.rx_max_gap * 1000, 3),
            "counters": self.counters.to_dict(),
        }

    _PLAIN = (
        "local_discr", "remote_discr", "desired_min_tx", "required_min_rx", "tx_in_use",
        "rx_in_use", "remote_min_rx", "remote_desired_min_tx", "remote_detect_mult",
        "remote_demand", "poll_active", "xmit_auth_seq", "rcv_auth_seq", "auth_seq_known",
        "last_down_reason", "tx_max_gap", "rx_max_gap",
    )

    def to_dict(self, now: float) -> dict[str, Any]:
        """Checkpoint: plain JSON-able data; deadlines and ages as remaining/elapsed seconds."""
        d: dict[str, Any] = {k: getattr(self, k) for k in self._PLAIN}
        d.update(
            state=int(self.state),
            remote_state=int(self.remote_state),
            local_diag=int(self.local_diag),
            remote_diag=int(self.remote_diag),
            last_down_diag=int(self.last_down_diag),
            next_tx_in=max(0.0, self.next_tx - now),
            detect_in=None if self.detect_at is None else max(0.0, self.detect_at - now),
            last_rx_ago=None if self.last_rx is None else now - self.last_rx,
            last_tx_ago=None if self.last_tx is None else now - self.last_tx,
            last_change_ago=now - self.last_change,
            counters=self.counters.to_dict(),
        )
        return d

    @classmethod
    def from_dict(
        cls, d: dict[str, Any], cfg: SessionConfig, now: float, rng: random.Random | None = None
    ) -> BfdFsm:
        fsm = cls(cfg, int(d["local_discr"]), now, rng, int(d["xmit_auth_seq"]))
        for k in cls._PLAIN:
            setattr(fsm, k, type(getattr(fsm, k))(d[k]) if d[k] is not None else None)
        fsm.state = State(d["state"])
        fsm.remote_state = State(d["remote_state"])
        fsm.local_diag = Diag(d["local_diag"])
        fsm.remote_diag = Diag(d["remote_diag"])
        fsm.last_down_diag = Diag(d["last_down_diag"])
        fsm.next_tx = now + float(d["next_tx_in"])
        fsm.detect_at = None if d["detect_in"] is None else now + float(d["detect_in"])
        fsm.last_rx = None if d["last_rx_ago"] is None else now - float(d["last_rx_ago"])
        fsm.last_tx = None if d["last_tx_ago"] is None else now - float(d["last_tx_ago"])
        fsm.last_change = now - float(d["last_change_ago"])
        fsm.counters = Counters.from_dict(d["counters"])
        if not math.isfinite(fsm.next_tx):
            fsm.next_tx = now
        return fsm
