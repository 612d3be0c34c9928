"""Freeze the traffic of TCP 4-tuples with nftables while a connection is dumped/restored.

While a socket is checkpointed (and until its successor exists) no packet of the
connection may reach the stack (it would change the queues being read, or hit no socket
and draw a RST) and none may leave it (the old socket's retransmissions, a RST for a
packet that found no socket). `NetLock` drops both directions:

    with NetLock([FourTuple("10.0.0.1", 179, "10.0.0.2", 40123)], netns="ns1"):
        state = dump(sock); close_silently(sock); new = restore(state, ...)

Each lock is one table of its own, ``inet fcr_nsr_<id>``, created and deleted by one
atomic ``nft -f`` transaction each, so concurrent locks never touch each other's rules.
The table is deleted on every exit path; `cleanup_all()` deletes every ``fcr_nsr*`` table
(crash recovery, at start-up). Rules live in the network namespace given (``ip netns
exec``), never elsewhere.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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


def _nft_argv(netns: str | None, args: Sequence[str]) -> list[str]:
    cmd = ["nft", *args]
    if netns is None:
        return cmd
    if "/" in netns:
        return ["nsenter", f"--net={netns}", *cmd]
    return ["ip", "netns", "exec", netns, *cmd]


def nft(args: Sequence[str], netns: str | None = None, input: str | None = None,
        action: str = "nft", check: bool = True) -> subprocess.CompletedProcess:
    try:
        res = subprocess.run(_nft_argv(netns, args), input=input, capture_output=True,
                             text=True, timeout=NFT_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetLockError(action, -1, str(exc)) from exc
    if check and res.returncode != 0:
        raise NetLockError(action, res.returncode, res.stderr)
    return res


def tables(netns: str | None = None) -> list[str]:
    """Our tables (``inet fcr_nsr*``) present in ``netns``."""
    out = nft(["list", "tables"], netns, action="list tables").stdout
    return [m.group(1) for m in re.finditer(rf"^table inet ({TABLE_PREFIX}\w*)$", out, re.M)]


def cleanup_all(netns: str | None = None) -> list[str]:
    """Delete every table of ours in ``netns`` (after a crash); returns their names."""
    gone = tables(netns)
    if gone:
        nft(["-f", "-"], netns, input="".join(f"delete table inet {t}\n" for t in gone),
            action="cleanup")
    return gone


class NetLock:
    """Context manager: drop every packet of ``tuples`` in and out of ``netns``.

    Entering creates the table atomically (all tuples frozen at once, both directions);
    leaving deletes it on every path, errors included. If the delete fails while an
    exception is already propagating, that exception wins and the delete error is added
    as a note; call `cleanup_all` to recover.
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

    def acquire(self) -> None:
        if self.active:
            return
        nft(["-f", "-"], self.netns, input=self.script, action=f"freeze {self.table}")
        self.active = True

    def release(self) -> None:
        if not self.active:
            return
        res = nft(["delete", "table", "inet", self.table], self.netns,
                  action=f"unfreeze {self.table}", check=False)
        if res.returncode != 0 and self.table in tables(self.netns):
            raise NetLockError(f"unfreeze {self.table}", res.returncode, res.stderr)
        self.active = False

    def dropped(self) -> dict[str, int]:
        """Packets dropped so far per chain (from the rule counters)."""
        out = nft(["list", "table", "inet", self.table], self.netns, action="counters").stdout
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


__all__ = ["FourTuple", "NetLock", "NetLockError", "cleanup_all", "freeze", "ruleset",
           "tables"]
