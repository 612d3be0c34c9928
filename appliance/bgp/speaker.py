"""The BGP instance: listeners, peers and the RIB pipeline between them.

Peers (peer.py) own connections and the FSM; the RIB objects (rib/) own routes; this
module wires them: UPDATEs in -> Adj-RIB-In -> Loc-RIB -> every peer's Adj-RIB-Out ->
packed UPDATEs out, with output paced by each transport's write buffer.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from ..log import log_event
from .config import BgpConfig, NeighborConfig
from .family import (
    FAMILY_NAMES,
    IPV4_UNICAST,
    IPV6_UNICAST,
    AfiSafi,
    family_of_prefix,
    key_to_prefix,
    prefix_to_key,
)
from .nexthop import local_next_hops
from .packet.constants import CeaseSubcode, ErrorCode, RouteRefreshSubtype
from .packet.pathattrs import PathAttributes
from .packet.update import AttrCache, Update
from .peer import HandoverError, LocalSettings, Peer
from .rib.adj_in import AdjRibIn
from .rib.adj_out import AdjRibOut, TableSnapshot
from .rib.checkpoint import family_from_text, family_to_text, pack_keys, unpack_keys
from .rib.decision import DecisionOptions
from .rib.export import ExportContext, ExportPolicy
from .rib.loc_rib import LocRib
from .rib.path import Path, PathInterner, PeerSource, local_source
from .transport import Listener

log = logging.getLogger("fcr.bgp")

# Import policy hook, batch form: (family, source, attrs, keys) -> groups of accepted
# keys under their resulting attributes; keys in no group are rejected.
ImportPolicy = Callable[[AfiSafi, PeerSource, PathAttributes, list[bytes]], list[tuple[PathAttributes, list[bytes]]]]

FAMILIES = (IPV4_UNICAST, IPV6_UNICAST)
_FLUSH_BATCH = 256  # UPDATE messages built per peer per loop turn
_FLUSH_SLICE = 0.02  # s: one flush callback stops after this (the rest on the next turn)
_REFRESH_WAVE = 8  # crash recovery: peers asked to re-send their routes at the same time
_RIB_SLICE = 8192   # Loc-RIB changes handed to the RIB manager per loop turn...
_RIB_SLICE_BUSY = 1024  # ...and while UPDATEs keep arriving (BGP input goes first)
CEASE_BFD_DOWN = 10  # RFC 9384: Cease subcode "BFD Down"
# Origins of locally originated routes, in order of precedence for one prefix.
LOCAL_ORIGINS = ("network", "static", "controller", "connected")
_DEFAULT_LOCAL_ATTRS = PathAttributes(origin=0, as_path=(), next_hop=b"")
_first = itemgetter(0)


class FeedLocRib(LocRib):
    """A Loc-RIB that reports which prefixes changed, for the RIB manager (FIB).

    ``on_change(rib, changes, touched)``: ``changes`` as announce/withdraw return them
    (best path changed), ``touched`` the prefixes of the call that have several candidates
    (a non-best candidate changed: matters for multipath), or None. Without a listener
    the only cost is one attribute test per call.
    """

    __slots__ = ("on_change", "multipath")

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.on_change: Callable[[LocRib, list, Any], None] | None = None
        self.multipath = False

    def announce(self, path: Path, keys: Iterable[bytes]) -> list:
        cb = self.on_change
        if cb is None:
            return LocRib.announce(self, path, keys)
        if not isinstance(keys, (list, tuple)):
            keys = list(keys)
        changes = LocRib.announce(self, path, keys)
        touched = self._multi.keys() & keys if self.multipath and self._multi else None
        cb(self, changes, touched)
        return changes

    def withdraw(self, source: PeerSource | str, keys: Iterable[bytes]) -> list:
        cb = self.on_change
        if cb is None:
            return LocRib.withdraw(self, source, keys)
        if not isinstance(keys, (list, tuple)):
            keys = list(keys)
        # before: a prefix going from two candidates to one leaves _multi
        touched = self._multi.keys() & keys if self.multipath and self._multi else None
        changes = LocRib.withdraw(self, source, keys)
        cb(self, changes, touched)
        return changes


class FamilyAdjRibOut(AdjRibOut):
    """Adj-RIB-Out with one export policy per address family (``family_policy``)."""

    __slots__ = ("family_policy",)

    def __init__(self, policy: ExportPolicy | None = None) -> None:
        super().__init__(policy)
        self.family_policy: dict[AfiSafi, ExportPolicy] = {}

    def _take(self, family: AfiSafi, max_messages: int, max_len: int) -> Any:
        if self.family_policy:
            self.policy = self.family_policy.get(family)
        return AdjRibOut._take(self, family, max_messages, max_len)


def _rid_int(router_id: str) -> int:
    return int(ipaddress.IPv4Address(router_id))


@dataclass(slots=True)
class PeerRibs:
    """Per-neighbor routing state, kept beside the Peer so it survives reconnects."""

    adj_in: AdjRibIn
    adj_out: AdjRibOut
    source: PeerSource | None = None
    export_ctx: ExportContext | None = None
    families: frozenset[AfiSafi] = frozenset()
    limit_warned: set[AfiSafi] = field(default_factory=set)
    stale_timer: asyncio.TimerHandle | None = None
    rejected_updates: int = 0
    eorr_due: set[AfiSafi] = field(default_factory=set)
    import_policy: dict[AfiSafi, ImportPolicy] = field(default_factory=dict)
    filtered: dict[AfiSafi, set[bytes]] = field(default_factory=dict)  # rejected by import policy
    peer_gr: Any = None          # the peer's Graceful Restart capability while up
    notifications_at_up: int = 0  # NOTIFICATIONs sent+received when the session came up
    treat_as_withdraw: int = 0


class Speaker:
    """One BGP instance. Implements peer.SessionListener."""

    def __init__(self, config: BgpConfig, *, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.config = config
        self.loop = loop or asyncio.get_event_loop()
        g = config.global_
        self.asn = g.asn
        self.router_id = g.router_id
        self.router_id_int = _rid_int(g.router_id)
        self.cluster_id = ipaddress.IPv4Address(g.cluster_id or g.router_id).packed
        self.attr_cache = AttrCache()
        self.interner = PathInterner()
        opts = DecisionOptions(always_compare_med=g.always_compare_med, deterministic_med=g.deterministic_med)
        self.loc_rib: dict[AfiSafi, FeedLocRib] = {f: FeedLocRib(f, opts) for f in FAMILIES}
        self.peers: dict[str, Peer] = {}
        self.ribs: dict[str, PeerRibs] = {}
        self.standby = False  # NSR: peers not started, nothing listens (see start)
        self.local = local_source(self.router_id_int, self.asn)
        self.listener: Listener | None = None
        self._dirty: set[str] = set()
        self._networks: set[str] = set()
        self._flush_scheduled = False
        self.started_at = time.time()
        # locally originated routes: origin -> family -> key -> attributes (LOCAL_ORIGINS)
        self._local_sets: dict[str, dict[AfiSafi, dict[bytes, PathAttributes]]] = {}
        self._local_cur: dict[AfiSafi, dict[bytes, PathAttributes]] = {f: {} for f in FAMILIES}
        # network statements with a policy: prefix -> attributes, None = rejected by it
        self.network_attrs: dict[str, PathAttributes | None] = {}
        # the RIB manager (FIB) fed with Loc-RIB changes; see set_rib
        self.rib: Any = None
        self._rib_pending: dict[AfiSafi, set[bytes]] = {f: set() for f in FAMILIES}
        self._rib_scheduled = False
        self._rib_busy = False  # Loc-RIB changed since the last slice
        self._nh_text: dict[bytes, str | None] = {}
        self.multipath = False
        # callbacks for the engine
        self.on_end_of_rib: Callable[[str, AfiSafi], None] | None = None
        self.on_rib_drained: Callable[[], None] | None = None
        # every session state change: (peer, old state, new state); must not block
        self.on_peer_state: Callable[[Peer, str, str], None] | None = None
        # NSR crash guard (appliance/nsr/crash.py): peers call its connection hooks
        self.nsr_hooks: Any = None
        # crash recovery: output held per peer until the peers' routes are re-learned
        self._held_out: dict[str, ExportContext] = {}
        self._relearn: dict[str, set[AfiSafi]] = {}
        self._relearn_timer: asyncio.TimerHandle | None = None
        self._relearn_timeout = 10.0
        self._refresh_queue: deque[str] = deque()  # crash recovery: peers not asked yet
        self._refresh_asked: set[str] = set()

    # -- lifecycle ---------------------------------------------------------------
    async def start(self, *, standby: bool = False) -> None:
        """``standby`` (NSR): neighbors are created but not started and nothing listens
        until ``activate`` (after the sessions of the active engine were adopted)."""
        g = self.config.global_
        self.standby = standby
        if g.listen_addresses and not standby:
            await self._listen()
        for n in self.config.neighbors:
            self._add_neighbor(n, start=not standby)
        self.set_networks(self.config.networks, self.network_attrs)
        log_event(log, "bgp.start", asn=self.asn, router_id=self.router_id,
                  listen=",".join(f"[{a}]:{g.listen_port}" if ":" in a else f"{a}:{g.listen_port}" for a in g.listen_addresses) or "none",
                  neighbors=len(self.peers))

    async def stop(self, message: str = "") -> None:
        """Administrative shutdown (RFC 8203 message) to every peer, then close."""
        await asyncio.gather(*(p.shutdown(message) for p in self.peers.values()), return_exceptions=True)
        if self.listener is not None:
            await _maybe_await(self.listener.close())
        for r in self.ribs.values():
            if r.stale_timer:
                r.stale_timer.cancel()

    def _local_settings(self, n: NeighborConfig) -> LocalSettings:
        return LocalSettings(
            asn=n.local_as or self.asn,
            router_id=self.router_id,
            graceful_restart=n.graceful_restart,
            families=tuple(f.family for f in n.families if f.enabled),
            attr_cache=self.attr_cache,
        )

    async def _listen(self) -> None:
        g = self.config.global_
        self.listener = Listener(list(g.listen_addresses), g.listen_port, self._on_accept)
        await _maybe_await(self.listener.start())
        for key, peer in self.peers.items():
            if peer.config.tcp_md5_key:
                self.listener.set_md5(key, peer.config.tcp_md5_key)

    async def activate(self, adopted: Iterable[str] = ()) -> None:
        """Leave standby: listen, and start the neighbors whose sessions were not adopted."""
        if not self.standby:
            return
        self.standby = False
        if self.config.global_.listen_addresses and self.listener is None:
            await self._listen()
        skip = set(adopted)
        for key, peer in self.peers.items():
            if key not in skip and peer.config.enabled:
                peer.start()

    def _add_neighbor(self, n: NeighborConfig, *, start: bool = True) -> None:
        key = n.neighbor_address
        peer = Peer(n, self._local_settings(n), self, loop=self.loop)
        self.peers[key] = peer
        self.ribs[key] = PeerRibs(adj_in=AdjRibIn(), adj_out=FamilyAdjRibOut())
        if n.tcp_md5_key and self.listener is not None:
            self.listener.set_md5(key, n.tcp_md5_key)
        if n.enabled and start and not self.standby:
            peer.start()

    async def remove_neighbor(self, address: str) -> None:
        peer = self.peers.get(address)
        if peer is None:
            return
        await peer.shutdown("neighbor deconfigured")
        self._withdraw_all_from(address)
        del self.peers[address]
        del self.ribs[address]
        if self.listener is not None:
            self.listener.set_md5(address, None)

    async def add_neighbor(self, n: NeighborConfig) -> None:
        self._add_neighbor(n)

    def _on_accept(self, sock: socket.socket, remote_ip: str) -> None:
        peer = self.peers.get(str(ipaddress.ip_address(remote_ip.split("%")[0])))
        if peer is None:
            mapped = ipaddress.ip_address(remote_ip.split("%")[0])
            if isinstance(mapped, ipaddress.IPv6Address) and mapped.ipv4_mapped:
                peer = self.peers.get(str(mapped.ipv4_mapped))
        if peer is None or not peer.config.enabled:
            log_event(log, "bgp.reject", level=logging.WARNING, remote=remote_ip, reason="not a configured neighbor")
            sock.close()
            return
        peer.incoming_connection(sock, remote_ip)

    # -- locally originated routes -------------------------------------------------
    def set_networks(self, prefixes: Iterable[str],
                     attrs: dict[str, PathAttributes | None] | None = None) -> None:
        """Converge the ``network`` statements to ``prefixes``. ``attrs``: per prefix the
        attributes its network policy produced (None: the policy rejected it, the prefix
        is not originated); prefixes not in ``attrs`` get origin IGP and an empty path."""
        attrs = attrs or {}
        routes: dict[str, PathAttributes] = {}
        for p in prefixes:
            a = attrs.get(p, _DEFAULT_LOCAL_ATTRS)
            if a is not None:
                routes[p] = a
        self._networks = set(prefixes)
        self.set_local_routes("network", routes)

    def _originate(self, prefixes: Iterable[str]) -> None:
        """Originate more networks with default attributes (kept for callers and tests)."""
        cur = {key_to_prefix(k, f.afi): a for f, t in self._local_sets.get("network", {}).items()
               for k, a in t.items()}
        for p in prefixes:
            self._networks.add(p)
            cur.setdefault(p, _DEFAULT_LOCAL_ATTRS)
        self.set_local_routes("network", cur)

    def set_local_routes(self, origin: str, routes: dict[str, PathAttributes]) -> None:
        """Converge the locally originated routes of ``origin`` (network statements, or
        routes redistributed from the RIB: static, controller, connected) to ``routes``
        (prefix -> attributes, after the redistribution or network policy). One prefix
        is originated once, with the attributes of the first origin of LOCAL_ORIGINS
        that has it."""
        if origin not in LOCAL_ORIGINS:
            raise ValueError(f"unknown local origin {origin!r}")
        new: dict[AfiSafi, dict[bytes, PathAttributes]] = {f: {} for f in FAMILIES}
        for p, a in routes.items():
            new[family_of_prefix(p)][prefix_to_key(p)] = a
        old = self._local_sets.get(origin, {})
        self._local_sets[origin] = new
        for fam in FAMILIES:
            o, n = old.get(fam, {}), new[fam]
            touched = [k for k in o.keys() | n.keys() if o.get(k) != n.get(k)]
            if touched:
                self._sync_local(fam, touched)

    def local_routes(self, origin: str | None = None) -> dict[str, dict[str, Any]]:
        """What we originate: prefix -> attributes (as dict) and the origin that won."""
        out: dict[str, dict[str, Any]] = {}
        for fam in FAMILIES:
            for k, a in self._local_cur[fam].items():
                won = next((o for o in LOCAL_ORIGINS
                            if k in self._local_sets.get(o, {}).get(fam, {})), "network")
                if origin is None or won == origin:
                    out[key_to_prefix(k, fam.afi)] = {"origin": won, **a.to_dict()}
        return out

    def _sync_local(self, fam: AfiSafi, keys: Iterable[bytes]) -> None:
        cur = self._local_cur[fam]
        groups: dict[PathAttributes, list[bytes]] = {}
        gone: list[bytes] = []
        for k in keys:
            want = None
            for o in LOCAL_ORIGINS:
                want = self._local_sets.get(o, {}).get(fam, {}).get(k)
                if want is not None:
                    break
            have = cur.get(k)
            if want is None:
                if have is not None:
                    del cur[k]
                    gone.append(k)
            elif have is None or have != want:
                cur[k] = want
                groups.setdefault(want, []).append(k)
        rib = self.loc_rib[fam]
        if gone:
            self._propagate(fam, rib.withdraw(self.local, gone))
        for a, ks in groups.items():
            self._propagate(fam, rib.announce(self.interner.get(self.local, a), ks))

    # -- SessionListener -----------------------------------------------------------
    def session_established(self, peer: Peer) -> None:
        ribs = self._session_context(peer)
        if ribs.stale_timer is not None:
            self._end_of_restart(ribs, ribs.source)
        ribs.adj_out.clear()
        for fam in ribs.families:
            ribs.adj_out.enqueue_full(fam, self.loc_rib[fam].items())
        self._mark_dirty(peer.config.neighbor_address)

    def _session_context(self, peer: Peer) -> PeerRibs:
        """What an Established session fixes: the route source, families, export rules."""
        n = peer.config
        key = n.neighbor_address
        ribs = self.ribs[key]
        neg = peer.negotiated
        local_as = n.local_as or self.asn
        ebgp = n.peer_as != local_as
        source = PeerSource(
            peer_id=key,
            address=ipaddress.ip_address(key).packed,
            router_id=_rid_int(neg.peer_router_id),
            peer_as=n.peer_as,
            local_as=local_as,
            ebgp=ebgp,
            rr_client=n.route_reflector_client,
        )
        nh4, nh6 = local_next_hops(peer.local_address)
        if ribs.source != source:  # an equal one stays: routes mirrored under it (NSR) keep it
            ribs.source = source
        ribs.families = frozenset(neg.families)
        ribs.peer_gr = neg.peer_graceful_restart
        ribs.notifications_at_up = _notifications(peer)
        ribs.export_ctx = ExportContext(
            local_as=local_as,
            router_id=self.router_id_int,
            cluster_id=self.cluster_id,
            peer=source,
            four_octet_as=neg.four_octet_as,
            next_hop_self=n.next_hop_self,
            local_address_v4=nh4,
            local_address_v6=nh6,
            rr_client=n.route_reflector_client,
        )
        for fam, hook in getattr(ribs.adj_out, "family_policy", {}).items():
            if hasattr(hook, "next_hop_self"):
                own = nh6 if fam.afi == IPV6_UNICAST.afi else nh4
                if own is not None and hook.next_hop_self != own:
                    hook.next_hop_self = own
                    if hasattr(hook, "_nhs"):
                        hook._nhs = {}  # cached rewrites for the previous address
        return ribs

    # -- NSR handover (docs/nsr.md) ---------------------------------------------------
    def handover_pause(self, keys: Iterable[str] | None = None) -> list[str]:
        """Pause reading and UPDATE output of the Established sessions (all, or ``keys``):
        their RIB state is then fixed while it is checkpointed. Returns the paused ones."""
        paused = []
        try:
            for key in (self.peers if keys is None else keys):
                peer = self.peers[key]
                if peer.state != "Established":
                    continue
                peer.handover_pause()
                paused.append(key)
        except BaseException:
            self.handover_resume(paused)
            raise
        return paused

    def handover_resume(self, keys: Iterable[str]) -> None:
        for key in keys:
            peer = self.peers.get(key)
            if peer is not None:
                peer.handover_resume()
                self._mark_dirty(key)

    def handover_state(self, key: str) -> dict[str, Any]:
        """What of the neighbor's RIB state is not in the NSR mirror (appliance/nsr/
        ribmirror.py): what is queued for it and not sent, import-filtered keys, counters."""
        ribs = self.ribs[key]
        return {
            "out": {family_to_text(f): ribs.adj_out.handover_state(f) for f in ribs.families},
            "filtered": {family_to_text(f): pack_keys(ks) for f, ks in ribs.filtered.items() if ks},
            "eorr-due": sorted(family_to_text(f) for f in ribs.eorr_due),
            "rejected-updates": ribs.rejected_updates,
            "treat-as-withdraw": ribs.treat_as_withdraw,
            "notifications-at-up": ribs.notifications_at_up,
        }

    def handover_detach(self, key: str) -> tuple[socket.socket, dict[str, Any]]:
        """Detach the paused session (see Peer.handover_detach); its routes stay in the
        Loc-RIB (and the FIB) and nothing more is queued for it."""
        sock, snap = self.peers[key].handover_detach()
        self.ribs[key].export_ctx = None
        self._dirty.discard(key)
        return sock, snap

    async def adopt_sessions(self, sessions: dict[str, tuple[dict, dict | None, socket.socket]],
                             interned: Any = None) -> list[str]:
        """Continue sessions detached by another engine: ``sessions`` maps a neighbor to
        (session snapshot, its ``handover_state``, restored socket). The RIBs are already
        here (the NSR mirror kept this engine's Adj-RIBs-In, Loc-RIB and sent maps in step);
        a state of None means they are this engine's own (a switchover undone). Every peer
        gets a KEEPALIVE at once; then each continues the queue it had: only what was
        queued and not sent goes out. ``interned(key)``: the sent map's attribute objects."""
        adopted: list[str] = []
        for key, (snap, _state, sock) in sessions.items():
            peer = self.peers.get(key)
            if peer is None:
                raise HandoverError(f"{key}: not a configured neighbor")
            await peer.adopt(snap, sock)
            adopted.append(key)
        for key in adopted:
            ribs = self._session_context(self.peers[key])
            state = sessions[key][1]
            if state is not None:
                ribs.filtered = {family_from_text(f): set(unpack_keys(v))
                                 for f, v in state.get("filtered", {}).items()}
                ribs.eorr_due = {family_from_text(f) for f in state.get("eorr-due", [])}
                ribs.rejected_updates = int(state.get("rejected-updates", 0))
                ribs.treat_as_withdraw = int(state.get("treat-as-withdraw", 0))
                ribs.notifications_at_up = int(state.get("notifications-at-up", 0))
                attrs = list(interned(key)) if interned is not None else []
                assert ribs.export_ctx is not None
                for fam in ribs.families:
                    ribs.adj_out.continue_from(fam, state.get("out", {}).get(family_to_text(fam), {}),
                                               self.loc_rib[fam], ribs.export_ctx, attrs)
            self._mark_dirty(key)
        log_event(log, "bgp.adopted", peers=len(adopted))
        if self.nsr_hooks is not None:
            self.nsr_hooks.adopted(adopted)
        return adopted

    async def recover_sessions(self, sessions: dict[str, tuple[dict, socket.socket, Any, bytes]],
                               relearn_timeout: float = 10.0) -> list[str]:
        """Continue sessions of an engine that crashed (appliance/nsr/crash.py): ``sessions``
        maps a neighbor to (session snapshot, its socket, transmit log, rest of a partial
        message). No RIB comes with them: each peer is asked for a ROUTE-REFRESH, and our
        output to all of them is held until their routes are back (EoRR with enhanced
        route refresh, else ``relearn_timeout``); then each gets its Adj-RIB-Out again
        (BoRR ... EoRR when negotiated: what it holds from us is replaced, only routes we
        no longer have are swept). A peer without route refresh cannot be re-learned: its
        session is reset."""
        adopted: list[str] = []
        for key, (snap, sock, tx_log, rest) in sessions.items():
            peer = self.peers.get(key)
            if peer is None:
                raise HandoverError(f"{key}: not a configured neighbor")
            await peer.adopt(snap, sock, tx_log=tx_log, tx_prefix=rest)
            adopted.append(key)
        for key in adopted:
            peer = self.peers[key]
            ribs = self._session_context(peer)
            neg = peer.negotiated
            if neg is None or not neg.route_refresh:
                log_event(log, "bgp.recover-reset", level=logging.WARNING, peer=key,
                          reason="the peer has no route refresh: its routes cannot be re-learned")
                peer.reset(ErrorCode.CEASE, CeaseSubcode.ADMIN_RESET, idle_hold=1.0)
                continue
            ribs.adj_out.clear()
            ctx, ribs.export_ctx = ribs.export_ctx, None
            assert ctx is not None
            self._held_out[key] = ctx
            if neg.enhanced_route_refresh:
                self._relearn[key] = set(ribs.families)
                self._refresh_queue.append(key)  # asked in waves: _ask_refresh
            else:
                for fam in ribs.families:  # no EoRR will tell when it is done: ask at once
                    peer.send_route_refresh(fam)
        self._relearn_timeout = relearn_timeout
        self._ask_refresh()
        if self._held_out:
            self._arm_relearn_timer()
            if not self._relearn:
                self._relearn_timer.cancel()
                self._relearn_timer = self.loop.call_later(
                    min(relearn_timeout, 2.0), self._release_held, "no-enhanced-route-refresh")
        log_event(log, "bgp.recovered", peers=len(adopted), relearning=len(self._relearn))
        return adopted

    def _ask_refresh(self) -> None:
        """Crash recovery: ask the next peers for their routes, at most _REFRESH_WAVE
        re-sending at a time. All at once, a hundred peers re-sending full tables kept the
        engine from its keepalives for 7.7 s (docs/performance.md, "NSR crash recovery");
        the engine is CPU-bound meanwhile, so waves cost the re-learn little."""
        dropped = False
        while self._refresh_queue and len(self._refresh_asked) < _REFRESH_WAVE:
            key = self._refresh_queue.popleft()
            peer, ribs = self.peers.get(key), self.ribs.get(key)
            if peer is None or ribs is None or peer.state != "Established":
                self._relearn.pop(key, None)  # gone meanwhile: nothing to wait for
                dropped = True
                continue
            self._refresh_asked.add(key)
            for fam in ribs.families:
                peer.send_route_refresh(fam)
        if dropped and not self._relearn and self._held_out:
            self._release_held("end-of-route-refresh")

    def _arm_relearn_timer(self) -> None:
        """Output is released at the latest ``relearn_timeout`` s after the last progress
        (a peer's re-learn completed), not after the start: later waves wait their turn."""
        if self._relearn_timer is not None:
            self._relearn_timer.cancel()
        self._relearn_timer = self.loop.call_later(self._relearn_timeout, self._release_held, "timeout")

    def _relearned(self, key: str, family: AfiSafi) -> None:
        fams = self._relearn.get(key)
        if fams is None:
            return
        fams.discard(family)
        if not fams:
            del self._relearn[key]
            self._refresh_asked.discard(key)
            if self._held_out:
                self._arm_relearn_timer()
            self._ask_refresh()
        if not self._relearn and self._held_out:
            self._release_held("end-of-route-refresh")

    def _release_held(self, why: str) -> None:
        """Crash recovery: the peers' routes are back; send every held peer its table."""
        if self._relearn_timer is not None:
            self._relearn_timer.cancel()
            self._relearn_timer = None
        held, self._held_out = self._held_out, {}
        self._relearn.clear()
        asked_late = list(self._refresh_queue)  # released by the timeout before their turn
        self._refresh_queue.clear()
        self._refresh_asked.clear()
        for key in asked_late:  # their routes still count: ask now (output goes out anyway)
            peer, ribs = self.peers.get(key), self.ribs.get(key)
            if peer is not None and ribs is not None and peer.state == "Established":
                for fam in ribs.families:
                    peer.send_route_refresh(fam)
        tables: dict[AfiSafi, TableSnapshot] = {}  # one copy for all: nothing changes in between
        for key, ctx in held.items():
            peer, ribs = self.peers.get(key), self.ribs.get(key)
            if peer is None or ribs is None or peer.state != "Established" or ribs.export_ctx is not None:
                continue  # went down (or came up anew) meanwhile
            ribs.export_ctx = ctx
            for fam in ribs.families:
                if fam not in tables:
                    tables[fam] = TableSnapshot(self.loc_rib[fam].items())
                self._refresh_out(peer, ribs, fam, tables[fam])
        log_event(log, "bgp.output-released", peers=len(held), reason=why)

    def _end_of_restart(self, ribs: PeerRibs, source: PeerSource) -> None:
        """The restarting peer is back (RFC 4724 §4.2): keep its stale routes only for
        families whose forwarding state it preserved; the rest go at once."""
        gr = ribs.peer_gr
        preserved = {(a, s) for a, s, flags in gr.families if flags & 0x80} if gr is not None else set()
        for fam in FAMILIES:
            if (fam.afi, fam.safi) in preserved and fam in ribs.families:
                continue  # swept at this family's End-of-RIB (or by the stale timer)
            removed = ribs.adj_in.sweep_stale(fam)
            if removed:
                self._propagate(fam, self.loc_rib[fam].withdraw(source, removed))
        if not any(ribs.adj_in.stale_count(f) for f in FAMILIES) and ribs.stale_timer is not None:
            ribs.stale_timer.cancel()
            ribs.stale_timer = None

    def state_changed(self, peer: Peer, old: str, new: str) -> None:
        """Peer hook: every FSM state change of a session (see Peer._notify_state)."""
        if self.on_peer_state is not None and self.peers.get(peer.name) is peer:
            self.on_peer_state(peer, old, new)
        if self.nsr_hooks is not None and self.peers.get(peer.name) is peer:
            self.nsr_hooks.state_changed(peer, old, new)

    def session_down(self, peer: Peer, reason: str) -> None:
        key = peer.config.neighbor_address
        ribs = self.ribs.get(key)
        if ribs is None:
            return
        ribs.adj_out.clear()
        ribs.eorr_due.clear()
        gr, ribs.peer_gr = ribs.peer_gr, None
        # RFC 4724 §4.2 helper mode applies when the session died without a
        # NOTIFICATION (a restart of the peer), not after an orderly close.
        helper = (
            gr is not None
            and peer.config.graceful_restart.enabled
            and gr.families
            and _notifications(peer) == ribs.notifications_at_up
        )
        if helper:
            # RFC 4724 helper: keep the routes as stale for the advertised restart time.
            gr_fams = {(a, s) for a, s, _flags in gr.families}
            for fam in ribs.families:
                if (fam.afi, fam.safi) in gr_fams:
                    ribs.adj_in.mark_stale(fam)
                else:
                    self._withdraw_family(key, fam)
            delay = min(gr.restart_time or 120, peer.config.graceful_restart.stale_routes_time)
            if ribs.stale_timer:
                ribs.stale_timer.cancel()
            ribs.stale_timer = self.loop.call_later(delay, self._stale_expired, key)
            log_event(log, "bgp.gr-helper", peer=key, stale_for=delay, reason=reason)
        else:
            self._withdraw_all_from(key)

    def _stale_expired(self, key: str) -> None:
        ribs = self.ribs.get(key)
        if ribs is None:
            return
        ribs.stale_timer = None
        for fam in FAMILIES:
            removed = ribs.adj_in.sweep_stale(fam)
            if removed and ribs.source is not None:
                self._propagate(fam, self.loc_rib[fam].withdraw(ribs.source, removed))
        log_event(log, "bgp.gr-stale-expired", peer=key)

    def _withdraw_family(self, key: str, fam: AfiSafi) -> None:
        ribs = self.ribs[key]
        removed = ribs.adj_in.clear(fam).get(fam, [])
        if removed and ribs.source is not None:
            self._propagate(fam, self.loc_rib[fam].withdraw(ribs.source, removed))
        ribs.filtered.pop(fam, None)

    def _withdraw_all_from(self, key: str) -> None:
        ribs = self.ribs.get(key)
        if ribs is None:
            return
        if ribs.stale_timer:
            ribs.stale_timer.cancel()
            ribs.stale_timer = None
        for fam in FAMILIES:
            self._withdraw_family(key, fam)

    def update_received(self, peer: Peer, update: Update) -> None:
        key = peer.config.neighbor_address
        ribs = self.ribs[key]
        source = ribs.source
        if source is None:
            return
        adj_in = ribs.adj_in
        if update.treat_as_withdraw:
            ribs.treat_as_withdraw += 1
        if update.diagnostics:
            log_event(log, "bgp.update-error", level=logging.WARNING, peer=key, rfc7606="; ".join(update.diagnostics))
        for fam, keys in update.withdrawn:
            if ribs.filtered:
                ribs.filtered.get(fam, set()).difference_update(keys)
            removed = adj_in.withdraw(fam, keys)
            if removed:
                self._propagate(fam, self.loc_rib[fam].withdraw(source, removed))
        for fam, attrs, keys in update.announced:
            if fam not in ribs.families:
                continue
            reason = self._import_reject_reason(source, attrs)
            if reason is not None:
                # Loop or invalid path: treated as a withdrawal of these prefixes.
                ribs.rejected_updates += 1
                removed = adj_in.withdraw(fam, keys)
                if removed:
                    self._propagate(fam, self.loc_rib[fam].withdraw(source, removed))
                continue
            policy = ribs.import_policy.get(fam)
            if policy is None:
                path = self.interner.get(source, attrs)
                changed = adj_in.announce(fam, path, keys)
                if changed:
                    self._propagate(fam, self.loc_rib[fam].announce(path, changed), announced_by=source)
            else:
                self._import_with_policy(ribs, source, fam, attrs, keys, policy)
            self._check_prefix_limit(peer, ribs, fam)
        if update.end_of_rib is not None:
            fam = update.end_of_rib
            removed = adj_in.sweep_stale(fam)
            if removed:
                self._propagate(fam, self.loc_rib[fam].withdraw(source, removed))
            if ribs.stale_timer and not any(adj_in.stale_count(f) for f in FAMILIES):
                ribs.stale_timer.cancel()
                ribs.stale_timer = None
            log_event(log, "bgp.end-of-rib", peer=key, family=fam.name, prefixes=adj_in.count(fam))
            if self.on_end_of_rib is not None:
                self.on_end_of_rib(key, fam)

    def _import_with_policy(
        self, ribs: PeerRibs, source: PeerSource, fam: AfiSafi, attrs: PathAttributes,
        keys: list[bytes], policy: ImportPolicy,
    ) -> None:
        """Import through a policy: accepted keys grouped by their resulting attributes;
        the rest are rejected (and withdrawn if an earlier version was accepted)."""
        groups = policy(fam, source, attrs, keys)
        accepted: set[bytes] = set()
        filtered = ribs.filtered.setdefault(fam, set())
        for new_attrs, group in groups:
            accepted.update(group)
            path = self.interner.get(source, new_attrs)
            changed = ribs.adj_in.announce(fam, path, group)
            if changed:
                self._propagate(fam, self.loc_rib[fam].announce(path, changed), announced_by=source)
        if len(accepted) != len(keys):
            rejected = [k for k in keys if k not in accepted]
            filtered.update(rejected)
            removed = ribs.adj_in.withdraw(fam, rejected)
            if removed:
                self._propagate(fam, self.loc_rib[fam].withdraw(source, removed))
        if filtered and accepted:
            filtered.difference_update(accepted)

    def set_policies(
        self, neighbor: str, family: AfiSafi, *, import_policy: ImportPolicy | None = None,
        export_policy: ExportPolicy | None = None,
    ) -> None:
        """Install policy hooks for a neighbor (None: accept all). Takes effect for new
        routes; a soft clear re-applies them to what the neighbor has (clear_neighbor)."""
        ribs = self.ribs[neighbor]
        if import_policy is None:
            ribs.import_policy.pop(family, None)
        else:
            ribs.import_policy[family] = import_policy
        adj_out = ribs.adj_out
        if isinstance(adj_out, FamilyAdjRibOut):
            if export_policy is None:
                adj_out.family_policy.pop(family, None)
            else:
                adj_out.family_policy[family] = export_policy
            adj_out.policy = None if not adj_out.family_policy else adj_out.policy
            if export_policy is not None and ribs.export_ctx is not None:
                own = (ribs.export_ctx.local_address_v6 if family.afi == IPV6_UNICAST.afi
                       else ribs.export_ctx.local_address_v4)
                if own is not None and hasattr(export_policy, "next_hop_self"):
                    export_policy.next_hop_self = own  # type: ignore[attr-defined]
        else:
            adj_out.policy = export_policy

    def bfd_down(self, address: str, diag: str = "") -> bool:
        """BFD says the neighbor is unreachable: take the session down at once with
        NOTIFICATION Cease / BFD Down (RFC 9384), for neighbors with BFD enabled."""
        peer = self.peers.get(address)
        if peer is None or not peer.config.bfd.enabled:
            return False
        if peer.state in ("Idle", "Connect", "Active"):
            return False
        log_event(log, "bgp.bfd-down", level=logging.WARNING, peer=address, state=peer.state, diag=diag)
        peer.reset(ErrorCode.CEASE, CEASE_BFD_DOWN)
        return True

    def update_neighbor_config(self, n: NeighborConfig) -> None:
        """A change that needs no new session (policies, prefix limits, description)."""
        peer = self.peers[n.neighbor_address]
        peer.config = n

    def _import_reject_reason(self, source: PeerSource, attrs: PathAttributes) -> str | None:
        if attrs.as_path_contains(source.local_as):
            return "as-path loop"
        if source.ebgp:
            first = attrs.first_as
            if first is not None and first != source.peer_as:
                return "first AS is not the peer's AS"
        else:
            if attrs.originator_id is not None and attrs.originator_id == self.router_id_int.to_bytes(4, "big"):
                return "originator-id is ours (RFC 4456)"
            if self.cluster_id in attrs.cluster_list:
                return "cluster-list loop (RFC 4456)"
        return None

    def _check_prefix_limit(self, peer: Peer, ribs: PeerRibs, fam: AfiSafi) -> None:
        fc = peer.config.family(fam)
        if fc is None or fc.prefix_limit is None:
            return
        limit = fc.prefix_limit
        count = ribs.adj_in.count(fam)
        threshold = limit.max_prefixes * limit.shutdown_threshold_pct // 100
        if count > limit.max_prefixes:
            if limit.warning_only:
                if fam not in ribs.limit_warned:
                    ribs.limit_warned.add(fam)
                    log_event(log, "bgp.max-prefix", level=logging.WARNING, peer=peer.config.neighbor_address,
                              family=fam.name, count=count, limit=limit.max_prefixes, action="warn")
                return
            log_event(log, "bgp.max-prefix", level=logging.WARNING, peer=peer.config.neighbor_address,
                      family=fam.name, count=count, limit=limit.max_prefixes, action="teardown",
                      restart_after=limit.restart_timer or "never")
            # RFC 4486 §4: data = AFI (2), SAFI (1), prefix upper bound (4).
            data = fam.afi.to_bytes(2, "big") + bytes((fam.safi,)) + limit.max_prefixes.to_bytes(4, "big")
            peer.reset(ErrorCode.CEASE, CeaseSubcode.MAX_PREFIXES, data,
                       idle_hold=float(limit.restart_timer) if limit.restart_timer else float("inf"))
        elif count >= threshold and fam not in ribs.limit_warned:
            ribs.limit_warned.add(fam)
            log_event(log, "bgp.max-prefix-threshold", level=logging.WARNING, peer=peer.config.neighbor_address,
                      family=fam.name, count=count, limit=limit.max_prefixes)

    def route_refresh_received(self, peer: Peer, family: AfiSafi, subtype: int) -> None:
        key = peer.config.neighbor_address
        ribs = self.ribs[key]
        if family not in ribs.families or ribs.source is None:
            return
        if subtype == RouteRefreshSubtype.BORR:
            # RFC 7313 §4: everything the peer re-sends replaces these; what it does
            # not re-send before EoRR is gone.
            ribs.adj_in.mark_stale(family)
            return
        if subtype == RouteRefreshSubtype.EORR:
            removed = ribs.adj_in.sweep_stale(family)
            if removed:
                self._propagate(family, self.loc_rib[family].withdraw(ribs.source, removed))
            if self._relearn:
                self._relearned(key, family)
                if self.on_end_of_rib is not None:
                    self.on_end_of_rib(key, family)  # the re-learned table is complete
            return
        self._refresh_out(peer, ribs, family)

    def _refresh_out(self, peer: Peer, ribs: PeerRibs, family: AfiSafi,
                     table: TableSnapshot | None = None) -> None:
        if peer.negotiated is not None and peer.negotiated.enhanced_route_refresh:
            peer.send_route_refresh(family, RouteRefreshSubtype.BORR)
            ribs.eorr_due.add(family)  # EoRR goes out once the snapshot is drained
        ribs.adj_out.enqueue_full(family, table if table is not None else self.loc_rib[family].items())
        self._mark_dirty(peer.config.neighbor_address)

    def writable(self, peer: Peer) -> None:
        self._mark_dirty(peer.config.neighbor_address)

    # -- output ----------------------------------------------------------------------
    def _propagate(self, fam: AfiSafi, changes: list[tuple[bytes, Any]], announced_by: PeerSource | None = None) -> None:
        """Queue Loc-RIB best-path changes to every established peer.

        ``announced_by``: every new best in ``changes`` is a path of this source
        (they came from one announce). Split horizon makes those no-ops for that
        peer unless we had sent it something for the same prefixes.
        """
        if not changes:
            return
        for key, ribs in self.ribs.items():
            if ribs.export_ctx is None or fam not in ribs.families:
                continue
            if (
                announced_by is not None
                and ribs.source is announced_by
                and not ribs.adj_out.advertised_count(fam)
                and not ribs.adj_out.has_pending()
            ):
                continue
            ribs.adj_out.enqueue_many(fam, changes)
            self._mark_dirty(key)

    # -- RIB manager feed (FIB) -------------------------------------------------------
    def set_rib(self, rib: Any, *, multipath: bool = False) -> None:
        """Hand Loc-RIB changes to ``rib.update_bgp(family, [(key, next_hops, ebgp, med)])``
        in batches: changed prefixes are collected as the Loc-RIB changes (one C-level set
        update per announce/withdraw) and converted in slices of _RIB_SLICE per loop turn,
        reading the current best then, so repeated changes of a prefix cost one entry.
        ``multipath``: equal paths (same LOCAL_PREF, AS-path length, origin, MED, eBGP/iBGP
        and, for eBGP, neighbouring AS) contribute their next hops; the RIB caps them at
        ecmp/maximum-paths. None detaches."""
        self.rib = rib
        self.multipath = multipath
        for fam, lr in self.loc_rib.items():
            lr.on_change = self._loc_changed if rib is not None else None
            lr.multipath = multipath
            self._rib_pending[fam] = set(lr._best) if rib is not None else set()
        if rib is not None:
            self._schedule_rib()

    def _loc_changed(self, rib: LocRib, changes: list, touched: Any) -> None:
        self._rib_busy = True
        pending = self._rib_pending[rib.family]
        if changes:
            pending.update(map(_first, changes))
        if touched:
            pending.update(touched)
        if not self._rib_scheduled and pending:
            self._schedule_rib()

    def _schedule_rib(self) -> None:
        if not self._rib_scheduled:
            self._rib_scheduled = True
            self.loop.call_soon(self._rib_drain)

    def rib_pending(self) -> int:
        return sum(len(p) for p in self._rib_pending.values())

    def _rib_drain(self) -> None:
        self._rib_scheduled = False
        rib = self.rib
        if rib is None:
            return
        # the RIB (and the FIB behind it) costs several times the BGP import per prefix:
        # while a table is being received it gets small slices, then large ones
        budget = _RIB_SLICE_BUSY if self._rib_busy else _RIB_SLICE
        self._rib_busy = False
        for fam in FAMILIES:
            pending = self._rib_pending[fam]
            if not pending or budget <= 0:
                continue
            if len(pending) <= budget:
                keys = list(pending)
                pending.clear()
            else:
                keys = [pending.pop() for _ in range(budget)]
            budget -= len(keys)
            out = self._rib_entries(fam, keys)
            try:
                rib.update_bgp(fam, out)
            except Exception as exc:  # noqa: BLE001 - a RIB bug must not stop BGP
                log_event(log, "bgp.rib-feed-error", level=logging.ERROR, family=fam.name, error=repr(exc))
        if self.rib_pending():
            self._schedule_rib()
        elif self.on_rib_drained is not None:
            self.on_rib_drained()

    def _rib_entries(self, fam: AfiSafi, keys: list[bytes]) -> list[tuple]:
        lr = self.loc_rib[fam]
        best_of = lr._best.get
        multi = lr._multi if self.multipath else {}
        memo: dict[Path, tuple] = {}
        out: list[tuple] = []
        append = out.append
        gone = (None, False, 0)
        for k in keys:
            best = best_of(k)
            if best is None:
                append((k, None, False, 0))
                continue
            if multi:
                cands = multi.get(k)
                if cands is not None and not best.source.is_local:
                    append((k, self._multipath_hops(best, cands), best.source.ebgp, best.attrs.med or 0))
                    continue
            v = memo.get(best)
            if v is None:
                if best.source.is_local:
                    v = gone  # ours (originated/redistributed): not a BGP route for the RIB
                else:
                    nh = self._next_hop_text(best.attrs.next_hop)
                    v = ((nh,) if nh else None, best.source.ebgp, best.attrs.med or 0)
                memo[best] = v
            append((k, *v))
        return out

    def _next_hop_text(self, nh: bytes) -> str | None:
        t = self._nh_text.get(nh, False)
        if t is False:
            raw = nh[:16] if len(nh) == 32 else nh
            try:
                t = str(ipaddress.ip_address(raw)) if len(raw) in (4, 16) else None
            except ValueError:
                t = None
            if len(self._nh_text) > 65536:
                self._nh_text.clear()
            self._nh_text[nh] = t
        return t  # type: ignore[return-value]

    def _multipath_hops(self, best: Path, cands: list[Path]) -> tuple[str, ...] | None:
        ba = best.attrs
        hops: set[str] = set()
        for c in cands:
            ca, cs = c.attrs, c.source
            if c is not best and (
                cs.is_local or cs.ebgp != best.source.ebgp
                or (ca.local_pref or 100) != (ba.local_pref or 100)
                or ca.as_path_length != ba.as_path_length or ca.origin != ba.origin
                or (ca.med or 0) != (ba.med or 0)
                or (cs.ebgp and ca.first_as != ba.first_as)
            ):
                continue
            nh = self._next_hop_text(ca.next_hop)
            if nh:
                hops.add(nh)
        return tuple(sorted(hops)) or None

    def _mark_dirty(self, key: str) -> None:
        self._dirty.add(key)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, set()
        again = False
        # many peers with large queues: stop after a time slice and go on next turn, so
        # keepalives and reads run in between (each build_messages is bounded itself)
        end = time.monotonic() + _FLUSH_SLICE
        for i, key in enumerate(dirty):
            if i and time.monotonic() > end:
                self._dirty.update(list(dirty)[i:])
                again = True
                break
            peer = self.peers.get(key)
            ribs = self.ribs.get(key)
            if peer is None or ribs is None or ribs.export_ctx is None or peer.state != "Established":
                continue
            if not ribs.adj_out.has_pending():
                continue
            if not peer.can_send():
                continue  # writable() marks it dirty again when the buffer drains
            msgs = ribs.adj_out.build_messages(
                ribs.export_ctx, max_messages=_FLUSH_BATCH, max_len=peer.negotiated.max_message_len
            )
            if msgs:
                peer.send_raw(msgs)
            if ribs.adj_out.has_pending():
                self._dirty.add(key)
                again = True
            elif ribs.eorr_due:
                for fam in sorted(ribs.eorr_due):
                    peer.send_route_refresh(fam, RouteRefreshSubtype.EORR)
                ribs.eorr_due.clear()
        if again and not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    # -- operational state ------------------------------------------------------------
    def neighbor_state(self, address: str, detail: bool = False) -> dict[str, Any]:
        peer = self.peers[address]
        ribs = self.ribs[address]
        d = peer.to_dict()
        stats = d.pop("statistics", {})
        d["messages"] = {"received": stats.get("received", {}), "sent": stats.get("sent", {})}
        up_since = peer.stats.established_at
        d["uptime"] = round(time.time() - up_since, 3) if up_since and peer.state == "Established" else 0
        for k in ("established-transitions", "last-error", "last-notification-sent", "last-notification-received"):
            d[k] = stats.get(k)
        if peer.config.description:
            d["description"] = peer.config.description
        d["prefixes-accepted"] = sum(ribs.adj_in.count(f) for f in FAMILIES)
        d["prefixes-received"] = d["prefixes-accepted"] + sum(len(v) for v in ribs.filtered.values())
        d["prefixes-advertised"] = sum(ribs.adj_out.advertised_count(f) for f in FAMILIES)
        d["families"] = {
            FAMILY_NAMES[f]: {
                "received": ribs.adj_in.count(f) + len(ribs.filtered.get(f, ())),
                "accepted": ribs.adj_in.count(f),
                "advertised": ribs.adj_out.advertised_count(f),
            }
            for f in FAMILIES
            if peer.config.family(f) is not None
        }
        d["updates-treated-as-withdraw"] = ribs.treat_as_withdraw
        d["updates-rejected-by-loop-check"] = ribs.rejected_updates
        if not detail:
            for k in ("negotiated", "fsm"):
                d.pop(k, None)
        return d

    def summary(self) -> dict[str, Any]:
        return {
            "as": self.asn,
            "router-id": self.router_id,
            "neighbors": [self.neighbor_state(a) for a in sorted(self.peers, key=_addr_sort)],
            "rib": {FAMILY_NAMES[f]: len(self.loc_rib[f]) for f in FAMILIES},
        }

    def rib_routes(self, family: str, prefix: str | None = None, limit: int | None = 100, exact: bool = False) -> list[dict[str, Any]]:
        fam = _family(family)
        rib = self.loc_rib[fam]
        if prefix:
            try:
                found = rib.lookup(prefix, exact=exact)
            except ValueError as exc:
                raise ValueError(f"bad prefix {prefix!r}: {exc}") from None
            keys = [found[0]] if found is not None else []
        else:
            keys = []
            for i, (k, _best) in enumerate(rib.items()):
                if limit is not None and i >= limit:
                    break
                keys.append(k)
        return [self._route_dict(fam, k) for k in keys]

    def _route_dict(self, fam: AfiSafi, key: bytes) -> dict[str, Any]:
        rib = self.loc_rib[fam]
        best = rib.best(key)
        return {
            "prefix": key_to_prefix(key, fam.afi),
            "best": self._path_dict(best, fam, key) if best else None,
            "paths": [self._path_dict(p, fam, key) for p in rib.candidates(key)],
        }

    def _path_dict(self, path: Path | None, fam: AfiSafi, key: bytes) -> dict[str, Any]:
        if path is None:
            return {}
        d = path.attrs.to_dict()
        d["source"] = path.source.peer_id
        ribs = self.ribs.get(path.source.peer_id)
        if ribs is not None and ribs.adj_in.is_stale(fam, key):
            d["stale"] = True  # kept for a restarting peer (graceful restart helper)
        return d

    def adj_rib_in(self, neighbor: str, family: str, limit: int | None = 100) -> list[dict[str, Any]]:
        fam = _family(family)
        ribs = self.ribs[neighbor]
        out = []
        for i, k in enumerate(ribs.adj_in.keys(fam)):
            if limit is not None and i >= limit:
                break
            out.append({"prefix": key_to_prefix(k, fam.afi), **self._path_dict(ribs.adj_in.get(fam, k), fam, k)})
        return out

    def adj_rib_out(self, neighbor: str, family: str, limit: int | None = 100) -> list[dict[str, Any]]:
        fam = _family(family)
        ribs = self.ribs[neighbor]
        out = []
        for i, (k, attrs) in enumerate(ribs.adj_out.sent_items(fam)):
            if limit is not None and i >= limit:
                break
            out.append({"prefix": key_to_prefix(k, fam.afi), **attrs.to_dict()})
        return out

    def clear_neighbor(self, address: str, soft: str | None = None) -> None:
        peer = self.peers[address]
        if soft == "in":
            for fam in self.ribs[address].families:
                peer.send_route_refresh(fam)
        elif soft == "out":
            ribs = self.ribs[address]
            for fam in ribs.families:
                self._refresh_out(peer, ribs, fam)
        else:
            peer.reset(ErrorCode.CEASE, CeaseSubcode.ADMIN_RESET, idle_hold=1.0)


def _notifications(peer: Peer) -> int:
    return peer.stats.sent["notification"] + peer.stats.received["notification"]


def _family(name: str) -> AfiSafi:
    from .family import FAMILY_BY_NAME

    fam = FAMILY_BY_NAME.get(name)
    if fam is None:
        raise ValueError(f"unknown family {name!r}")
    return fam


def _addr_sort(a: str) -> tuple[int, int]:
    ip = ipaddress.ip_address(a)
    return (ip.version, int(ip))


async def _maybe_await(value: Any) -> None:
    if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
        await value
