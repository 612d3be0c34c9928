"""Where a route came from (PeerSource) and a route's path (source + attributes).

A Path is shared by every prefix announced by one source under one attribute
set: the RIBs map prefix keys to Path references, so 1M prefixes under 62,500
attribute sets cost 62,500 Path objects. ``PathInterner`` hands out those
shared objects.
"""

from __future__ import annotations

import ipaddress
import weakref
from dataclasses import dataclass
from typing import Any

from ..packet.pathattrs import PathAttributes

LOCAL_PEER_ID = "local"


@dataclass(frozen=True, slots=True)
class PeerSource:
    """The neighbor a route was learned from, as the decision and export rules need it."""

    peer_id: str          # neighbor address text; "local" for locally originated routes
    address: bytes        # packed neighbor address (b"" for local)
    router_id: int        # the neighbor's BGP identifier
    peer_as: int
    local_as: int
    ebgp: bool
    rr_client: bool = False

    @property
    def is_local(self) -> bool:
        return self.peer_id == LOCAL_PEER_ID

    def to_dict(self) -> dict[str, Any]:
        return {
            "peer-id": self.peer_id,
            "address": self.address.hex(),
            "router-id": self.router_id,
            "peer-as": self.peer_as,
            "local-as": self.local_as,
            "ebgp": self.ebgp,
            "rr-client": self.rr_client,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PeerSource:
        return cls(
            peer_id=d["peer-id"],
            address=bytes.fromhex(d["address"]),
            router_id=int(d["router-id"]),
            peer_as=int(d["peer-as"]),
            local_as=int(d["local-as"]),
            ebgp=bool(d["ebgp"]),
            rr_client=bool(d["rr-client"]),
        )


def local_source(router_id: int, asn: int) -> PeerSource:
    """The source of locally originated routes (network statements, redistribution)."""
    return PeerSource(LOCAL_PEER_ID, b"", router_id, asn, asn, ebgp=False, rr_client=False)


class Path:
    """One source's route attributes; immutable and shared across prefixes.

    Staleness (graceful restart) is per prefix, not per path, so it lives in
    AdjRibIn rather than here: a shared Path cannot carry a per-prefix flag.
    """

    __slots__ = ("source", "attrs", "__weakref__")

    source: PeerSource
    attrs: PathAttributes

    def __init__(self, source: PeerSource, attrs: PathAttributes) -> None:
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "attrs", attrs)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Path is immutable")

    # Identity equality on purpose: interned paths compare by `is`, which is what
    # the RIB hot loops rely on. Value comparison is ``same_as``.
    def same_as(self, other: Path) -> bool:
        return self.source == other.source and self.attrs == other.attrs

    def __repr__(self) -> str:
        return f"Path({self.source.peer_id}, {self.attrs.to_dict()})"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"source": self.source.peer_id}
        if not self.source.is_local:
            d["peer-as"] = self.source.peer_as
            d["router-id"] = str(ipaddress.IPv4Address(self.source.router_id))
            d["ebgp"] = self.source.ebgp
        d.update(self.attrs.to_dict())
        return d


class PathInterner:
    """Hands out one shared Path per (source, attrs).

    Weak references: a Path no prefix refers to any more disappears by itself, so
    attribute churn over a long session does not grow the interner. One table per
    source, and the last source's table remembered, because consecutive UPDATEs
    nearly always come from the same peer: a hit is then one dict lookup.
    """

    __slots__ = ("_tables", "_last_source", "_last_table", "_last_forget")

    def __init__(self) -> None:
        self._tables: dict[PeerSource, tuple[dict[PathAttributes, weakref.KeyedRef], Any]] = {}
        self._last_source: PeerSource | None = None
        self._last_table: dict[PathAttributes, weakref.KeyedRef] = {}
        self._last_forget: Any = None

    def get(self, source: PeerSource, attrs: PathAttributes) -> Path:
        if source is self._last_source:
            table, forget = self._last_table, self._last_forget
        else:
            entry = self._tables.get(source)
            if entry is None:
                table = {}
                entry = self._tables[source] = (table, _forgetter(table))
            table, forget = entry
            self._last_source, self._last_table, self._last_forget = source, table, forget
        ref = table.get(attrs)
        if ref is not None:
            path = ref()
            if path is not None:
                return path
        path = Path(source, attrs)
        table[attrs] = weakref.KeyedRef(path, forget, attrs)
        return path

    def __len__(self) -> int:
        return sum(1 for t, _ in self._tables.values() for r in t.values() if r() is not None)


def _forgetter(table: dict[PathAttributes, weakref.KeyedRef]) -> Any:
    def forget(ref: weakref.KeyedRef) -> None:
        # only if the entry is still this (dead) reference, not a newer Path's
        if table.get(ref.key) is ref:
            del table[ref.key]

    return forget
