"""The socket holder: keeps BGP sessions alive across a crash of the routing engine.

    python -m appliance.nsr.holder --socket /run/fcr/holder.sock [--grace 60]

A small process of its own (its own session, so it outlives the engine; fcrd starts it on
first use, or a supervisor does). Over a Unix SOCK_SEQPACKET socket the engine hands it a
duplicate descriptor of every Established BGP connection (SCM_RIGHTS), with a JSON
``meta`` (the session snapshot and where its transmit log lives, see crash.py), keyed by
neighbor address; and the two pipe ends that keep the BFD worker running (its stdin write
end: the worker exits when the last one closes; its stdout read end).

The holder never reads or writes a BGP socket: a duplicate only keeps the kernel's
connection open when the engine dies (kill -9): the kernel goes on acknowledging what the
peer sends, keeps it in the receive queue, and retransmits what the engine had written.
A new engine then ``take``s the descriptors and continues (crash.py).

Ownership: every item belongs to the connection that put it. When that connection closes
without ``bye`` (the engine died), its items become orphans; only orphans can be taken
(never the sessions of a live engine: one owner per session, DESIGN.md invariant 7).
Orphans nobody takes within ``--grace`` seconds are closed (the kernel then sends FIN, or
RST when unread data is queued; the BFD worker exits silently). While the BFD pipes are
orphans the holder drains the worker's stdout so it never blocks on a full pipe.

An engine that closes a session normally drops it here (``drop``) — otherwise the last
reference would be the holder's and no FIN would go out; ``bye`` (clean exit) closes
everything the connection put.

Protocol: one JSON object per datagram, ``{"op": ..., "id": n, ...}``; the answer carries
the same id: ``{"id": n, "ok": true, ...}`` or ``{"ok": false, "error": "..."}``. Ops:
``hello`` {engine-id, pid}; ``put`` {key, meta} + 1 fd; ``meta`` {key, meta}; ``drop``
{key}; ``take`` {keys?} (one answer per session with its fd and ``more: true``, then a
final ``more: false``); ``bfd-put`` {pid} + 2 fds; ``bfd-take`` (2 fds); ``bfd-drop``;
``status``; ``bye``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import os
import selectors
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("fcr.nsr.holder")

MAX_MSG = 1 << 20          # one datagram (a session snapshot is a few KiB)
MAX_FDS = 8
DEFAULT_GRACE = 60.0       # s an orphan waits for a new engine before it is closed
CONNECT_TIMEOUT = 5.0


class HolderError(Exception):
    """The holder refused a request or cannot be reached (the text says which)."""


def _log(event: str, level: int = logging.INFO, **fields: Any) -> None:
    from ..log import log_event

    log_event(log, event, level, **fields)


# -- the server ------------------------------------------------------------------------------
@dataclass
class _Conn:
    sock: socket.socket
    cid: int
    engine_id: str = ""
    pid: int = 0
    alive: bool = True


@dataclass
class _Item:
    key: str
    fds: list[int]
    meta: dict[str, Any]
    owner: _Conn
    put_at: float = field(default_factory=time.time)
    orphan_since: float | None = None


class Holder:
    """The holder's state and event loop (single thread, selectors)."""

    def __init__(self, path: str, grace: float = DEFAULT_GRACE) -> None:
        self.path = path
        self.grace = grace
        self.sel = selectors.DefaultSelector()
        self.conns: dict[int, _Conn] = {}
        self.sessions: dict[str, _Item] = {}
        self.bfds: dict[int, _Item] = {}  # BFD workers by pid (two during an ISSU)
        self._next_cid = 0
        self._draining: dict[int, _Item] = {}  # BFD stdout fds being drained (orphans)
        self.drained = 0
        self.stopping = False
        self.listener: socket.socket | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def bind(self) -> None:
        d = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(d, exist_ok=True)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            probe.settimeout(1.0)
            probe.connect(self.path)
        except OSError:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)  # a stale path of a dead holder
        else:
            raise HolderError(f"another holder serves {self.path}")
        finally:
            probe.close()
        s.bind(self.path)
        os.chmod(self.path, 0o600)
        s.listen(16)
        s.setblocking(False)
        self.listener = s
        self.sel.register(s, selectors.EVENT_READ, ("listen", None))

    def serve(self, signals: bool = True) -> int:
        """Run until SIGTERM/SIGINT (or ``stopping`` is set and the loop wakes up);
        ``signals`` False: install no handlers (a holder in a thread, for tests)."""
        if signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: setattr(self, "stopping", True))
            signal.signal(signal.SIGPIPE, signal.SIG_IGN)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
        _log("holder.ready", socket=self.path, pid=os.getpid(), grace=self.grace)
        while not self.stopping:
            timeout = self._next_deadline()
            try:
                events = self.sel.select(timeout)
            except InterruptedError:
                continue
            for key, _mask in events:
                kind, obj = key.data
                try:
                    if kind == "listen":
                        self._accept()
                    elif kind == "conn":
                        self._readable(obj)
                    elif kind == "drain":
                        self._drain(key.fd)
                except Exception as exc:  # noqa: BLE001 - the holder must keep going
                    _log("holder.error", logging.ERROR, error=repr(exc))
            self._expire()
        self.close()
        return 0

    def close(self) -> None:
        for it in self._items():
            self._close_item(it)
        self.sessions.clear()
        self.bfds.clear()
        for c in list(self.conns.values()):
            with contextlib.suppress(OSError):
                c.sock.close()
        if self.listener is not None:
            with contextlib.suppress(OSError):
                self.listener.close()
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        _log("holder.exit", pid=os.getpid())

    # -- connections -------------------------------------------------------------------------
    def _accept(self) -> None:
        assert self.listener is not None
        try:
            s, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        s.setblocking(True)
        s.settimeout(2.0)  # answers are small; a stuck client must not stall the holder
        self._next_cid += 1
        c = _Conn(s, self._next_cid)
        self.conns[c.cid] = c
        self.sel.register(s, selectors.EVENT_READ, ("conn", c))

    def _readable(self, c: _Conn) -> None:
        try:
            data, fds, _flags, _addr = socket.recv_fds(c.sock, MAX_MSG, MAX_FDS)
        except (BlockingIOError, InterruptedError, TimeoutError):
            return
        except OSError:
            data, fds = b"", []
        if not data:
            for fd in fds:
                os.close(fd)
            self._gone(c, clean=False)
            return
        try:
            req = json.loads(data)
            if not isinstance(req, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            for fd in fds:
                os.close(fd)
            self._reply(c, {"id": None, "ok": False, "error": f"bad request: {exc}"})
            return
        try:
            self._handle(c, req, fds)
        except HolderError as exc:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._reply(c, {"id": req.get("id"), "ok": False, "error": str(exc)})

    def _reply(self, c: _Conn, msg: dict[str, Any], fds: list[int] | None = None) -> None:
        try:
            raw = json.dumps(msg, separators=(",", ":")).encode()
            if fds:
                socket.send_fds(c.sock, [raw], fds)
            else:
                c.sock.send(raw)
        except OSError as exc:
            _log("holder.reply-failed", logging.WARNING, conn=c.cid, error=str(exc))

    def _gone(self, c: _Conn, clean: bool) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(c.sock)
        with contextlib.suppress(OSError):
            c.sock.close()
        c.alive = False
        self.conns.pop(c.cid, None)
        now = time.monotonic()
        owned = [it for it in self._items() if it.owner is c]
        if clean:
            for it in owned:
                self._remove(it)
            _log("holder.bye", engine=c.engine_id, pid=c.pid, closed=len(owned))
            return
        for it in owned:
            it.orphan_since = now
            if it.key.startswith("bfd/"):
                self._start_drain(it)
        if owned:
            _log("holder.orphaned", level=logging.WARNING, engine=c.engine_id, pid=c.pid,
                 sessions=",".join(sorted(it.key for it in owned if not it.key.startswith("bfd/"))),
                 bfd=",".join(sorted(it.key for it in owned if it.key.startswith("bfd/"))),
                 grace=self.grace)

    # -- items -------------------------------------------------------------------------------
    def _items(self) -> list[_Item]:
        return list(self.sessions.values()) + list(self.bfds.values())

    def _close_item(self, it: _Item) -> None:
        self._stop_drain(it)
        for fd in it.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        it.fds = []

    def _remove(self, it: _Item) -> None:
        self._close_item(it)
        pid = it.meta.get("pid")
        if it.key.startswith("bfd/"):
            if self.bfds.get(pid) is it:
                del self.bfds[pid]
        elif self.sessions.get(it.key) is it:
            del self.sessions[it.key]

    def _next_deadline(self) -> float | None:
        ds = [it.orphan_since + self.grace for it in self._items() if it.orphan_since is not None]
        if not ds:
            return None
        return max(0.0, min(ds) - time.monotonic())

    def _expire(self) -> None:
        now = time.monotonic()
        for it in self._items():
            if it.orphan_since is not None and now >= it.orphan_since + self.grace:
                _log("holder.expired", level=logging.WARNING, key=it.key,
                     engine=it.owner.engine_id, orphan_for=round(now - it.orphan_since, 1))
                self._remove(it)

    def _start_drain(self, it: _Item) -> None:
        """An orphaned BFD worker keeps writing events: read them away so it never
        blocks on a full pipe (the new engine asks for the sessions' state instead)."""
        if len(it.fds) < 2 or it.fds[1] in self._draining:
            return
        fd = it.fds[1]
        os.set_blocking(fd, False)
        self._draining[fd] = it
        self.sel.register(fd, selectors.EVENT_READ, ("drain", None))

    def _stop_drain(self, it: _Item) -> None:
        for fd in it.fds[1:2]:
            if self._draining.pop(fd, None) is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self.sel.unregister(fd)
                with contextlib.suppress(OSError):
                    os.set_blocking(fd, True)

    def _drain(self, fd: int) -> None:
        try:
            chunk = os.read(fd, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:  # the worker exited
            it = self._draining.get(fd)
            if it is not None:
                _log("holder.bfd-exited", level=logging.WARNING, pid=it.meta.get("pid"))
                self._remove(it)
            return
        self.drained += len(chunk)

    # -- requests ----------------------------------------------------------------------------
    def _owned_or_orphan(self, c: _Conn, it: _Item) -> bool:
        return it.owner is c or not it.owner.alive

    def _handle(self, c: _Conn, req: dict[str, Any], fds: list[int]) -> None:
        op = req.get("op")
        rid = req.get("id")

        def need_fds(n: int) -> None:
            if len(fds) != n:
                raise HolderError(f"{op}: needs {n} descriptor(s), got {len(fds)}")

        if op == "hello":
            need_fds(0)
            c.engine_id = str(req.get("engine-id") or "")
            c.pid = int(req.get("pid") or 0)
            orphans = [it for it in self.sessions.values() if not it.owner.alive]
            bfd_orphans = [it for it in self.bfds.values() if not it.owner.alive]
            self._reply(c, {"id": rid, "ok": True, "pid": os.getpid(),
                            "orphans": sorted(it.key for it in orphans),
                            "previous": sorted({(it.owner.engine_id, it.owner.pid)
                                                for it in orphans + bfd_orphans}),
                            "bfd-orphan": bool(bfd_orphans)})
            _log("holder.hello", engine=c.engine_id, pid=c.pid, orphans=len(orphans))
        elif op == "put":
            need_fds(1)
            key = _key(req)
            old = self.sessions.get(key)
            if old is not None and not self._owned_or_orphan(c, old):
                raise HolderError(f"put {key}: held for engine {old.owner.engine_id!r}, which is alive")
            if old is not None:
                self._close_item(old)
            self.sessions[key] = _Item(key, fds, dict(req.get("meta") or {}), c)
            self._reply(c, {"id": rid, "ok": True, "replaced": old is not None})
        elif op == "meta":
            need_fds(0)
            it = self.sessions.get(_key(req))
            if it is None or it.owner is not c:
                raise HolderError(f"meta {req.get('key')}: not held for this connection")
            it.meta = dict(req.get("meta") or {})
            self._reply(c, {"id": rid, "ok": True})
        elif op == "drop":
            need_fds(0)
            key = _key(req)
            it = self.sessions.get(key)
            dropped = False
            if it is not None:
                if not self._owned_or_orphan(c, it):
                    raise HolderError(f"drop {key}: held for engine {it.owner.engine_id!r}, which is alive")
                self._remove(it)
                dropped = True
            self._reply(c, {"id": rid, "ok": True, "dropped": dropped})
        elif op == "take":
            need_fds(0)
            keys = req.get("keys")
            items = [it for it in self.sessions.values()
                     if (keys is None or it.key in keys) and self._owned_or_orphan(c, it)]
            for it in items:
                it.owner, it.orphan_since = c, None
                self._reply(c, {"id": rid, "ok": True, "more": True, "key": it.key,
                                "meta": it.meta}, it.fds)
            self._reply(c, {"id": rid, "ok": True, "more": False, "count": len(items)})
            _log("holder.taken", engine=c.engine_id, pid=c.pid, sessions=len(items))
        elif op == "bfd-put":
            need_fds(2)
            pid = int(req.get("pid") or 0)
            if pid <= 0:
                raise HolderError("bfd-put: the worker's pid is needed")
            old = self.bfds.get(pid)
            if old is not None and not self._owned_or_orphan(c, old):
                raise HolderError(f"bfd-put: worker {pid} is held for a live engine")
            if old is not None:
                self._remove(old)
            self.bfds[pid] = _Item(f"bfd/{pid}", fds, {"pid": pid}, c)
            self._reply(c, {"id": rid, "ok": True})
        elif op == "bfd-take":
            need_fds(0)
            cands = [it for it in self.bfds.values() if it.fds and not it.owner.alive]
            if not cands:
                self._reply(c, {"id": rid, "ok": True, "pid": None})
                return
            it = max(cands, key=lambda i: i.put_at)  # the dead engine's newest worker
            self._stop_drain(it)
            it.owner, it.orphan_since = c, None
            self._reply(c, {"id": rid, "ok": True, "pid": it.meta.get("pid")}, it.fds)
        elif op == "bfd-drop":
            need_fds(0)
            pid = req.get("pid")
            for it in list(self.bfds.values()):
                if (pid is None or it.meta.get("pid") == pid) and it.owner is c:
                    self._remove(it)
            self._reply(c, {"id": rid, "ok": True})
        elif op == "status":
            need_fds(0)
            now = time.monotonic()
            self._reply(c, {"id": rid, "ok": True, "pid": os.getpid(), "grace": self.grace,
                            "sessions": [{"key": it.key, "engine-id": it.owner.engine_id,
                                          "engine-pid": it.owner.pid, "orphan": not it.owner.alive,
                                          "orphan-for": None if it.orphan_since is None
                                          else round(now - it.orphan_since, 3)}
                                         for it in sorted(self.sessions.values(), key=lambda i: i.key)],
                            "bfd": [{"pid": it.meta.get("pid"), "engine-id": it.owner.engine_id,
                                     "orphan": not it.owner.alive} for it in self.bfds.values()],
                            "engines": [{"engine-id": x.engine_id, "pid": x.pid}
                                        for x in self.conns.values()],
                            "drained": self.drained})
        elif op == "bye":
            need_fds(0)
            self._reply(c, {"id": rid, "ok": True})
            self._gone(c, clean=True)
        else:
            raise HolderError(f"unknown op {op!r}")


def _key(req: dict[str, Any]) -> str:
    key = req.get("key")
    if not isinstance(key, str) or not key:
        raise HolderError("a non-empty key is needed")
    return key


# -- the client ------------------------------------------------------------------------------
class HolderClient:
    """Blocking client of one holder connection (use it from one thread; the engine calls
    it from a worker thread, never from its event loop). The connection's life is the
    ownership: closing it without ``bye`` leaves what it put as orphans."""

    def __init__(self, path: str, timeout: float = CONNECT_TIMEOUT) -> None:
        self.path = path
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self._ids = 0
        self.holder_pid: int | None = None

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.settimeout(self.timeout)
        try:
            s.connect(self.path)
        except OSError:
            s.close()
            raise
        self.sock = s

    @property
    def connected(self) -> bool:
        return self.sock is not None

    def alive(self) -> bool:
        """False (and closed) when the holder went away: it never speaks unasked, so a
        readable connection means end of file."""
        import select

        if self.sock is None:
            return False
        try:
            r, _w, _x = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            r = [self.sock]
        if r:
            self.close()
            return False
        return True

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
            self.sock = None

    def __enter__(self) -> HolderClient:
        if self.sock is None:
            self.connect()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _send(self, op: str, fds: list[int] | tuple[int, ...] = (), **kw: Any) -> int:
        if self.sock is None:
            raise HolderError(f"not connected to the holder at {self.path}")
        self._ids += 1
        raw = json.dumps({"op": op, "id": self._ids, **kw}, separators=(",", ":")).encode()
        try:
            if fds:
                socket.send_fds(self.sock, [raw], list(fds))
            else:
                self.sock.send(raw)
        except OSError as exc:
            self.close()
            raise HolderError(f"holder {self.path}: {op}: {exc}") from exc
        return self._ids

    def _recv(self, rid: int) -> tuple[dict[str, Any], list[int]]:
        assert self.sock is not None
        for _ in range(10_000):  # bounded: skips stale answers only
            try:
                data, fds, _f, _a = socket.recv_fds(self.sock, MAX_MSG, MAX_FDS)
            except OSError as exc:
                self.close()
                raise HolderError(f"holder {self.path}: no answer: {exc}") from exc
            if not data:
                self.close()
                raise HolderError(f"holder {self.path} closed the connection")
            msg = json.loads(data)
            if msg.get("id") == rid:
                if not msg.get("ok"):
                    for fd in fds:
                        os.close(fd)
                    raise HolderError(str(msg.get("error")))
                return msg, fds
            for fd in fds:
                os.close(fd)
        raise HolderError("holder: too many unrelated answers")

    def call(self, op: str, fds: list[int] | tuple[int, ...] = (), **kw: Any) -> dict[str, Any]:
        msg, got = self._recv(self._send(op, fds, **kw))
        for fd in got:  # only take/bfd-take pass descriptors back (see those methods)
            os.close(fd)
        return msg

    # -- operations --------------------------------------------------------------------------
    def hello(self, engine_id: str, pid: int | None = None) -> dict[str, Any]:
        r = self.call("hello", **{"engine-id": engine_id, "pid": pid or os.getpid()})
        self.holder_pid = r.get("pid")
        return r

    def put(self, key: str, fd: int, meta: dict[str, Any]) -> dict[str, Any]:
        return self.call("put", [fd], key=key, meta=meta)

    def meta(self, key: str, meta: dict[str, Any]) -> dict[str, Any]:
        return self.call("meta", key=key, meta=meta)

    def drop(self, key: str) -> bool:
        return bool(self.call("drop", key=key).get("dropped"))

    def take(self, keys: list[str] | None = None) -> dict[str, tuple[socket.socket, dict[str, Any]]]:
        """The orphaned sessions (or ``keys`` of them): {key: (socket, meta)}. The holder
        keeps its own duplicates, now owned by this connection."""
        rid = self._send("take", **({} if keys is None else {"keys": list(keys)}))
        out: dict[str, tuple[socket.socket, dict[str, Any]]] = {}
        try:
            for _ in range(100_000):
                msg, fds = self._recv(rid)
                if not msg.get("more"):
                    for fd in fds:
                        os.close(fd)
                    return out
                if len(fds) != 1:
                    for fd in fds:
                        os.close(fd)
                    raise HolderError(f"take {msg.get('key')}: {len(fds)} descriptors")
                out[msg["key"]] = (socket.socket(fileno=fds[0]), msg.get("meta") or {})
        except BaseException:
            for s, _m in out.values():
                s.close()  # the holder keeps its own duplicate: closing ours sends nothing
            raise
        raise HolderError("take: no final answer")

    def bfd_put(self, pid: int, stdin_fd: int, stdout_fd: int) -> None:
        self.call("bfd-put", [stdin_fd, stdout_fd], pid=pid)

    def bfd_take(self) -> tuple[int, int, int] | None:
        """(pid, stdin write fd, stdout read fd) of the held BFD worker, or None."""
        msg, fds = self._recv(self._send("bfd-take"))
        if msg.get("pid") is None or len(fds) != 2:
            for fd in fds:
                os.close(fd)
            return None
        return int(msg["pid"]), fds[0], fds[1]

    def bfd_drop(self, pid: int | None = None) -> None:
        self.call("bfd-drop", **({} if pid is None else {"pid": pid}))

    def status(self) -> dict[str, Any]:
        return self.call("status")

    def bye(self) -> None:
        try:
            self.call("bye")
        finally:
            self.close()


def query(path: str, timeout: float = 2.0) -> dict[str, Any] | None:
    """The holder's status, or None when nobody serves ``path``."""
    try:
        with HolderClient(path, timeout) as c:
            return c.status()
    except (OSError, HolderError):
        return None


def spawn(path: str, grace: float = DEFAULT_GRACE, log_path: str | None = None,
          wait: float = CONNECT_TIMEOUT) -> int:
    """Start a holder for ``path`` as a detached process (its own session: it survives the
    caller) unless one already answers there; returns its pid."""
    import subprocess

    st = query(path)
    if st is not None:
        return int(st["pid"])
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "appliance.nsr.holder", "--socket", path, "--grace", str(grace)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
            close_fds=True, cwd="/",
        )
    finally:
        if log_path:
            out.close()  # type: ignore[union-attr]
    end = time.monotonic() + wait
    while time.monotonic() < end:
        st = query(path, timeout=0.5)
        if st is not None:
            return int(st["pid"])
        if proc.poll() is not None:
            raise HolderError(f"the holder exited with {proc.returncode} at start")
        time.sleep(0.02)
    raise HolderError(f"the holder did not answer at {path} within {wait} s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="fcr-nsr-holder", description=__doc__.split("\n\n")[0])
    ap.add_argument("--socket", required=True, help="Unix socket path to serve")
    ap.add_argument("--grace", type=float, default=DEFAULT_GRACE,
                    help="seconds an orphaned session waits for a new engine (default %(default)s)")
    ap.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = ap.parse_args(argv)
    from ..log import setup_logging

    setup_logging(args.log_level)
    h = Holder(args.socket, args.grace)
    try:
        h.bind()
    except (HolderError, OSError) as exc:
        print(f"fcr-nsr-holder: {exc}", file=sys.stderr)
        return 1 if not isinstance(exc, OSError) or exc.errno != errno.EADDRINUSE else 3
    return h.serve()


if __name__ == "__main__":
    sys.exit(main())
