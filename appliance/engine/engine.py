"""The routing engine: owns the protocol instances and answers the engine API.

Everything the management plane (or a test, or a benchmark) may ask of the engine
is a method here taking and returning plain JSON-able data; control.py exposes the
same methods over a Unix socket, so the management plane can live in another
process and outlive the engine (DESIGN.md invariant 2).

Pieces and how they are wired (docs/architecture.md, "The routing engine"):

- ``rib``     RibManager: connected (interfaces), static, controller and BGP routes;
              selection, next-hop resolution, the kernel FIB (netlink) in
              ``fcr-routing:routing/fib/table`` marked with its protocol number.
- ``static``  StaticRoutes: configured statics (with BFD tracking) and controller routes.
- ``bfd``     BfdProcess: the BFD worker process (real-time priority), started when the
              first session is needed; sessions come from ``fcr-bfd:bfd``, from BGP
              neighbors with ``bfd/enabled`` and from BFD-tracked static next hops (one
              session per peer address, shared by its clients).
- ``bgp``     Speaker, with per neighbor/family import and export hooks built from the
              routing policy; its Loc-RIB changes feed the RIB (when the FIB is enabled),
              BFD Down resets BGP sessions (Cease/BFD Down), routes of the RIB are
              redistributed into BGP through the redistribute policies.
- ``policy``  PolicyEngine of ``fcr-routing-policy:routing-policy``; rebuilt on change,
              applied to established sessions by route refresh (import) and by a new
              pass over Adj-RIB-Out (export), never by a session reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from .. import __version__
from ..addr import canonical_ip as _norm
from ..bfd.config import SessionConfig
from ..bgp.config import BfdTracking, BgpConfig, NeighborConfig
from ..bgp.family import AfiSafi
from ..bgp.packet.constants import AsPathSegment
from ..bgp.packet.pathattrs import PathAttributes
from ..bgp.speaker import Speaker
from ..config.native import ConfigError, EngineConfig
from ..config.native import parse as parse_config
from ..log import log_event
from ..policy import NEXT_HOP_SELF, PolicyEngine, RouteContext, make_export_hook, make_import_hook
from ..policy.config import PolicyConfigError, parse_community, parse_large_community
from ..rib import prefix as px
from ..rib.manager import RibManager
from ..static import StaticRoutes

log = logging.getLogger("fcr.engine")

CONVERGE_TIMEOUT = 90.0     # s: delete our stale kernel routes at the latest this long after start
REDISTRIBUTE_INTERVAL = 1.0  # s: connected/static/controller routes re-read for redistribution
_ORIGINS = {"igp": 0, "egp": 1, "incomplete": 2}
_LOCAL_BASE = PathAttributes(origin=0, as_path=(), next_hop=b"")


# the event hub's kinds (Engine.subscribe; events.subscribe on the control socket)
EVENT_KINDS = ("bgp-neighbor-state", "bfd-session-state")


class EngineError(Exception):
    """A request the engine refuses; the message is shown to the caller."""


def _session_key(n: NeighborConfig) -> NeighborConfig:
    """The part of a neighbor's configuration that needs a new BGP session when it
    changes; policies, prefix limits, description and BFD tracking do not."""
    fams = tuple(replace(f, import_policy=(), export_policy=(), default_import_accept=True,
                         default_export_accept=True, prefix_limit=None) for f in n.families)
    return replace(n, families=fams, description="", bfd=BfdTracking())


def _chains(n: NeighborConfig) -> dict[AfiSafi, tuple]:
    return {f.family: (f.import_policy, f.default_import_accept, f.export_policy, f.default_export_accept)
            for f in n.families if f.enabled}


class Engine:
    def __init__(self, config: EngineConfig, *, netns: str | None = None, kernel: bool = False,
                 standby: bool = False) -> None:
        """``kernel`` True (fcrd): the FIB is programmed and interfaces are read and
        configured by netlink; False (the default, for tests and tools): no netlink at
        all, the RIB still selects. ``netns``: the netlink side in that namespace.
        ``standby`` (NSR, docs/nsr.md): the engine computes everything but owns nothing
        (no BGP connection, no listener, no BFD session, no FIB write, no interface
        change) until ``nsr.adopt`` hands it the sessions of the active engine."""
        self.config = config
        self.standby = standby
        self.config_digest = ""  # sha256 of the applied configuration (NSR sync check)
        self.nsr: Any = None     # appliance.nsr.agent.NsrAgent when NSR is enabled
        self.nsr_hooks: Any = None  # appliance.nsr.crash.CrashGuard (fcrd --nsr-holder)
        self.netns = netns
        self.kernel = kernel
        self.bgp: Speaker | None = None
        self.rib: RibManager | None = None
        self.static: StaticRoutes | None = None
        self.bfd: Any = None
        self.policy = PolicyEngine(config.policy)
        self.started_at = time.time()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.interfaces_report: dict[str, list[str]] = {}
        self._bfd_state: dict[str, str] = {}
        self._bfd_clients: dict[str, list[str]] = {}
        self._bfd_wanted: dict[str, SessionConfig] = {}
        self._eor: set[tuple[str, AfiSafi]] = set()
        self._converged = False
        self._converge_handle: asyncio.TimerHandle | None = None
        self._redist_handle: asyncio.TimerHandle | None = None
        self._redist_seen: dict[tuple[str, int], tuple] = {}
        self._redist_soon = False
        self._stopping = False
        # the event hub (events.subscribe on the control socket): callbacks get one dict
        # per event and must only enqueue (DESIGN.md invariant 4: nothing blocks the engine)
        self._subscribers: list[Callable[[dict[str, Any]], None]] = []
        self._bfd_discr: dict[str, int] = {}  # peer -> local discriminator, from bfd.sessions
        # set while start() runs: the control socket holds requests until it is done,
        # so nobody sees a half-started engine (None: not starting)
        self.starting: asyncio.Event | None = None

    # -- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        self.starting = asyncio.Event()
        try:
            await self._start()
        finally:
            self.starting.set()

    async def _start(self) -> None:
        self.loop = loop = asyncio.get_running_loop()
        cfg = self.config
        for line in cfg.not_applied:
            log_event(log, "config.not-applied", level=logging.WARNING, what=line)
        fib = self.kernel and cfg.routing.fib_enabled
        self.rib = RibManager(cfg.routing, netns=self.netns, fib=fib, interfaces=self.kernel, loop=loop)
        # reads our kernel routes (reconcile); a standby leaves the FIB to the active engine
        await loop.run_in_executor(None, lambda: self.rib.start(fib=not self.standby))
        self.rib.on_nexthop_change(self._on_nexthop_change)
        if self.kernel and cfg.interfaces is not None and not self.standby:
            for e in await self._apply_interfaces(cfg):
                log_event(log, "engine.start-error", level=logging.ERROR, error=e)
        errors: list[str] = []
        await self._apply_bfd(cfg, errors)
        self.static = StaticRoutes(self.rib, bfd_state=self._bfd_is_up)
        self.static.apply(cfg.static)
        for e in errors:  # one piece failing does not stop the others
            log_event(log, "engine.start-error", level=logging.ERROR, error=e)
        if cfg.bgp is not None:
            await self._start_bgp(cfg.bgp)
        self._redistribute()
        if self.nsr is not None:
            await self.nsr.start()
        if not self.standby:
            self._converge_handle = loop.call_later(CONVERGE_TIMEOUT, self._converge, "timer")
            self._check_converged()
        log_event(log, "engine.start", standby=self.standby, version=__version__, hostname=cfg.system.hostname,
                  fib=f"table {cfg.routing.table} protocol {cfg.routing.protocol}" if fib else "disabled",
                  bfd_sessions=len(self._bfd_wanted), static_routes=len(cfg.static.routes))

    async def stop(self, message: str = "") -> None:
        """BGP peers get CEASE first, then BFD sessions go AdminDown and the worker
        exits, then the RIB stops. Kernel routes stay (DESIGN.md invariant 5)."""
        self._stopping = True
        for h in (self._converge_handle, self._redist_handle):
            if h is not None:
                h.cancel()
        if self.nsr is not None:
            with contextlib.suppress(Exception):
                await self.nsr.stop()
        if self.bgp is not None:
            # the withdrawals of the sessions going down must not reach the kernel:
            # forwarding stays as it is until the next engine reconciles it
            self.bgp.set_rib(None)
            try:
                await self.bgp.stop(message)
            except Exception as exc:  # noqa: BLE001 - the rest must still stop
                log_event(log, "engine.stop-error", level=logging.ERROR, piece="bgp", error=repr(exc))
        if self.bfd is not None:
            bfd, self.bfd = self.bfd, None
            try:
                await asyncio.get_running_loop().run_in_executor(None, lambda: bfd.stop(admin_down=True))
            except Exception as exc:  # noqa: BLE001
                log_event(log, "engine.stop-error", level=logging.ERROR, piece="bfd", error=repr(exc))
        if self.rib is not None:
            try:
                await asyncio.get_running_loop().run_in_executor(None, self.rib.stop)
            except Exception as exc:  # noqa: BLE001
                log_event(log, "engine.stop-error", level=logging.ERROR, piece="rib", error=repr(exc))
        log_event(log, "engine.stop", message=message)

    async def _start_bgp(self, bgp_cfg: BgpConfig) -> None:
        assert self.loop is not None and self.rib is not None
        sp = Speaker(bgp_cfg, loop=self.loop)
        sp.network_attrs = self._network_attrs(bgp_cfg)
        sp.on_end_of_rib = self._on_end_of_rib
        sp.on_rib_drained = self._check_converged
        sp.on_peer_state = self._on_bgp_state
        sp.nsr_hooks = self.nsr_hooks
        self.bgp = sp
        await sp.start(standby=self.standby)
        # before any session can come up (that takes several loop turns)
        for n in bgp_cfg.neighbors:
            self._install_policies(sp, n)
        if self.config.routing.fib_enabled:
            sp.set_rib(self.rib, multipath=self.config.routing.maximum_paths > 1)

    # -- configuration ------------------------------------------------------------
    async def apply(self, new: EngineConfig) -> dict[str, Any]:
        """Converge to ``new`` (already parsed and validated as a whole). Pieces are
        applied in dependency order; a piece that fails is reported in ``errors`` and the
        rest is still applied."""
        old = self.config
        changes: dict[str, Any] = {"added": [], "removed": [], "reset": []}
        errors: list[str] = []
        soft: list[str] = []
        restart: list[str] = []
        if self.rib is None:  # not started (tests): just take it
            self.config = new
            return changes
        for line in new.not_applied:
            if line not in old.not_applied:
                log_event(log, "config.not-applied", level=logging.WARNING, what=line)
        # routing (distances, ECMP apply now; table/protocol/fib need a restart of fcrd)
        if new.routing != old.routing:
            o, n = old.routing, new.routing
            if (o.table, o.protocol, o.fib_enabled) != (n.table, n.protocol, n.fib_enabled):
                restart.append("fcr-routing:routing/fib (table, protocol, enabled apply at the next start)")
            try:
                self.rib.apply_config(replace(n, table=o.table, protocol=o.protocol, fib_enabled=o.fib_enabled))
                if self.bgp is not None and self.bgp.rib is not None:
                    self.bgp.set_rib(self.rib, multipath=n.maximum_paths > 1)
            except Exception as exc:  # noqa: BLE001
                errors.append(f"fcr-routing:routing: {exc}")
        # interfaces
        if self.kernel and new.interfaces is not None and new.interfaces != old.interfaces:
            errors.extend(await self._apply_interfaces(new))
        # policy engine (hooks are rebuilt below)
        policy_changed = new.policy != old.policy
        if policy_changed:
            self.policy = PolicyEngine(new.policy)
        # BFD sessions (before statics: tracked next hops need their session's state)
        await self._apply_bfd(new, errors)
        # static routes
        try:
            assert self.static is not None
            self.static.apply(new.static)
        except Exception as exc:  # noqa: BLE001
            errors.append(f"fcr-static:static-routes: {exc}")
        # BGP
        self.config = new
        try:
            await self._apply_bgp(old, new, changes, policy_changed, soft)
        except Exception as exc:  # noqa: BLE001
            log_event(log, "engine.apply-error", level=logging.ERROR, piece="bgp", error=repr(exc))
            errors.append(f"fcr-bgp:bgp: {exc}")
        self._redist_seen.clear()
        self._redistribute()
        if soft:
            changes["soft"] = soft
        if restart:
            changes["restart-required"] = restart
        if errors:
            changes["errors"] = errors
        return changes

    async def _apply_bgp(self, old: EngineConfig, new: EngineConfig, changes: dict[str, Any],
                         policy_changed: bool, soft: list[str]) -> None:
        old_bgp, new_bgp = old.bgp, new.bgp
        if old_bgp is None and new_bgp is None:
            return
        if (old_bgp is None or new_bgp is None or self.bgp is None
                or replace(old_bgp.global_, redistribute=()) != replace(new_bgp.global_, redistribute=())):
            # Global changes (AS, router-id, listen, ...) restart the instance;
            # redistribution does not (it is re-run below).
            if self.bgp is not None:
                # the old instance's withdrawals must not race the new one's routes in
                # the RIB: detach it and drop its routes from the RIB at once
                self.bgp.set_rib(None)
                await self.bgp.stop("BGP instance reconfigured")
                if self.rib is not None:
                    self.rib.clear_origin("bgp")
            self.bgp = None
            self._eor.clear()
            if new_bgp is not None:
                await self._start_bgp(new_bgp)
            changes["reset"].append("bgp")
            return
        sp = self.bgp
        old_n = {n.neighbor_address: n for n in old_bgp.neighbors}
        new_n = {n.neighbor_address: n for n in new_bgp.neighbors}
        for addr in old_n.keys() - new_n.keys():
            await sp.remove_neighbor(addr)
            changes["removed"].append(addr)
        for addr, n in new_n.items():
            if addr not in old_n:
                await sp.add_neighbor(n)
                self._install_policies(sp, n)
                changes["added"].append(addr)
                continue
            o = old_n[addr]
            if o == n and not policy_changed:
                continue
            if _session_key(o) != _session_key(n):
                await sp.remove_neighbor(addr)
                await sp.add_neighbor(n)
                self._install_policies(sp, n)
                changes["reset"].append(addr)
                continue
            # same session: new settings and hooks, re-applied by route refresh
            sp.update_neighbor_config(n)
            self._install_policies(sp, n)
            oc, nc = _chains(o), _chains(n)
            soft_in = soft_out = False
            for fam, ch in nc.items():
                was = oc.get(fam)
                uses_in = bool(ch[0]) or not ch[1]
                uses_out = bool(ch[2]) or not ch[3]
                if was is None or was[:2] != ch[:2] or (policy_changed and uses_in):
                    soft_in = True
                if was is None or was[2:] != ch[2:] or (policy_changed and uses_out):
                    soft_out = True
            peer = sp.peers[addr]
            if peer.state != "Established":
                continue
            if soft_in:
                neg = peer.negotiated
                if neg is not None and neg.route_refresh:
                    sp.clear_neighbor(addr, "in")
                    soft.append(f"{addr} in")
                else:
                    soft.append(f"{addr} in: not possible, the peer has no route refresh; "
                                "the new import policy applies to routes it sends from now on")
                    log_event(log, "bgp.soft-in-unsupported", level=logging.WARNING, peer=addr)
            if soft_out:
                sp.clear_neighbor(addr, "out")
                soft.append(f"{addr} out")
        sp.config = new_bgp
        if old_bgp.networks != new_bgp.networks or old_bgp.network_policies != new_bgp.network_policies or policy_changed:
            sp.set_networks(new_bgp.networks, self._network_attrs(new_bgp))

    def _install_policies(self, sp: Speaker, n: NeighborConfig) -> None:
        asn = n.local_as or sp.asn
        for f in n.families:
            if not f.enabled:
                continue
            imp = exp = None
            if f.import_policy or not f.default_import_accept:
                imp = make_import_hook(self.policy, f.import_policy, f.default_import_accept).filter_batch
            if f.export_policy or not f.default_export_accept:
                exp = make_export_hook(self.policy, f.export_policy, f.default_export_accept,
                                       family=f.family, local_as=asn)
            sp.set_policies(n.neighbor_address, f.family, import_policy=imp, export_policy=exp)

    def _network_attrs(self, bgp_cfg: BgpConfig) -> dict[str, PathAttributes | None]:
        out: dict[str, PathAttributes | None] = {}
        for prefix, name in bgp_cfg.network_policies:
            r = self.policy.evaluate([name], RouteContext(prefix, attrs=_LOCAL_BASE, protocol="bgp",
                                                          route_type="local", local_as=bgp_cfg.global_.asn))
            out[prefix] = _own_next_hop(r.attrs) if r.accepted else None
        return out

    async def apply_json(self, config: dict[str, Any]) -> dict[str, Any]:
        """The management plane's entry point: a whole RFC 7951 configuration. Every
        module is validated against the model and mapped first, so a bad document
        changes nothing; then the pieces are applied (failures are reported)."""
        try:
            new = parse_config(config)
        except ConfigError as exc:
            raise EngineError(f"{exc.path}: {exc.message}") from None
        changes = await self.apply(new)
        self.config_digest = config_digest(config)
        log_event(log, "engine.config-applied",
                  **{k: ",".join(v) if isinstance(v, list) else v for k, v in changes.items() if v})
        return changes

    # -- interfaces ---------------------------------------------------------------------
    async def _apply_interfaces(self, cfg: EngineConfig) -> list[str]:
        from ..rib.interfaces import apply_interfaces

        assert self.loop is not None
        try:
            report = await self.loop.run_in_executor(
                None, lambda: apply_interfaces(cfg.interfaces or (), self.netns, cfg.routing.protocol))
        except Exception as exc:  # noqa: BLE001
            return [f"ietf-interfaces:interfaces: {exc}"]
        self.interfaces_report = report
        errors = [f"ietf-interfaces:interfaces/interface[name='{name}']: {a[len('error: '):]}"
                  for name, acts in report.items() for a in acts if a.startswith("error:")]
        for name, acts in report.items():
            if acts:
                log_event(log, "interfaces.applied", interface=name, actions="; ".join(acts))
        if self.rib is not None and self.rib.interfaces is not None:
            self.rib.interfaces.refresh()
        return errors

    # -- BFD ------------------------------------------------------------------------------
    def _bfd_configs(self, cfg: EngineConfig) -> tuple[dict[str, SessionConfig], dict[str, list[str]]]:
        """One session per peer address: an ``fcr-bfd:bfd`` session wins; else the BGP
        neighbor's timers; else defaults (static next hops)."""
        wanted: dict[str, SessionConfig] = {}
        clients: dict[str, list[str]] = {}
        for s in cfg.bfd:
            a = _norm(s.peer_address)
            wanted[a] = s
            clients.setdefault(a, []).append("configured")
        if cfg.bgp is not None:
            for n in cfg.bgp.neighbors:
                if not (n.enabled and n.bfd.enabled):
                    continue
                a = _norm(n.neighbor_address)
                clients.setdefault(a, []).append("bgp")
                if a not in wanted:
                    multihop = n.ebgp_multihop_ttl is not None and n.local_address is not None
                    wanted[a] = SessionConfig(a, local_address=n.local_address, multihop=multihop,
                                              desired_min_tx=n.bfd.desired_min_tx_interval,
                                              required_min_rx=n.bfd.required_min_rx_interval,
                                              detect_mult=n.bfd.detection_multiplier)
        for r in cfg.static.routes:
            for nh in r.next_hops:
                if not nh.bfd or nh.address is None:
                    continue
                a = _norm(nh.address)
                if "static" not in clients.setdefault(a, []):
                    clients[a].append("static")
                if a not in wanted:
                    wanted[a] = SessionConfig(a, local_address=nh.bfd_local_address, multihop=nh.bfd_multihop)
        return wanted, clients

    async def _apply_bfd(self, cfg: EngineConfig, errors: list[str]) -> None:
        assert self.loop is not None
        try:
            wanted, clients = self._bfd_configs(cfg)
        except Exception as exc:  # noqa: BLE001 - e.g. a multihop static without local-address
            errors.append(f"fcr-bfd:bfd: {exc}")
            return
        self._bfd_clients = clients
        if self.standby:  # sessions are adopted or started at activation
            self._bfd_wanted = wanted
            return
        if wanted == self._bfd_wanted and (self.bfd is not None or not wanted):
            return
        try:
            if self.bfd is None and wanted:
                from ..bfd.worker import BfdProcess

                bfd = BfdProcess()
                await self.loop.run_in_executor(None, bfd.start)
                bfd.add_listener(self._on_bfd, self.loop)
                self.bfd = bfd
                if self.nsr_hooks is not None:
                    self.nsr_hooks.bfd_started()  # the crash guard holds its pipes at once
            if self.bfd is not None:
                configs = list(wanted.values())
                await self.loop.run_in_executor(None, lambda: self.bfd.apply(configs))
        except Exception as exc:  # noqa: BLE001
            log_event(log, "bfd.apply-error", level=logging.ERROR, error=str(exc))
            errors.append(f"fcr-bfd:bfd: {exc}")
            return
        for peer in list(self._bfd_state):
            if peer not in wanted:
                del self._bfd_state[peer]
        for peer in wanted:
            self._bfd_state.setdefault(peer, "Down")  # a new session starts Down
        self._bfd_wanted = wanted

    def _bfd_is_up(self, peer: str) -> bool | None:
        st = self._bfd_state.get(_norm(peer))
        return None if st is None else st == "Up"

    def _on_bfd(self, peer: str, old: str, new: str, diag: str | None) -> None:
        if self._stopping:
            return
        peer = _norm(peer)
        self._bfd_state[peer] = new
        log_event(log, "bfd.state", peer=peer, **{"from": old, "to": new}, diag=diag or "",
                  clients=",".join(self._bfd_clients.get(peer, [])))
        if self._subscribers:
            cfg = self._bfd_wanted.get(peer)
            self._publish("bfd-session-state", {
                "peer-address": cfg.peer_address if cfg else peer,
                "local-address": cfg.local_address if cfg else None,
                "interface": cfg.interface if cfg else None,
                "multihop": cfg.multihop if cfg else False,
                "local-discriminator": self._bfd_discr.get(peer),
                "previous-state": old,
                "state": new,
                "local-diagnostic": diag,
            })
        if self.static is not None:
            self.static.on_bfd_change(peer, new == "Up")
        if new == "Down" and old == "Up" and self.bgp is not None:
            self.bgp.bfd_down(peer, diag or "")
        self._redistribute_soon()

    # -- the event hub ----------------------------------------------------------------
    def subscribe(self, callback: Callable[[dict[str, Any]], None]) -> None:
        """``callback({"event": kind, "time": unix time, "data": {...}})`` for every event
        (EVENT_KINDS), on the engine's loop. It must not block: enqueue and return."""
        if callback not in self._subscribers:
            self._subscribers.append(callback)

    def unsubscribe(self, callback: Callable[[dict[str, Any]], None]) -> None:
        with contextlib.suppress(ValueError):
            self._subscribers.remove(callback)

    def _publish(self, kind: str, data: dict[str, Any]) -> None:
        event = {"event": kind, "time": time.time(), "data": data}
        for cb in list(self._subscribers):
            try:
                cb(event)
            except Exception as exc:  # noqa: BLE001 - a subscriber bug must not hurt the engine
                log_event(log, "engine.subscriber-error", level=logging.ERROR, kind=kind, error=repr(exc))

    def _on_bgp_state(self, peer: Any, old: str, new: str) -> None:
        if not self._subscribers:
            return
        st = peer.stats
        self._publish("bgp-neighbor-state", {
            "neighbor-address": peer.name,
            "previous-state": old,
            "state": new,
            "last-notification-sent": _note(st.last_notification_sent),
            "last-notification-received": _note(st.last_notification_received),
        })

    # -- RIB events, redistribution, convergence -------------------------------------------
    def _on_nexthop_change(self, family: str, gateway: str, reachable: bool, resolved: list) -> None:
        log_event(log, "rib.nexthop", family=family, gateway=gateway, reachable=reachable,
                  via=",".join(h.get("address", h.get("interface", "")) for h in resolved))
        self._redistribute_soon()

    def _redistribute_soon(self) -> None:
        if self.loop is not None and not self._redist_soon and not self._stopping:
            self._redist_soon = True
            self.loop.call_soon(self._redistribute)

    def _redistribute(self) -> None:
        """Routes of the RIB (connected, static, controller) into BGP, each through its
        ``redistribute`` policy (default: accept); only selected routes of that origin."""
        self._redist_soon = False
        if self._redist_handle is not None:
            self._redist_handle.cancel()
            self._redist_handle = None
        if self._stopping:
            return
        sp, rib = self.bgp, self.rib
        if sp is not None and rib is not None:
            try:
                self._redistribute_now(sp, rib)
            except Exception as exc:  # noqa: BLE001 - never lose the timer
                log_event(log, "bgp.redistribute-error", level=logging.ERROR, error=repr(exc))
        if self.loop is not None:
            self._redist_handle = self.loop.call_later(REDISTRIBUTE_INTERVAL, self._redistribute)

    def _redistribute_now(self, sp: Speaker, rib: RibManager) -> None:
        g = sp.config.global_
        by_proto: dict[str, list] = {}
        for r in g.redistribute:
            by_proto.setdefault(r.protocol, []).append(r)
        for proto in ("connected", "static", "controller"):
            reds = by_proto.get(proto, [])
            routes: dict[str, PathAttributes] = {}
            changed = False
            for fam in (4, 6):
                red = next((r for r in reds if px.family_of(r.family) == fam), None)
                keys = _selected_of_origin(rib, proto, fam) if red is not None else ()
                sig = (tuple(red.policy) if red is not None else None, keys)
                if self._redist_seen.get((proto, fam)) != sig:
                    self._redist_seen[(proto, fam)] = sig
                    changed = True
                if red is None:
                    continue
                for key in keys:
                    prefix = px.to_text(fam, key)
                    res = self.policy.evaluate(list(red.policy), RouteContext(
                        prefix, protocol=proto, route_type="local", local_as=g.asn), default_accept=True)
                    if res.accepted and res.attrs is not None:
                        routes[prefix] = _own_next_hop(res.attrs)
            if changed:
                sp.set_local_routes(proto, routes)

    def _on_end_of_rib(self, neighbor: str, family: AfiSafi) -> None:
        self._eor.add((neighbor, family))
        self._check_converged()

    def _check_converged(self) -> None:
        if self._converged or self.rib is None or self._stopping or self.standby:
            return  # a standby owns no FIB yet (nsr_activate checks again)
        sp = self.bgp
        if sp is not None:
            if sp.rib_pending():
                return
            for n in sp.config.neighbors:
                if not n.enabled:
                    continue
                peer = sp.peers.get(n.neighbor_address)
                ribs = sp.ribs.get(n.neighbor_address)
                if peer is None or ribs is None or peer.state != "Established":
                    return
                if any((n.neighbor_address, f) not in self._eor for f in ribs.families):
                    return
        self._converge("end-of-rib" if sp is not None and sp.config.neighbors else "no-bgp-peers")

    def _converge(self, why: str) -> None:
        if self._converged or self.rib is None:
            return
        self._converged = True
        if self._converge_handle is not None:
            self._converge_handle.cancel()
            self._converge_handle = None
        stale = self.rib.fib_converged()
        log_event(log, "rib.fib-converged", reason=why, stale_deleted=stale)

    # -- non-stop routing (appliance/nsr/agent.py, docs/nsr.md) ------------------------
    def _nsr(self) -> Any:
        if self.nsr is None:
            raise EngineError("non-stop routing is not enabled (fcrd --nsr-store)")
        return self.nsr

    async def nsr_status(self) -> dict[str, Any]:
        return await self._nsr().status()

    async def nsr_release(self, to: str | None = None, keep_frozen: bool = True,
                          vip: dict[str, str] | None = None) -> dict[str, Any]:
        from ..nsr.agent import SwitchoverRefused

        try:
            return await self._nsr().release(to, keep_frozen=keep_frozen, vip=vip)
        except SwitchoverRefused as exc:
            raise EngineError(f"switchover refused: {exc}") from None

    async def nsr_adopt(self, vip: dict[str, str] | None = None) -> dict[str, Any]:
        from ..nsr.agent import SwitchoverRefused

        try:
            return await self._nsr().adopt(vip)
        except SwitchoverRefused as exc:
            raise EngineError(f"adopt refused: {exc}") from None

    async def nsr_resume(self) -> dict[str, Any]:
        from ..nsr.agent import SwitchoverRefused

        try:
            return await self._nsr().resume()
        except SwitchoverRefused as exc:
            raise EngineError(f"resume refused: {exc}") from None

    async def nsr_start_bfd(self) -> None:
        if self.bfd is None:
            from ..bfd.worker import BfdProcess

            bfd = BfdProcess()
            await asyncio.get_running_loop().run_in_executor(None, bfd.start)
            bfd.add_listener(self._on_bfd, self.loop)
            self.bfd = bfd
            if self.nsr_hooks is not None:
                self.nsr_hooks.bfd_started()  # the crash guard holds its pipes at once

    async def nsr_activate(self, adopted: list[str], bfd_exported: dict[str, Any],
                           relearn: list[str] = ()) -> None:
        """A standby that adopted sessions becomes the active engine: BFD sessions adopted
        then the rest started, listening and the other neighbors started, the FIB taken
        over (reconcile: our kernel routes stay, differences are written). ``relearn``:
        adopted sessions whose routes come back by route refresh (after a crash): the FIB
        converges only once they are back (their EoRR), not at once."""
        loop = asyncio.get_running_loop()
        self.standby = False
        if bfd_exported or self._bfd_wanted:
            await self.nsr_start_bfd()
            if bfd_exported and hasattr(self.bfd, "adopt_sessions"):
                await loop.run_in_executor(None, lambda: self.bfd.adopt_sessions(bfd_exported))
                for p in bfd_exported:
                    self._bfd_state[_norm(p)] = "Up"
            configs = list(self._bfd_wanted.values())
            await loop.run_in_executor(None, lambda: self.bfd.apply(configs))
            for peer in self._bfd_wanted:
                self._bfd_state.setdefault(peer, "Down")
        if self.bgp is not None:
            await self.bgp.activate(adopted)
            for key in adopted:
                if key in relearn:
                    continue
                for fam in self.bgp.ribs[key].families:
                    self._eor.add((key, fam))
        if self.rib is not None:
            await loop.run_in_executor(None, self.rib.start_fib)
        if self.kernel and self.config.interfaces is not None:
            for e in await self._apply_interfaces(self.config):
                log_event(log, "engine.start-error", level=logging.ERROR, error=e)
        self._converge_handle = loop.call_later(CONVERGE_TIMEOUT, self._converge, "timer")
        self._check_converged()

    # -- operational state (the engine API) ----------------------------------------
    def _speaker(self) -> Speaker:
        if self.bgp is None:
            raise EngineError("BGP is not configured")
        return self.bgp

    def _rib(self) -> RibManager:
        if self.rib is None:
            raise EngineError("the engine is not started")
        return self.rib

    def ping(self) -> dict[str, Any]:
        return {"version": __version__, "uptime": round(time.time() - self.started_at, 3),
                "pid": os.getpid(), "standby": self.standby}

    def bgp_summary(self) -> dict[str, Any]:
        return self._speaker().summary()

    def bgp_neighbors(self, neighbor: str | None = None) -> dict[str, Any]:
        sp = self._speaker()
        if neighbor is not None:
            if neighbor not in sp.peers:
                raise EngineError(f"no such neighbor {neighbor}")
            return {"neighbors": [sp.neighbor_state(neighbor, detail=True)]}
        return {"neighbors": [sp.neighbor_state(a, detail=True) for a in sorted(sp.peers)]}

    def bgp_rib(self, family: str = "ipv4-unicast", prefix: str | None = None, limit: int | None = 100,
                exact: bool = False) -> dict[str, Any]:
        try:
            return {"routes": self._speaker().rib_routes(family, prefix, limit, exact)}
        except ValueError as exc:
            raise EngineError(str(exc)) from None

    def bgp_adj_rib(self, neighbor: str, family: str = "ipv4-unicast", direction: str = "in",
                    limit: int | None = 100) -> dict[str, Any]:
        sp = self._speaker()
        if neighbor not in sp.peers:
            raise EngineError(f"no such neighbor {neighbor}")
        if direction == "in":
            return {"routes": sp.adj_rib_in(neighbor, family, limit)}
        if direction == "out":
            return {"routes": sp.adj_rib_out(neighbor, family, limit)}
        raise EngineError("direction must be 'in' or 'out'")

    def bgp_clear(self, neighbor: str, soft: str | None = None) -> dict[str, Any]:
        sp = self._speaker()
        if neighbor not in sp.peers:
            raise EngineError(f"no such neighbor {neighbor}")
        if soft not in (None, "in", "out"):
            raise EngineError("soft must be 'in', 'out' or null")
        sp.clear_neighbor(neighbor, soft)
        return {"cleared": neighbor, "soft": soft}

    def rib_routes(self, family: str | None = None, prefix: str | None = None,
                   limit: int | None = 100) -> dict[str, Any]:
        """The RIB manager's view: per prefix the selected route, every candidate and the
        FIB status; counts per origin; tracked next hops; FIB counters."""
        rib = self._rib()
        try:
            if prefix is not None and family is None:
                family = "ipv6" if ":" in prefix else "ipv4"
            st = rib.state(family, prefix, limit)
        except (ValueError, KeyError) as exc:
            raise EngineError(f"bad family or prefix: {exc}") from None
        st["converged"] = self._converged
        return st

    def static_push(self, prefix: str, next_hops: Any, distance: int | None = None, tag: int = 0,
                    metric: int = 0) -> dict[str, Any]:
        """A controller route (origin ``controller``, distance 5 unless given)."""
        if self.static is None:
            raise EngineError("the engine is not started")
        if distance is not None and (isinstance(distance, bool) or not isinstance(distance, int)
                                     or not 1 <= distance <= 255):
            raise EngineError("distance must be 1..255")
        try:
            entry = self.static.push(prefix, next_hops, distance=distance, metric=metric, tag=tag)
        except (ValueError, TypeError, KeyError) as exc:
            raise EngineError(f"bad controller route: {exc}") from None
        self._redistribute_soon()
        return {"pushed": entry}

    def static_withdraw(self, prefix: str) -> dict[str, Any]:
        if self.static is None:
            raise EngineError("the engine is not started")
        try:
            gone = self.static.withdraw(prefix)
        except ValueError as exc:
            raise EngineError(f"bad prefix: {exc}") from None
        self._redistribute_soon()
        return {"withdrawn": gone}

    def static_list(self) -> dict[str, Any]:
        if self.static is None:
            raise EngineError("the engine is not started")
        configured = [{"prefix": r.prefix, "distance": r.distance, "tag": r.tag,
                       "next-hops": [{k: v for k, v in (("index", nh.index), ("address", nh.address),
                                                        ("interface", nh.interface),
                                                        ("blackhole", nh.blackhole or None),
                                                        ("distance", nh.distance),
                                                        ("bfd", nh.bfd or None)) if v is not None}
                                     for nh in r.next_hops]}
                      for r in self.static.config.routes]
        return {"controller": self.static.list(), "configured": configured}

    def static_clear(self) -> dict[str, Any]:
        if self.static is None:
            raise EngineError("the engine is not started")
        n = self.static.clear()
        self._redistribute_soon()
        return {"cleared": n}

    async def bfd_sessions(self) -> dict[str, Any]:
        if self.bfd is None:
            return {"sessions": []}
        assert self.loop is not None
        sessions = await self.loop.run_in_executor(None, self.bfd.sessions)
        for s in sessions:
            peer = _norm(s.get("peer-address", ""))
            s["clients"] = self._bfd_clients.get(peer, [])
            if s.get("local-discriminator") is not None:
                self._bfd_discr[peer] = s["local-discriminator"]
        return {"sessions": sessions}

    def interfaces_state(self) -> dict[str, Any]:
        rib = self._rib()
        out: list[dict[str, Any]] = []
        if rib.interfaces is not None:
            for lk in sorted(rib.interfaces.snapshot().values(), key=lambda k: k.index):
                addrs = [{"ip": a, "prefix-length": plen, "family": f"ipv{fam}",
                          "scope": scope, "ours": proto == self.config.routing.protocol}
                         for (fam, a, plen), (scope, proto) in sorted(lk.addresses.items())]
                out.append({"name": lk.name, "index": lk.index, "up": lk.up, "flags": lk.flags,
                            "addresses": addrs})
        return {"interfaces": out, "last-apply": self.interfaces_report}

    def policy_test(self, policy: list[str] | str, route: dict[str, Any]) -> dict[str, Any]:
        """Evaluate ``route`` through the chain ``policy`` without installing anything
        (the CLI's `test policy`): every statement, every condition, the decision."""
        names = [policy] if isinstance(policy, str) else list(policy)
        if not isinstance(route, dict) or "prefix" not in route:
            raise EngineError("route needs at least a prefix")
        try:
            ctx = self._route_context(route)
            default = route.get("default", "accept-route")
            if default not in ("accept-route", "reject-route"):
                raise ValueError("default must be accept-route or reject-route")
            return self.policy.explain(names, ctx, default_accept=default == "accept-route")
        except PolicyConfigError as exc:
            raise EngineError(exc.message) from None
        except (ValueError, TypeError, KeyError) as exc:
            raise EngineError(f"bad route: {exc}") from None

    def _route_context(self, r: dict[str, Any]) -> RouteContext:
        protocol = r.get("protocol", "bgp")
        if protocol not in ("bgp", "static", "connected", "controller"):
            raise ValueError(f"protocol {protocol!r}: bgp, static, connected or controller")
        attr_keys = ("as-path", "communities", "large-communities", "next-hop", "origin", "med", "local-pref")
        neighbor = r.get("neighbor") or ""
        route_type = r.get("route-type") or ("local" if not neighbor or protocol != "bgp" else None)
        local_as = self.bgp.asn if self.bgp is not None else 0
        if route_type is None:
            peer_as = None
            if self.bgp is not None and neighbor in self.bgp.peers:
                peer_as = self.bgp.peers[neighbor].config.peer_as
            route_type = "internal" if peer_as == local_as else "external"
        if route_type not in ("internal", "external", "local"):
            raise ValueError(f"route-type {route_type!r}: internal, external or local")
        attrs = None
        if protocol == "bgp" or any(k in r for k in attr_keys):
            comms = []
            for c in r.get("communities", []):
                v = parse_community(str(c))
                if v is None:
                    raise ValueError(f"community {c!r}")
                comms.append(v)
            larges = []
            for c in r.get("large-communities", []):
                v = parse_large_community(str(c))
                if v is None:
                    raise ValueError(f"large community {c!r}")
                larges.append(v)
            nh = r.get("next-hop")
            origin = r.get("origin", "igp" if protocol == "bgp" else "incomplete")
            if origin not in _ORIGINS:
                raise ValueError(f"origin {origin!r}: igp, egp or incomplete")
            attrs = PathAttributes(
                origin=_ORIGINS[origin], as_path=_parse_as_path(str(r.get("as-path", ""))),
                next_hop=ipaddress.ip_address(nh).packed if nh else b"",
                med=_opt_int(r.get("med")), local_pref=_opt_int(r.get("local-pref")),
                communities=tuple(comms), large_communities=tuple(larges))
        return RouteContext(r["prefix"], attrs=attrs, protocol=protocol, route_type=route_type,
                            neighbor=neighbor, next_hop=r.get("next-hop"), local_as=local_as,
                            weight=_opt_int(r.get("weight")))


def config_digest(config: dict[str, Any]) -> str:
    """Identity of a configuration tree (RFC 7951 JSON): equal trees, equal digests."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _note(n: tuple[int, int, str] | None) -> dict[str, Any] | None:
    """A NOTIFICATION as bgp.summary gives it (PeerStats.to_dict)."""
    return None if n is None else {"code": n[0], "subcode": n[1], "message": n[2]}


def _opt_int(v: Any) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"expected an integer, got {v!r}")
    return v


def _parse_as_path(text: str) -> tuple:
    """"65001 65002 {65003,65004}" -> AS_PATH segments."""
    segs: list[tuple[int, tuple[int, ...]]] = []
    seq: list[int] = []
    for tok in text.replace("{", " {").replace("}", "} ").split():
        if tok.startswith("{"):
            if seq:
                segs.append((int(AsPathSegment.AS_SEQUENCE), tuple(seq)))
                seq = []
            members = tuple(int(x) for x in tok.strip("{}").split(",") if x)
            segs.append((int(AsPathSegment.AS_SET), members))
        else:
            seq.append(int(tok))
    if seq:
        segs.append((int(AsPathSegment.AS_SEQUENCE), tuple(seq)))
    return tuple(segs)


def _own_next_hop(attrs: PathAttributes | None) -> PathAttributes | None:
    """A locally originated route's next hop is ours: set-next-hop self (or nothing)
    becomes the empty next hop that the export rules replace by our address."""
    if attrs is not None and attrs.next_hop == NEXT_HOP_SELF:
        return attrs.replace(next_hop=b"")
    return attrs


def _selected_of_origin(rib: RibManager, origin: str, fam: int) -> tuple[int, ...]:
    """Keys of ``origin`` that the RIB selected (the origin won its prefix)."""
    with rib._lock:  # the RIB's tables are not public API; read them under its lock
        table = rib._tables.get(origin, {}).get(fam, {})
        sel = rib._selected[fam]
        return tuple(sorted(k for k in table if (s := sel.get(k)) is not None and s.origin == origin))


def bgp_config_of(engine: Engine) -> BgpConfig | None:
    return engine.config.bgp


__all__ = ["Engine", "EngineError", "bgp_config_of"]
