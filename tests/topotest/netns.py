"""Network namespaces and veth links for interop tests.

Every namespace is named ``fcrt-<owner pid>x<random>-<host>``: unique per test run, and
recognisable as stale once the owner pid is gone (see `cleanup_stale_namespaces`).

Cleanup guarantees: `Topology.close()` (context-manager exit, pytest fixture teardown and an
atexit safety net) stops every process started through `Host.popen` by pid (SIGTERM, then
SIGKILL after a bound), then SIGKILLs whatever `ip netns pids` still lists, then deletes the
namespace (which removes its veth ends, and the peer ends with them, and its nftables rules).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path

NS_PREFIX = "fcrt-"
_NS_RE = re.compile(r"^fcrt-(\d+)x[0-9a-f]+-")
CLONE_NEWNET = 0x40000000
STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL

Cmd = str | Sequence[str | os.PathLike]

_live_topologies: weakref.WeakSet[Topology] = weakref.WeakSet()


def _argv(cmd: Cmd) -> list[str]:
    if isinstance(cmd, str):
        return shlex.split(cmd)
    return [os.fspath(c) for c in cmd]


def _ip(*args: str, check: bool = True, timeout: float = 10.0) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ip", *args], capture_output=True, text=True, check=check, timeout=timeout
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def netns_list() -> list[str]:
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _kill_ns_pids(ns: str) -> None:
    """SIGKILL whatever still runs in namespace ``ns`` (bounded: 5 rounds)."""
    for _ in range(5):
        out = _ip("netns", "pids", ns, check=False).stdout.split()
        pids = [int(p) for p in out if p.isdigit() and int(p) != os.getpid()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def delete_namespace(ns: str) -> None:
    _kill_ns_pids(ns)
    for _ in range(5):
        if _ip("netns", "delete", ns, check=False).returncode == 0 or ns not in netns_list():
            return
        time.sleep(0.2)


def cleanup_stale_namespaces(include_own: bool = False) -> list[str]:
    """Delete ``fcrt-*`` namespaces whose owning test process is gone.

    Names carry the owner's pid, so parallel runs do not delete each other's namespaces.
    With ``include_own`` the current process's namespaces go too (end of session).
    """
    removed = []
    for ns in netns_list():
        if not ns.startswith(NS_PREFIX):
            continue
        m = _NS_RE.match(ns)
        owner = int(m.group(1)) if m else None
        if owner is not None and _pid_alive(owner) and not (include_own and owner == os.getpid()):
            continue
        delete_namespace(ns)
        removed.append(ns)
    return removed


class CommandError(subprocess.CalledProcessError):
    def __str__(self) -> str:
        return f"{super().__str__()}\nstdout: {self.stdout!r}\nstderr: {self.stderr!r}"


_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


class Host:
    """One network namespace."""

    def __init__(self, topo: Topology, name: str, ns: str) -> None:
        self.topo = topo
        self.name = name
        self.ns = ns
        self.procs: list[subprocess.Popen] = []
        self._if_count = 0
        self._log_files: list = []

    def __repr__(self) -> str:
        return f"Host({self.name!r}, ns={self.ns!r})"

    # -- commands ---------------------------------------------------------------------------
    def wrap(self, cmd: Cmd) -> list[str]:
        return ["ip", "netns", "exec", self.ns, *_argv(cmd)]

    def run(
        self, cmd: Cmd, check: bool = True, timeout: float = 20.0, input: str | None = None
    ) -> subprocess.CompletedProcess:
        """Run ``cmd`` in the namespace to completion; stdout/stderr captured as text."""
        res = subprocess.run(
            self.wrap(cmd), capture_output=True, text=True, timeout=timeout, input=input
        )
        if check and res.returncode != 0:
            raise CommandError(res.returncode, res.args, output=res.stdout, stderr=res.stderr)
        return res

    def popen(self, cmd: Cmd, log: os.PathLike | str | None = None, **kw) -> subprocess.Popen:
        """Start ``cmd`` in the namespace; the process is stopped at teardown (by pid).

        ``ip netns exec`` execs the command, so the pid is the command's own. With ``log``,
        stdout and stderr go to that file (unless given in ``kw``).
        """
        if log is not None:
            fh = open(log, "ab")  # noqa: SIM115 - closed in stop_all
            self._log_files.append(fh)
            kw.setdefault("stdout", fh)
            kw.setdefault("stderr", subprocess.STDOUT)
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("start_new_session", True)
        proc = subprocess.Popen(self.wrap(cmd), **kw)
        self.procs.append(proc)
        return proc

    def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM) -> socket.socket:
        """A socket created inside this namespace (usable from the test process).

        A helper thread enters the namespace (setns only affects the calling thread),
        creates the socket and exits; the socket keeps its namespace for life.
        """
        result: dict = {}

        def target() -> None:
            try:
                with open(f"/var/run/netns/{self.ns}") as f:
                    _setns(f.fileno())
                result["sock"] = socket.socket(family, type)
            except BaseException as exc:  # noqa: BLE001 - re-raised in caller
                result["exc"] = exc

        t = threading.Thread(target=target, name=f"setns-{self.ns}", daemon=True)
        t.start()
        t.join(10)
        if "exc" in result:
            raise result["exc"]
        if "sock" not in result:
            raise TimeoutError("could not create a socket in namespace " + self.ns)
        return result["sock"]

    # -- processes --------------------------------------------------------------------------
    @staticmethod
    def stop_process(proc: subprocess.Popen, grace: float = STOP_GRACE) -> int | None:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL. Returns the exit code."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)  # a frozen process cannot handle SIGTERM
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(grace)
        return proc.returncode

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            self.stop_process(proc)
        self.procs.clear()
        for fh in self._log_files:
            with contextlib.suppress(OSError):
                fh.close()
        self._log_files.clear()

    def pids(self) -> list[int]:
        out = _ip("netns", "pids", self.ns, check=False).stdout.split()
        return [int(p) for p in out if p.isdigit()]

    @staticmethod
    def freeze(pid: int) -> None:
        os.kill(pid, signal.SIGSTOP)

    @staticmethod
    def thaw(pid: int) -> None:
        os.kill(pid, signal.SIGCONT)

    # -- links ------------------------------------------------------------------------------
    def next_ifname(self) -> str:
        name = f"eth{self._if_count}"
        self._if_count += 1
        return name

    def cut_link(self, ifname: str) -> None:
        self.run(["ip", "link", "set", "dev", ifname, "down"])

    def restore_link(self, ifname: str) -> None:
        self.run(["ip", "link", "set", "dev", ifname, "up"])

    def wait_oper_up(self, ifname: str, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / 0.05) + 1):
            res = self.run(["cat", f"/sys/class/net/{ifname}/operstate"], check=False)
            if res.stdout.strip() == "up" or time.monotonic() > deadline:
                return
            time.sleep(0.05)

    def sysctl(self, key: str, value: str | int) -> None:
        self.run(["sysctl", "-q", "-w", f"{key}={value}"])

    def add_address(self, ifname: str, addr: str) -> None:
        cmd = ["ip", "addr", "add", addr, "dev", ifname]
        if ":" in addr:
            cmd.append("nodad")
        self.run(cmd)

    def destroy(self) -> None:
        self.stop_all()
        delete_namespace(self.ns)


class Topology:
    """Context manager owning a set of namespaces (hosts) and the veth links between them."""

    def __init__(self, tag: str | None = None) -> None:
        self.tag = tag or f"{os.getpid()}x{secrets.token_hex(2)}"
        self.hosts: dict[str, Host] = {}
        self.links: list[tuple[Host, str, Host, str]] = []
        self._closed = False
        _live_topologies.add(self)

    def __enter__(self) -> Topology:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def add_host(self, name: str) -> Host:
        if name in self.hosts:
            raise ValueError(f"host {name!r} exists")
        if not re.fullmatch(r"[a-z0-9]{1,16}", name):
            raise ValueError("host names: 1-16 of [a-z0-9]")
        ns = f"{NS_PREFIX}{self.tag}-{name}"
        _ip("netns", "add", ns)
        host = Host(self, name, ns)
        self.hosts[name] = host
        try:
            host.run(["ip", "link", "set", "dev", "lo", "up"])
            # v6 usable at once on every interface created later
            for key in ("net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad"):
                host.sysctl(key, 0)
            for key in ("net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6"):
                host.sysctl(key, 0)
        except BaseException:
            self.hosts.pop(name)
            host.destroy()
            raise
        return host

    def link(
        self,
        host_a: Host,
        host_b: Host,
        addr_a: Sequence[str] = (),
        addr_b: Sequence[str] = (),
    ) -> tuple[str, str]:
        """A veth pair between two hosts; returns (ifname on a, ifname on b).

        The veth is created directly inside the namespaces, so its names never exist in the
        root namespace (no collisions between parallel runs).
        """
        if_a, if_b = host_a.next_ifname(), host_b.next_ifname()
        _ip(
            "link", "add", if_a, "netns", host_a.ns, "type", "veth",
            "peer", "name", if_b, "netns", host_b.ns,
        )
        self.links.append((host_a, if_a, host_b, if_b))
        for host, ifname, addrs in ((host_a, if_a, addr_a), (host_b, if_b, addr_b)):
            host.sysctl(f"net.ipv6.conf.{ifname}.accept_dad", 0)
            for addr in addrs:
                host.add_address(ifname, addr)
            host.run(["ip", "link", "set", "dev", ifname, "up"])
        for host, ifname in ((host_a, if_a), (host_b, if_b)):
            host.wait_oper_up(ifname)
        return if_a, if_b

    def cut_link(self, host: Host, ifname: str) -> None:
        host.cut_link(ifname)

    def restore_link(self, host: Host, ifname: str) -> None:
        host.restore_link(ifname)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        errors = []
        for host in reversed(list(self.hosts.values())):
            try:
                host.stop_all()
            except Exception as exc:  # noqa: BLE001 - keep cleaning
                errors.append(exc)
        for host in reversed(list(self.hosts.values())):
            try:
                delete_namespace(host.ns)
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
        self.hosts.clear()
        _live_topologies.discard(self)
        if errors:
            raise errors[0]


@atexit.register
def _atexit_cleanup() -> None:
    for topo in list(_live_topologies):
        with contextlib.suppress(Exception):
            topo.close()


def netns_usable() -> tuple[bool, str]:
    """(True, "") when this process can create namespaces and veths; else (False, reason)."""
    if os.geteuid() != 0:
        return False, "interop tests need root (network namespaces, veth)"
    probe = f"{NS_PREFIX}{os.getpid()}x{secrets.token_hex(2)}-probe"
    try:
        res = _ip("netns", "add", probe, check=False)
        if res.returncode != 0:
            return False, f"`ip netns add` failed: {res.stderr.strip()}"
        res = _ip("-n", probe, "link", "add", "p0", "type", "veth", "peer", "name", "p1", check=False)
        if res.returncode != 0:
            return False, f"veth in a namespace failed: {res.stderr.strip()}"
        return True, ""
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"`ip netns` unusable: {exc}"
    finally:
        delete_namespace(probe)


def ensure_dir(path: os.PathLike | str, mode: int = 0o755) -> Path:
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    os.chmod(p, mode)
    return p


__all__ = [
    "Host",
    "Topology",
    "cleanup_stale_namespaces",
    "delete_namespace",
    "ensure_dir",
    "netns_list",
    "netns_usable",
]
