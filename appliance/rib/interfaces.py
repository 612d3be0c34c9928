"""Interfaces: links and addresses read by netlink and kept current by monitoring, and the
ietf-interfaces / ietf-ip configuration applied by netlink.

Address ownership rule (docs/rib.md):
- addresses we add carry IFA_PROTO = our protocol number (196 by default), so a restarted
  engine recognises them;
- an address of ours that is no longer configured is removed;
- a foreign address (any other IFA_PROTO) is removed only when the configuration owns that
  interface and that family: the interface is listed and has an ``ietf-ip:ipv4`` (resp.
  ``ietf-ip:ipv6``) container. Link-local IPv6 (fe80::/10) and host-scope addresses are never
  removed. Interfaces not listed in the configuration are never touched.
- ``enabled`` sets the link up or down, on listed interfaces only.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from . import netlink


class InterfaceConfigError(ValueError):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True)
class InterfaceConfig:
    name: str
    enabled: bool = True
    ipv4: tuple[tuple[str, int], ...] | None = None  # None: family not owned by config
    ipv6: tuple[tuple[str, int], ...] | None = None


def parse_interfaces(data: dict | None) -> tuple[InterfaceConfig, ...]:
    """``{"ietf-interfaces:interfaces": {...}}`` or the inner object -> InterfaceConfigs."""
    if not data:
        return ()
    base = "/ietf-interfaces:interfaces"
    inner = data.get("ietf-interfaces:interfaces", data)
    if not isinstance(inner, dict):
        raise InterfaceConfigError(base, "expected an object")
    items = inner.get("interface", [])
    if not isinstance(items, list):
        raise InterfaceConfigError(f"{base}/interface", "expected a list")
    out = []
    seen = set()
    for i, item in enumerate(items):
        path = f"{base}/interface[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InterfaceConfigError(f"{path}/name", "missing interface name")
        name = item["name"]
        path = f"{base}/interface[name='{name}']"
        if name in seen:
            raise InterfaceConfigError(path, "duplicate interface")
        seen.add(name)
        enabled = item.get("enabled", True)
        if not isinstance(enabled, bool):
            raise InterfaceConfigError(f"{path}/enabled", "expected a boolean")
        fams = {}
        for fam, mod in ((4, "ietf-ip:ipv4"), (6, "ietf-ip:ipv6")):
            cont = item.get(mod)
            if cont is None:
                fams[fam] = None
                continue
            addrs = []
            for j, a in enumerate(cont.get("address", [])):
                apath = f"{path}/{mod}/address[{j}]"
                try:
                    ip = ipaddress.ip_address(a["ip"])
                    plen = int(a["prefix-length"])
                except (KeyError, TypeError, ValueError) as exc:
                    raise InterfaceConfigError(apath, f"bad address: {exc}") from None
                if ip.version != fam or not 0 <= plen <= (32 if fam == 4 else 128):
                    raise InterfaceConfigError(apath, f"not an IPv{fam} address/length")
                addrs.append((str(ip), plen))
            fams[fam] = tuple(addrs)
        out.append(InterfaceConfig(name, enabled, fams[4], fams[6]))
    return tuple(out)


@dataclass
class Link:
    index: int
    name: str
    flags: int
    addresses: dict = field(default_factory=dict)  # (fam, addr, plen) -> (scope, proto)

    @property
    def up(self) -> bool:
        return bool(self.flags & netlink.IFF_UP) and bool(self.flags & netlink.IFF_LOWER_UP)


class Interfaces:
    """Links and addresses of one namespace, kept current by a monitor thread.

    ``on_change()`` is called (from the monitor thread) after each batch of events."""

    def __init__(self, netns: str | None = None,
                 on_change: Callable[[], None] | None = None) -> None:
        self.netns = netns
        self.on_change = on_change
        self.links: dict[int, Link] = {}
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mon: socket.socket | None = None

    def start(self) -> None:
        groups = netlink.RTMGRP_LINK | netlink.RTMGRP_IPV4_IFADDR | netlink.RTMGRP_IPV6_IFADDR
        self._mon = netlink.open_socket(self.netns, groups=groups)  # subscribe before the dump
        self._mon.settimeout(0.5)
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="fcr-ifmon", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self._mon is not None:
            self._mon.close()
            self._mon = None

    def refresh(self) -> None:
        sock = netlink.RouteSocket(self.netns, timeout=10)
        try:
            links = {}
            for typ, body in sock.dump(netlink.RTM_GETLINK, None):
                if typ == netlink.RTM_NEWLINK and (r := netlink.parse_link(body)):
                    links[r[0]] = Link(r[0], r[1], r[2])
            for typ, body in sock.dump(netlink.RTM_GETADDR, None):
                if typ == netlink.RTM_NEWADDR and (a := netlink.parse_addr(body)):
                    fam, addr, plen, index, scope, proto = a
                    if index in links:
                        links[index].addresses[(fam, addr, plen)] = (scope, proto)
        finally:
            sock.close()
        with self.lock:
            self.links = links

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._mon.recv(1 << 16)
            except TimeoutError:
                continue
            except OSError as exc:
                if exc.errno == 105:  # ENOBUFS: events lost, read everything again
                    self.refresh()
                    self._notify()
                    continue
                return
            changed = False
            with self.lock:
                for typ, _f, _s, body in netlink.iter_messages(data):
                    changed |= self._event(typ, body)
            if changed:
                self._notify()

    def _notify(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def _event(self, typ: int, body) -> bool:
        if typ == netlink.RTM_NEWLINK and (r := netlink.parse_link(body)):
            link = self.links.get(r[0])
            if link is None:
                self.links[r[0]] = Link(r[0], r[1], r[2])
            else:
                link.name, link.flags = r[1], r[2]
            return True
        if typ == netlink.RTM_DELLINK and (r := netlink.parse_link(body)):
            return self.links.pop(r[0], None) is not None
        if typ in (netlink.RTM_NEWADDR, netlink.RTM_DELADDR) and (a := netlink.parse_addr(body)):
            fam, addr, plen, index, scope, proto = a
            link = self.links.get(index)
            if link is None:
                return False
            if typ == netlink.RTM_NEWADDR:
                link.addresses[(fam, addr, plen)] = (scope, proto)
            else:
                link.addresses.pop((fam, addr, plen), None)
            return True
        return False

    # -- queries (copies, safe from any thread) --------------------------------------------
    def snapshot(self) -> dict[int, Link]:
        with self.lock:
            return {i: Link(lk.index, lk.name, lk.flags, dict(lk.addresses))
                    for i, lk in self.links.items()}


def apply_interfaces(configs: tuple[InterfaceConfig, ...], netns: str | None = None,
                     protocol: int = 196) -> dict[str, list[str]]:
    """Converge links and addresses to ``configs`` (ownership rule in the module docstring).

    Returns ``{interface: [errors or actions]}``: a missing interface or a refused change is
    reported, the rest still applied."""
    from pyroute2 import IPRoute

    report: dict[str, list[str]] = {}
    ipr = IPRoute(netns=netns) if netns else IPRoute()
    try:
        current: dict[str, tuple[int, int, dict]] = {}
        for link in ipr.get_links():
            current[link.get("IFLA_IFNAME")] = (link["index"], link["flags"], {})
        by_index = {v[0]: k for k, v in current.items()}
        for a in ipr.get_addr():
            name = by_index.get(a["index"])
            if name is None:
                continue
            fam = 4 if a["family"] == socket.AF_INET else 6
            addr = a.get("IFA_LOCAL") or a.get("IFA_ADDRESS")
            current[name][2][(fam, str(ipaddress.ip_address(addr)), a["prefixlen"])] = (
                a["scope"], a.get("IFA_PROTO") or 0)
        # ours on interfaces that are no longer configured at all: remove them
        configured = {c.name for c in configs}
        for name, (index, _flags, addrs) in current.items():
            if name in configured:
                continue
            for (_fam, addr, plen), (_scope, proto) in addrs.items():
                if proto == protocol:
                    _addr_op(ipr, "del", index, addr, plen, protocol, report, name)
        for cfg in configs:
            actions = report.setdefault(cfg.name, [])
            if cfg.name not in current:
                actions.append("error: no such interface")
                continue
            index, flags, addrs = current[cfg.name]
            for fam, wanted in ((4, cfg.ipv4), (6, cfg.ipv6)):
                want = set() if wanted is None else {(fam, a, p) for a, p in wanted}
                for k, (scope, proto) in addrs.items():
                    if k[0] != fam or k in want:
                        continue
                    ours = proto == protocol
                    owned = wanted is not None and scope == 0 and not (
                        fam == 6 and ipaddress.ip_address(k[1]).is_link_local)
                    if ours or owned:
                        _addr_op(ipr, "del", index, k[1], k[2], protocol, report, cfg.name)
                for k in sorted(want - set(addrs)):
                    _addr_op(ipr, "add", index, k[1], k[2], protocol, report, cfg.name)
            is_up = bool(flags & netlink.IFF_UP)
            if cfg.enabled != is_up:
                try:
                    ipr.link("set", index=index, state="up" if cfg.enabled else "down")
                    actions.append("link " + ("up" if cfg.enabled else "down"))
                except Exception as exc:  # noqa: BLE001 - reported per interface
                    actions.append(f"error: link: {exc}")
    finally:
        ipr.close()
    return report


def _addr_op(ipr, op: str, index: int, addr: str, plen: int, protocol: int,
             report: dict, name: str) -> None:
    kw = {"index": index, "address": addr, "prefixlen": plen}
    if op == "add":
        kw["proto"] = protocol
        if ":" in addr:
            kw["flags"] = 0x02  # IFA_F_NODAD: usable at once, like the rest of the box
    try:
        ipr.addr(op, **kw)
        report.setdefault(name, []).append(f"{op} {addr}/{plen}")
    except Exception as exc:  # noqa: BLE001 - reported per address
        report.setdefault(name, []).append(f"error: {op} {addr}/{plen}: {exc}")
