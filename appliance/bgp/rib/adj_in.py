"""Adj-RIB-In of one peer: what the peer announced to us, per address family.

Each family is a ``dict[key, Path]``. Announcements usually carry keys the
table does not hold yet (initial table transfer), so ``announce`` first tries a
whole-batch path that stays inside C (``isdisjoint`` + ``update``) and only
falls back to a per-key loop when some keys are already present.

Graceful restart helper mode (RFC 4724 §4.2): when the session drops we keep
the routes but remember their keys as stale; a re-announcement or withdrawal
clears the mark, and End-of-RIB (or the stale timer) sweeps what is still
marked. Staleness is a per-family set of keys rather than a flag on Path,
because one Path is shared by many prefixes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, KeysView
from itertools import repeat
from typing import Any

from ..family import AfiSafi
from .checkpoint import (
    Journal,
    PathWriter,
    family_from_text,
    family_to_text,
    group_by_path,
    note_keys,
    pack_keys,
    read_paths,
    unpack_keys,
)
from .path import Path, PathInterner

_SEQUENCES = (list, tuple)


class AdjRibIn:
    __slots__ = ("_tables", "_stale", "journal")

    def __init__(self) -> None:
        self._tables: dict[AfiSafi, dict[bytes, Path]] = {}
        self._stale: dict[AfiSafi, set[bytes]] = {}
        # family -> {key: new entry (None: gone)} since the NSR mirror last looked (None:
        # no mirror; appliance/nsr/ribmirror.py). One C-level dict update per call.
        self.journal: Journal | None = None

    def _note(self, family: AfiSafi, keys: Iterable[bytes], value: Path | None) -> None:
        note_keys(self.journal, family, keys, value)

    # -- updates ---------------------------------------------------------------
    def announce(self, family: AfiSafi, path: Path, keys: Iterable[bytes]) -> list[bytes]:
        """Store ``path`` for ``keys``; return the keys whose stored path changed."""
        if not isinstance(keys, _SEQUENCES):
            keys = list(keys)  # it is read more than once
        table = self._tables.get(family)
        if table is None:
            table = self._tables[family] = {}
        stale = self._stale.get(family)
        if stale:
            stale.difference_update(keys)
        if table.keys().isdisjoint(keys):
            n0 = len(table)
            table.update(zip(keys, repeat(path)))
            # the count differs only if the UPDATE repeated a prefix
            changed = list(keys) if len(table) - n0 == len(keys) else list(dict.fromkeys(keys))
        else:
            get = table.get
            changed = [k for k in dict.fromkeys(keys) if get(k) is not path]
            if changed:
                table.update(dict.fromkeys(changed, path))
        if self.journal is not None and changed:
            self._note(family, changed, path)
        return changed

    def withdraw(self, family: AfiSafi, keys: Iterable[bytes]) -> list[bytes]:
        """Remove ``keys``; return those that were present."""
        table = self._tables.get(family)
        if not table:
            return []
        pop = table.pop
        removed = [k for k in keys if pop(k, None) is not None]
        stale = self._stale.get(family)
        if stale and removed:
            stale.difference_update(removed)
        if self.journal is not None and removed:
            self._note(family, removed, None)
        return removed

    def clear(self, family: AfiSafi | None = None) -> dict[AfiSafi, list[bytes]]:
        """Drop everything (session down); return what was removed per family."""
        fams = [family] if family is not None else list(self._tables)
        removed: dict[AfiSafi, list[bytes]] = {}
        for fam in fams:
            table = self._tables.pop(fam, None)
            self._stale.pop(fam, None)
            if table:
                removed[fam] = list(table)
                self._note(fam, table, None)
        return removed

    # -- graceful restart (helper mode) -----------------------------------------
    def mark_stale(self, family: AfiSafi) -> int:
        """Mark every route of ``family`` stale; return how many are stale."""
        table = self._tables.get(family)
        if not table:
            return 0
        stale = self._stale.get(family)
        if stale is None:
            stale = self._stale[family] = set()
        stale.update(table)
        return len(stale)

    def sweep_stale(self, family: AfiSafi) -> list[bytes]:
        """Remove the routes still stale (End-of-RIB or stale timer); return their keys."""
        stale = self._stale.pop(family, None)
        if not stale:
            return []
        table = self._tables.get(family, {})
        pop = table.pop
        removed = [k for k in stale if pop(k, None) is not None]
        if removed:
            self._note(family, removed, None)
        return removed

    def is_stale(self, family: AfiSafi, key: bytes) -> bool:
        stale = self._stale.get(family)
        return stale is not None and key in stale

    def stale_count(self, family: AfiSafi) -> int:
        return len(self._stale.get(family, ()))

    # -- reads -------------------------------------------------------------------
    def families(self) -> list[AfiSafi]:
        return [f for f, t in self._tables.items() if t]

    def count(self, family: AfiSafi) -> int:
        return len(self._tables.get(family, ()))

    def keys(self, family: AfiSafi) -> KeysView[bytes]:
        return self._tables.get(family, {}).keys()

    def items(self, family: AfiSafi) -> Iterator[tuple[bytes, Path]]:
        return iter(self._tables.get(family, {}).items())

    def get(self, family: AfiSafi, key: bytes) -> Path | None:
        table = self._tables.get(family)
        return table.get(key) if table else None

    # -- checkpoints -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        writer = PathWriter()
        fams: dict[str, Any] = {}
        for fam, table in self._tables.items():
            groups = group_by_path(table.items())
            entry: dict[str, Any] = {
                "routes": [[writer.index(p), pack_keys(ks)] for p, ks in groups.items()]
            }
            stale = self._stale.get(fam)
            if stale:
                entry["stale"] = pack_keys(stale)
            fams[family_to_text(fam)] = entry
        return {"paths": writer.to_dict(), "families": fams}

    @classmethod
    def from_dict(cls, d: dict[str, Any], interner: PathInterner | None = None) -> AdjRibIn:
        rib = cls()
        paths = read_paths(d["paths"], interner)
        for fam_text, entry in d["families"].items():
            fam = family_from_text(fam_text)
            table = rib._tables[fam] = {}
            for pi, packed in entry["routes"]:
                table.update(dict.fromkeys(unpack_keys(packed), paths[pi]))
            if "stale" in entry:
                rib._stale[fam] = set(unpack_keys(entry["stale"]))
        return rib
