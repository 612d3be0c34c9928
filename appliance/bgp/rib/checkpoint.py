"""Lossless plain-data forms of RIB contents for checkpoints (JSON-safe).

Attributes and sources are written once per distinct object and referred to by
index; the prefixes of one path are written as one hex string of their
concatenated NLRI encodings (self-delimiting: each starts with its length), so
a 1M-prefix table is a few megabytes and no per-prefix objects in the dump.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import repeat
from typing import Any

from ..family import AfiSafi
from ..packet.pathattrs import PathAttributes
from .path import Path, PathInterner, PeerSource

Journal = dict[AfiSafi, dict[bytes, Any]]


def note_keys(journal: Journal | None, family: AfiSafi, keys: Iterable[bytes], value: Any) -> None:
    """Record changed keys with their new entry (None: gone) in an NSR mirror journal
    (appliance/nsr/ribmirror.py), if any: one C-level dict update; a key changed again
    before the mirror looks costs nothing more."""
    if journal is not None:
        d = journal.get(family)
        if d is None:
            journal[family] = dict(zip(keys, repeat(value)))
        else:
            d.update(zip(keys, repeat(value)))


def family_to_text(family: AfiSafi) -> str:
    return f"{family.afi}/{family.safi}"


def family_from_text(text: str) -> AfiSafi:
    afi, safi = text.split("/")
    return AfiSafi(int(afi), int(safi))


def pack_keys(keys: Iterable[bytes]) -> str:
    return b"".join(keys).hex()


def unpack_keys(text: str) -> list[bytes]:
    blob = bytes.fromhex(text)
    keys = []
    i, n = 0, len(blob)
    while i < n:
        end = i + 1 + ((blob[i] + 7) >> 3)
        keys.append(blob[i:end])
        i = end
    return keys


def attrs_to_plain(a: PathAttributes) -> dict[str, Any]:
    d: dict[str, Any] = {"origin": a.origin, "as_path": [[t, list(asns)] for t, asns in a.as_path]}
    if a.next_hop:
        d["next_hop"] = a.next_hop.hex()
    if a.med is not None:
        d["med"] = a.med
    if a.local_pref is not None:
        d["local_pref"] = a.local_pref
    if a.atomic_aggregate:
        d["atomic_aggregate"] = True
    if a.aggregator is not None:
        d["aggregator"] = [a.aggregator[0], a.aggregator[1].hex()]
    if a.communities:
        d["communities"] = list(a.communities)
    if a.ext_communities:
        d["ext_communities"] = [c.hex() for c in a.ext_communities]
    if a.large_communities:
        d["large_communities"] = [list(c) for c in a.large_communities]
    if a.originator_id is not None:
        d["originator_id"] = a.originator_id.hex()
    if a.cluster_list:
        d["cluster_list"] = [c.hex() for c in a.cluster_list]
    if a.unknown:
        d["unknown"] = [[f, t, v.hex()] for f, t, v in a.unknown]
    return d


def attrs_from_plain(d: dict[str, Any]) -> PathAttributes:
    agg = d.get("aggregator")
    oid = d.get("originator_id")
    return PathAttributes(
        origin=d["origin"],
        as_path=tuple((int(t), tuple(asns)) for t, asns in d["as_path"]),
        next_hop=bytes.fromhex(d.get("next_hop", "")),
        med=d.get("med"),
        local_pref=d.get("local_pref"),
        atomic_aggregate=d.get("atomic_aggregate", False),
        aggregator=(agg[0], bytes.fromhex(agg[1])) if agg is not None else None,
        communities=tuple(d.get("communities", ())),
        ext_communities=tuple(bytes.fromhex(c) for c in d.get("ext_communities", ())),
        large_communities=tuple(tuple(c) for c in d.get("large_communities", ())),  # type: ignore[misc]
        originator_id=bytes.fromhex(oid) if oid is not None else None,
        cluster_list=tuple(bytes.fromhex(c) for c in d.get("cluster_list", ())),
        unknown=tuple((f, t, bytes.fromhex(v)) for f, t, v in d.get("unknown", ())),
    )


class PathWriter:
    """Numbers distinct sources, attribute sets and paths while a table is dumped."""

    def __init__(self) -> None:
        self._sources: dict[PeerSource, int] = {}
        self._attrs: dict[PathAttributes, int] = {}
        self._paths: dict[Path, int] = {}   # Path hashes by identity
        self._path_rows: list[list[int]] = []

    def index(self, path: Path) -> int:
        i = self._paths.get(path)
        if i is None:
            si = self._sources.setdefault(path.source, len(self._sources))
            ai = self._attrs.setdefault(path.attrs, len(self._attrs))
            i = self._paths[path] = len(self._path_rows)
            self._path_rows.append([si, ai])
        return i

    def to_dict(self) -> dict[str, Any]:
        return {
            "sources": [s.to_dict() for s in self._sources],
            "attrs": [attrs_to_plain(a) for a in self._attrs],
            "paths": self._path_rows,
        }


def read_paths(d: dict[str, Any], interner: PathInterner | None = None) -> list[Path]:
    """Rebuild the Path objects of a ``PathWriter.to_dict`` (shared again via ``interner``)."""
    sources = [PeerSource.from_dict(s) for s in d["sources"]]
    attrs = [attrs_from_plain(a) for a in d["attrs"]]
    make = interner.get if interner is not None else Path
    return [make(sources[si], attrs[ai]) for si, ai in d["paths"]]


def group_by_path(items: Iterable[tuple[bytes, Path]]) -> dict[Path, list[bytes]]:
    groups: dict[Path, list[bytes]] = {}
    for key, path in items:
        lst = groups.get(path)
        if lst is None:
            groups[path] = [key]
        else:
            lst.append(key)
    return groups
