"""The decoded path-attribute set of a route: an immutable, interned value.

One PathAttributes object is shared by every prefix that arrived under the same
attribute bytes (the decoder interns them), so the RIBs hold references, never
per-prefix copies. Equality and hash are by value. Instances are never mutated:
derive a changed copy with ``replace``.

Field forms (plain data, so checkpoints can dump them with ``to_dict``):
  origin            int (Origin)
  as_path           tuple of (segment_type, tuple[int, ...]) - always 4-octet ASNs
                    (AS4_PATH already merged for 2-octet peers, RFC 6793 §4.2.3)
  next_hop          bytes: 4 octets (IPv4), 16 (IPv6 global) or 32 (global + link-local,
                    RFC 2545); b"" when the family's next hop is absent
  med               int | None
  local_pref        int | None
  atomic_aggregate  bool
  aggregator        (asn, ipv4-bytes) | None   (AS4_AGGREGATOR already merged)
  communities       tuple[int, ...]            (32-bit values, wire order)
  ext_communities   tuple[bytes, ...]          (8-octet values)
  large_communities tuple[(int, int, int), ...]
  originator_id     bytes (4) | None
  cluster_list      tuple[bytes, ...]          (4-octet cluster ids)
  unknown           tuple[(flags, type, value bytes), ...] - optional transitive attributes
                    we do not know; passed on with the Partial bit (RFC 4271 §5)
"""

from __future__ import annotations

import ipaddress
from typing import Any

from .constants import AsPathSegment, Origin

_FIELDS = (
    "origin",
    "as_path",
    "next_hop",
    "med",
    "local_pref",
    "atomic_aggregate",
    "aggregator",
    "communities",
    "ext_communities",
    "large_communities",
    "originator_id",
    "cluster_list",
    "unknown",
)
FIELDS = _FIELDS  # public: the attribute fields, in constructor order


_AS_SEQUENCE = int(AsPathSegment.AS_SEQUENCE)
_AS_SET = int(AsPathSegment.AS_SET)
_CONFED = (int(AsPathSegment.AS_CONFED_SEQUENCE), int(AsPathSegment.AS_CONFED_SET))


class _Slots:
    """The storage layout of PathAttributes, without its immutability guard.

    PathAttributes objects are built as this class and then relabelled (see
    ``PathAttributes.__new__``): plain slot stores are ~3x cheaper than
    ``object.__setattr__`` calls, and a new attribute set is built per UPDATE
    of a full table.
    """

    __slots__ = _FIELDS + ("_hash", "_key", "_aspath_len", "__weakref__")


class PathAttributes(_Slots):
    __slots__ = ()

    origin: int
    as_path: tuple[tuple[int, tuple[int, ...]], ...]
    next_hop: bytes
    med: int | None
    local_pref: int | None
    atomic_aggregate: bool
    aggregator: tuple[int, bytes] | None
    communities: tuple[int, ...]
    ext_communities: tuple[bytes, ...]
    large_communities: tuple[tuple[int, int, int], ...]
    originator_id: bytes | None
    cluster_list: tuple[bytes, ...]
    unknown: tuple[tuple[int, int, bytes], ...]

    def __new__(
        cls,
        origin: int = Origin.IGP,
        as_path: tuple[tuple[int, tuple[int, ...]], ...] = (),
        next_hop: bytes = b"",
        med: int | None = None,
        local_pref: int | None = None,
        atomic_aggregate: bool = False,
        aggregator: tuple[int, bytes] | None = None,
        communities: tuple[int, ...] = (),
        ext_communities: tuple[bytes, ...] = (),
        large_communities: tuple[tuple[int, int, int], ...] = (),
        originator_id: bytes | None = None,
        cluster_list: tuple[bytes, ...] = (),
        unknown: tuple[tuple[int, int, bytes], ...] = (),
    ) -> PathAttributes:
        # Filled as a plain _Slots object (fast slot stores; PathAttributes.__setattr__
        # would refuse them), then given its real class, which has the same layout.
        self = _Slots()
        origin = int(origin)
        self.origin = origin
        self.as_path = as_path
        self.next_hop = next_hop
        self.med = med
        self.local_pref = local_pref
        self.atomic_aggregate = atomic_aggregate
        self.aggregator = aggregator
        self.communities = communities
        self.ext_communities = ext_communities
        self.large_communities = large_communities
        self.originator_id = originator_id
        self.cluster_list = cluster_list
        self.unknown = unknown
        # Built directly, not via getattr over _FIELDS: this runs once per new
        # attribute set on the full-table hot path.
        key = (origin, as_path, next_hop, med, local_pref, atomic_aggregate, aggregator, communities,
               ext_communities, large_communities, originator_id, cluster_list, unknown)
        self._key = key
        self._hash = hash(key)
        n = 0
        for seg_type, asns in as_path:
            if seg_type == _AS_SEQUENCE:
                n += len(asns)
            elif seg_type == _AS_SET:
                n += 1  # RFC 4271 §9.1.2.2: an AS_SET counts as 1
            # confederation segments do not count (RFC 5065)
        self._aspath_len = n
        self.__class__ = cls
        return self  # type: ignore[return-value]

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("PathAttributes is immutable; use replace()")

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, PathAttributes):
            return NotImplemented
        return self._hash == other._hash and self._key == other._key

    def __repr__(self) -> str:
        parts = ", ".join(f"{f}={getattr(self, f)!r}" for f in _FIELDS)
        return f"PathAttributes({parts})"

    def __reduce__(self):  # pickling for checkpoints
        return (PathAttributes, tuple(getattr(self, f) for f in _FIELDS))

    def replace(self, **changes: Any) -> PathAttributes:
        values = {f: getattr(self, f) for f in _FIELDS}
        values.update(changes)
        return PathAttributes(**values)

    # -- derived values the decision process needs, cheap to read -----------------
    @property
    def as_path_length(self) -> int:
        return self._aspath_len

    @property
    def first_as(self) -> int | None:
        """Leftmost AS of the path (the neighbouring AS, RFC 4271 §9.1.2.2 c)."""
        # int constants, not enum members: read once per received attribute set (import check)
        for seg_type, asns in self.as_path:
            if seg_type == _AS_SEQUENCE and asns:
                return asns[0]
            if seg_type in _CONFED:
                continue
            return None
        return None

    def as_path_contains(self, asn: int) -> bool:
        # A plain loop: called once per received attribute set (loop detection).
        for _, asns in self.as_path:
            if asn in asns:
                return True
        return False

    def to_dict(self) -> dict[str, Any]:
        """Human/JSON form (operational state, checkpoints, tests)."""
        d: dict[str, Any] = {
            "origin": Origin(self.origin).name.lower() if self.origin in (0, 1, 2) else self.origin,
            "as-path": " ".join(
                (" ".join(map(str, a)) if t == AsPathSegment.AS_SEQUENCE else "{" + ",".join(map(str, a)) + "}")
                for t, a in self.as_path
            ),
            "next-hop": _nh_text(self.next_hop[:16] if len(self.next_hop) == 32 else self.next_hop),
        }
        if len(self.next_hop) == 32:  # RFC 2545 global + link-local
            d["next-hop-link-local"] = _nh_text(self.next_hop[16:])
        if self.med is not None:
            d["med"] = self.med
        if self.local_pref is not None:
            d["local-pref"] = self.local_pref
        if self.atomic_aggregate:
            d["atomic-aggregate"] = True
        if self.aggregator:
            d["aggregator"] = f"{self.aggregator[0]}:{ipaddress.IPv4Address(self.aggregator[1])}"
        if self.communities:
            d["communities"] = [f"{c >> 16}:{c & 0xFFFF}" for c in self.communities]
        if self.ext_communities:
            d["ext-communities"] = [c.hex() for c in self.ext_communities]
        if self.large_communities:
            d["large-communities"] = [f"{a}:{b}:{c}" for a, b, c in self.large_communities]
        if self.originator_id:
            d["originator-id"] = str(ipaddress.IPv4Address(self.originator_id))
        if self.cluster_list:
            d["cluster-list"] = [str(ipaddress.IPv4Address(c)) for c in self.cluster_list]
        if self.unknown:
            d["unknown"] = [{"flags": f, "type": t, "value": v.hex()} for f, t, v in self.unknown]
        return d


def _nh_text(nh: bytes) -> str:
    if len(nh) == 4:
        return str(ipaddress.IPv4Address(nh))
    if len(nh) == 16:
        return str(ipaddress.IPv6Address(nh))
    if len(nh) == 32:
        return f"{ipaddress.IPv6Address(nh[:16])} {ipaddress.IPv6Address(nh[16:])}"
    return nh.hex()
