"""Non-stop routing across a crash of the routing engine (kill -9): the engine's side.

Switchovers 1 and 2 (agent.py) are planned: the old engine pauses, checkpoints and hands
its sessions over. A crash gives no such chance, so the engine keeps, at every instant,
enough outside itself for a new engine to continue each BGP session at a message boundary
in both directions:

* The connection itself: a duplicate descriptor of every Established socket is held by
  the socket holder (holder.py), with the session snapshot (FSM, both OPENs, counters;
  Peer.session_snapshot) as its ``meta``. The kernel keeps the connection while the
  holder holds it: it acknowledges what the peer sends and retransmits what we wrote.
* Receive direction — the kernel's receive queue is the log (``PeekReader``): the engine
  reads with MSG_PEEK, frames and handles the whole messages, and only then removes
  exactly their bytes (recv with MSG_TRUNC, one system call). A partial message is never
  taken out of the kernel (SO_RCVLOWAT is set to its length, so the event loop is not
  woken before it is complete). Whenever the engine dies, the receive queue starts at a
  message boundary. Messages handled but whose effect was not checkpointed are recovered
  by a ROUTE-REFRESH to the peer (RFC 2918; with enhanced route refresh, RFC 7313, the
  stale routes are swept at EoRR).
* Transmit direction — log before send (``TxLog``): every message is copied into a
  shared-memory ring (a MAP_SHARED file under the run directory, which outlives the
  process) before it is given to the transport; the ring keeps each message until the
  kernel has all of it (trimmed at message boundaries by what the transport still
  buffers). Offsets are the kernel's own byte count of the connection
  (tcpi_bytes_acked + SIOCOUTQ: where the next written byte goes), calibrated when the
  log starts. After a crash the new engine reads the kernel's position K, finds the
  message containing it in the ring and writes the rest of that message first; messages
  the kernel never got are dropped (the Adj-RIB-Out is re-sent anyway).

Recovery (``CrashGuard.recover``, ``fcrd --nsr-holder PATH --recover``): the new engine
starts as a standby (no connection, no listener), takes the orphaned sockets from the
holder, completes each partial message, adopts each session (Peer.adopt: a KEEPALIVE at
once), asks every peer for a ROUTE-REFRESH and holds its own output until the peers'
EoRR (or RELEARN_TIMEOUT), then re-sends its Adj-RIB-Out (BoRR ... EoRR with enhanced
route refresh: the peer sees implicit replaces, and only routes we no longer have are
swept). The BFD worker (a separate process) survives too: the holder keeps its pipe ends
(its stdin never reaches EOF, so it keeps sending) and the new engine re-attaches to it
(``AttachedBfdProcess``). The FIB is taken over by reconcile (never flushed), and the
ownership lease of the dead engine is taken over in the checkpoint store.

The windows that remain are listed in docs/nsr.md ("Crash of the engine").
"""

from __future__ import annotations

import asyncio
import base64
import collections
import concurrent.futures
import contextlib
import fcntl
import logging
import mmap
import os
import random
import signal
import socket
import struct
import subprocess
import threading
import time
import uuid
from typing import Any

from ..addr import canonical_ip as _norm
from ..bgp.peer import READ_MAX
from ..log import log_event
from . import netlock, tcp_repair
from .holder import HolderClient, HolderError, spawn

log = logging.getLogger("fcr.nsr.crash")

# linux/sockios.h
SIOCOUTQ = 0x5411
SO_RCVLOWAT = getattr(socket, "SO_RCVLOWAT", 18)
MSG_TRUNC = getattr(socket, "MSG_TRUNC", 0x20)
TCP_INFO = 11
_TCPI_BYTES_ACKED = 120   # offset of tcpi_bytes_acked (u64) in struct tcp_info
_TCPI_BYTES_RECEIVED = 128
_TCP_INFO_LEN = 136
TCP_ESTABLISHED = 1

HEADER_LEN = 19
PEEK_MAX = READ_MAX       # as a plain connection's read size (appliance/bgp/peer.py)
_SCRATCH = bytearray(PEEK_MAX)  # MSG_TRUNC discards: nothing is ever copied into it

TXLOG_MAGIC = b"FCRTXLG2"
TXLOG_HDR = 64
RX_AREA = 65536           # bytes taken out of the kernel that are not a whole message yet
_RING = TXLOG_HDR + RX_AREA
TXLOG_CAP = 16 << 20      # sparse; pages are touched only as far as the log ever reaches
_HDR = struct.Struct("=8sQQQQQQQ")  # magic, capacity, base, end, origin, flags, rx_pos, rx_len
F_INCOMPLETE = 1

RELEARN_TIMEOUT = 10.0    # s the recovered engine holds its output for the peers' EoRR
TICK = 0.5


class RecoverError(Exception):
    """A held session cannot be continued exactly (the text says why)."""


# -- the kernel's byte positions ----------------------------------------------------------------
def _outq(sock: socket.socket) -> int:
    return struct.unpack("=i", fcntl.ioctl(sock.fileno(), SIOCOUTQ, b"\0\0\0\0"))[0]


def _inq(sock: socket.socket) -> int:
    """Bytes in the receive queue (SIOCINQ)."""
    return struct.unpack("=i", fcntl.ioctl(sock.fileno(), 0x541B, b"\0\0\0\0"))[0]


def _in_repair(sock: socket.socket) -> bool:
    try:
        return bool(sock.getsockopt(socket.IPPROTO_TCP, tcp_repair.TCP_REPAIR))
    except OSError:
        return False


def tcp_state(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO, 8)[0]


def kernel_tx_position(sock: socket.socket, tries: int = 200) -> int:
    """Bytes written into the connection so far, as the kernel counts them: acknowledged
    (tcpi_bytes_acked) plus still queued (SIOCOUTQ = write_seq - snd_una). An ACK between
    the two reads moves both; the pair is taken when SIOCOUTQ reads the same before and
    after (nobody may write meanwhile: the caller is the only writer)."""
    for _ in range(tries):
        a = _outq(sock)
        raw = sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO, _TCP_INFO_LEN)
        b = _outq(sock)
        if a == b:
            if len(raw) < _TCPI_BYTES_ACKED + 8:
                raise RecoverError("TCP_INFO has no tcpi_bytes_acked (kernel too old)")
            return struct.unpack_from("=Q", raw, _TCPI_BYTES_ACKED)[0] + a
    raise RecoverError("the send queue kept moving: no consistent write position")


def kernel_rx_consumed(sock: socket.socket, tries: int = 200) -> int:
    """Bytes the application took out of the connection so far, as the kernel counts them:
    received (tcpi_bytes_received) minus still queued (SIOCINQ). Arrivals move both alike;
    the pair is taken when SIOCINQ reads the same before and after."""
    for _ in range(tries):
        a = _inq(sock)
        raw = sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO, _TCP_INFO_LEN)
        b = _inq(sock)
        if a == b:
            if len(raw) < _TCPI_BYTES_RECEIVED + 8:
                raise RecoverError("TCP_INFO has no tcpi_bytes_received (kernel too old)")
            return struct.unpack_from("=Q", raw, _TCPI_BYTES_RECEIVED)[0] - a
    raise RecoverError("the receive queue kept moving: no consistent read position")


def message_ends(data: bytes | bytearray | memoryview, start: int = 0) -> list[int]:
    """End offsets of the whole BGP messages in ``data`` from ``start`` (a boundary)."""
    out = []
    off, n = start, len(data)
    while n - off >= HEADER_LEN:
        length = int.from_bytes(data[off + 16:off + 18], "big")
        if length < HEADER_LEN:
            raise RecoverError(f"bad message length {length} at {off}")
        if n - off < length:
            break
        off += length
        out.append(off)
    return out


# -- receive: the kernel's queue is the log -------------------------------------------------------
class PeekReader:
    """Replaces the read path of one asyncio socket transport (its ``_read_ready_cb``,
    CPython 3.11-3.13): peek, hand the bytes to ``proto.peeked`` (which frames and
    dispatches the whole messages and says how many bytes it used), then remove exactly
    those from the kernel. See the module doc."""

    __slots__ = ("proto", "transport", "lowat", "paused_early", "spills")

    def __init__(self, proto: Any) -> None:
        self.proto = proto
        self.transport: Any = None
        self.lowat = 1
        self.paused_early = False
        self.spills = 0

    @staticmethod
    def install(proto: Any, transport: Any) -> PeekReader | None:
        if not all(hasattr(transport, a) for a in ("_read_ready_cb", "_sock", "_fatal_error",
                                                   "_read_ready__on_eof", "_conn_lost")):
            log_event(log, "nsr.peek-unsupported", level=logging.WARNING,
                      transport=type(transport).__name__)
            return None
        r = PeekReader(proto)
        r.transport = transport
        with contextlib.suppress(OSError):  # a continued socket keeps the last engine's
            r.lowat = transport._sock.getsockopt(socket.SOL_SOCKET, SO_RCVLOWAT)
        transport._read_ready_cb = r.ready
        close = transport.close

        def close_read() -> None:
            # what a plain reader would have taken out of the kernel before closing: bytes
            # left in the receive queue would turn the FIN into a RST (abort() keeps them:
            # a switchover detaches a live connection that way)
            sock = transport._sock
            if sock is not None and not transport.is_closing():
                with contextlib.suppress(OSError):
                    while sock.recv_into(_SCRATCH, PEEK_MAX, MSG_TRUNC | socket.MSG_DONTWAIT) > 0:
                        pass
            close()

        transport.close = close_read
        return r

    def attached(self) -> None:
        """The peer attached a session to the protocol: resume a read paused before."""
        if self.paused_early:
            self.paused_early = False
            t = self.transport
            if not t.is_closing():
                t.resume_reading()

    def ready(self) -> None:
        t = self.transport
        if t._conn_lost:
            return
        if self.proto.session is None:
            # nobody to hand messages to yet (Peer._attach resumes): stop the wake-ups
            self.paused_early = True
            t.pause_reading()
            return
        sock = t._sock
        try:
            data = sock.recv(PEEK_MAX, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:  # noqa: BLE001 - as asyncio's own reader
            t._fatal_error(exc, "Fatal read error on socket transport")
            return
        if not data:
            t._read_ready__on_eof()
            return
        try:
            used = self.proto.peeked(data)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:  # noqa: BLE001 - as asyncio does for data_received
            t._fatal_error(exc, "Fatal error: protocol.data_received() call failed.")
            return
        if used < 0 or t.is_closing():
            return  # the session went away while handling its messages
        if used:
            if not self._discard(sock, used):
                return
        else:
            # woken without a whole message: the peer closed in the middle of one, or the
            # kernel woke us below SO_RCVLOWAT (memory pressure, a small receive window:
            # waiting for the rest could stall the connection). The partial message
            # leaves the kernel, recorded first (TxLog.rx_record).
            try:
                closed = tcp_state(sock) != TCP_ESTABLISHED
            except OSError:
                closed = True
            if closed:
                t._read_ready__on_eof()
                return
            if not self._spill(sock, data):
                return
            used = len(data)
        rest = memoryview(data)[used:]
        kept = len(self.proto.buf)  # consumed earlier, not yet a whole message (rare)
        head = bytes(self.proto.buf[:HEADER_LEN]) + bytes(rest[:HEADER_LEN])
        need = int.from_bytes(head[16:18], "big") if len(head) >= HEADER_LEN else HEADER_LEN
        lowat = max(1, max(need, HEADER_LEN) - kept)
        if lowat != self.lowat:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVLOWAT, lowat)
            self.lowat = lowat


    def _discard(self, sock: Any, n: int) -> bool:
        """Remove exactly ``n`` bytes, already handled, from the receive queue."""
        try:
            while n > 0:
                k = sock.recv_into(_SCRATCH, n, MSG_TRUNC)
                if k <= 0:
                    raise OSError("short discard")
                n -= k
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:  # noqa: BLE001 - the stream position is lost
            self.transport._fatal_error(exc, "Fatal error: cannot remove handled bytes from the socket")
            return False
        return True

    def _spill(self, sock: Any, data: bytes) -> bool:
        proto = self.proto
        txl = proto.tx_log
        try:
            if txl is not None:
                txl.rx_record(kernel_rx_consumed(sock) + len(data), bytes(proto.buf) + data)
        except (OSError, RecoverError, ValueError) as exc:
            self.transport._fatal_error(exc, "Fatal error: cannot record a partial message")
            return False
        if not self._discard(sock, len(data)):
            return False
        proto.buf += data
        self.spills += 1
        return True


# -- transmit: log before send ---------------------------------------------------------------------
class TxLog:
    """Log-before-send ring of one connection in a MAP_SHARED file (see the module doc).

    Offsets are the kernel's byte count of the connection (``kernel_tx_position``).
    Header: magic, capacity, base (first byte kept: a message boundary), end (after the
    last byte logged), origin (ring position 0 is offset ``origin`` mod capacity; moved
    to ``end`` whenever the log is empty, so the file only grows as far as one burst) and
    flags (F_INCOMPLETE: a burst did not fit, the log is useless until it is empty again).
    Every header field is one aligned 8-byte store, and data is written before ``end``
    moves, so a process killed at any instruction leaves a consistent log."""

    def __init__(self, path: str, mm: mmap.mmap, fd: int) -> None:
        self.path = path
        self._mm = mm
        self._fd = fd
        _m, self.cap, self.base, self.end, self.origin, self.flags, _rp, _rl = _HDR.unpack_from(mm, 0)
        self._ends: collections.deque[int] = collections.deque()

    @classmethod
    def create(cls, path: str, base: int, data: bytes = b"", cap: int = TXLOG_CAP) -> TxLog:
        """A new log whose first byte is at ``base`` (a message boundary) holding ``data``
        (whole messages from ``base``)."""
        ends = [base + e for e in message_ends(data)]
        if len(data) > cap or (data and (not ends or ends[-1] != base + len(data))):
            raise ValueError("initial data must be whole messages that fit")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, _RING + cap)
            mm = mmap.mmap(fd, _RING + cap, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(fd)
            raise
        mm[_RING:_RING + len(data)] = data
        _HDR.pack_into(mm, 0, TXLOG_MAGIC, cap, base, base + len(data), base, 0, 0, 0)
        log_ = cls(path, mm, fd)
        log_._ends.extend(ends)
        return log_

    @staticmethod
    def read(path: str) -> tuple[int, int, bytes, int]:
        """(base, end, bytes base..end, flags) of a log another process wrote."""
        with open(path, "rb") as f:
            head = f.read(TXLOG_HDR)
            if len(head) < _HDR.size:
                raise RecoverError(f"{path}: short header")
            magic, cap, base, end, origin, flags, _rp, _rl = _HDR.unpack_from(head, 0)
            if magic != TXLOG_MAGIC:
                raise RecoverError(f"{path}: not a transmit log")
            if flags & F_INCOMPLETE:
                return base, end, b"", flags
            if not 0 <= end - base <= cap:
                raise RecoverError(f"{path}: bad range {base}..{end}")
            n = end - base
            pos = (base - origin) % cap
            f.seek(_RING + pos)
            first = f.read(min(n, cap - pos))
            rest = b""
            if len(first) < n:
                f.seek(_RING)
                rest = f.read(n - len(first))
        data = first + rest
        if len(data) != n:
            raise RecoverError(f"{path}: truncated data")
        return base, end, data, flags

    def rx_record(self, pos: int, data: bytes) -> None:
        """Bytes about to be taken out of the kernel (``data``: every byte taken and not yet
        a whole message) and the kernel's read position once they are (``pos``, see
        ``kernel_rx_consumed``). A reader trusts it only while the kernel's position is
        still ``pos``: reading on past it (the message completed) retires it by itself."""
        if len(data) > RX_AREA:
            raise ValueError("more than one message pending")
        self._store(6, 0)
        self._mm[TXLOG_HDR:TXLOG_HDR + len(data)] = data
        self._store(5, pos)
        self._store(6, len(data))

    @staticmethod
    def read_rx(path: str) -> tuple[int, bytes]:
        """(position, bytes) of the receive record (see ``rx_record``); (0, b"") if none."""
        with open(path, "rb") as f:
            head = f.read(TXLOG_HDR)
            if len(head) < _HDR.size or head[:8] != TXLOG_MAGIC:
                raise RecoverError(f"{path}: not a transmit log")
            *_rest, rx_pos, rx_len = _HDR.unpack_from(head, 0)
            if not 0 < rx_len <= RX_AREA:
                return 0, b""
            data = f.read(rx_len)
        if len(data) != rx_len:
            raise RecoverError(f"{path}: truncated receive record")
        return rx_pos, data

    def _store(self, index: int, value: int) -> None:
        struct.pack_into("=Q", self._mm, 8 + 8 * index, value)

    def append(self, messages: Any, buffered: int) -> None:
        """Log ``messages`` (each one whole BGP message) before they are written;
        ``buffered``: what the transport holds now (trims first)."""
        self.sync(buffered)
        n = 0
        for m in messages:
            n += len(m)
        if self.end + n - self.base > self.cap:
            # does not fit: mark first (so no reader trusts it), then count the bytes
            self.flags |= F_INCOMPLETE
            self._store(4, self.flags)
            end = self.end
            for m in messages:
                end += len(m)
                self._ends.append(end)
            self.end = end
            self._store(2, end)
            return
        mm, cap, origin = self._mm, self.cap, self.origin
        end = self.end
        for m in messages:
            pos = (end - origin) % cap
            k = len(m)
            if pos + k <= cap:
                mm[_RING + pos:_RING + pos + k] = m
            else:
                cut = cap - pos
                mv = memoryview(m)
                mm[_RING + pos:_RING + cap] = mv[:cut]
                mm[_RING:_RING + k - cut] = mv[cut:]
            end += k
            self._ends.append(end)
        self.end = end
        self._store(2, end)

    def sync(self, buffered: int) -> None:
        """Forget the messages the kernel has entirely (everything but ``buffered``)."""
        in_kernel = self.end - buffered
        ends = self._ends
        base = self.base
        while ends and ends[0] <= in_kernel:
            base = ends.popleft()
        if base != self.base:
            self.base = base
            self._store(1, base)
        if base == self.end and self.origin != base:
            self.origin = base
            self._store(3, base)
            if self.flags:
                self.flags = 0
                self._store(4, 0)

    def close(self, remove: bool = True) -> None:
        with contextlib.suppress(Exception):
            self._mm.close()
        with contextlib.suppress(OSError):
            os.close(self._fd)
        if remove:
            with contextlib.suppress(OSError):
                os.unlink(self.path)


def plan_tx(sock: socket.socket, path: str) -> tuple[int, bytes, bytes]:
    """Where the dead engine's byte stream stands: (start of the partial message in the
    kernel or the kernel's position when none, the whole partial message, the part of it
    still to write). RecoverError when the log does not cover the kernel's position."""
    base, end, data, flags = TxLog.read(path)
    if flags & F_INCOMPLETE:
        raise RecoverError(f"{path}: the log overflowed (a burst larger than the ring)")
    k = kernel_tx_position(sock)
    if not base <= k <= end:
        raise RecoverError(f"kernel position {k} outside the log {base}..{end}")
    start = base
    for e in message_ends(data):
        if start == k:
            break  # at a boundary: nothing is owed (what follows never reached the kernel)
        pos = base + e
        if pos > k:
            return start, data[start - base:e], data[k - base:e]
        start = pos
    if start != k:
        raise RecoverError(f"the log ends in a partial message at {end} (kernel at {k})")
    return k, b"", b""


# -- BFD: re-attach to the worker of the dead engine -----------------------------------------------
class _PipeProc:
    """The parts of subprocess.Popen that BfdProcess uses, for a worker that is not our
    child (its parent died): pipe ends received from the holder, liveness by pid."""

    def __init__(self, pid: int, stdin_fd: int, stdout_fd: int) -> None:
        self.pid = pid
        self.stdin = os.fdopen(stdin_fd, "w", buffering=1)
        self.stdout = os.fdopen(stdout_fd, "r")
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and not _alive(self.pid):
            self.returncode = -1
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        end = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if end is not None and time.monotonic() > end:
                raise subprocess.TimeoutExpired(f"bfd worker {self.pid}", timeout or 0)
            time.sleep(0.02)
        return self.returncode  # type: ignore[return-value]

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _attached_bfd_class() -> type:
    from ..bfd.worker import BfdProcess

    class AttachedBfdProcess(BfdProcess):
        """BfdProcess over the pipes of a running worker (started by a dead engine)."""

        def __init__(self, pid: int, stdin_fd: int, stdout_fd: int) -> None:
            super().__init__()
            self._pipes = (pid, stdin_fd, stdout_fd)
            # the dead engine's answers may still be in the pipe: never reuse its ids
            self._next_id = random.randrange(1 << 40, 1 << 50)

        def start(self) -> None:
            if self._proc is not None:
                return
            self._proc = _PipeProc(*self._pipes)  # type: ignore[assignment]
            # end a request line the dead engine may have left half written
            self._proc.stdin.write("\n")  # type: ignore[union-attr]
            self._proc.stdin.flush()  # type: ignore[union-attr]
            self._reader = threading.Thread(target=self._read, name="bfd-proxy", daemon=True)
            self._reader.start()
            self._call("ping")

    return AttachedBfdProcess


# -- the engine's guard --------------------------------------------------------------------------
class CrashGuard:
    """Keeps the engine's sessions recoverable (see the module doc). Installed as
    ``Engine.nsr_hooks`` (the speaker and its peers call it) by fcrd --nsr-holder."""

    def __init__(self, engine: Any, holder_path: str, engine_id: str, *, run_dir: str | None = None,
                 spawn_holder: bool = True, holder_log: str | None = None) -> None:
        self.engine = engine
        self.path = holder_path
        self.engine_id = engine_id
        self.run_dir = run_dir or os.path.join(os.path.dirname(os.path.abspath(holder_path)), "txlog")
        self.spawn_holder = spawn_holder
        self.holder_log = holder_log
        self.client = HolderClient(holder_path)
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="fcr-nsr-holder")
        self.registered: dict[str, tuple[Any, TxLog]] = {}  # key -> (protocol, log)
        self._pending: dict[str, asyncio.TimerHandle] = {}
        self._bfd_pid: int | None = None
        self._task: asyncio.Task[None] | None = None
        self.hello: dict[str, Any] = {}
        self.last_recovery: dict[str, Any] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopped = False

    # -- holder connection (one worker thread: never on the event loop) ------------------------
    def _connect_sync(self) -> dict[str, Any]:
        try:
            self.client.connect()
        except OSError:
            if not self.spawn_holder:
                raise
            spawn(self.path, log_path=self.holder_log)
            self.client.connect()
        return self.client.hello(self.engine_id)

    async def _run(self, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args))

    def _submit(self, fn: Any, *args: Any) -> None:
        fut = self._pool.submit(fn, *args)
        fut.add_done_callback(self._done)

    def _done(self, fut: concurrent.futures.Future) -> None:
        exc = fut.exception()
        if exc is not None:
            log_event(log, "nsr.holder-error", level=logging.WARNING, error=str(exc))

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        os.makedirs(self.run_dir, mode=0o700, exist_ok=True)
        try:
            self.hello = await self._run(self._connect_sync)
            log_event(log, "nsr.holder-connected", holder=self.path, holder_pid=self.hello.get("pid"),
                      orphans=len(self.hello.get("orphans", [])))
            if not self.hello.get("orphans"):
                self._cleanup_logs(set())
        except (OSError, HolderError) as exc:
            log_event(log, "nsr.holder-unavailable", level=logging.WARNING, holder=self.path, error=str(exc))
        self._task = self.loop.create_task(self._keeper())

    async def stop(self) -> None:
        """Clean exit: the holder closes everything this engine put (``bye``), so the
        sessions the engine closes afterwards get their FIN."""
        self.stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for h in self._pending.values():
            h.cancel()
        self._pending.clear()
        if self.client.connected:
            with contextlib.suppress(Exception):
                await self._run(self.client.bye)
        self.registered.clear()
        self._pool.shutdown(wait=False)

    async def _keeper(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            try:
                if self.client.connected and not await self._run(self.client.alive):
                    log_event(log, "nsr.holder-lost", level=logging.WARNING, holder=self.path)
                if not self.client.connected:
                    self.hello = await self._run(self._connect_sync)
                    log_event(log, "nsr.holder-reconnected", holder=self.path)
                    self._bfd_pid = None
                    for key in list(self.registered):
                        self._reregister(key)
                self._check_bfd()
            except asyncio.CancelledError:
                raise
            except (OSError, HolderError) as exc:
                log_event(log, "nsr.holder-unavailable", level=logging.WARNING, error=str(exc))
            except Exception as exc:  # noqa: BLE001 - the keeper must keep going
                log_event(log, "nsr.guard-error", level=logging.ERROR, error=repr(exc))

    def bfd_started(self) -> None:
        """Engine hook: a BFD worker was just started."""
        if not self.stopped and self.client.connected:
            self._check_bfd()

    def _check_bfd(self) -> None:
        bfd = self.engine.bfd
        proc = getattr(bfd, "_proc", None)
        if proc is None or proc.poll() is not None or self._bfd_pid == proc.pid:
            return
        fds = (os.dup(proc.stdin.fileno()), os.dup(proc.stdout.fileno()))
        self._bfd_pid = proc.pid

        def put() -> None:
            try:
                self.client.bfd_put(proc.pid, *fds)
            except BaseException:
                self._bfd_pid = None  # try again at the next tick
                raise
            finally:
                for fd in fds:
                    os.close(fd)

        self._submit(put)
        log_event(log, "nsr.bfd-held", pid=proc.pid)

    # -- hooks called by the peers and the speaker ---------------------------------------------
    def connection_made(self, proto: Any, transport: Any) -> None:
        """Every connection, from its first byte: reads peek (the kernel's receive queue
        stays at a message boundary) and writes are logged before they are sent (a log
        started before anything was written needs no calibration: every byte is in it)."""
        if self.stopped:
            return
        proto.peek = PeekReader.install(proto, transport)
        if proto.tx_log is None and proto.peek is not None:
            try:
                sock = transport.get_extra_info("socket")
                proto.tx_log = TxLog.create(self._log_path(proto.peer.name), kernel_tx_position(sock))
                if proto.buf:  # a switchover's bytes read but not framed (Peer.adopt)
                    proto.tx_log.rx_record(kernel_rx_consumed(sock), bytes(proto.buf))
            except (OSError, RecoverError, ValueError) as exc:
                log_event(log, "nsr.not-guarded", level=logging.WARNING, peer=proto.peer.name,
                          reason=f"no transmit log: {exc}")

    def state_changed(self, peer: Any, old: str, new: str) -> None:
        key = peer.name
        if new == "Established":
            self._schedule_register(peer)
        elif old == "Established":
            self.unregister(key)

    def adopted(self, keys: list[str]) -> None:
        """Sessions adopted by a switchover (or taken back): a new connection object,
        maybe a new socket: register them afresh."""
        for key in keys:
            peer = self.engine.bgp.peers.get(key)
            if peer is not None:
                self._schedule_register(peer)

    def _schedule_register(self, peer: Any, delay: float = 0.0) -> None:
        if self.stopped or self.loop is None:
            return
        key = peer.name
        h = self._pending.pop(key, None)
        if h is not None:
            h.cancel()
        self._pending[key] = self.loop.call_later(delay, self._try_register, peer)

    def _try_register(self, peer: Any) -> None:
        """Hand the Established session's socket to the holder with its snapshot."""
        key = peer.name
        self._pending.pop(key, None)
        proto, t = peer.connection()
        if peer.state != "Established" or proto is None or t is None or t.is_closing():
            return
        if proto.peek is None or proto.tx_log is None:
            log_event(log, "nsr.not-guarded", level=logging.WARNING, peer=key,
                      reason="connection made before the guard (no peek reader or transmit log)")
            return
        sock = t.get_extra_info("socket")
        txl = proto.tx_log
        self.registered[key] = (proto, txl)
        meta = {"snapshot": peer.session_snapshot(), "tx-log": txl.path, "engine-id": self.engine_id}
        fd = os.dup(sock.fileno())

        def put() -> None:
            try:
                self.client.put(key, fd, meta)
            finally:
                os.close(fd)

        self._submit(put)
        log_event(log, "nsr.guarded", peer=key, tx_log=os.path.basename(txl.path))

    def _reregister(self, key: str) -> None:
        peer = self.engine.bgp.peers.get(key) if self.engine.bgp is not None else None
        if peer is not None:
            self._schedule_register(peer)

    def _log_path(self, key: str) -> str:
        safe = key.replace(":", "_").replace("%", "_").replace("/", "_")
        return os.path.join(self.run_dir, f"{safe}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tx")

    def unregister(self, key: str) -> None:
        """The session ended (or left this engine): the holder closes its duplicate (its
        transmit log goes with the connection: Peer's connection_lost)."""
        h = self._pending.pop(key, None)
        if h is not None:
            h.cancel()
        self.registered.pop(key, None)
        if self.client.connected:
            self._submit(self.client.drop, key)

    async def drop_now(self, keys: list[str]) -> None:
        """Before a switchover closes the sockets (TCP_REPAIR) and another engine
        restores the same 4-tuples: the holder's duplicates must be gone first."""
        for key in keys:
            self.unregister(key)
        await self._run(lambda: None)  # the drops above ran (one worker, in order)

    def _cleanup_logs(self, keep: set[str]) -> None:
        """Transmit logs of engines that are gone and whose sessions nobody holds."""
        with contextlib.suppress(OSError):
            for name in os.listdir(self.run_dir):
                path = os.path.join(self.run_dir, name)
                parts = name.split(".")
                if not name.endswith(".tx") or path in keep or len(parts) < 4:
                    continue
                with contextlib.suppress(ValueError):
                    if int(parts[-3]) != os.getpid() and not _alive(int(parts[-3])):
                        with contextlib.suppress(OSError):
                            os.unlink(path)

    # -- recovery after a crash --------------------------------------------------------------
    async def recover(self) -> dict[str, Any]:
        """Continue the sessions of the dead engine (see the module doc)."""
        eng = self.engine
        sp = eng.bgp
        t0 = time.monotonic()
        if not self.client.connected:
            self.hello = await self._run(self._connect_sync)
        dead = [tuple(x) for x in self.hello.get("previous", [])]
        taken = await self._run(self.client.take)
        t_taken = time.monotonic()
        sessions: dict[str, tuple[dict, socket.socket, TxLog, bytes]] = {}
        refused: dict[str, str] = {}
        other = await self._live_other_owner(dead)
        if other is not None:
            # a switchover had handed the sessions on before the engine died: they are the
            # other engine's; ours are stale duplicates, closed without a packet
            for key, (sock, _meta) in taken.items():
                refused[key] = f"the ownership lease is held by the live engine {other}"
                with contextlib.suppress(OSError):
                    tcp_repair.repair_on(sock)
                with contextlib.suppress(Exception):
                    await self._run(self.client.drop, key)
                sock.close()
            taken = {}
        unfrozen = False
        for key, (sock, meta) in taken.items():
            try:
                if sp is None or key not in sp.peers:
                    raise RecoverError("not a configured neighbor here")
                if _in_repair(sock):  # the engine died in the middle of a release: undo it
                    if not unfrozen:
                        await asyncio.get_running_loop().run_in_executor(None, netlock.cleanup_all)
                        unfrozen = True
                    tcp_repair.leave_repair(sock)
                snap = dict(meta.get("snapshot") or {})
                if (snap.get("fsm") or {}).get("state") != "Established":
                    raise RecoverError("snapshot is not of an Established session")
                if tcp_state(sock) != TCP_ESTABLISHED:
                    raise RecoverError(f"TCP state {tcp_state(sock)}, not ESTABLISHED")
                start, whole, rest = plan_tx(sock, meta["tx-log"])
                rx_pos, rx_data = TxLog.read_rx(meta["tx-log"])
                consumed = kernel_rx_consumed(sock)
                if rx_pos != consumed:  # retired: the kernel's queue starts at a boundary
                    rx_data = b""
                log_event(log, "nsr.continued", peer=key, tx_position=start + len(whole) - len(rest),
                          owed=len(rest), of_message=len(whole), rx_queued=_inq(sock),
                          rx_taken=len(rx_data))
                txl = TxLog.create(self._log_path(key), start, whole)
                if rx_data:
                    txl.rx_record(consumed, rx_data)
                try:
                    await self._run(self.client.meta, key, {**meta, "tx-log": txl.path,
                                                            "engine-id": self.engine_id})
                except BaseException:
                    txl.close()
                    raise
                with contextlib.suppress(OSError):
                    os.unlink(meta["tx-log"])
                sessions[key] = (_fresh(snap, rx_data), sock, txl, rest)
            except (RecoverError, OSError, HolderError, KeyError, ValueError) as exc:
                refused[key] = str(exc)
                log_event(log, "nsr.recover-refused", level=logging.ERROR, peer=key, reason=str(exc))
                with contextlib.suppress(Exception):
                    await self._run(self.client.drop, key)
                sock.close()  # the last reference: the kernel closes the connection
        adopted = await sp.recover_sessions(sessions, relearn_timeout=RELEARN_TIMEOUT) if sessions else []
        for key in adopted:
            proto, txl = sp.peers[key].connection()[0], sessions[key][2]
            self.registered[key] = (proto, txl)
        self._cleanup_logs({txl.path for _s, _k, txl, _r in sessions.values()})
        t_adopted = time.monotonic()
        bfd_info = await self._attach_bfd()
        await self._take_lease(dead)
        if hasattr(eng, "nsr_activate"):
            await eng.nsr_activate(adopted, {}, relearn=adopted)
        t_done = time.monotonic()
        timing = {"taken": round(t_taken - t0, 4), "adopted": round(t_adopted - t0, 4),
                  "done": round(t_done - t0, 4)}
        self.last_recovery = {"time": time.time(), "adopted": adopted, "refused": refused,
                              "bfd": bfd_info, "previous": dead, "timing": timing}
        log_event(log, "nsr.recovered", peers=len(adopted), refused=len(refused),
                  bfd=bool(bfd_info), **timing)
        return self.last_recovery

    async def _attach_bfd(self) -> dict[str, Any] | None:
        eng = self.engine
        try:
            got = await self._run(self.client.bfd_take)
        except HolderError as exc:
            log_event(log, "nsr.bfd-reattach-failed", level=logging.WARNING, error=str(exc))
            return None
        if got is None:
            return None
        pid, fin, fout = got
        if not _alive(pid):
            os.close(fin)
            os.close(fout)
            return None
        cls = _attached_bfd_class()
        bfd = cls(pid, fin, fout)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, bfd.start)
            sessions = await loop.run_in_executor(None, bfd.sessions)
        except Exception as exc:  # noqa: BLE001 - BFD restarts from scratch instead
            log_event(log, "nsr.bfd-reattach-failed", level=logging.WARNING, pid=pid, error=repr(exc))
            with contextlib.suppress(Exception):
                bfd._proc.stdin.close()
                bfd._proc.stdout.close()
            return None
        bfd.add_listener(eng._on_bfd, loop)
        eng.bfd = bfd
        self._bfd_pid = pid
        states = {}
        for s in sessions:
            peer = _norm(s.get("peer-address", ""))
            states[peer] = s.get("state")
            eng._bfd_state[peer] = s.get("state") or "Down"
        log_event(log, "nsr.bfd-reattached", pid=pid, sessions=len(sessions))
        return {"pid": pid, "sessions": states}

    async def _live_other_owner(self, dead: list[tuple]) -> str | None:
        """The engine (not a dead one, not us) whose lease is current, if any."""
        agent = getattr(self.engine, "nsr", None)
        if agent is None:
            return None
        from .agent import LEASE

        try:
            st = await agent.store()
            cur = await agent._call(st.get_lease, LEASE)
            gone = {eid for eid, _pid in dead}
            if (cur is not None and cur.owner and cur.owner not in gone
                    and cur.owner != agent.engine_id and await agent._call(st.check, cur)):
                return cur.owner
        except Exception as exc:  # noqa: BLE001 - no store: the holder's ownership decides
            log_event(log, "nsr.lease-unknown", level=logging.WARNING, error=repr(exc))
        return None

    async def _take_lease(self, dead: list[tuple]) -> None:
        """The dead engine's ownership lease (single box: its holder connection closed,
        its process is gone) passes to this engine at once instead of after its TTL."""
        agent = getattr(self.engine, "nsr", None)
        if agent is None or agent.lease is not None:
            return
        from .agent import LEASE

        try:
            st = await agent.store()
            cur = await agent._call(st.get_lease, LEASE)
            gone = {eid for eid, pid in dead if not pid or not _alive(int(pid))}
            if cur is not None and cur.owner in gone:
                agent.lease = await agent._call(st.transfer, LEASE, cur, agent.engine_id, agent.lease_ttl)
                agent.role = "active"
                log_event(log, "nsr.lease-taken-over", previous=cur.owner, epoch=agent.lease.epoch)
        except Exception as exc:  # noqa: BLE001 - the agent's keeper acquires it at expiry
            log_event(log, "nsr.lease-takeover-failed", level=logging.WARNING, error=repr(exc))

    def status(self) -> dict[str, Any]:
        return {"holder": self.path, "connected": self.client.connected,
                "holder-pid": self.hello.get("pid"), "guarded": sorted(self.registered),
                "bfd-pid": self._bfd_pid, "last-recovery": self.last_recovery}


def _fresh(snap: dict[str, Any], rx_pending: bytes = b"") -> dict[str, Any]:
    """The snapshot written when the session came up, for a session continued now: its
    age from the wall clock; hold and keepalive timers run from now (adopt sends a
    KEEPALIVE at once)."""
    snap = dict(snap)
    fsm = dict(snap.get("fsm") or {})
    est = (snap.get("statistics") or {}).get("established-at")
    if est:
        fsm["established-for"] = max(0.0, time.time() - float(est))
    timers = {}
    if fsm.get("hold-time"):
        timers["hold"] = float(fsm["hold-time"])
    if fsm.get("keepalive-interval"):
        timers["keepalive"] = float(fsm["keepalive-interval"])
    fsm["timers"] = timers
    snap["fsm"] = fsm
    # what the dead engine took out of the kernel of a message not yet whole (else the
    # kernel's receive queue starts at a message boundary)
    snap["rx-pending"] = base64.b64encode(rx_pending).decode("ascii")
    return snap

