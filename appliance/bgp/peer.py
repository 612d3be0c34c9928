"""One BGP neighbor: its connections, timers, collision detection, framing, counters.

The RFC 4271 state machine lives in ``fsm.py`` and knows nothing of sockets; this
module feeds it events (messages, timer expiries, TCP events) and carries out
the actions it returns. The speaker sees the peer through ``SessionListener``
(docs/architecture.md, "The peer <-> speaker contract").

Connections: the *primary* session is the one that counts (its FSM is the
peer's state). While it is in OpenSent/OpenConfirm, or in Connect with our own
connection attempt under way (the peer may already hold that connection and
keep it), a second, incoming connection may run a *secondary* FSM; when an
OPEN arrives with two connections alive the collision is resolved (RFC 4271
§6.8, RFC 6286 §2.3) and the loser is closed with CEASE/Connection Collision
Resolution. If the loser was the primary, the secondary takes its place
(keeping the retry counters). When the peer resolves the collision and closes
one of the two connections with that CEASE, only that connection is closed and
the other goes on. Either way the session does not pass through Idle.

Reads: asyncio hands ``data_received`` what one read returned; each callback
frames and dispatches only that, so keepalives and timers run between reads
even while a full table streams in.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import logging
import math
import os
import random
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from .config import GracefulRestartConfig, NeighborConfig
from .family import AfiSafi
from .fsm import (
    HOLD,
    TIMER_EVENTS,
    Connect,
    DropConnection,
    Event,
    Fsm,
    FsmConfig,
    Notify,
    OpenArgs,
    SendKeepalive,
    SendNotification,
    SendOpen,
    SessionDown,
    SessionEstablished,
    StartTimer,
    State,
    StateChanged,
    StopTimer,
)
from .fsm import (
    KEEPALIVE as KEEPALIVE_TIMER,
)
from .packet import capability as cap
from .packet.constants import (
    HEADER_LEN,
    MAX_EXTENDED_MESSAGE_LEN,
    MAX_MESSAGE_LEN,
    CeaseSubcode,
    ErrorCode,
    HeaderSubcode,
    MsgType,
    OpenSubcode,
    UpdateSubcode,
)
from .packet.errors import BgpCodecError, NotificationError
from .packet.message import (
    KEEPALIVE,
    Notification,
    Open,
    RouteRefresh,
    decode_notification,
    decode_open,
    decode_route_refresh,
    encode_message,
    shutdown_notification,
    split_messages,
)
from .packet.update import UpdateDecoder
from .transport import configure_session_socket, create_client_socket, session_ttl

log = logging.getLogger("fcr.bgp")

SHUTDOWN_FLUSH_TIMEOUT = 1.0
WRITE_HIGH_WATER = 256 * 1024
# Bytes one read takes from the kernel (asyncio's own is 256 KiB). Each read is framed and
# processed in one callback and timers run only between loop iterations, so with several
# peers sending full tables the read size bounds how late a KEEPALIVE can be: at 256 KiB
# (about 35,000 routes a read) ten busy peers delayed ours by over 2 s.
READ_MAX = 64 * 1024
# Time one callback may spend on one peer's received messages. The rest waits in the
# buffer, reading from that socket pauses (TCP flow control holds the peer back), and a
# later loop iteration continues - after the timers that came due meanwhile. Without it,
# one loop iteration took 0.5-1.6 s with ten peers sending UPDATEs that were propagated
# to another peer (about 50-150 ms a read).
INPUT_SLICE = 0.005
_TYPE_NAMES = {
    MsgType.OPEN: "open",
    MsgType.UPDATE: "update",
    MsgType.NOTIFICATION: "notification",
    MsgType.KEEPALIVE: "keepalive",
    MsgType.ROUTE_REFRESH: "route-refresh",
}
_COUNTER_NAMES = ("open", "update", "notification", "keepalive", "route-refresh", "total")
_HANDSHAKE = (State.OPEN_SENT, State.OPEN_CONFIRM)


@dataclass(frozen=True)
class LocalSettings:
    """What the local speaker is, shared by its peers."""

    asn: int
    router_id: str
    attr_cache: Any = None                      # packet.update.AttrCache shared by all peers
    graceful_restart: GracefulRestartConfig | None = None   # None: the neighbor's setting
    restarting: bool = False                    # advertise the GR Restart State bit
    families: tuple[AfiSafi, ...] | None = None  # None: the neighbor's enabled families


class HandoverError(Exception):
    """A session cannot be paused, detached or adopted now (the reason says why)."""


class SessionListener(Protocol):
    def session_established(self, peer: Peer) -> None: ...

    def session_down(self, peer: Peer, reason: str) -> None: ...

    # optional: ``state_changed(peer, old, new)`` on every FSM state change of the session

    def update_received(self, peer: Peer, update: Any) -> None: ...

    def route_refresh_received(self, peer: Peer, family: AfiSafi, subtype: int) -> None: ...

    def writable(self, peer: Peer) -> None: ...


@dataclass
class PeerStats:
    received: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNTER_NAMES, 0))
    sent: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNTER_NAMES, 0))
    established_at: float | None = None          # time.time() of the last Established
    established_transitions: int = 0
    last_error: str = ""
    last_notification_sent: tuple[int, int, str] | None = None
    last_notification_received: tuple[int, int, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        def note(n: tuple[int, int, str] | None) -> dict[str, Any] | None:
            return None if n is None else {"code": n[0], "subcode": n[1], "message": n[2]}

        return {
            "received": dict(self.received),
            "sent": dict(self.sent),
            "established-at": self.established_at,
            "established-transitions": self.established_transitions,
            "last-error": self.last_error,
            "last-notification-sent": note(self.last_notification_sent),
            "last-notification-received": note(self.last_notification_received),
        }


class _Session:
    """One connection (or connection attempt) and its FSM."""

    __slots__ = (
        "fsm", "transport", "proto", "outgoing", "timers", "negotiated",
        "remote_open", "decoder", "connect_task", "paused", "max_len",
    )

    def __init__(self, fsm: Fsm) -> None:
        self.fsm = fsm
        self.transport: asyncio.Transport | None = None
        self.proto: _Protocol | None = None
        self.outgoing = False
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.negotiated: cap.Negotiated | None = None
        self.remote_open: Open | None = None
        self.decoder: Any = None
        self.connect_task: asyncio.Task[None] | None = None
        self.paused = False
        self.max_len = MAX_MESSAGE_LEN


class _Protocol(asyncio.Protocol):
    """Byte pipe of one TCP connection; buffers until the peer attaches a session."""

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.session: _Session | None = None
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.closed: asyncio.Future[None] = peer._loop_get().create_future()
        # NSR crash guard (appliance/nsr/crash.py): reads peek and take whole messages only;
        # writes are logged before they are sent
        self.peek: Any = None
        self.tx_log: Any = None
        self.input_deferred = False  # reads paused until the buffered messages are handled

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)  # type: ignore[attr-defined]
        if hasattr(transport, "max_size"):  # the selector transport's recv() size
            transport.max_size = READ_MAX  # type: ignore[attr-defined]
        hooks = getattr(self.peer.listener, "nsr_hooks", None)
        if hooks is not None:
            hooks.connection_made(self, transport)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.session is not None:
            self.peer._data(self.session, self)

    def peeked(self, data: bytes) -> int:
        """Peek mode: ``data`` is still in the kernel's receive queue. Frame and dispatch
        the whole messages; return how many of its bytes they used (the reader removes
        exactly those from the kernel), or -1 when the session went away meanwhile."""
        old = len(self.buf)
        self.buf += data
        s = self.session
        if s is not None:
            self.peer._data(s, self)
        if self.session is not s or s is None:
            return -1
        left = len(self.buf)
        used = max(0, old + len(data) - left - old)
        del self.buf[max(0, left - (len(data) - used)):]  # keep only what left the kernel
        return used

    def connection_lost(self, exc: Exception | None) -> None:
        if self.tx_log is not None:
            self.tx_log.close()  # the connection is gone: its log-before-send record too
            self.tx_log = None
        if not self.closed.done():
            self.closed.set_result(None)
        if self.session is not None:
            self.peer._lost(self.session, self, exc)

    def pause_writing(self) -> None:
        if self.session is not None:
            self.session.paused = True

    def resume_writing(self) -> None:
        if self.session is not None:
            self.session.paused = False
            self.peer._resumed(self.session)


class Peer:
    """Runs one neighbor (see the module docstring)."""

    def __init__(
        self,
        config: NeighborConfig,
        local: LocalSettings,
        listener: SessionListener,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.local = local
        self.listener = listener
        self._loop = loop
        self._rng = rng if rng is not None else random.Random()
        self.local_as = config.local_as or local.asn
        self.ebgp = config.peer_as != self.local_as
        self.stats = PeerStats()
        self._fsm_config = FsmConfig(
            connect_retry=float(config.connect_retry),
            connect_retry_max=float(config.connect_retry_max),
            hold_time=config.hold_time,
            passive=config.passive_mode,
        )
        self._primary = _Session(Fsm(self._fsm_config, rng=self._rng))
        self._secondary: _Session | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.local_open = self._build_open()
        # Frame with the largest size we could ever accept; the per-session limit
        # (4096 until Extended Message is negotiated) is checked per message.
        self._frame_max = MAX_EXTENDED_MESSAGE_LEN if config.extended_message else MAX_MESSAGE_LEN
        # NSR handover (docs/nsr.md): reads paused and UPDATEs held while the session's
        # state is being checkpointed; keepalives still flow until the socket is detached
        self.handover_paused = False

    # -- public API ------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.config.neighbor_address

    @property
    def state(self) -> str:
        return self._primary.fsm.state.value

    @property
    def negotiated(self) -> cap.Negotiated | None:
        s = self._primary
        return s.negotiated if s.fsm.state is State.ESTABLISHED else None

    @property
    def local_address(self) -> str | None:
        """Our address on the current connection (else the configured update-source)."""
        t = self._primary.transport
        name = t.get_extra_info("sockname") if t is not None else None
        return name[0] if name else self.config.local_address

    @property
    def remote_address(self) -> str | None:
        t = self._primary.transport
        name = t.get_extra_info("peername") if t is not None else None
        return name[0] if name else None

    @property
    def four_tuple(self) -> tuple[str, int, str, int] | None:
        """(local address, port, remote address, port) of the current connection."""
        t = self._primary.transport
        if t is None:
            return None
        local, remote = t.get_extra_info("sockname"), t.get_extra_info("peername")
        return (local[0], local[1], remote[0], remote[1])

    def flush_acks(self) -> None:
        """Have the kernel send the ACK it owes the peer now (TCP_QUICKACK): a session whose
        reads are paused is ACKed on the delayed-ACK timer at best, so the peer's silence at
        a switchover would begin up to that timer before the freeze. The kernel sends it
        only with an empty receive queue, so a paused session's unread bytes are taken into
        the buffer first: unhandled, they travel in the snapshot (``rx-pending``) or are
        handled at handover_resume. Not in peek mode (the crash guard: bytes leave the
        kernel only once their messages are handled)."""
        s = self._primary
        t = s.transport
        sock = t.get_extra_info("socket") if t is not None else None
        if sock is None:
            return
        proto = s.proto
        if self.handover_paused and proto is not None and proto.peek is None:
            raw = socket.socket(fileno=sock.fileno())  # the transport's descriptor, borrowed
            try:
                for _ in range(64):  # bounded: the receive queue holds far less
                    data = raw.recv(READ_MAX, socket.MSG_DONTWAIT)
                    if not data:
                        break  # end of stream: left to the next reader to see
                    proto.buf += data
            except OSError:
                pass  # BlockingIOError: drained
            finally:
                raw.detach()
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)

    @property
    def fsm(self) -> Fsm:
        return self._primary.fsm

    def start(self) -> None:
        """ManualStart (active) or ManualStart_with_PassiveTcpEstablishment (passive_mode)."""
        ev = Event.MANUAL_START_PASSIVE if self.config.passive_mode else Event.MANUAL_START
        self._event(self._primary, ev)

    def stop(self, notification: Notification | None = None) -> None:
        """ManualStop now (the NOTIFICATION is flushed by the transport's close)."""
        n = notification or Notification(ErrorCode.CEASE, CeaseSubcode.ADMIN_SHUTDOWN)
        arg = Notify(n.code, n.subcode, n.data)
        if self._secondary is not None:
            self._event(self._secondary, Event.MANUAL_STOP, arg)
        self._event(self._primary, Event.MANUAL_STOP, arg)

    async def shutdown(self, message: str = "") -> None:
        """CEASE/Administrative Shutdown with an RFC 8203 message; wait (≤ 1 s) until written."""
        n = shutdown_notification(CeaseSubcode.ADMIN_SHUTDOWN, message)
        protos = [s.proto for s in (self._primary, self._secondary) if s is not None and s.proto]
        self.stop(n)
        for task in list(self._tasks):
            task.cancel()
        waits = [p.closed for p in protos if p is not None]
        if waits:
            _done, pending = await asyncio.wait(waits, timeout=SHUTDOWN_FLUSH_TIMEOUT)
            for p in protos:
                if p is not None and not p.closed.done() and p.transport is not None:
                    p.transport.abort()  # peer not reading: give up on the flush
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=SHUTDOWN_FLUSH_TIMEOUT)

    def reset(self, code: int, subcode: int, data: bytes = b"", *, idle_hold: float | None = None) -> None:
        """Send NOTIFICATION, drop, restart after ``idle_hold`` s (inf: stay down until start())."""
        arg = Notify(code, subcode, data, idle_hold)
        if self._secondary is not None:
            self._event(self._secondary, Event.MANUAL_STOP, arg)
        self._event(self._primary, Event.AUTOMATIC_STOP, arg)

    def incoming_connection(self, sock: socket.socket, remote_ip: str) -> None:
        """Passive open: an accepted socket from this neighbor."""
        st = self._primary.fsm.state
        if st is State.IDLE:
            log.info("event=bgp.connection-refused peer=%s reason=idle", self.name)
            sock.close()
            return
        if st is State.ESTABLISHED:
            # §6.8: a collision with an Established session closes the new connection.
            self._refuse(sock, CeaseSubcode.CONNECTION_COLLISION)
            return
        if self._secondary is not None:
            self._refuse(sock, CeaseSubcode.CONNECTION_REJECTED)  # a third connection
            return
        ttl, min_ttl = session_ttl(self.config, self.ebgp)
        try:
            configure_session_socket(sock, ttl=ttl, min_ttl=min_ttl)
        except OSError as exc:
            log.warning("event=bgp.connection-refused peer=%s error=%s", self.name, exc)
            sock.close()
            return
        self._spawn(self._accept(sock, remote_ip))

    def send_raw(self, messages: list[bytes]) -> bool:
        """Write encoded messages on the Established session; False if there is none."""
        s = self._primary
        if s.fsm.state is not State.ESTABLISHED or s.transport is None:
            return False
        sent = self.stats.sent
        for m in messages:
            name = _TYPE_NAMES.get(m[18])  # type octet of the header
            if name:
                sent[name] += 1
        sent["total"] += len(messages)
        tx_log = s.proto.tx_log if s.proto is not None else None
        if tx_log is not None:  # log before send (NSR crash guard)
            tx_log.append(messages, s.transport.get_write_buffer_size())
        s.transport.writelines(messages)
        if tx_log is not None:
            tx_log.sync(s.transport.get_write_buffer_size())
        return True

    def can_send(self) -> bool:
        s = self._primary
        return (s.fsm.state is State.ESTABLISHED and s.transport is not None and not s.paused
                and not self.handover_paused)

    # -- NSR handover (docs/nsr.md) --------------------------------------------------------
    # Old engine: handover_pause() -> checkpoint RIBs -> await handover_drain() -> freeze the
    # 4-tuple -> handover_detach() -> dump the TCP state of the returned socket and close it
    # silently. New engine: restore the socket -> await adopt(snapshot, sock). Abort before
    # detach: handover_resume().

    def connection(self) -> tuple[Any, Any]:
        """The current connection's protocol and asyncio transport (None when absent)."""
        s = self._primary
        return s.proto, s.transport

    def handover_pause(self) -> None:
        """Stop reading (the kernel still acknowledges) and stop sending UPDATEs, so the
        session's RIB state is fixed; keepalives keep flowing, the peer sees nothing."""
        s = self._primary
        if s.fsm.state is not State.ESTABLISHED or s.transport is None:
            raise HandoverError(f"{self.name}: session is {s.fsm.state.value}, not Established")
        if self._secondary is not None:
            raise HandoverError(f"{self.name}: a second connection is being opened")
        s.transport.pause_reading()
        self.handover_paused = True

    def handover_resume(self) -> None:
        """Undo handover_pause (switchover abandoned before the socket was detached)."""
        if not self.handover_paused:
            return
        self.handover_paused = False
        s = self._primary
        if s.transport is not None and not s.transport.is_closing():
            s.transport.resume_reading()
            if s.proto is not None and s.proto.buf:
                self._data(s, s.proto)
            self._resumed(s)

    async def handover_drain(self, timeout: float = 2.0) -> None:
        """Wait until everything written is in the kernel's send queue (the TCP dump takes
        it from there); HandoverError when the peer does not read for ``timeout`` s."""
        s = self._primary
        loop = self._loop_get()
        end = loop.time() + timeout
        while s.transport is not None and s.transport.get_write_buffer_size():
            if loop.time() > end:
                raise HandoverError(f"{self.name}: {s.transport.get_write_buffer_size()} bytes "
                                    f"not taken by the kernel after {timeout} s")
            await asyncio.sleep(0.002)
        if s.transport is None:
            raise HandoverError(f"{self.name}: connection lost during the handover")

    def handover_detach(self) -> tuple[socket.socket, dict[str, Any]]:
        """Give the connection up without a packet: timers stop, the transport lets go of
        its descriptor, and a duplicate of the socket is returned with the session's
        snapshot (FSM with remaining timers, both OPENs, bytes read but not yet framed,
        counters). The caller must have frozen the 4-tuple; it dumps the socket and closes
        it silently (tcp_repair.close_silently). The peer is then Idle and silent."""
        s = self._primary
        t, proto = s.transport, s.proto
        if s.fsm.state is not State.ESTABLISHED or t is None or proto is None:
            raise HandoverError(f"{self.name}: no Established connection to detach")
        if t.get_write_buffer_size():
            raise HandoverError(f"{self.name}: write buffer not drained")
        raw = t.get_extra_info("socket")
        dup = socket.socket(fileno=os.dup(raw.fileno()))
        snap = self.session_snapshot()
        for h in s.timers.values():
            h.cancel()
        s.timers.clear()
        proto.session = None
        proto.buf.clear()
        s.transport = s.proto = None
        t.abort()  # closes only this descriptor: the duplicate keeps the connection
        self._primary = _Session(Fsm(self._fsm_config, rng=self._rng))  # Idle, no restart
        self.handover_paused = False
        log.info("event=bgp.handover-detached peer=%s", self.name)
        return dup, snap

    def session_snapshot(self) -> dict[str, Any]:
        """What ``adopt`` needs to continue the Established session elsewhere: FSM with
        remaining timers, both OPENs, bytes read but not yet framed, counters."""
        s = self._primary
        return {
            "neighbor": self.name,
            "fsm": s.fsm.to_dict(self._loop_get().time()),
            "outgoing": s.outgoing,
            "local-open": self.local_open.encode().hex(),
            "remote-open": s.remote_open.encode().hex() if s.remote_open else "",
            "rx-pending": base64.b64encode(bytes(s.proto.buf) if s.proto else b"").decode("ascii"),
            "statistics": self.stats.to_dict(),
        }

    async def adopt(self, snap: dict[str, Any], sock: socket.socket, *, tx_log: Any = None,
                    tx_prefix: bytes = b"") -> None:
        """Continue a session another engine detached: ``sock`` is its restored socket.
        Sends a KEEPALIVE at once; the listener is not told of an Established transition
        (the speaker adopts the session's RIBs itself). After a crash (nsr/crash.py):
        ``tx_prefix`` is the rest of a message the dead engine had started, written first
        (already in ``tx_log``, the connection's log-before-send record from now on)."""
        loop = self._loop_get()
        p = self._primary
        if p.fsm.state is not State.IDLE or p.transport is not None or self._secondary is not None:
            raise HandoverError(f"{self.name}: already {p.fsm.state.value}; stop it before adopting")
        if snap.get("neighbor") != self.name:
            raise HandoverError(f"snapshot of {snap.get('neighbor')!r} given to {self.name}")
        local_raw = bytes.fromhex(snap["local-open"])
        remote_raw = bytes.fromhex(snap["remote-open"])
        local_open = decode_open(local_raw[HEADER_LEN:])
        remote = decode_open(remote_raw[HEADER_LEN:])
        neg = cap.negotiate(local_open, remote, self.config.keepalive_interval)
        self._discard(p)
        now = loop.time()
        s = _Session(Fsm.from_dict(snap["fsm"], now, self._fsm_config, rng=self._rng))
        if s.fsm.state is not State.ESTABLISHED:
            raise HandoverError(f"{self.name}: snapshot state is {s.fsm.state.value}")
        s.remote_open, s.negotiated, s.max_len = remote, neg, neg.max_message_len
        s.outgoing = bool(snap.get("outgoing"))
        ttl, min_ttl = session_ttl(self.config, self.ebgp)
        configure_session_socket(sock, ttl=ttl, min_ttl=min_ttl)
        proto = _Protocol(self)
        proto.buf += base64.b64decode(snap.get("rx-pending", ""))
        proto.tx_log = tx_log
        self._primary = s
        await loop.connect_accepted_socket(lambda: proto, sock)
        self._attach(s, proto, s.outgoing)
        _restore_stats(self.stats, snap.get("statistics") or {})
        if tx_prefix and s.transport is not None:
            s.transport.write(tx_prefix)
            if tx_log is not None:
                tx_log.sync(s.transport.get_write_buffer_size())
        # a KEEPALIVE at once: the peer hears from us before anything else can go wrong
        self._write(s, KEEPALIVE, "keepalive")
        if s.fsm.s.keepalive_interval:
            s.fsm.s.deadlines[KEEPALIVE_TIMER] = now + s.fsm.s.keepalive_interval
        for name in list(s.fsm.s.deadlines):
            self._arm(s, name)
        log.info("event=bgp.adopted peer=%s pending-bytes=%d", self.name, len(proto.buf))
        if proto.buf:
            self._data(s, proto)

    def send_route_refresh(self, family: AfiSafi, subtype: int = 0) -> bool:
        neg = self.negotiated
        if neg is None or not neg.route_refresh or family not in neg.families:
            return False
        return self.send_raw([RouteRefresh(family.afi, family.safi, subtype).encode()])

    def to_dict(self) -> dict[str, Any]:
        s = self._primary
        now = self._loop_get().time()
        local_addr = remote_addr = None
        if s.transport is not None:
            local_addr = _addr(s.transport.get_extra_info("sockname"))
            remote_addr = _addr(s.transport.get_extra_info("peername"))
        neg = self.negotiated
        return {
            "neighbor-address": self.config.neighbor_address,
            "peer-as": self.config.peer_as,
            "local-as": self.local_as,
            "state": self.state,
            "local-address": local_addr,
            "remote-address": remote_addr,
            "fsm": s.fsm.to_dict(now),
            "negotiated": neg.to_dict() if neg else None,
            "statistics": self.stats.to_dict(),
        }

    # -- internals: events and actions ------------------------------------------------------

    def _loop_get(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def _spawn(self, coro: Any) -> None:
        task = self._loop_get().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _event(self, s: _Session, event: Event, arg: Any = None) -> None:
        actions = s.fsm.handle(event, self._loop_get().time(), arg)
        if actions:
            self._run(s, actions)

    def _run(self, s: _Session, actions: list[Any]) -> None:
        for a in actions:
            t = type(a)
            if t is StartTimer:
                self._arm(s, a.name)
            elif t is StopTimer:
                h = s.timers.pop(a.name, None)
                if h is not None:
                    h.cancel()
            elif t is SendKeepalive:
                self._write(s, KEEPALIVE, "keepalive")
            elif t is SendOpen:
                self._write(s, self.local_open.encode(), "open")
            elif t is SendNotification:
                self._send_notification(s, Notification(a.code, a.subcode, a.data))
            elif t is DropConnection:
                self._drop(s)
            elif t is Connect:
                if s is self._primary:
                    self._cancel_connect(s)
                    s.connect_task = self._loop_get().create_task(self._connect(s))
            elif t is StateChanged:
                log.info(
                    "event=bgp.state peer=%s from=%s to=%s cause=%s%s",
                    self.name, a.old, a.new, a.event, "" if s is self._primary else " connection=secondary",
                )
                if s is self._primary and a.old != a.new:
                    self._notify_state(a.old, a.new)
            elif t is SessionEstablished:
                if s is self._secondary:
                    # Up first while the primary still waits for an OPEN (or its TCP
                    # connection): it is the session, the primary's connection is closed.
                    self._retire(self._primary, "the other connection is Established")
                if s is self._primary:
                    self.stats.established_at = time.time()
                    self.stats.established_transitions += 1
                    self._call("session_established")
            elif t is SessionDown:
                self.stats.last_error = a.reason
                if s is self._primary:
                    self.stats.established_at = None
                    self._call("session_down", a.reason)
        self._after(s)

    def _after(self, s: _Session) -> None:
        """Retire a dead secondary; let a live secondary replace a dead primary."""
        if s is self._secondary and s.fsm.state in (State.IDLE, State.ACTIVE):
            self._discard(s)
            self._secondary = None
        elif (
            s is self._primary
            and s.fsm.state is State.IDLE
            and self._secondary is not None
            and self._secondary.transport is not None
            and s.fsm.s.auto_restart
        ):
            self._promote(self._secondary)

    def _notify_state(self, old: str, new: str) -> None:
        """Every state change of the session (the primary connection): the listener's
        optional ``state_changed(peer, old, new)``, e.g. for the engine's event stream."""
        if getattr(self.listener, "state_changed", None) is not None:
            self._call("state_changed", old, new)

    def _call(self, method: str, *args: Any) -> None:
        try:
            getattr(self.listener, method)(self, *args)
        except Exception:  # noqa: BLE001 - a speaker bug must not kill the session loop
            log.exception("event=bgp.listener-error peer=%s method=%s", self.name, method)

    def _arm(self, s: _Session, name: str) -> None:
        deadline = s.fsm.s.deadlines.get(name)
        if deadline is None:
            return
        h = s.timers.get(name)
        if h is not None:
            if h.when() <= deadline:
                return  # fires first and re-arms: one handle however often the timer restarts
            h.cancel()
        s.timers[name] = self._loop_get().call_at(deadline, self._timer_fired, s, name)

    def _timer_fired(self, s: _Session, name: str) -> None:
        s.timers.pop(name, None)
        deadline = s.fsm.s.deadlines.get(name)
        if deadline is None:
            return
        if self._loop_get().time() + 1e-3 < deadline:
            self._arm(s, name)
            return
        self._event(s, TIMER_EVENTS[name])

    def _write(self, s: _Session, data: bytes, kind: str) -> None:
        if s.transport is None or s.transport.is_closing():
            return
        tx_log = s.proto.tx_log if s.proto is not None else None
        if tx_log is not None:  # log before send (NSR crash guard)
            tx_log.append((data,), s.transport.get_write_buffer_size())
        s.transport.write(data)
        if tx_log is not None:
            tx_log.sync(s.transport.get_write_buffer_size())
        sent = self.stats.sent
        sent[kind] += 1
        sent["total"] += 1

    def _send_notification(self, s: _Session, n: Notification) -> None:
        text = n.shutdown_communication or ""
        self.stats.last_notification_sent = (n.code, n.subcode, text)
        log.info(
            "event=bgp.notification-sent peer=%s code=%d subcode=%d message=%r",
            self.name, n.code, n.subcode, text,
        )
        self._write(s, n.encode(), "notification")

    def _drop(self, s: _Session) -> None:
        self._cancel_connect(s)
        t, s.transport = s.transport, None
        if s.proto is not None:
            s.proto.session = None
            s.proto.buf.clear()
        s.proto = None
        s.negotiated = s.remote_open = s.decoder = None
        s.paused = False
        s.max_len = MAX_MESSAGE_LEN
        if t is not None:
            t.close()  # flushes what was written (the NOTIFICATION) first

    def _cancel_connect(self, s: _Session) -> None:
        task, s.connect_task = s.connect_task, None
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()

    def _discard(self, s: _Session) -> None:
        for h in s.timers.values():
            h.cancel()
        s.timers.clear()
        self._drop(s)

    def _retire(self, loser: _Session, why: str, *, notify: bool = True) -> None:
        """Close one of two connections of a collision (§6.8) and keep the other as the
        session: CEASE/Connection Collision Resolution on the loser (unless the peer
        closed it), then the loser is discarded, or, when it was the primary, the
        secondary takes its place. Neither FSM passes through Idle: the session goes on."""
        if notify and loser.transport is not None and loser.fsm.state in (*_HANDSHAKE, State.ESTABLISHED):
            self._send_notification(loser, Notification(ErrorCode.CEASE, CeaseSubcode.CONNECTION_COLLISION))
        log.info(
            "event=bgp.collision-close peer=%s connection=%s state=%s reason=%r",
            self.name, "outgoing" if loser.outgoing or _dialing(loser) else "incoming",
            loser.fsm.state.value, why,
        )
        if loser is self._primary:
            sec = self._secondary
            assert sec is not None
            self._promote(sec)
        else:
            self._discard(loser)
            if self._secondary is loser:
                self._secondary = None

    def _promote(self, sec: _Session) -> None:
        old = self._primary
        self._discard(old)
        o, n = old.fsm.s, sec.fsm.s
        n.connect_retry_counter = o.connect_retry_counter
        n.connect_retry_time = o.connect_retry_time
        n.idle_hold_time = o.idle_hold_time
        n.auto_restart = o.auto_restart
        sec.fsm.config = self._fsm_config
        self._primary, self._secondary = sec, None
        log.info("event=bgp.collision peer=%s kept=%s", self.name, "outgoing" if sec.outgoing else "incoming")
        if old.fsm.state is not sec.fsm.state:  # the session's state is now the secondary's
            self._notify_state(old.fsm.state.value, sec.fsm.state.value)

    def _refuse(self, sock: socket.socket, subcode: int) -> None:
        n = Notification(ErrorCode.CEASE, subcode)
        log.info("event=bgp.connection-refused peer=%s code=6 subcode=%d", self.name, subcode)
        try:
            sock.setblocking(False)
            sock.send(n.encode())  # a few octets into an empty send buffer: never blocks
        except OSError:
            pass
        finally:
            sock.close()

    # -- connections -----------------------------------------------------------------------

    def _attach(self, s: _Session, proto: _Protocol, outgoing: bool) -> None:
        s.transport, s.proto, s.outgoing = proto.transport, proto, outgoing
        proto.session = s
        if proto.peek is not None:
            proto.peek.attached()

    async def _connect(self, s: _Session) -> None:
        """Outgoing connection attempt for the primary session."""
        loop = self._loop_get()
        cfg = self.config
        ttl, min_ttl = session_ttl(cfg, self.ebgp)
        try:
            sock = create_client_socket(
                cfg.neighbor_address, local_address=cfg.local_address, ttl=ttl,
                min_ttl=min_ttl, md5_key=cfg.tcp_md5_key,
            )
        except OSError as exc:
            self._connect_failed(s, exc)
            return
        proto = _Protocol(self)
        try:
            await loop.sock_connect(sock, (cfg.neighbor_address, cfg.port))
            await loop.create_connection(lambda: proto, sock=sock)
        except asyncio.CancelledError:
            if proto.transport is not None:
                proto.transport.abort()
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            self._connect_failed(s, exc)
            return
        if s.connect_task is asyncio.current_task():
            s.connect_task = None
        if s is not self._primary or s.fsm.state not in (State.CONNECT, State.ACTIVE) or s.transport:
            proto.transport.abort()  # type: ignore[union-attr]  # overtaken meanwhile
            return
        self._attach(s, proto, outgoing=True)
        self._event(s, Event.TCP_CR_ACKED)
        if proto.buf and proto.session is s:
            self._data(s, proto)

    def _connect_failed(self, s: _Session, exc: Exception) -> None:
        if s.connect_task is asyncio.current_task():
            s.connect_task = None
        self.stats.last_error = f"connect: {exc}"
        log.info("event=bgp.connect-failed peer=%s error=%r", self.name, str(exc))
        if s is self._primary and s.fsm.state is State.CONNECT:
            self._event(s, Event.TCP_CONNECTION_FAILS, f"connect: {exc}")

    async def _accept(self, sock: socket.socket, remote_ip: str) -> None:
        loop = self._loop_get()
        proto = _Protocol(self)
        try:
            await loop.connect_accepted_socket(lambda: proto, sock)
        except OSError as exc:
            sock.close()
            log.info("event=bgp.connection-refused peer=%s error=%r", self.name, str(exc))
            return
        assert proto.transport is not None
        p = self._primary
        st = p.fsm.state
        if st in (State.CONNECT, State.ACTIVE) and p.transport is None and not _dialing(p):
            s = p  # no connection of our own, not even an attempt: this one is the session
        elif (st in _HANDSHAKE or _dialing(p)) and self._secondary is None:
            # Our own attempt may already be a connection at the peer (its SYN-ACK is in,
            # this loop just has not seen it yet), and the peer may resolve the collision
            # in its favour (§6.8): keep it and run this one beside it.
            s = _Session(Fsm(FsmConfig(
                hold_time=self.config.hold_time, passive=True,
            ), rng=self._rng))
            self._secondary = s
            s.fsm.handle(Event.MANUAL_START_PASSIVE, loop.time())
        else:
            n = Notification(ErrorCode.CEASE, CeaseSubcode.CONNECTION_COLLISION if st is State.ESTABLISHED
                             else CeaseSubcode.CONNECTION_REJECTED)
            proto.transport.write(n.encode())
            proto.transport.close()
            return
        log.info("event=bgp.connection-accepted peer=%s remote=%s", self.name, remote_ip)
        self._attach(s, proto, outgoing=False)
        self._event(s, Event.TCP_CONNECTION_CONFIRMED)
        if proto.buf and proto.session is s:
            self._data(s, proto)

    def _lost(self, s: _Session, proto: _Protocol, exc: Exception | None) -> None:
        if s.proto is not proto:
            return  # we closed it ourselves
        s.transport = None
        s.proto = None
        reason = f"connection lost: {exc}" if exc else "connection closed by peer"
        self._event(s, Event.TCP_CONNECTION_FAILS, reason)

    def _resumed(self, s: _Session) -> None:
        if s is self._primary and s.fsm.state is State.ESTABLISHED:
            self._call("writable")

    # -- messages --------------------------------------------------------------------------

    def _data(self, s: _Session, proto: _Protocol) -> None:
        buf = proto.buf
        try:
            msgs, used = split_messages(buf, self._frame_max)
        except NotificationError as err:
            self._error(s, Event.BGP_HEADER_ERR, err)
            return
        if used:
            del buf[:used]
        rc = self.stats.received
        # One clock read per socket read: every message of it arrived at the same time.
        now = self._loop_get().time() if msgs else 0.0
        # not in peek mode (the crash guard): its reader accounts what one read used
        until = time.perf_counter() + INPUT_SLICE if proto.peek is None else math.inf
        for i, (mtype, body) in enumerate(msgs):
            if s.proto is not proto:
                return  # dropped by an earlier message
            if i and time.perf_counter() > until:
                self._defer_input(s, proto, msgs[i:])
                return
            name = _TYPE_NAMES[mtype]
            rc[name] += 1
            rc["total"] += 1
            if len(body) + HEADER_LEN > s.max_len:
                self._error(s, Event.BGP_HEADER_ERR, NotificationError(
                    ErrorCode.MESSAGE_HEADER, HeaderSubcode.BAD_MESSAGE_LENGTH,
                    (len(body) + HEADER_LEN).to_bytes(2, "big"), "message longer than negotiated",
                ))
                return
            if mtype == MsgType.UPDATE:
                self._on_update(s, body, now)
            elif mtype == MsgType.KEEPALIVE:
                self._event(s, Event.KEEPALIVE_MSG)
            elif mtype == MsgType.OPEN:
                self._on_open(s, body)
            elif mtype == MsgType.NOTIFICATION:
                self._on_notification(s, body)
            else:
                self._on_route_refresh(s, body)

    def _defer_input(self, s: _Session, proto: _Protocol, rest: list[tuple[int, bytes]]) -> None:
        """The slice is spent: ``rest`` goes back in front of the buffer, as it came."""
        proto.buf[:0] = b"".join(encode_message(t, body) for t, body in rest)
        t = s.transport
        if t is None or proto.input_deferred:
            return
        proto.input_deferred = True
        t.pause_reading()
        self._loop_get().call_soon(self._continue_input, s, proto)

    def _continue_input(self, s: _Session, proto: _Protocol) -> None:
        proto.input_deferred = False
        t = s.transport
        if s.proto is not proto or t is None or t.is_closing() or self.handover_paused:
            return  # gone; or a handover holds reads, and handover_resume continues them
        self._data(s, proto)
        if not proto.input_deferred and s.proto is proto and not t.is_closing() and not self.handover_paused:
            t.resume_reading()

    def _error(self, s: _Session, event: Event, err: NotificationError) -> None:
        self.stats.last_error = err.reason
        log.info(
            "event=bgp.message-error peer=%s code=%d subcode=%d reason=%r",
            self.name, err.code, err.subcode, err.reason,
        )
        self._event(s, event, Notify(err.code, err.subcode, err.data))

    def _on_update(self, s: _Session, body: bytes, now: float | None = None) -> None:
        fsm = s.fsm
        if fsm.state is not State.ESTABLISHED:
            self._event(s, Event.UPDATE_MSG)  # FSM error outside Established
            return
        dec = s.decoder
        if dec is None:
            dec = s.decoder = self._make_decoder(s)
        try:
            update = dec.decode(body)
        except NotificationError as err:
            self._error(s, Event.UPDATE_MSG_ERR, err)
            return
        except BgpCodecError as err:  # any other codec error is still a malformed UPDATE
            self._error(s, Event.UPDATE_MSG_ERR, NotificationError(
                ErrorCode.UPDATE_MESSAGE, UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, b"", str(err)))
            return
        # UpdateMsg in Established only restarts the hold timer: do that directly
        # instead of a full FSM event + action list per UPDATE (Fsm.restart_hold).
        fsm.restart_hold(self._loop_get().time() if now is None else now)
        if HOLD not in s.timers and fsm.s.hold_time:
            self._arm(s, HOLD)  # normally armed since OPEN; cheap safety net
        if s is self._primary:
            try:
                self.listener.update_received(self, update)
            except Exception:  # noqa: BLE001 - as in _call: a speaker bug must not kill the session loop
                log.exception("event=bgp.listener-error peer=%s method=update_received", self.name)

    def _make_decoder(self, s: _Session) -> Any:
        neg = s.negotiated
        assert neg is not None
        return UpdateDecoder(
            four_octet_as=neg.four_octet_as, ebgp=self.ebgp, families=neg.families,
            cache=self.local.attr_cache,
        )

    def _check_open(self, remote: Open, body: bytes) -> None:
        if remote.asn != self.config.peer_as:
            raise NotificationError(
                ErrorCode.OPEN_MESSAGE, OpenSubcode.BAD_PEER_AS, bytes(body[1:3]),
                f"peer AS {remote.asn}, expected {self.config.peer_as}",
            )
        # RFC 6286 §2.2: only an internal peer may not share our identifier.
        if not self.ebgp and remote.bgp_id == self.local.router_id:
            raise NotificationError(
                ErrorCode.OPEN_MESSAGE, OpenSubcode.BAD_BGP_IDENTIFIER, b"",
                f"iBGP peer uses our BGP identifier {remote.bgp_id}",
            )

    def _on_open(self, s: _Session, body: bytes) -> None:
        if s.fsm.state is not State.OPEN_SENT:
            self._event(s, Event.BGP_OPEN)  # FSM error in OpenConfirm/Established
            return
        try:
            remote = decode_open(body)
            self._check_open(remote, body)
        except NotificationError as err:
            self._error(s, Event.BGP_OPEN_MSG_ERR, err)
            return
        neg = cap.negotiate(self.local_open, remote, self.config.keepalive_interval)
        s.remote_open, s.negotiated = remote, neg
        log.info(
            "event=bgp.open-received peer=%s asn=%d router-id=%s hold=%d families=%s",
            self.name, remote.asn, remote.bgp_id, remote.hold_time,
            ",".join(sorted(f.name for f in neg.families)),
        )
        other = self._secondary if s is self._primary else self._primary
        ost = other.fsm.state if other is not None else State.IDLE
        if other is not None and ost is State.ESTABLISHED:
            # §6.8: a collision with an Established session closes the new connection.
            self._retire(s, "collision with the Established connection")
            return
        if other is not None and other.transport is not None and (
            ost is State.OPEN_CONFIRM or (ost is State.OPEN_SENT and other.outgoing != s.outgoing)
        ):
            # §6.8: connections in OpenConfirm are examined; one in OpenSent may be when
            # the peer's identifier is known: it is this OPEN's, both connections go to
            # the same neighbor. FRR does the same, and resolving at the first OPEN makes
            # both speakers pick the same connection before either can go Established on
            # the other one. Only a collision of the two speakers' own connections is
            # resolved early: of two incoming ones, the older may be a dead connection.
            loser = self._collision_loser(s, other, remote)
            self._retire(loser, "collision resolved")  # the survivor carries on, never Idle
            if loser is s:
                return
        elif s is self._secondary and ost is not State.OPEN_SENT and not _dialing(other):
            # The primary has no live connection (nor one being opened): this one is the
            # session. While our own attempt is pending it stays beside it, in OpenConfirm.
            self._promote(s)
        s.max_len = neg.max_message_len
        self._event(s, Event.BGP_OPEN, OpenArgs(neg.hold_time, neg.keepalive_interval))

    def _collision_loser(self, a: _Session, b: _Session, remote: Open) -> _Session:
        """RFC 4271 §6.8 with RFC 6286 §2.3 for equal identifiers."""
        local_id = int(ipaddress.IPv4Address(self.local.router_id))
        remote_id = int(ipaddress.IPv4Address(remote.bgp_id))
        if local_id != remote_id:
            keep_local = local_id > remote_id
        else:
            keep_local = self.local_as > remote.asn
        if a.outgoing == b.outgoing:
            return b if b is self._secondary else a  # same direction: keep the older one
        winner = a if a.outgoing == keep_local else b
        loser = b if winner is a else a
        log.info(
            "event=bgp.collision peer=%s local-id=%s remote-id=%s keep=%s",
            self.name, self.local.router_id, remote.bgp_id, "outgoing" if keep_local else "incoming",
        )
        return loser

    def _on_notification(self, s: _Session, body: bytes) -> None:
        n = decode_notification(body)
        text = n.shutdown_communication or ""
        self.stats.last_notification_received = (n.code, n.subcode, text)
        reason = f"notification received: code {n.code} subcode {n.subcode}"
        if text:
            reason += f" message {text!r}"
        log.info(
            "event=bgp.notification-received peer=%s code=%d subcode=%d message=%r data=%s",
            self.name, n.code, n.subcode, text, n.data.hex() if not text else "",
        )
        self.stats.last_error = reason
        if n.code == ErrorCode.CEASE and n.subcode == CeaseSubcode.CONNECTION_COLLISION:
            # §6.8: the peer resolved a collision by closing this connection. When the
            # other one is alive it is the session: close only this one, nothing goes Idle.
            other = self._secondary if s is self._primary else self._primary
            if s is self._secondary or (
                s.fsm.state in _HANDSHAKE and other is not None
                and other.transport is not None and other.fsm.state in _HANDSHAKE
            ):
                self._retire(s, "closed by the peer (collision)", notify=False)
                return
        version = n.code == ErrorCode.OPEN_MESSAGE and n.subcode == OpenSubcode.UNSUPPORTED_VERSION
        self._event(s, Event.NOTIF_MSG_VER_ERR if version else Event.NOTIF_MSG, reason)

    def _on_route_refresh(self, s: _Session, body: bytes) -> None:
        neg = s.negotiated
        if s.fsm.state is not State.ESTABLISHED or neg is None:
            log.info("event=bgp.route-refresh-ignored peer=%s reason=not-established", self.name)
            return
        try:
            rr = decode_route_refresh(body)
        except NotificationError as err:
            # Same handling as any message error: NOTIFICATION, then drop.
            self._error(s, Event.BGP_HEADER_ERR, err)
            return
        fam = AfiSafi(rr.afi, rr.safi)
        # RFC 2918 §4 and RFC 7313 §5: ignore unknown families and subtypes.
        if fam not in neg.families or rr.subtype > 2:
            log.info("event=bgp.route-refresh-ignored peer=%s afi=%d safi=%d subtype=%d",
                     self.name, rr.afi, rr.safi, rr.subtype)
            return
        self._call("route_refresh_received", fam, rr.subtype)

    # -- OPEN we send ------------------------------------------------------------------------

    def _build_open(self) -> Open:
        cfg, local = self.config, self.local
        fams = local.families
        if fams is None:
            fams = tuple(f.family for f in cfg.families if f.enabled)
        caps: list[cap.Capability] = [cap.Multiprotocol(f.afi, f.safi) for f in fams]
        if cfg.route_refresh:
            caps.append(cap.RouteRefresh())
        if cfg.enhanced_route_refresh:
            caps.append(cap.EnhancedRouteRefresh())
        if cfg.four_octet_as:
            caps.append(cap.FourOctetAs(self.local_as))
        if cfg.extended_message:
            caps.append(cap.ExtendedMessage())
        gr = local.graceful_restart or cfg.graceful_restart
        if gr.enabled and cfg.graceful_restart.enabled:
            caps.append(cap.GracefulRestart(
                local.restarting, gr.restart_time, tuple((f.afi, f.safi, 0) for f in fams),
            ))
        return Open(4, self.local_as, cfg.hold_time, local.router_id, tuple(caps))


def _dialing(s: _Session) -> bool:
    """Our outgoing TCP connection attempt is under way (Connect, no transport yet)."""
    t = s.connect_task
    return s.fsm.state is State.CONNECT and s.transport is None and t is not None and not t.done()


def _restore_stats(stats: PeerStats, d: dict[str, Any]) -> None:
    def note(n: dict[str, Any] | None) -> tuple[int, int, str] | None:
        return None if not n else (int(n["code"]), int(n["subcode"]), str(n.get("message", "")))

    for k, v in (d.get("received") or {}).items():
        if k in stats.received:
            stats.received[k] = int(v)
    for k, v in (d.get("sent") or {}).items():
        if k in stats.sent:
            stats.sent[k] = int(v)
    stats.established_at = d.get("established-at")
    stats.established_transitions = int(d.get("established-transitions") or 0)
    stats.last_error = str(d.get("last-error") or "")
    stats.last_notification_sent = note(d.get("last-notification-sent"))
    stats.last_notification_received = note(d.get("last-notification-received"))


def _addr(sockname: Any) -> str | None:
    return None if not sockname else f"{sockname[0]}:{sockname[1]}"
