"""Static routes into the RIB: configured statics (origin ``static``) with optional BFD
tracking, and controller-pushed routes (origin ``controller``), listed and cleared apart.

BFD tracking: a next hop with ``bfd/enabled`` is left out of its route while its BFD session
is down; the route disappears when it has no next hop left (and comes back with the session).
The BFD state comes from a ``bfd_state(peer) -> True | False | None`` callable (None: no such
session known - the next hop is then used, there is nothing to track yet) and changes arrive
through `on_bfd_change(peer, up)`. `bfd_listener()` adapts this to the BFD manager's
``add_listener(callback(peer, old_state, new_state, diag))``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable

from appliance.rib.manager import NextHop, RibManager

from .config import StaticConfig, StaticRoute, parse_static


def state_is_up(state) -> bool:
    """BFD state as enum, name or RFC 5880 number (AdminDown 0, Down 1, Init 2, Up 3)."""
    if isinstance(state, bool):
        return state
    if isinstance(state, int):
        return state == 3
    name = getattr(state, "name", state)
    return str(name).lower() == "up"


class StaticRoutes:
    def __init__(self, rib: RibManager,
                 bfd_state: Callable[[str], bool | None] | None = None) -> None:
        self.rib = rib
        self.bfd_state = bfd_state
        self.config = StaticConfig()
        self._bfd_up: dict[str, bool] = {}
        self._controller: dict[tuple[int, str], dict] = {}

    # -- configured statics ------------------------------------------------------------------
    def apply(self, config: StaticConfig | dict | None) -> None:
        """Converge the RIB's ``static`` origin to ``config`` (parsed or JSON)."""
        if not isinstance(config, StaticConfig):
            config = parse_static(config)
        old = {r.prefix: r for r in self.config.routes}
        new = {r.prefix: r for r in config.routes}
        self.config = config
        for prefix, r in old.items():
            if prefix not in new:
                self.rib.withdraw_many("static", r.family, [prefix])
        for r in config.routes:
            self._install(r)

    def bfd_peers(self) -> list[dict]:
        """The BFD sessions the statics need: ``{"peer", "multihop", "local-address"}``."""
        seen = {}
        for r in self.config.routes:
            for nh in r.next_hops:
                if nh.bfd:
                    seen[nh.address] = {"peer": nh.address, "multihop": nh.bfd_multihop,
                                        "local-address": nh.bfd_local_address}
        return list(seen.values())

    def _nh_up(self, peer: str) -> bool:
        if peer in self._bfd_up:
            return self._bfd_up[peer]
        st = self.bfd_state(peer) if self.bfd_state is not None else None
        return st is not False

    def _install(self, r: StaticRoute) -> None:
        # distance None: the RIB's static distance (fcr-routing administrative-distance)
        groups: dict[int | None, list[NextHop]] = {}
        for nh in r.next_hops:
            if nh.bfd and not self._nh_up(nh.address):
                continue
            groups.setdefault(nh.distance or r.distance, []).append(
                NextHop(nh.address, nh.interface, nh.blackhole))
        cands = [(tuple(nhs), 0, dist, r.tag)
                 for dist, nhs in sorted(groups.items(), key=lambda g: (g[0] is not None, g[0] or 0))]
        self.rib.replace_multi("static", r.family, r.prefix, cands)

    def on_bfd_change(self, peer: str, up: bool) -> None:
        peer = str(ipaddress.ip_address(peer))
        if self._bfd_up.get(peer) == up:
            return
        self._bfd_up[peer] = up
        for r in self.config.routes:
            if any(nh.bfd and nh.address == peer for nh in r.next_hops):
                self._install(r)

    def bfd_listener(self) -> Callable:
        """For ``BfdManager.add_listener``: ``callback(peer, old_state, new_state, diag)``."""

        def listener(peer, old_state, new_state, diag=None) -> None:
            self.on_bfd_change(str(peer), state_is_up(new_state))

        return listener

    # -- controller-pushed routes ------------------------------------------------------------
    def push(self, prefix: str, next_hops: Iterable, distance: int | None = None,
             metric: int = 0, tag: int = 0) -> dict:
        """Add or replace a controller route (origin ``controller``, distance 5 by default).
        ``next_hops``: address text, ``{"address", "interface", "blackhole"}`` or `NextHop`."""
        net = ipaddress.ip_network(prefix, strict=False)
        nhs = tuple(next_hops) if not isinstance(next_hops, (str, dict)) else (next_hops,)
        if not nhs:
            raise ValueError("a controller route needs a next hop (or blackhole)")
        self.rib.replace_many("controller", net.version, [(str(net), nhs, metric, distance, tag)])
        entry = {"prefix": str(net), "next-hops": [_nh_dict(n) for n in nhs],
                 "distance": distance, "metric": metric, "tag": tag}
        self._controller[(net.version, str(net))] = entry
        return entry

    def withdraw(self, prefix: str) -> bool:
        net = ipaddress.ip_network(prefix, strict=False)
        if self._controller.pop((net.version, str(net)), None) is None:
            return False
        self.rib.withdraw_many("controller", net.version, [str(net)])
        return True

    def list(self) -> list[dict]:
        return [self._controller[k] for k in sorted(self._controller)]

    def clear(self) -> int:
        n = len(self._controller)
        self._controller.clear()
        self.rib.clear_origin("controller")
        return n

    def to_dict(self) -> dict:
        return {"controller": self.list(), "bfd-up": dict(self._bfd_up)}


def _nh_dict(n) -> dict:
    if isinstance(n, str):
        return {"address": n}
    if isinstance(n, NextHop):
        return n.to_dict()
    return dict(n)
