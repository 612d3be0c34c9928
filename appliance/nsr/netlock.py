"""Freeze the traffic of TCP 4-tuples with nftables while a connection is dumped/restored.

While a socket is checkpointed (and until its successor exists) no packet of the
connection may reach the stack (it would change the queues being read, or hit no socket
and draw a RST) and none may leave it (the old socket's retransmissions, a RST for a
packet that found no socket). `NetLock` drops both directions:

    with NetLock([FourTuple("10.0.0.1", 179, "10.0.0.2", 40123)], netns="ns1"):
        state = dump(sock); close_silently(sock); new = restore(state, ...)

Each lock is one table of its own, ``inet fcr_nsr_<id>``, created and deleted by one
atomic nftables transaction each, so concurrent locks never touch each other's rules.
The table is deleted on every exit path; `cleanup_all()` deletes every ``fcr_nsr*`` table
(crash recovery, at start-up). A lock taken by one process can be lifted by another
(`unfreeze(table)`: the new owner of the sessions).

nftables is driven in-process through libnftables (ctypes; about 1 ms a freeze, 0.4 ms an
unfreeze): for a namespace a short-lived thread enters it with setns() and creates the
libnftables context there, so the context's netlink socket, and so every rule, lives in
that namespace and never elsewhere. Without libnftables (or with
``FCR_NFT_BACKEND=exec``) the ``nft`` program is run instead, through ``nsenter --net=``
for a namespace (10-25 ms a call).
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import queue
import re
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

TABLE_PREFIX = "fcr_nsr"
NFT_TIMEOUT = 10.0
PRIORITY = -300  # "raw": before conntrack and any filter


class NetLockError(RuntimeError):
    """nft failed; ``stderr`` is what it said."""

    def __init__(self, action: str, returncode: int, stderr: str) -> None:
        super().__init__(f"netlock: {action}: nft exited {returncode}: {stderr.strip()}")
        self.action = action
        self.returncode = returncode
        self.stderr = stderr


@dataclass(frozen=True)
class FourTuple:
    """A TCP connection seen from our side."""

    local_addr: str
    local_port: int
    remote_addr: str
    remote_port: int

    def __post_init__(self) -> None:
        la = ipaddress.ip_address(self.local_addr)
        ra = ipaddress.ip_address(self.remote_addr)
        if la.version != ra.version:
            raise ValueError("local and remote address of a 4-tuple must share a family")
        for p in (self.local_port, self.remote_port):
            if not isinstance(p, int) or not 0 < p < 65536:
                raise ValueError(f"bad port {p!r}")
        # canonical text (nft wants plain addresses; drop any %scope)
        object.__setattr__(self, "local_addr", str(la))
        object.__setattr__(self, "remote_addr", str(ra))

    @property
    def version(self) -> int:
        return ipaddress.ip_address(self.local_addr).version

    @classmethod
    def of(cls, t: FourTuple | Sequence) -> FourTuple:
        if isinstance(t, FourTuple):
            return t
        la, lp, ra, rp = t
        return cls(str(la).split("%")[0], int(lp), str(ra).split("%")[0], int(rp))


def _elem(t: FourTuple) -> str:
    return f"{t.local_addr} . {t.local_port} . {t.remote_addr} . {t.remote_port}"


def ruleset(table: str, tuples: Iterable[FourTuple | Sequence]) -> str:
    """The nft script that creates ``table`` dropping every packet of ``tuples``."""
    if not re.fullmatch(r"[A-Za-z0-9_]{1,64}", table):
        raise ValueError(f"bad table name {table!r}")
    ts = sorted({FourTuple.of(t) for t in tuples}, key=lambda t: (t.version, _elem(t)))
    if not ts:
        raise ValueError("no 4-tuple to freeze")
    lines = [f"table inet {table} {{"]
    rules_in, rules_out = [], []
    for ver, ip, addr_type in ((4, "ip", "ipv4_addr"), (6, "ip6", "ipv6_addr")):
        elems = [_elem(t) for t in ts if t.version == ver]
        if not elems:
            continue
        lines.append(f"  set frozen{ver} {{")
        lines.append(f"    type {addr_type} . inet_service . {addr_type} . inet_service")
        lines.append(f"    elements = {{ {', '.join(elems)} }}")
        lines.append("  }")
        # set element order: local addr . local port . remote addr . remote port
        rules_in.append(f"    {ip} daddr . tcp dport . {ip} saddr . tcp sport @frozen{ver} "
                        "counter drop")
        rules_out.append(f"    {ip} saddr . tcp sport . {ip} daddr . tcp dport @frozen{ver} "
                         "counter drop")
    for chain, hook, rules in (("input", "input", rules_in), ("output", "output", rules_out)):
        lines.append(f"  chain {chain} {{")
        lines.append(f"    type filter hook {hook} priority {PRIORITY}; policy accept;")
        lines.extend(rules)
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- running nftables, in a namespace -----------------------------------------------------
CLONE_NEWNET = 0x40000000
BACKEND = os.environ.get("FCR_NFT_BACKEND", "auto")  # auto | lib | exec
_T = TypeVar("_T")
_libc = None


def netns_path(netns: str) -> str:
    """A namespace name (``ip netns``) or a path (``/proc/<pid>/ns/net``) as a path."""
    if "/" in netns:
        return netns
    for d in ("/run/netns", "/var/run/netns"):
        if os.path.exists(f"{d}/{netns}"):
            return f"{d}/{netns}"
    return f"/run/netns/{netns}"


def _same_netns(path: str) -> bool:
    """Is the calling thread already in the namespace at ``path``?"""
    try:
        a, b = os.stat(path), os.stat("/proc/thread-self/ns/net")
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def run_in_netns(netns: str | None, fn: Callable[[], _T], timeout: float = NFT_TIMEOUT) -> _T:
    """``fn()`` with the calling thread's network namespace switched to ``netns`` (a name or
    a path; None: where the caller is). setns() moves only the thread that calls it, so a
    short-lived helper thread (about 0.1 ms) enters the namespace and runs ``fn``; what
    ``fn`` creates there (sockets, netlink sockets) stays in that namespace for life.
    ``fn``'s exception is re-raised here; OSError when the namespace cannot be entered."""
    if netns is None:
        return fn()
    path = netns_path(netns)
    if _same_netns(path):
        return fn()
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    result: dict = {}

    def target() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns {netns}: {os.strerror(err)}")
            finally:
                os.close(fd)
            result["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            result["exc"] = exc

    t = threading.Thread(target=target, name=f"netns-{os.path.basename(path)}", daemon=True)
    t.start()
    t.join(timeout)
    if "exc" in result:
        raise result["exc"]
    if "value" not in result:
        if t.is_alive():
            raise TimeoutError(f"no answer within {timeout} s in namespace {netns}")
        raise OSError(f"nothing returned in namespace {netns}")
    return result["value"]


class _LibNftables:
    """libnftables through ctypes. Calls that create or use a context are serialised
    (libnftables keeps some global state); freeing one is left to `_reap`."""

    lock = threading.Lock()

    def __init__(self) -> None:
        lib = ctypes.CDLL("libnftables.so.1", use_errno=True)
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_free.restype = None
        for name in ("nft_ctx_buffer_output", "nft_ctx_buffer_error"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
            getattr(lib, name).restype = ctypes.c_int
        for name in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
            getattr(lib, name).restype = ctypes.c_char_p
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        self.lib = lib

    def context(self, netns: str | None) -> NftContext:
        return NftContext(self, netns)

    def run(self, text: str, netns: str | None) -> tuple[int, str, str]:
        ctx = self.context(netns)
        try:
            return ctx.run(text)
        finally:
            ctx.close()


class NftContext:
    """One libnftables context, created inside ``netns``: its netlink socket is bound to
    that namespace at creation, so every command run on it acts there, from any thread.

    `close` frees it in a background thread: closing an nftables netlink socket makes the
    kernel wait for the deferred release of the socket's last transaction (an RCU grace
    period: 5-25 ms on a loaded machine), and nothing needs to wait for that."""

    def __init__(self, nft: _LibNftables, netns: str | None) -> None:
        self.nft = nft
        self.netns = netns
        lib = nft.lib

        def create() -> int:
            ctx = lib.nft_ctx_new(0)  # NFT_CTX_DEFAULT: opens the netlink socket here
            if not ctx:
                raise OSError(ctypes.get_errno() or 12, "nft_ctx_new failed")
            lib.nft_ctx_buffer_output(ctx)
            lib.nft_ctx_buffer_error(ctx)
            return ctx

        with nft.lock:
            self.ctx: int | None = run_in_netns(netns, create)

    def run(self, text: str) -> tuple[int, str, str]:
        lib = self.nft.lib
        with self.nft.lock:
            if self.ctx is None:
                raise OSError(9, "nftables context closed")
            rc = lib.nft_run_cmd_from_buffer(self.ctx, text.encode())
            out = (lib.nft_ctx_get_output_buffer(self.ctx) or b"").decode(errors="replace")
            err = (lib.nft_ctx_get_error_buffer(self.ctx) or b"").decode(errors="replace")
        return rc, out, err

    def close(self) -> None:
        ctx, self.ctx = self.ctx, None
        if ctx:
            _reap(self.nft, ctx)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001, S110 - interpreter shutdown
            pass


_reaper: dict = {}


def _reap(nft: _LibNftables, ctx: int) -> None:
    """Free ``ctx`` in the reaper thread (one daemon thread, started on first use)."""
    with _reaper.setdefault("lock", threading.Lock()):
        q = _reaper.get("queue")
        if q is None:
            q = _reaper["queue"] = queue.SimpleQueue()

            def loop() -> None:
                for _ in iter(int, 1):  # forever; a daemon thread
                    lib, c = q.get()
                    lib.nft_ctx_free(c)

            threading.Thread(target=loop, name="nft-ctx-reaper", daemon=True).start()
    q.put((nft.lib, ctx))


_lib_state: dict = {}


def _lib() -> _LibNftables | None:
    if BACKEND == "exec":
        return None
    if "lib" not in _lib_state:
        try:
            _lib_state["lib"] = _LibNftables()
        except (OSError, AttributeError) as exc:
            if BACKEND == "lib":
                raise NetLockError("load libnftables", -1, str(exc)) from exc
            _lib_state["lib"] = None
    return _lib_state["lib"]


def _nft_argv(netns: str | None, args: Sequence[str]) -> list[str]:
    """The ``nft`` command line of the fallback (no libnftables): ``nsenter --net=`` for a
    namespace (cheaper than ``ip netns exec``, which also remounts /sys)."""
    cmd = ["nft", *args]
    if netns is None:
        return cmd
    return ["nsenter", f"--net={netns_path(netns)}", *cmd]


def _cmd_text(args: Sequence[str], input: str | None) -> str | None:
    """``nft`` arguments as a libnftables command buffer, or None when only the program
    can run them (options). nft itself joins its arguments with spaces."""
    args = list(args)
    if args == ["-f", "-"]:
        return input or ""
    if input is not None or any(a.startswith("-") for a in args):
        return None
    return " ".join(args)


def nft(args: Sequence[str], netns: str | None = None, input: str | None = None,
        action: str = "nft", check: bool = True,
        ctx: NftContext | None = None) -> subprocess.CompletedProcess:
    """Run nft ``args`` (``["-f", "-"]`` with ``input``: a script) in ``netns`` (or on the
    libnftables context ``ctx``, which belongs to a namespace); answers like
    subprocess.run. NetLockError when it fails and ``check``, or cannot run."""
    lib = _lib()
    text = _cmd_text(args, input) if lib is not None else None
    if text is not None:
        try:
            rc, out, err = ctx.run(text) if ctx is not None else lib.run(text, netns)
        except (OSError, TimeoutError) as exc:
            raise NetLockError(action, -1, str(exc)) from exc
        res = subprocess.CompletedProcess(["nft", *args], rc, out, err)
    else:
        try:
            res = subprocess.run(_nft_argv(netns, args), input=input, capture_output=True,
                                 text=True, timeout=NFT_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise NetLockError(action, -1, str(exc)) from exc
    if check and res.returncode != 0:
        raise NetLockError(action, res.returncode, res.stderr)
    return res


def tables(netns: str | None = None, ctx: NftContext | None = None) -> list[str]:
    """Our tables (``inet fcr_nsr*``) present in ``netns``."""
    out = nft(["list", "tables"], netns, action="list tables", ctx=ctx).stdout
    return [m.group(1) for m in re.finditer(rf"^table inet ({TABLE_PREFIX}\w*)$", out, re.M)]


def cleanup_all(netns: str | None = None) -> list[str]:
    """Delete every table of ours in ``netns`` (after a crash); returns their names."""
    gone = tables(netns)
    if gone:
        nft(["-f", "-"], netns, input="".join(f"delete table inet {t}\n" for t in gone),
            action="cleanup")
    return gone


def unfreeze(table: str, netns: str | None = None, ctx: NftContext | None = None) -> bool:
    """Lift a freeze by its table name (the lock may belong to another process, e.g. the
    old owner of the sessions). True if it was deleted, False if it was already gone;
    NetLockError if it is still there."""
    if not table.startswith(TABLE_PREFIX) or not re.fullmatch(r"[A-Za-z0-9_]{1,64}", table):
        raise ValueError(f"not a freeze table: {table!r}")
    res = nft(["delete", "table", "inet", table], netns, action=f"unfreeze {table}",
              check=False, ctx=ctx)
    if res.returncode == 0:
        return True
    if table in tables(netns, ctx=ctx):
        raise NetLockError(f"unfreeze {table}", res.returncode, res.stderr)
    return False


class NetLock:
    """Context manager: drop every packet of ``tuples`` in and out of ``netns``.

    Entering creates the table atomically (all tuples frozen at once, both directions,
    one nftables transaction); leaving deletes it on every path, errors included. If the
    delete fails while an exception is already propagating, that exception wins and the
    delete error is added as a note; call `cleanup_all` to recover. ``timings`` holds the
    seconds each freeze/unfreeze took.
    """

    def __init__(self, tuples: Iterable[FourTuple | Sequence], netns: str | None = None,
                 table: str | None = None) -> None:
        self.tuples = [FourTuple.of(t) for t in tuples]
        self.netns = netns
        self.table = table or f"{TABLE_PREFIX}_{secrets.token_hex(4)}"
        if not self.table.startswith(TABLE_PREFIX):
            raise ValueError(f"table name must start with {TABLE_PREFIX}")
        self.script = ruleset(self.table, self.tuples)
        self.active = False
        self.timings: dict[str, float] = {}
        self._ctx: NftContext | None = None

    def acquire(self) -> None:
        if self.active:
            return
        t0 = time.monotonic()
        lib = _lib()
        if lib is not None and self._ctx is None:
            # one context from freeze to unfreeze: no context set-up or socket close
            # (see NftContext.close) between them
            try:
                self._ctx = lib.context(self.netns)
            except (OSError, TimeoutError) as exc:
                raise NetLockError(f"freeze {self.table}", -1, str(exc)) from exc
        nft(["-f", "-"], self.netns, input=self.script, action=f"freeze {self.table}",
            ctx=self._ctx)
        self.active = True
        self.timings["freeze"] = time.monotonic() - t0

    def release(self) -> None:
        if not self.active:
            return
        t0 = time.monotonic()
        unfreeze(self.table, self.netns, ctx=self._ctx)  # already gone: fine
        self.active = False
        self.timings["unfreeze"] = time.monotonic() - t0
        self.close()

    def close(self) -> None:
        """Free the nftables context (the lock itself is not touched)."""
        ctx, self._ctx = self._ctx, None
        if ctx is not None:
            ctx.close()

    def dropped(self) -> dict[str, int]:
        """Packets dropped so far per chain (from the rule counters)."""
        out = nft(["list", "table", "inet", self.table], self.netns, action="counters",
                  ctx=self._ctx).stdout
        counts: dict[str, int] = {}
        chain = None
        for line in out.splitlines():
            m = re.match(r"\s*chain (\w+)", line)
            if m:
                chain = m.group(1)
            m = re.search(r"counter packets (\d+)", line)
            if m and chain:
                counts[chain] = counts.get(chain, 0) + int(m.group(1))
        return counts

    def __enter__(self) -> NetLock:
        self.acquire()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.release()
        except NetLockError as err:
            if exc is None:
                raise
            exc.add_note(str(err))


def freeze(*tuples: FourTuple | Sequence, netns: str | None = None) -> NetLock:
    """``with freeze((l, lp, r, rp), netns=...):`` — shorthand for NetLock."""
    return NetLock(tuples, netns=netns)


__all__ = ["FourTuple", "NetLock", "NetLockError", "cleanup_all", "freeze", "netns_path",
           "nft", "ruleset", "run_in_netns", "tables", "unfreeze"]
