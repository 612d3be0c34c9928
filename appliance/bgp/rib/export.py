"""Standard export rules (RFC 4271 §5, §9.2; RFC 1997; RFC 4456) for one receiving peer.

``export_attrs`` decides what a path looks like when sent to one peer, or that
it is not sent at all. It depends only on the path's attributes, a few facts
about its source and the receiving peer's context, so ``ExportCache`` computes
it once per (attribute set, kind of source) instead of once per prefix.

Export policy is a hook applied per prefix after these rules
(``ExportPolicy``); None means accept-all and the call is skipped entirely.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..family import AfiSafi
from ..packet.constants import Afi, AsPathSegment
from ..packet.pathattrs import PathAttributes
from .decision import DEFAULT_LOCAL_PREF
from .path import Path, PeerSource

NO_EXPORT = 0xFFFFFF01
NO_ADVERTISE = 0xFFFFFF02
NO_EXPORT_SUBCONFED = 0xFFFFFF03
MAX_SEGMENT_ASNS = 255

ExportPolicy = Callable[[bytes, Path, PathAttributes], PathAttributes | None]


@dataclass(frozen=True, slots=True)
class ExportContext:
    """What the export rules need to know about us and the receiving peer."""

    local_as: int
    router_id: int
    cluster_id: bytes                       # 4 octets (router id unless configured)
    peer: PeerSource                        # the receiving peer
    four_octet_as: bool = True
    next_hop_self: bool = False
    local_address_v4: bytes | None = None
    local_address_v6: bytes | None = None   # 16 octets, or 32 with a link-local
    rr_client: bool = False                 # the receiving peer is our RR client


def prepend_as(as_path: tuple[tuple[int, tuple[int, ...]], ...], asn: int) -> tuple:
    """AS_PATH as sent to an external peer: ``asn`` prepended (RFC 4271 §5.1.2).

    Leading confederation segments are dropped (RFC 5065 §5.3: they never leave
    the confederation); a new AS_SEQUENCE starts when the first segment is a set
    or already holds 255 ASNs.
    """
    i = 0
    while i < len(as_path) and as_path[i][0] in (
        AsPathSegment.AS_CONFED_SEQUENCE,
        AsPathSegment.AS_CONFED_SET,
    ):
        i += 1
    segs = as_path[i:]
    if segs and segs[0][0] == AsPathSegment.AS_SEQUENCE and len(segs[0][1]) < MAX_SEGMENT_ASNS:
        return ((AsPathSegment.AS_SEQUENCE, (asn,) + segs[0][1]),) + segs[1:]
    return ((AsPathSegment.AS_SEQUENCE, (asn,)),) + segs


def _is_v6(family: AfiSafi | None, attrs: PathAttributes) -> bool:
    if family is not None:
        return family.afi == Afi.IPV6
    return len(attrs.next_hop) in (16, 32)


def export_attrs(
    path: Path, ctx: ExportContext, family: AfiSafi | None = None
) -> PathAttributes | None:
    """The attributes to send ``path`` with to ``ctx.peer``, or None to not send it.

    ``family`` picks our next-hop address; without it the path's next hop length decides.
    """
    src = path.source
    peer = ctx.peer
    if src.peer_id == peer.peer_id:
        return None  # never back to where it came from
    a = path.attrs
    comms = a.communities
    if comms:
        if NO_ADVERTISE in comms:
            return None
        # no confederations here, so NO_EXPORT_SUBCONFED means the same as NO_EXPORT
        if peer.ebgp and (NO_EXPORT in comms or NO_EXPORT_SUBCONFED in comms):
            return None
    own_nh = ctx.local_address_v6 if _is_v6(family, a) else ctx.local_address_v4

    if peer.ebgp:
        # third-party next hop (RFC 4271 §5.1.3) is not attempted: always ourselves.
        # Built directly rather than with replace(): this runs once per attribute
        # set and peer, and a full table has tens of thousands of sets.
        return PathAttributes(
            a.origin,
            prepend_as(a.as_path, ctx.local_as),
            own_nh if own_nh is not None else a.next_hop,
            a.med if src.is_local else None,  # a MED from another AS goes no further
            None,  # LOCAL_PREF is not sent to external peers
            a.atomic_aggregate,
            a.aggregator,
            a.communities,
            a.ext_communities,
            a.large_communities,
            None,  # ORIGINATOR_ID and CLUSTER_LIST stay inside the AS
            (),
            a.unknown,
        )

    changes: dict[str, Any] = {}
    if not src.ebgp and not src.is_local:
        # iBGP-learned to iBGP: only by reflection (RFC 4456 §6): from a client to
        # every iBGP peer, from a non-client to clients only
        if not (src.rr_client or ctx.rr_client):
            return None
        originator = a.originator_id
        if originator is None:
            originator = src.router_id.to_bytes(4, "big")
            changes["originator_id"] = originator
        if int.from_bytes(originator, "big") == peer.router_id:
            return None  # the receiver would drop its own route (RFC 4456 §8)
        changes["cluster_list"] = (ctx.cluster_id,) + a.cluster_list
        # RFC 4456 §10: a reflected route keeps its NEXT_HOP, even with next-hop-self
    elif (ctx.next_hop_self or src.is_local or not a.next_hop) and own_nh is not None:
        changes["next_hop"] = own_nh
    if a.local_pref is None:
        changes["local_pref"] = DEFAULT_LOCAL_PREF
    return a.replace(**changes) if changes else a


_MISS = object()


class ExportCache:
    """Per receiving peer: path -> exported attributes, and attributes -> encoded bytes.

    Level 1 is keyed by the (interned) Path object, which is the per-prefix hot
    lookup. Level 2 is keyed by (attrs, the source facts the rules read), so the
    same attribute set from several peers is transformed once. Results are
    interned so equal exported attributes are one object. The tables are
    bounded by clearing them when they grow past ``max_entries``: a cache, not
    a store, so nothing is lost but time.
    """

    __slots__ = ("ctx", "max_entries", "_by_path", "_by_class", "_interned", "_encoded")

    def __init__(self, ctx: ExportContext, max_entries: int = 1 << 18) -> None:
        self.ctx = ctx
        self.max_entries = max_entries
        self._by_path: dict[tuple[Path, AfiSafi], PathAttributes | None] = {}
        self._by_class: dict[tuple, PathAttributes | None] = {}
        self._interned: dict[PathAttributes, PathAttributes] = {}
        self._encoded: dict[tuple[PathAttributes, AfiSafi], bytes] = {}

    def set_context(self, ctx: ExportContext) -> None:
        if ctx is not self.ctx and ctx != self.ctx:
            self.clear()
        self.ctx = ctx

    def clear(self) -> None:
        self._by_path.clear()
        self._by_class.clear()
        self._interned.clear()
        self._encoded.clear()

    def __len__(self) -> int:
        return len(self._by_path)

    def export(self, path: Path, family: AfiSafi) -> PathAttributes | None:
        hit = self._by_path.get((path, family), _MISS)
        if hit is not _MISS:
            return hit  # type: ignore[return-value]
        src = path.source
        cls_key = (
            path.attrs,
            family,
            src.peer_id == self.ctx.peer.peer_id,
            src.is_local,
            src.ebgp,
            src.rr_client,
            src.router_id,
        )
        res = self._by_class.get(cls_key, _MISS)
        if res is _MISS:
            res = export_attrs(path, self.ctx, family)
            if res is not None:
                res = self.intern(res)
            if len(self._by_class) >= self.max_entries:
                self._by_class.clear()
            self._by_class[cls_key] = res
        if len(self._by_path) >= self.max_entries:
            self._by_path.clear()
        self._by_path[(path, family)] = res  # type: ignore[assignment]
        return res  # type: ignore[return-value]

    def intern(self, attrs: PathAttributes) -> PathAttributes:
        if len(self._interned) >= self.max_entries:
            self._interned.clear()
        return self._interned.setdefault(attrs, attrs)

    def encoded(self, attrs: PathAttributes, family: AfiSafi) -> bytes:
        """``encode_attributes`` for this peer, once per exported attribute set."""
        key = (attrs, family)
        data = self._encoded.get(key)
        if data is None:
            from ..packet.update import encode_attributes  # the codec module may land later

            data = encode_attributes(attrs, four_octet_as=self.ctx.four_octet_as, family=family)
            if len(self._encoded) >= self.max_entries:
                self._encoded.clear()
            self._encoded[key] = data
        return data
