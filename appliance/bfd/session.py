"""BFD I/O: sockets, a dedicated thread with its own selector loop, and `BfdManager`.

Why a thread and not the engine's asyncio loop: a BGP full-table ingest runs
callbacks that hold the asyncio loop for tens of milliseconds or more at a time; any
BFD timer on that loop would wait for them, and 50 ms × 3 would flap. A thread is
preempted by the interpreter every ``sys.getswitchinterval()`` (5 ms by default), so
the BFD thread gets the GIL back within about that bound even while the main thread
computes; it does little per wake-up (one struct pack, maybe one SHA1, one sendto) and
goes back to ``select``. docs/bfd.md has the measurements.

Sockets (RFC 5881 single-hop, RFC 5883 multihop):
- one receive socket per (family, port) — 3784 single-hop, 4784 multihop — bound to the
  manager's listen address, with IP_RECVTTL/IPV6_RECVHOPLIMIT and IP_PKTINFO/IPV6_RECVPKTINFO;
  single-hop packets whose TTL/hop limit is not 255 are dropped (RFC 5881 §5), multihop
  ones are accepted whatever their TTL (RFC 5883 leaves the check to configuration);
  opened when the first session of that kind is added and closed with the last one, so a
  manager without sessions (a standby worker waiting for a handover) binds no UDP port;
  no SO_REUSEADDR: with it Linux lets a second socket bind the same address and port and
  hands it every unicast datagram, which would silently starve the other process;
- one transmit socket per session: source port 49152-65535 fixed for the session's life
  (kept across a handover when free), TTL/hop limit 255, TOS/traffic class CS6,
  SO_BINDTODEVICE when an interface is given.
Demultiplexing: by Your Discriminator when it is not 0 (and the source address must be
the session's peer); otherwise by (source address, port) and, when the session names
them, the destination address and the receiving interface.

Thread safety: every public method may be called from any thread; one lock guards the
sessions. Listeners registered with an asyncio loop are called in that loop
(``call_soon_threadsafe``); others are called in the BFD thread and must return quickly.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from .config import SessionConfig, cfg_from_json, cfg_to_json
from .fsm import BfdFsm, Transition, state_name
from .packet import DIAG_NAMES, BfdDecodeError, State, decode

SINGLE_HOP_PORT = 3784
MULTIHOP_PORT = 4784
SRC_PORT_MIN, SRC_PORT_MAX = 49152, 65535

# Linux values the socket module does not always export.
IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
TOS_CS6 = 0xC0

_ANC = socket.CMSG_SPACE(4) + socket.CMSG_SPACE(20) + 64
_RX_BURST = 64          # packets read per socket per wake-up (bounded)
_MAX_WAIT = 0.5         # s: the loop re-checks its stop flag at least this often
ADOPTED = "adopted"     # the `diag` of the listener event adopt_sessions() reports

Listener = Callable[[str, str, str, str], Any]


def wait_for_state(get_state: Callable[[str], str | None], peer: str, state: str,
                   timeout: float, step: float) -> bool:
    """Poll ``get_state(peer)`` until it is ``state``, bounded in time and count."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / step) + 2):
        if get_state(peer) == state:
            return True
        if time.monotonic() >= deadline:
            break
        time.sleep(step)
    return False


def normalize(addr: str) -> str:
    return ipaddress.ip_address(addr.split("%", 1)[0]).compressed


class _Session:
    __slots__ = ("cfg", "fsm", "key", "sock", "dst", "ifindex", "src_port",
                 "tx_errors", "rx_ttl_drops", "last_error")

    def __init__(self, cfg: SessionConfig, fsm: BfdFsm) -> None:
        self.cfg = cfg
        self.fsm = fsm
        self.key = normalize(cfg.peer_address)
        self.sock: socket.socket | None = None
        self.dst: tuple = ()
        self.ifindex = 0
        self.src_port = 0
        self.tx_errors = 0
        self.rx_ttl_drops = 0
        self.last_error = ""


def _kind(cfg: SessionConfig) -> tuple[int, int]:
    """The (family, port) of the receive socket a session needs."""
    return (socket.AF_INET6 if cfg.family == 6 else socket.AF_INET, cfg.port)


def _open_tx(cfg: SessionConfig, rng: random.Random,
             want_port: int = 0) -> tuple[socket.socket, int, int, tuple]:
    v6 = cfg.family == 6
    fam = socket.AF_INET6 if v6 else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    try:
        ifindex = 0
        if v6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
            with contextlib.suppress(OSError):
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, TOS_CS6)
        else:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, TOS_CS6)
        if cfg.interface:
            ifindex = socket.if_nametoindex(cfg.interface)
            s.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, cfg.interface.encode())
        local = cfg.local_address or ("::" if v6 else "0.0.0.0")
        last: OSError | None = None
        # RFC 5881 §4: one source port for the session's life, so a handover asks for
        # the old one first (free once the old owner closed it); then a bounded search.
        first = want_port if SRC_PORT_MIN <= want_port <= SRC_PORT_MAX else 0
        for i in range(65):
            port = first if i == 0 and first else rng.randint(SRC_PORT_MIN, SRC_PORT_MAX)
            try:
                s.bind((local, port, 0, ifindex) if v6 else (local, port))
                break
            except OSError as exc:
                last = exc
        else:
            raise last or OSError("no free BFD source port")
        s.setblocking(False)
        dport = cfg.port
        peer = cfg.peer_address.split("%", 1)[0]
        dst = (peer, dport, 0, ifindex) if v6 else (peer, dport)
        return s, ifindex, port, dst
    except BaseException:
        s.close()
        raise


def _open_rx(family: int, addr: str, port: int) -> socket.socket:
    s = socket.socket(family, socket.SOCK_DGRAM)
    try:
        # No SO_REUSEADDR (see the module docstring): a port still held by another
        # process is an EADDRINUSE here, not a silent theft of its packets.
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
            s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
            s.bind((addr, port, 0, 0))
        else:
            s.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
            s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            s.bind((addr, port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.setblocking(False)
        return s
    except BaseException:
        s.close()
        raise


def _ancillary(anc: list, v6: bool) -> tuple[int | None, str | None, int]:
    """(TTL or hop limit, destination address, ifindex) from recvmsg ancillary data."""
    ttl = dst = None
    ifindex = 0
    for level, typ, data in anc:
        if v6 and level == socket.IPPROTO_IPV6:
            if typ == IPV6_HOPLIMIT and len(data) >= 4:
                ttl = struct.unpack("i", data[:4])[0]
            elif typ == IPV6_PKTINFO and len(data) >= 20:
                dst = socket.inet_ntop(socket.AF_INET6, data[:16])
                ifindex = struct.unpack("I", data[16:20])[0]
        elif not v6 and level == socket.IPPROTO_IP:
            if typ == socket.IP_TTL and len(data) >= 1:
                ttl = struct.unpack("i", data[:4])[0] if len(data) >= 4 else data[0]
            elif typ == IP_PKTINFO and len(data) >= 12:
                ifindex = struct.unpack("i", data[:4])[0]
                dst = socket.inet_ntop(socket.AF_INET, data[8:12])
    return ttl, dst, ifindex


class BfdManager:
    """Owns the BFD sockets, the sessions and the BFD thread.

    ``listen_v4``/``listen_v6`` are the addresses the receive sockets bind to (default the
    wildcard; give a specific address to run several managers on one host, e.g. on
    127.0.0.1 and 127.0.0.2 in tests).
    """

    def __init__(
        self,
        *,
        listen_v4: str = "0.0.0.0",
        listen_v6: str = "::",
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.listen = {socket.AF_INET: listen_v4, socket.AF_INET6: listen_v6}
        self.rng = rng or random.Random()
        self.clock = clock
        self._lock = threading.RLock()
        self._sessions: dict[str, _Session] = {}
        self._by_discr: dict[int, _Session] = {}
        self._rx: dict[tuple[int, int], socket.socket] = {}
        self._listeners: list[tuple[Listener, asyncio.AbstractEventLoop | None]] = []
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.stats = {
            "rx-packets": 0, "rx-decode-errors": 0, "rx-no-session": 0, "rx-ttl-drops": 0,
            "rx-interface-mismatch": 0, "loop-max-lateness-ms": 0.0,
        }
        self.last_decode_error = ""

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="bfd", daemon=True)
        self._thread.start()

    def stop(self, admin_down: bool = False, timeout: float = 2.0) -> None:
        """Stop the thread and close every socket. With ``admin_down``, each session first
        sends one AdminDown packet (a planned shutdown); without it (the default, and what a
        non-stop-routing switchover wants) the peers hear nothing."""
        if admin_down:
            with self._lock:
                for s in self._sessions.values():
                    self._send_admin_down(s)
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        with self._lock:
            for s in list(self._sessions.values()):
                self._close_session(s)
            self._sessions.clear()
            self._by_discr.clear()
            for sock in self._rx.values():
                with contextlib.suppress(KeyError, ValueError):
                    self._sel.unregister(sock)
                sock.close()
            self._rx.clear()
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(self._wake_r)
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> BfdManager:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- sessions ----------------------------------------------------------------------------
    def _new_discr(self) -> int:
        for _ in range(1000):
            d = self.rng.randint(1, 0xFFFFFFFF)
            if d not in self._by_discr:
                return d
        raise RuntimeError("no free local discriminator")

    def _rx_socket(self, family: int, port: int) -> None:
        if (family, port) in self._rx:
            return
        sock = _open_rx(family, self.listen[family], port)
        self._rx[(family, port)] = sock
        self._sel.register(sock, selectors.EVENT_READ, (family, port))

    def _release_rx(self, kind: tuple[int, int]) -> None:
        """Close the receive socket of ``kind`` once no session needs it (lock held)."""
        if any(_kind(s.cfg) == kind for s in self._sessions.values()):
            return
        sock = self._rx.pop(kind, None)
        if sock is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(sock)
            sock.close()

    def _add_locked(self, cfg: SessionConfig, checkpoint: dict | None, now: float,
                    src_port: int = 0) -> _Session:
        """Create and register a session with its sockets (lock held); on error nothing
        stays behind (no session, no socket opened for it)."""
        key = normalize(cfg.peer_address)
        if key in self._sessions:
            raise ValueError(f"BFD session to {key} exists")
        rng = random.Random(self.rng.getrandbits(64))
        if checkpoint is not None:
            fsm = BfdFsm.from_dict(checkpoint, cfg, now, rng)
            if fsm.local_discr in self._by_discr:
                raise ValueError(f"local discriminator {fsm.local_discr} in use")
        else:
            fsm = BfdFsm(cfg, self._new_discr(), now, rng)
            # Start within one slow interval, not all at once (§6.8.7 jitter).
            fsm.next_tx = now + rng.uniform(0.0, 0.2)
        kind = _kind(cfg)
        s = _Session(cfg, fsm)
        try:
            self._rx_socket(*kind)
            s.sock, s.ifindex, s.src_port, s.dst = _open_tx(cfg, rng, src_port)
        except BaseException:
            self._release_rx(kind)
            raise
        self._sessions[key] = s
        self._by_discr[fsm.local_discr] = s
        return s

    def _drop_locked(self, s: _Session) -> None:
        """Unregister a session and close its sockets, silently (lock held)."""
        self._sessions.pop(s.key, None)
        if self._by_discr.get(s.fsm.local_discr) is s:
            del self._by_discr[s.fsm.local_discr]
        self._close_session(s)
        self._release_rx(_kind(s.cfg))

    def add_session(self, cfg: SessionConfig, checkpoint: dict | None = None) -> dict[str, Any]:
        """Create a session (or restore one from `checkpoint()` output); returns its state.
        The first session of a (family, single-hop/multihop) kind binds its receive socket."""
        now = self.clock()
        with self._lock:
            s = self._add_locked(cfg, checkpoint, now)
            state = s.fsm.state_dict(now)
        self._wake()
        return state

    def update_session(self, cfg: SessionConfig) -> None:
        """Change timers, auth or ``enabled`` of an existing session (same peer)."""
        key = normalize(cfg.peer_address)
        with self._lock:
            s = self._sessions[key]
            if (cfg.local_address, cfg.interface, cfg.multihop) != (
                s.cfg.local_address, s.cfg.interface, s.cfg.multihop
            ):
                raise ValueError("local-address, interface and multihop need a new session")
            s.cfg = cfg
            ch = s.fsm.update_config(cfg, self.clock())
        if ch is not None:
            self._notify([(key, ch)])
        self._wake()

    def remove_session(self, peer: str, admin_down: bool = True) -> bool:
        """Remove a session; by default it tells the peer with one AdminDown packet. Its
        transmit socket is closed, and the receive socket with the last session of its kind."""
        key = normalize(peer)
        with self._lock:
            s = self._sessions.get(key)
            if s is None:
                return False
            if admin_down:
                self._send_admin_down(s)
            self._drop_locked(s)
        return True

    # -- non-stop-routing handover -------------------------------------------------------------
    def export_sessions(self, peers: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """Hand sessions over: checkpoint each and remove it silently, in one step.

        For each peer (all sessions when ``peers`` is None), under the manager lock, so no
        packet leaves between the checkpoint and the removal: the FSM checkpoint is taken
        (`BfdFsm.to_dict`: discriminators, states, intervals, poll flag, auth sequence
        numbers, timers as remaining time), the session is removed without sending
        anything (no AdminDown) and its transmit socket closed; a receive socket closes
        with the last session of its kind, so another process on this box can bind it.
        No listener event is reported for exported sessions (they did not go Down).

        Returns ``{peer: {"config": cfg_to_json(cfg), "fsm": checkpoint, "source-port": int,
        "exported-at": unix time}}`` (JSON-able), peer being the normalized address; give it
        to `adopt_sessions` of the new owner, or back to this manager if the handover fails.

        All or nothing: if any of ``peers`` has no session (or is not an address), KeyError
        is raised and nothing is exported. ``[]`` exports nothing and returns ``{}``.
        """
        with self._lock:
            if peers is None:
                keys = list(self._sessions)
            else:
                keys = []
                for p in peers:
                    try:
                        k = normalize(p)
                    except ValueError:
                        raise KeyError(p) from None
                    if k not in self._sessions:
                        raise KeyError(p)
                    if k not in keys:
                        keys.append(k)
            now = self.clock()
            wall = time.time()
            out: dict[str, dict[str, Any]] = {}
            for k in keys:
                s = self._sessions[k]
                out[k] = {"config": cfg_to_json(s.cfg), "fsm": s.fsm.to_dict(now),
                          "source-port": s.src_port, "exported-at": wall}
                self._drop_locked(s)
        return out

    def adopt_sessions(self, exported: dict[str, dict[str, Any]]) -> None:
        """Take over sessions exported by another manager (`export_sessions` output).

        Each session is restored from its checkpoint on this manager's clock (timers are
        remaining times, so the clocks of the two processes or boxes need not agree), on
        the old source port when it is free, and sends one Control packet at once instead
        of waiting for its next TX time (one packet early at most; the peer's detection
        timer is refreshed as soon as possible). The packet carries the next auth sequence
        number, so keyed / meticulous keyed SHA1 continue where the old owner stopped.

        Listeners then get one event per session, ``(peer, state, state, "adopted")``:
        old == new == the checkpointed state ("Up" for a live session), diag `ADOPTED` —
        not a transition, and never a Down → Up. ``stats["last-adopt"]`` records the
        handover: sessions, ``transit-ms`` (export to adoption) and ``max-tx-gap-ms``
        (the old owner's last packet to our first, by wall clock: exact on one box, as
        good as NTP across boxes).

        All or nothing: on any error (a session to the peer or its discriminator already
        here, a port held by another process: OSError EADDRINUSE) the sessions adopted
        so far are removed silently and the error is raised; the exporter can then take
        the export back with its own `adopt_sessions`.
        """
        items = []
        for peer, e in exported.items():
            cfg = cfg_from_json(e["config"])
            if normalize(peer) != normalize(cfg.peer_address):
                raise ValueError(f"export key {peer} is not the session's peer {cfg.peer_address}")
            items.append((cfg, e["fsm"], int(e.get("source-port") or 0), e.get("exported-at")))
        events: list[tuple[str, str, str, str]] = []
        changes: list[tuple[str, Transition]] = []
        with self._lock:
            now = self.clock()
            added: list[_Session] = []
            try:
                for cfg, ck, port, _ in items:
                    added.append(self._add_locked(cfg, ck, now, port))
            except BaseException:
                for s in added:
                    self._drop_locked(s)
                raise
            wall = time.time()
            transit = gap = 0.0
            for s, (_, ck, _, exported_at) in zip(added, items, strict=True):
                events.append((s.key, state_name(s.fsm.state), state_name(s.fsm.state), ADOPTED))
                s.fsm.next_tx = now                  # due now: send without waiting
                out, ch = s.fsm.on_timer(now)
                if out is not None:
                    self._send(s, out)
                if ch is not None:                   # detection had expired in the export
                    changes.append((s.key, ch))
                if exported_at is not None:
                    t = max(0.0, wall - float(exported_at))
                    transit = max(transit, t)
                    if ck.get("last_tx_ago") is not None:
                        gap = max(gap, t + float(ck["last_tx_ago"]))
            self.stats["last-adopt"] = {"sessions": len(added), "transit-ms": round(transit * 1000, 3),
                                        "max-tx-gap-ms": round(gap * 1000, 3)}
        self._wake()
        self._emit(events)
        if changes:
            self._notify(changes)

    def apply(self, configs: Iterable[SessionConfig]) -> None:
        """Converge to exactly ``configs``: add, update (timers/auth/enabled) and remove."""
        want = {normalize(c.peer_address): c for c in configs}
        with self._lock:
            have = dict(self._sessions)
        for key, s in have.items():
            c = want.get(key)
            if c is None or (c.local_address, c.interface, c.multihop) != (
                s.cfg.local_address, s.cfg.interface, s.cfg.multihop
            ):
                self.remove_session(key)
        for key, c in want.items():
            with self._lock:
                cur = self._sessions.get(key)
            if cur is None:
                self.add_session(c)
            elif cur.cfg != c:
                self.update_session(c)

    def admin_down(self, peer: str) -> None:
        with self._lock:
            s = self._sessions[normalize(peer)]
            ch = s.fsm.admin_down(self.clock())
        if ch:
            self._notify([(s.key, ch)])
        self._wake()

    def admin_up(self, peer: str) -> None:
        with self._lock:
            s = self._sessions[normalize(peer)]
            ch = s.fsm.admin_up(self.clock())
        if ch:
            self._notify([(s.key, ch)])
        self._wake()

    # -- state -------------------------------------------------------------------------------
    def _session_view(self, s: _Session, now: float) -> dict[str, Any]:
        d = s.fsm.state_dict(now)
        d["source-port"] = s.src_port
        d["counters"].update(tx_errors=s.tx_errors, rx_ttl_drops=s.rx_ttl_drops)
        d["last-error"] = s.last_error
        return d

    def session(self, peer: str) -> dict[str, Any] | None:
        with self._lock:
            s = self._sessions.get(normalize(peer))
            return None if s is None else self._session_view(s, self.clock())

    def sessions(self) -> list[dict[str, Any]]:
        with self._lock:
            now = self.clock()
            return [self._session_view(s, now) for s in self._sessions.values()]

    def state(self, peer: str) -> str | None:
        with self._lock:
            s = self._sessions.get(normalize(peer))
            return None if s is None else state_name(s.fsm.state)

    def checkpoint(self) -> dict[str, Any]:
        """{peer: FSM checkpoint} for non-stop routing; restore with add_session(cfg, d)."""
        with self._lock:
            now = self.clock()
            return {k: s.fsm.to_dict(now) for k, s in self._sessions.items()}

    def wait_state(self, peer: str, state: str, timeout: float) -> bool:
        """Poll (bounded) until the session reaches ``state``; for tests and tools."""
        return wait_for_state(self.state, peer, state, timeout, 0.005)

    # -- listeners ---------------------------------------------------------------------------
    def add_listener(self, callback: Listener, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """``callback(peer, old_state, new_state, diag)`` on every state change (names as in
        the state dicts). With ``loop`` (or when called from a running asyncio loop) it runs
        in that loop; otherwise in the BFD thread, where it must not block. A session taken
        over by `adopt_sessions` is reported once as ``(peer, state, state, "adopted")``
        (old == new); an exported or removed session reports nothing."""
        if loop is None:
            with contextlib.suppress(RuntimeError):
                loop = asyncio.get_running_loop()
        with self._lock:
            self._listeners.append((callback, loop))

    def remove_listener(self, callback: Listener) -> None:
        with self._lock:
            self._listeners = [(cb, lp) for cb, lp in self._listeners if cb != callback]

    def _notify(self, changes: list[tuple[str, Transition]]) -> None:
        self._emit([(peer, state_name(t.old), state_name(t.new), DIAG_NAMES.get(int(t.diag), str(int(t.diag))))
                    for peer, t in changes])

    def _emit(self, events: list[tuple[str, str, str, str]]) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for args in events:
            for cb, loop in listeners:
                if loop is not None:
                    with contextlib.suppress(RuntimeError):  # loop closed
                        loop.call_soon_threadsafe(cb, *args)
                else:
                    try:
                        cb(*args)
                    except Exception:  # noqa: BLE001 - a listener must not kill BFD
                        pass

    # -- the BFD thread ----------------------------------------------------------------------
    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"\0")

    def _close_session(self, s: _Session) -> None:
        if s.sock is not None:
            s.sock.close()
            s.sock = None

    def _send(self, s: _Session, data: bytes) -> None:
        if s.sock is None:
            return
        try:
            s.sock.sendto(data, s.dst)
        except OSError as exc:  # ENETUNREACH while a link is down, EAGAIN, ...
            s.tx_errors += 1
            s.last_error = f"send: {exc.strerror or exc}"

    def _send_admin_down(self, s: _Session) -> None:
        now = self.clock()
        s.fsm.admin_down(now)
        self._send(s, s.fsm.build())

    def _run(self) -> None:
        sel = self._sel
        while not self._stop.is_set():
            with self._lock:
                now = self.clock()
                deadline = now + _MAX_WAIT
                for s in self._sessions.values():
                    d = s.fsm.next_deadline()
                    if d < deadline:
                        deadline = d
            try:
                events = sel.select(max(0.0, deadline - now))
            except (OSError, ValueError):
                if self._stop.is_set():
                    return
                raise
            changes: list[tuple[str, Transition]] = []
            with self._lock:
                for key, _ in events:
                    if key.data is None:
                        with contextlib.suppress(BlockingIOError, OSError):
                            self._wake_r.recv(4096)
                    else:
                        self._drain(key.fileobj, key.data, changes)
                now = self.clock()
                late = (now - deadline) * 1000
                if late > self.stats["loop-max-lateness-ms"] and self._sessions:
                    self.stats["loop-max-lateness-ms"] = round(late, 3)
                for s in self._sessions.values():
                    if s.fsm.next_deadline() <= now:
                        out, ch = s.fsm.on_timer(now)
                        if out is not None:
                            self._send(s, out)
                        if ch is not None:
                            changes.append((s.key, ch))
            if changes:
                self._notify(changes)

    def _drain(self, sock: socket.socket, data: tuple[int, int], changes: list) -> None:
        family, port = data
        v6 = family == socket.AF_INET6
        multihop = port == MULTIHOP_PORT
        st = self.stats
        for _ in range(_RX_BURST):
            try:
                raw, anc, _flags, addr = sock.recvmsg(512, _ANC)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            now = self.clock()
            st["rx-packets"] += 1
            ttl, dst, ifindex = _ancillary(anc, v6)
            try:
                pkt = decode(raw)
            except BfdDecodeError as exc:
                st["rx-decode-errors"] += 1
                self.last_decode_error = str(exc)
                continue
            src = normalize(addr[0])
            if pkt.your_discr:
                s = self._by_discr.get(pkt.your_discr)
                if s is None or s.key != src or s.cfg.multihop != multihop:
                    st["rx-no-session"] += 1
                    continue
            else:
                s = self._sessions.get(src)
                if s is None or s.cfg.multihop != multihop or (
                    s.cfg.local_address and dst and normalize(dst) != normalize(s.cfg.local_address)
                ):
                    st["rx-no-session"] += 1
                    continue
            if s.ifindex and ifindex and ifindex != s.ifindex:
                st["rx-interface-mismatch"] += 1
                continue
            if not multihop and ttl != 255:
                st["rx-ttl-drops"] += 1
                s.rx_ttl_drops += 1
                continue
            res = s.fsm.receive(pkt, now, raw)
            if res.reply is not None:
                self._send(s, res.reply)
            if res.transition is not None:
                changes.append((s.key, res.transition))
            if res.transition is not None and res.transition.new == State.UP:
                s.last_error = ""
