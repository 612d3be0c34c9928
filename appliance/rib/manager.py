"""The RIB manager: candidates from every origin, selection, next-hop tracking, FIB feed.

Origins and their candidates:
- ``connected``: from interface addresses (netlink dump + monitor, see interfaces.py);
- ``static``, ``controller``: from appliance/static (configured and controller-pushed routes);
- ``bgp``: from the BGP speaker through `update_bgp` (eBGP and iBGP distances);
- any other name through `replace_many` (distance given per item, else 255).

Memory (1M prefixes): a prefix is one int (prefix.py). Per origin and family one dict
``key -> value`` where the value is an interned tuple of `Candidate` (a million BGP routes
with a thousand distinct (next hops, eBGP, MED) share a thousand values). The selection is a
second dict ``key -> Selected`` (interned too) holding the same key objects, and the FIB
keeps a third (``key -> KernelRoute``). Next hops are tracked per gateway address with a
reference count kept per distinct value, not per route.

Selection per prefix: valid candidates only (at least one next hop resolved); lowest
administrative distance, then lowest metric; all candidates equal on both contribute their
resolved next hops (ECMP), sorted, at most ``maximum_paths``. A blackhole wins only when no
equal candidate has a usable next hop.

Next-hop resolution: a gateway without an interface is looked up by longest match in the
selected routes, skipping the prefix being resolved ("not through the route itself"); the
result is the matching route's own forwarding next hops (its gateways, or this gateway on its
interface for connected/interface routes); depth-limited (`MAX_DEPTH`). Whenever selected
routes change, every tracked gateway is looked up again; a gateway whose resolution changed
re-selects the prefixes that use it (bounded rounds) and calls `on_nexthop_change` callbacks.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from typing import NamedTuple

from . import prefix as px
from .config import RoutingConfig
from .netlink import KernelRoute, _nh_sort

MAX_DEPTH = 8
MAX_ROUNDS = 16
ORIGINS = ("connected", "static", "controller", "bgp")


class NextHop(NamedTuple):
    gateway: str | None = None
    interface: str | None = None
    blackhole: bool = False

    def to_dict(self) -> dict:
        d: dict = {}
        if self.gateway is not None:
            d["address"] = self.gateway
        if self.interface is not None:
            d["interface"] = self.interface
        if self.blackhole:
            d["blackhole"] = True
        return d


class Candidate(NamedTuple):
    origin: str
    kind: str  # distance class: connected | static | controller | ebgp | ibgp | <origin>
    distance: int | None  # None: the configured distance of ``kind``
    metric: int
    nexthops: tuple
    tag: int = 0


class Selected(NamedTuple):
    origin: str
    distance: int
    metric: int
    hops: tuple  # ((gateway | None, ifindex), ...); () for a blackhole
    route: KernelRoute | None  # None: nothing for the FIB (connected: the kernel has it)
    depth: int
    blackhole: bool = False


def _norm_nexthop(nh) -> NextHop:
    if isinstance(nh, NextHop):
        gw = nh.gateway
        return NextHop(str(px.ipaddress.ip_address(gw)) if gw else None, nh.interface,
                       nh.blackhole)
    if isinstance(nh, str):
        return NextHop(str(px.ipaddress.ip_address(nh)))
    if isinstance(nh, dict):
        gw = nh.get("address") or nh.get("gateway")
        return NextHop(str(px.ipaddress.ip_address(gw)) if gw else None,
                       nh.get("interface"), bool(nh.get("blackhole", False)))
    if isinstance(nh, tuple):
        return _norm_nexthop(NextHop(*nh))
    raise TypeError(f"bad next hop {nh!r}")


class RibManager:
    """One RIB for IPv4 and IPv6. Not thread-safe by itself: call it from one thread (the
    event loop); interface events from the monitor thread are posted to ``loop`` when given,
    else applied under an internal lock."""

    def __init__(self, config: RoutingConfig | None = None, netns: str | None = None,
                 fib: bool | object = True, interfaces: bool = True,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.config = config or RoutingConfig()
        self.netns = netns
        self.loop = loop
        self._lock = threading.RLock()
        self._tables: dict[str, dict[int, dict[int, tuple]]] = {}
        self._selected: dict[int, dict[int, Selected]] = {4: {}, 6: {}}
        self._lens: dict[int, dict[int, int]] = {4: {}, 6: {}}
        self._lens_sorted: dict[int, list[int]] = {4: [], 6: []}
        self._dirty: dict[int, set[int]] = {4: set(), 6: set()}
        self._fib_changes: dict[int, dict] = {4: {}, 6: {}}
        self._nh: dict[int, dict[str, list]] = {4: {}, 6: {}}  # gw -> [refs, hops, via, depth, int, alt]
        self._vrefs: dict[int, list] = {}  # id(value) -> [count, value, fam]
        self._intern: dict = {}
        self._sel_intern: dict = {}
        self._nh_callbacks: list[Callable] = []
        self._nh_events: list = []
        self._ifindex: dict[str, tuple[int, bool]] = {}
        self._ifname: dict[int, str] = {}
        self._use_interfaces = interfaces
        self.interfaces = None
        self.fib = None
        self._fib_started = False
        if fib is True and self.config.fib_enabled:
            from .fib import Fib
            self.fib = Fib(self.config.table, self.config.protocol, self.config.kernel_metric,
                           netns)
        elif fib not in (True, False, None):
            self.fib = fib
        for o in ORIGINS:
            self._tables[o] = {4: {}, 6: {}}

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, fib: bool = True) -> None:
        """Read interfaces (connected routes), start their monitor, read our kernel routes.
        ``fib`` False (an NSR standby): select only; ``start_fib`` later takes the kernel
        table over (reconcile, never a flush)."""
        if self._use_interfaces:
            from .interfaces import Interfaces
            self.interfaces = Interfaces(self.netns, self._interfaces_changed)
            self.interfaces.start()
            with self._lock:
                self._sync_connected()
        if fib:
            self.start_fib()

    @property
    def fib_started(self) -> bool:
        return self.fib is not None and self._fib_started

    def start_fib(self) -> None:
        """Read our kernel routes and program what is selected (differences only)."""
        if self.fib is not None and not self._fib_started:
            self._fib_started = True
            self.fib.start()
            with self._lock:  # what was selected before the FIB started
                for fam in (4, 6):
                    self.fib.set_many(fam, {k: s.route for k, s in self._selected[fam].items()
                                            if s.route is not None})

    def stop(self) -> None:
        if self.interfaces is not None:
            self.interfaces.stop()
        if self.fib_started:
            self.fib.stop()

    def fib_converged(self) -> int:
        """The protocols have converged after a start: delete our stale kernel routes."""
        return self.fib.converged() if self.fib_started else 0

    def fib_wait(self, timeout: float = 60.0) -> bool:
        return self.fib.wait_idle(timeout) if self.fib is not None else True

    def apply_config(self, config: RoutingConfig) -> None:
        """Distances and maximum-paths apply at once (every prefix re-selected); table,
        protocol and fib/enabled take effect at the next start."""
        with self._lock:
            self.config = config
            for fam in (4, 6):
                self._dirty[fam].update(self._all_keys(fam))
            self._process()

    # -- input -----------------------------------------------------------------------------
    def replace_many(self, origin: str, family, items: Iterable) -> None:
        """``items``: ``(prefix, next_hops, metric=0, distance=None, tag=0)``; next hops as
        address text, `NextHop`, ``{"address", "interface", "blackhole"}`` dicts."""
        fam = px.family_of(family)
        kind = origin
        with self._lock:
            tbl = self._table(origin, fam)
            for item in items:
                pfx, nhs = item[0], item[1]
                metric = item[2] if len(item) > 2 else 0
                dist = item[3] if len(item) > 3 else None
                tag = item[4] if len(item) > 4 else 0
                val = self._value(fam, origin, kind, dist, metric, nhs, tag)
                self._put(fam, tbl, px.to_key(fam, pfx), val)
            self._process()

    def replace_multi(self, origin: str, family, prefix,
                      candidates: Iterable[tuple]) -> None:
        """Several candidates for one prefix from one origin (static next hops with their
        own distances): ``(next_hops, metric, distance, tag)`` each; empty -> withdraw."""
        fam = px.family_of(family)
        with self._lock:
            tbl = self._table(origin, fam)
            key = px.to_key(fam, prefix)
            cands = []
            for nhs, metric, dist, tag in candidates:
                cands.extend(self._value(fam, origin, origin, dist, metric, nhs, tag))
            if cands:
                self._put(fam, tbl, key, self._intern_val(tuple(cands)))
            else:
                self._del(fam, tbl, key)
            self._process()

    def withdraw_many(self, origin: str, family, prefixes: Iterable) -> None:
        fam = px.family_of(family)
        with self._lock:
            tbl = self._table(origin, fam)
            for pfx in prefixes:
                self._del(fam, tbl, px.to_key(fam, pfx))
            self._process()

    def clear_origin(self, origin: str, family=None) -> None:
        fams = (4, 6) if family is None else (px.family_of(family),)
        with self._lock:
            for fam in fams:
                tbl = self._table(origin, fam)
                for key in list(tbl):
                    self._del(fam, tbl, key)
            self._process()

    def update_bgp(self, family, changes: Iterable) -> None:
        """The BGP speaker's entry point: ``(prefix, next_hops, ebgp, metric)`` per changed
        prefix (prefix as NLRI key bytes, text or int key; next hops a tuple of address
        text; ``None`` or ``()`` withdraws). One call per batch of UPDATEs."""
        fam = px.family_of(family)
        with self._lock:
            tbl = self._tables["bgp"][fam]
            intern = self._intern
            put, dele, to_key = self._put, self._del, px.to_key
            for pfx, nhs, ebgp, metric in changes:
                key = to_key(fam, pfx)
                if not nhs:
                    dele(fam, tbl, key)
                    continue
                if type(nhs) is list:
                    nhs = tuple(nhs)
                ik = (fam, nhs, ebgp, metric)
                val = intern.get(ik)
                if val is None:
                    val = self._value(fam, "bgp", "ebgp" if ebgp else "ibgp", None, metric,
                                      nhs, 0)
                    if len(intern) > 200_000:
                        intern.clear()
                    intern[ik] = val
                put(fam, tbl, key, val)
            self._process()

    # -- next-hop tracking -----------------------------------------------------------------
    def on_nexthop_change(self, callback: Callable[[str, str, bool, list], None]) -> None:
        """``callback(family "ipv4"|"ipv6", gateway, reachable, resolved next hops)`` after
        the resolution of a tracked gateway changed (BGP: unreachable -> routes invalid)."""
        self._nh_callbacks.append(callback)

    def track_nexthop(self, family, gateway: str) -> dict:
        """Track a gateway without a route using it (BGP before installing); returns its
        state. Balanced by `untrack_nexthop`."""
        fam = px.family_of(family)
        gw = str(px.ipaddress.ip_address(gateway))
        with self._lock:
            self._nh_ref(fam, gw, +1)
            return self.nexthop_state(fam, gw)

    def untrack_nexthop(self, family, gateway: str) -> None:
        fam = px.family_of(family)
        with self._lock:
            self._nh_ref(fam, str(px.ipaddress.ip_address(gateway)), -1)

    def nexthop_state(self, family, gateway: str) -> dict:
        fam = px.family_of(family)
        gw = str(px.ipaddress.ip_address(gateway))
        st = self._nh[fam].get(gw)
        if st is None:
            hops, via, depth = self._resolve(fam, px.addr_int(fam, gw), gw, None)
        else:
            hops, via, depth = st[1], st[2], st[3]
        return {"address": gw, "reachable": bool(hops), "tracked": st is not None,
                "via": px.to_text(fam, via) if via is not None else None,
                "resolved": self._hops_dict(hops), "depth": depth}

    def lookup(self, family, address: str) -> dict | None:
        """Longest-match selected route for an address (None: no route)."""
        fam = px.family_of(family)
        a = px.addr_int(fam, address)
        with self._lock:
            for plen in self._lens_sorted[fam]:
                shift = px.BITS[fam] - plen
                key = (((a >> shift) << shift) << 8) | plen
                if key in self._selected[fam]:
                    return self.route_state(fam, key)
        return None

    # -- internals: tables -----------------------------------------------------------------
    def _table(self, origin: str, fam: int) -> dict:
        t = self._tables.get(origin)
        if t is None:
            t = self._tables[origin] = {4: {}, 6: {}}
        return t[fam]

    def _value(self, fam, origin, kind, dist, metric, nhs, tag) -> tuple:
        if isinstance(nhs, (str, NextHop, dict)):
            nhs = (nhs,)
        norm = tuple(_norm_nexthop(n) for n in nhs)
        for n in norm:
            if n.gateway is not None and px.addr_family(n.gateway) != fam:
                raise ValueError(f"next hop {n.gateway} is not IPv{fam}")
        return self._intern_val((Candidate(origin, kind, dist, metric, norm, tag),))

    def _intern_val(self, val: tuple) -> tuple:
        got = self._intern.get(val)
        if got is None:
            if len(self._intern) > 200_000:
                self._intern.clear()
            self._intern[val] = got = val
        return got

    def _put(self, fam: int, tbl: dict, key: int, val: tuple) -> None:
        old = tbl.get(key)
        if old is val:
            return
        tbl[key] = val
        self._vref(fam, val, 1)
        if old is not None:
            self._vref(fam, old, -1)
        self._dirty[fam].add(key)

    def _del(self, fam: int, tbl: dict, key: int) -> None:
        old = tbl.pop(key, None)
        if old is not None:
            self._vref(fam, old, -1)
            self._dirty[fam].add(key)

    def _vref(self, fam: int, val: tuple, delta: int) -> None:
        ref = self._vrefs.get(id(val))
        if ref is None:
            ref = self._vrefs[id(val)] = [0, val, fam]
            for c in val:
                for n in c.nexthops:
                    if n.gateway is not None and n.interface is None:
                        self._nh_ref(fam, n.gateway, 1)
        ref[0] += delta
        if ref[0] <= 0:
            del self._vrefs[id(val)]
            for c in val:
                for n in c.nexthops:
                    if n.gateway is not None and n.interface is None:
                        self._nh_ref(fam, n.gateway, -1)

    def _nh_ref(self, fam: int, gw: str, delta: int) -> None:
        st = self._nh[fam].get(gw)
        if st is None:
            if delta < 0:
                return
            gi = px.addr_int(fam, gw)
            hops, via, depth = self._resolve(fam, gi, gw, None)
            alt = self._resolve(fam, gi, gw, via) if via is not None else None
            self._nh[fam][gw] = [delta, hops, via, depth, gi, alt]
            return
        st[0] += delta
        if st[0] <= 0:
            del self._nh[fam][gw]

    def _all_keys(self, fam: int) -> set[int]:
        keys: set[int] = set()
        for t in self._tables.values():
            keys.update(t[fam])
        return keys

    # -- internals: resolution and selection -----------------------------------------------
    def _resolve(self, fam: int, gi: int, gw: str, exclude: int | None
                 ) -> tuple[tuple, int | None, int]:
        sel_tbl = self._selected[fam]
        bits = px.BITS[fam]
        for plen in self._lens_sorted[fam]:
            shift = bits - plen
            key = (((gi >> shift) << shift) << 8) | plen
            if key == exclude:
                continue
            sel = sel_tbl.get(key)
            if sel is None:
                continue
            if sel.blackhole or sel.depth >= MAX_DEPTH:
                return (), key, sel.depth + 1
            hops = tuple(sorted({(gw, ifi) if g is None else (g, ifi) for g, ifi in sel.hops},
                                key=_nh_sort))
            return hops, key, sel.depth + 1
        return (), None, 0

    def _eval(self, fam: int, key: int, cand: Candidate) -> tuple[list, bool, int]:
        """(resolved kernel hops, has blackhole, depth) of one candidate."""
        hops: list = []
        bh = False
        depth = 0
        for nh in cand.nexthops:
            if nh.blackhole:
                bh = True
            elif nh.interface is not None:
                ifi = self._ifindex.get(nh.interface)
                if ifi is not None and ifi[1]:
                    hops.append((nh.gateway, ifi[0]))
            elif nh.gateway is not None:
                st = self._nh[fam].get(nh.gateway)
                if st is None:
                    continue
                if st[2] == key:  # resolved through the route itself: look past it
                    r, _via, d = st[5]
                else:
                    r, d = st[1], st[3]
                if r:
                    hops.extend(r)
                    depth = max(depth, d)
        return hops, bh, depth

    def _distance(self, c: Candidate) -> int:
        if c.distance is not None:
            return c.distance
        return self.config.distances.get(c.kind, 255)

    def _candidates(self, fam: int, key: int) -> list[Candidate]:
        out = []
        for t in self._tables.values():
            v = t[fam].get(key)
            if v is not None:
                out.extend(v)
        return out

    def _compute(self, fam: int, key: int) -> Selected | None:
        best = None
        hops: set = set()
        bh = False
        origin = None
        depth = 0
        for c in self._candidates(fam, key):
            h, b, d = self._eval(fam, key, c)
            if not h and not b:
                continue
            rank = (self._distance(c), c.metric)
            if best is None or rank < best:
                best, hops, bh, origin, depth = rank, set(h), b, c.origin, d
            elif rank == best:
                hops.update(h)
                bh = bh or b
                depth = max(depth, d)
        if best is None:
            return None
        if hops:
            hl = tuple(sorted(hops, key=_nh_sort)[: self.config.maximum_paths])
            route = None if origin == "connected" else KernelRoute(
                "unicast", hl, self.config.kernel_metric)
            sel = Selected(origin, best[0], best[1], hl, route, depth, False)
        else:
            sel = Selected(origin, best[0], best[1], (),
                           KernelRoute("blackhole", (), self.config.kernel_metric), 0, True)
        got = self._sel_intern.get(sel)
        if got is None:
            if len(self._sel_intern) > 200_000:
                self._sel_intern.clear()
            self._sel_intern[sel] = got = sel
        return got

    def _reselect(self, fam: int, key: int) -> bool:
        new = self._compute(fam, key)
        sel_tbl = self._selected[fam]
        old = sel_tbl.get(key)
        if new == old:
            return False
        plen = key & 0xFF
        lens = self._lens[fam]
        if new is None:
            del sel_tbl[key]
            lens[plen] -= 1
            if not lens[plen]:
                del lens[plen]
                self._lens_sorted[fam] = sorted(lens, reverse=True)
        else:
            sel_tbl[key] = new
            if old is None:
                if plen not in lens:
                    lens[plen] = 0
                    self._lens_sorted[fam] = sorted([*lens], reverse=True)
                lens[plen] += 1
        old_route = old.route if old is not None else None
        new_route = new.route if new is not None else None
        if old_route != new_route:
            self._fib_changes[fam][key] = new_route
        return True

    def _process(self) -> None:
        for _ in range(MAX_ROUNDS):
            changed_fams = set()
            for fam in (4, 6):
                dirty = self._dirty[fam]
                if not dirty:
                    continue
                self._dirty[fam] = set()
                for key in dirty:
                    if self._reselect(fam, key):
                        changed_fams.add(fam)
            if not changed_fams:
                break
            for fam in changed_fams:
                moved = []
                for gw, st in self._nh[fam].items():
                    hops, via, depth = self._resolve(fam, st[4], gw, None)
                    # the resolution past ``via`` serves the route ``via`` itself
                    alt = self._resolve(fam, st[4], gw, via) if via is not None else None
                    if hops != st[1] or via != st[2] or depth != st[3] or alt != st[5]:
                        was = bool(st[1])
                        st[1], st[2], st[3], st[5] = hops, via, depth, alt
                        moved.append(gw)
                        if was != bool(hops) or hops:
                            self._nh_events.append((fam, gw, bool(hops), hops))
                if moved:
                    self._mark_users(fam, set(moved), None)
        for fam in (4, 6):
            ch = self._fib_changes[fam]
            if ch:
                self._fib_changes[fam] = {}
                if self._fib_started:
                    self.fib.set_many(fam, ch)
        if self._nh_events:
            events, self._nh_events = self._nh_events, []
            for fam, gw, ok, hops in events:
                for cb in self._nh_callbacks:
                    cb(f"ipv{fam}", gw, ok, self._hops_dict(hops))

    def _mark_users(self, fam: int, gateways: set | None, interfaces: set | None) -> None:
        """Mark dirty every prefix whose candidates use one of these gateways/interfaces
        (a scan; values are shared, so each distinct value is checked once)."""
        cache: dict[int, bool] = {}
        dirty = self._dirty[fam]
        for t in self._tables.values():
            for key, val in t[fam].items():
                hit = cache.get(id(val))
                if hit is None:
                    hit = any(
                        (gateways is not None and n.gateway in gateways and n.interface is None)
                        or (interfaces is not None and n.interface in interfaces)
                        for c in val for n in c.nexthops)
                    cache[id(val)] = hit
                if hit:
                    dirty.add(key)

    # -- connected routes ------------------------------------------------------------------
    def _interfaces_changed(self) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._sync_connected_locked)
        else:
            self._sync_connected_locked()

    def _sync_connected_locked(self) -> None:
        with self._lock:
            self._sync_connected()

    def _sync_connected(self) -> None:
        links = self.interfaces.snapshot()
        ifindex = {lk.name: (lk.index, lk.up) for lk in links.values()}
        moved = {n for n in set(ifindex) | set(self._ifindex)
                 if ifindex.get(n) != self._ifindex.get(n)}
        self._ifindex = ifindex
        self._ifname = {lk.index: lk.name for lk in links.values()}
        want: dict[int, dict[int, list]] = {4: {}, 6: {}}
        for lk in links.values():
            if not lk.up:
                continue
            for (fam, addr, plen), (scope, _proto) in lk.addresses.items():
                if scope != 0:
                    continue
                key = px.to_key(fam, f"{addr}/{plen}")
                want[fam].setdefault(key, []).append(
                    Candidate("connected", "connected", None, 0, (NextHop(None, lk.name),)))
        for fam in (4, 6):
            tbl = self._tables["connected"][fam]
            for key in [k for k in tbl if k not in want[fam]]:
                self._del(fam, tbl, key)
            for key, cands in want[fam].items():
                val = self._intern_val(tuple(sorted(set(cands))))
                if tbl.get(key) != val:
                    self._put(fam, tbl, key, val)
            if moved:
                self._mark_users(fam, None, moved)
        self._process()

    # -- state -----------------------------------------------------------------------------
    def _hops_dict(self, hops) -> list[dict]:
        out = []
        for gw, ifi in hops:
            d = {"interface": self._ifname.get(ifi, str(ifi))}
            if gw is not None:
                d = {"address": gw, **d}
            out.append(d)
        return out

    def route_state(self, fam: int, key: int) -> dict:
        sel = self._selected[fam].get(key)
        cands = []
        for c in self._candidates(fam, key):
            h, b, _d = self._eval(fam, key, c)
            valid = bool(h) or b
            active = bool(sel is not None and valid and c.origin == sel.origin
                          and self._distance(c) == sel.distance and c.metric == sel.metric)
            cands.append({
                "origin": c.origin, "distance": self._distance(c), "metric": c.metric,
                "tag": c.tag, "next-hops": [n.to_dict() for n in c.nexthops],
                "resolved": self._hops_dict(h), "valid": valid, "active": active,
            })
        out: dict = {"prefix": px.to_text(fam, key), "candidates": cands}
        if sel is not None:
            out["selected"] = {"origin": sel.origin, "distance": sel.distance,
                               "metric": sel.metric, "blackhole": sel.blackhole,
                               "next-hops": self._hops_dict(sel.hops)}
        if self.fib is None:
            out["fib"] = "disabled"
        elif sel is not None and sel.route is None:
            out["fib"] = "kernel"  # connected: the kernel's own route
        else:
            out["fib"] = self.fib.status(fam, key, sel.route if sel is not None else None)
        return out

    def state(self, family=None, prefix: str | None = None, limit: int | None = 1000) -> dict:
        """Operational state for NETCONF/CLI: per prefix the selected route, the candidates
        (origin, distance, metric, next hops, valid, active) and the FIB status."""
        with self._lock:
            fams = (4, 6) if family is None else (px.family_of(family),)
            out: dict = {"routes": {}, "counts": {}, "fib": None}
            for fam in fams:
                name = f"ipv{fam}"
                if prefix is not None:
                    if px.addr_family(prefix.split("/")[0]) != fam:
                        continue
                    keys = [px.to_key(fam, prefix)]
                else:
                    keys = sorted(self._all_keys(fam))
                    if limit is not None:
                        keys = keys[:limit]
                out["routes"][name] = [self.route_state(fam, k) for k in keys]
                out["counts"][name] = {
                    "selected": len(self._selected[fam]),
                    **{o: len(t[fam]) for o, t in self._tables.items() if t[fam]},
                }
                out.setdefault("nexthops", {})[name] = [
                    self.nexthop_state(fam, gw) for gw in sorted(self._nh[fam])]
            if self.fib is not None:
                out["fib"] = self.fib.counts()
            return out

    def selected(self, family) -> dict[str, Selected]:
        fam = px.family_of(family)
        with self._lock:
            return {px.to_text(fam, k): s for k, s in self._selected[fam].items()}

    def to_dict(self) -> dict:
        """Plain data of what the protocols gave the RIB (connected excluded: re-read)."""
        with self._lock:
            routes: dict = {}
            for origin, t in self._tables.items():
                if origin == "connected":
                    continue
                for fam in (4, 6):
                    rows = []
                    for key, val in t[fam].items():
                        for c in val:
                            rows.append([px.to_text(fam, key), c.kind, c.distance, c.metric,
                                         [n.to_dict() for n in c.nexthops], c.tag])
                    if rows:
                        routes.setdefault(origin, {})[f"ipv{fam}"] = rows
            return {"config": {"table": self.config.table, "protocol": self.config.protocol,
                               "maximum-paths": self.config.maximum_paths,
                               "distances": dict(self.config.distances)},
                    "routes": routes}

    def load_dict(self, data: dict) -> None:
        """Restore `to_dict` output (checkpoint)."""
        with self._lock:
            for origin, fams in data.get("routes", {}).items():
                for fname, rows in fams.items():
                    fam = px.family_of(fname)
                    tbl = self._table(origin, fam)
                    per: dict[int, list] = {}
                    for pfx, kind, dist, metric, nhs, tag in rows:
                        norm = tuple(_norm_nexthop(n) for n in nhs)
                        per.setdefault(px.to_key(fam, pfx), []).append(
                            Candidate(origin, kind, dist, metric, norm, tag))
                    for key, cands in per.items():
                        self._put(fam, tbl, key, self._intern_val(tuple(cands)))
            self._process()
