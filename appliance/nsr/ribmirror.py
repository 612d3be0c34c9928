"""The NSR RIB mirror: a standby engine's copy of the active engine's BGP RIB state.

What must survive a switchover, per neighbor, is what the neighbor sent us (its
Adj-RIB-In after import policy) and what it holds from us (the *sent* map of its
Adj-RIB-Out). Everything else (Loc-RIB, FIB, exports queued but not sent) follows from
them and the configuration, which both engines share (the switchover checks the digest).

The active engine keeps a journal in each Adj-RIB (changed keys with their new entry, one
C-level dict update per UPDATE) and ``MirrorWriter`` turns the journals into *deltas* a few
times a second: the changed prefixes packed as in checkpoint.py and, per prefix, the number
of its new path or exported attribute set (attribute sets numbered once, defined in the
first delta that uses them). A neighbor whose journal is not the writer's (the mirror was just
started, a standby asked for a fresh copy, or its RIB object was replaced) gets a
*base* instead: its whole state. ``MirrorReader`` applies bases and deltas, in the order
they were written, to the standby's own Speaker: its Adj-RIBs-In, its Loc-RIB (so the
standby's decision process and RIB are warm) and the sent maps. A planned switchover
then only moves the last delta and, per neighbor, what is queued and not yet sent
(``AdjRibOut.handover_state``).

No I/O here: appliance/nsr/agent.py carries the records through the checkpoint store.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Callable, Iterable
from itertools import islice
from typing import Any

from ..bgp.family import AfiSafi
from ..bgp.packet.pathattrs import PathAttributes
from ..bgp.rib.adj_in import AdjRibIn
from ..bgp.rib.checkpoint import (
    Journal,
    attrs_from_plain,
    attrs_to_plain,
    family_from_text,
    family_to_text,
    group_by_path,
    pack_keys,
    unpack_keys,
)
from ..bgp.rib.path import Path, PeerSource

DELTA_KEYS = 50_000   # changed keys per delta: bounds the event loop's time per delta
ATTR_IDS = 200_000    # attribute sets numbered before the numbering starts over (memory bound)


class MirrorWriter:
    """Active side: journals in, delta and base records (plain data) out."""

    def __init__(self, speaker: Any) -> None:
        self.sp = speaker
        self._jin: dict[str, Journal] = {}
        self._jout: dict[str, Journal] = {}
        # Attribute sets are numbered once and defined to the readers in the delta that first
        # uses them ("attrs-new"): converting one to plain data costs microseconds, and a
        # table has far fewer attribute sets than prefixes. Cleared (and the readers told:
        # "attrs-reset") after ATTR_IDS, and when a standby starts from a base.
        self._attr_ids: dict[PathAttributes, int] = {}
        self._attr_next = 0
        self._attr_reset = True

    def stop(self) -> None:
        """No standby any more: take the journals out (they would grow without a reader)."""
        for key, ribs in self.sp.ribs.items():
            if ribs.adj_in.journal is self._jin.get(key):
                ribs.adj_in.journal = None
            if ribs.adj_out.journal is self._jout.get(key):
                ribs.adj_out.journal = None
        self._jin.clear()
        self._jout.clear()

    def invalidate(self) -> None:
        """A standby wants a whole copy: every neighbor gets a base next."""
        self._jin.clear()
        self._jout.clear()
        self._attr_ids.clear()
        self._attr_reset = True

    def needs_base(self) -> list[str]:
        out = []
        for key, ribs in self.sp.ribs.items():
            jin, jout = self._jin.get(key), self._jout.get(key)
            if jin is None or ribs.adj_in.journal is not jin or ribs.adj_out.journal is not jout:
                out.append(key)
        return out

    def pending(self) -> int:
        """Changed keys not yet in a delta."""
        return sum(len(s) for j in (*self._jin.values(), *self._jout.values()) for s in j.values())

    def base(self, key: str) -> dict[str, Any]:
        """The neighbor's whole mirrored state; its journals start empty from here."""
        ribs = self.sp.ribs[key]
        jin: Journal = {}
        jout: Journal = {}
        ribs.adj_in.journal = self._jin[key] = jin
        ribs.adj_out.journal = self._jout[key] = jout
        attrs_index: dict[PathAttributes, int] = {}
        sent = {}
        for fam in ribs.adj_out.sent_families():
            table = ribs.adj_out.sent_table(fam)
            if table:
                sent[family_to_text(fam)] = [[attrs_index.setdefault(a, len(attrs_index)), pack_keys(ks)]
                                             for a, ks in group_by_path(table.items()).items()]  # type: ignore[arg-type]
        return {
            "source": ribs.source.to_dict() if ribs.source is not None else None,
            "adj-in": ribs.adj_in.to_dict(),
            "sent": sent,
            "attrs": [attrs_to_plain(a) for a in attrs_index],
        }

    def delta(self, limit: int = DELTA_KEYS) -> dict[str, Any] | None:
        """Up to ``limit`` changed keys (the rest stays journaled), or None when none."""
        if len(self._attr_ids) >= ATTR_IDS:
            self._attr_ids.clear()
            self._attr_reset = True
        ids = self._attr_ids
        new_attrs: list[list[Any]] = []

        def attr_id(a: PathAttributes) -> int:
            i = ids.get(a)
            if i is None:
                i = ids[a] = self._attr_next
                self._attr_next += 1
                new_attrs.append([i, attrs_to_plain(a)])
            return i

        sources: dict[PeerSource, int] = {}
        path_index: dict[Path, int] = {}
        path_rows: list[list[int]] = []

        def path_id(p: Path) -> int:
            i = path_index.get(p)
            if i is None:
                si = sources.setdefault(p.source, len(sources))
                i = path_index[p] = len(path_rows)
                path_rows.append([si, attr_id(p.attrs)])
            return i

        peers: dict[str, Any] = {}
        budget = limit
        for key, jin in self._jin.items():
            if budget <= 0:
                break
            ribs = self.sp.ribs.get(key)
            if ribs is None or ribs.adj_in.journal is not jin:
                continue  # replaced: needs_base() has it
            entry: dict[str, Any] = {}
            changes, used = _journal_changes(jin, path_id, budget)
            budget -= used
            if changes:
                entry["in"] = changes
            jout = self._jout.get(key)
            if jout is not None and ribs.adj_out.journal is jout and budget > 0:
                changes, used = _journal_changes(jout, attr_id, budget)
                budget -= used
                if changes:
                    entry["out"] = changes
            if entry:
                peers[key] = entry
        if not peers:
            return None
        d = {"sources": [s.to_dict() for s in sources], "paths": path_rows, "attrs-new": new_attrs,
             "peers": peers}
        if self._attr_reset:
            d["attrs-reset"] = True
            self._attr_reset = False
        return d


def _journal_changes(journal: Journal, index_of: Callable[[Any], int],
                     budget: int) -> tuple[dict[str, Any], int]:
    """Take up to ``budget`` entries out of ``journal``: per family the keys (``keys``,
    packed) and, per key, the number ``index_of`` gives its new entry, -1 when it is gone
    (``idx``, int32 little-endian). Per key only C-level work: the entries were journaled
    with the change, and the numbering runs once per distinct entry."""
    out: dict[str, Any] = {}
    used = 0
    for fam in list(journal):
        if used >= budget:
            break
        keys, vals = _take(journal, fam, budget - used)
        used += len(keys)
        numbers: dict[Any, int] = {None: -1}
        for v in set(vals):  # distinct entries (Paths, attributes): few
            if v is not None:
                numbers[v] = index_of(v)
        idx = array("i", map(numbers.__getitem__, vals))
        if sys.byteorder != "little":
            idx.byteswap()
        out[family_to_text(fam)] = {"keys": pack_keys(keys), "idx": idx.tobytes().hex()}
    return out, used


def _take(journal: Journal, fam: AfiSafi, n: int) -> tuple[list[bytes], list[Any]]:
    d = journal[fam]
    if len(d) <= n:
        del journal[fam]
        return list(d), list(d.values())
    keys = list(islice(d, n))
    vals = list(islice(d.values(), n))
    for k in keys:
        del d[k]
    return keys, vals


def _unpack_changes(ch: dict[str, Any]) -> tuple[list[bytes], list[int]]:
    idx = array("i", bytes.fromhex(ch["idx"]))
    if sys.byteorder != "little":
        idx.byteswap()
    return unpack_keys(ch["keys"]), idx.tolist()


class MirrorReader:
    """Standby side: applies bases and deltas to the standby's Speaker."""

    def __init__(self, speaker: Any) -> None:
        self.sp = speaker
        self.based: set[str] = set()
        # the writer's attribute numbering: one object per number, so the sent maps share
        # objects (AdjRibOut.continue_from makes them the peer's canonical attributes)
        self._attrs_by_id: dict[int, PathAttributes] = {}

    def interned(self, key: str) -> Iterable[PathAttributes]:
        """The distinct attribute objects of the neighbor's sent maps (C-level, at adopt:
        nothing per neighbor is kept for it while the mirror runs)."""
        ribs = self.sp.ribs.get(key)
        if ribs is None:
            return ()
        out: set[PathAttributes] = set()
        for fam in ribs.adj_out.sent_families():
            out.update(ribs.adj_out.sent_table(fam).values())
        return out

    def _canon_source(self, d: dict[str, Any]) -> PeerSource | None:
        """One PeerSource object per neighbor (the RIBs compare sources by identity)."""
        src = PeerSource.from_dict(d)
        ribs = self.sp.ribs.get(src.peer_id)
        if ribs is None:
            return None
        if ribs.source != src:
            ribs.source = src
        return ribs.source

    def apply_base(self, key: str, d: dict[str, Any]) -> None:
        sp = self.sp
        ribs = sp.ribs.get(key)
        if ribs is None:
            return  # not a neighbor here (the digests differ: a switchover is refused)
        self._drop(key)
        src = self._canon_source(d["source"]) if d.get("source") else None
        make = _CanonPaths(sp.interner, src)
        adj_in = AdjRibIn.from_dict(d["adj-in"], make)  # type: ignore[arg-type]
        adj_in.journal = ribs.adj_in.journal
        ribs.adj_in = adj_in
        for fam in adj_in.families():
            loc = sp.loc_rib[fam]
            for path, keys in group_by_path(adj_in.items(fam)).items():
                loc.announce(path, keys)
        attrs = [attrs_from_plain(a) for a in d.get("attrs", [])]
        for fam_text, groups in d.get("sent", {}).items():
            table = ribs.adj_out.sent_table(family_from_text(fam_text))
            for ai, packed in groups:
                table.update(dict.fromkeys(unpack_keys(packed), attrs[ai]))
        self.based.add(key)

    def _drop(self, key: str) -> None:
        """Forget the neighbor's mirrored state (its routes leave the Loc-RIB)."""
        sp = self.sp
        ribs = sp.ribs[key]
        for fam, removed in ribs.adj_in.clear().items():
            sp.loc_rib[fam].withdraw(key, removed)
        ribs.adj_out.clear()
        self.based.discard(key)

    def apply_delta(self, d: dict[str, Any]) -> None:
        sp = self.sp
        by_id = self._attrs_by_id
        if d.get("attrs-reset"):
            by_id.clear()
        for i, plain in d.get("attrs-new", ()):
            by_id[i] = attrs_from_plain(plain)
        sources = [self._canon_source(s) for s in d["sources"]]
        # an attribute number this reader never saw was defined before it started
        # following: that neighbor's base, which comes next, replaces the entry
        paths: list[Path | None] = []
        for si, ai in d["paths"]:
            src, a = sources[si], by_id.get(ai)
            paths.append(None if src is None or a is None else sp.interner.get(src, a))
        for key, entry in d["peers"].items():
            ribs = sp.ribs.get(key)
            if ribs is None:
                continue
            for fam_text, ch in entry.get("in", {}).items():
                fam = family_from_text(fam_text)
                self._apply_in(key, ribs, fam, ch, paths)
            for fam_text, ch in entry.get("out", {}).items():
                table = ribs.adj_out.sent_table(family_from_text(fam_text))
                keys, idx = _unpack_changes(ch)
                canon = {i: by_id[i] for i in set(idx) if i in by_id}
                for k, i in zip(keys, idx, strict=True):
                    a = canon.get(i)
                    if a is None:
                        table.pop(k, None)  # withdrawn (or defined before we followed)
                    else:
                        table[k] = a

    def _apply_in(self, key: str, ribs: Any, fam: AfiSafi, ch: dict[str, Any], paths: list[Path | None]) -> None:
        # the Loc-RIB keeps one candidate per neighbor (by address): a path of another
        # source object of the same neighbor (an earlier session) is replaced, not added
        loc = self.sp.loc_rib[fam]
        keys, idx = _unpack_changes(ch)
        gone: list[bytes] = []
        groups: dict[int, list[bytes]] = {}
        for k, i in zip(keys, idx, strict=True):
            if i < 0:
                gone.append(k)
            elif i in groups:
                groups[i].append(k)
            else:
                groups[i] = [k]
        if gone:
            removed = ribs.adj_in.withdraw(fam, gone)
            if removed:
                loc.withdraw(key, removed)
        for i, ks in groups.items():
            path = paths[i]
            if path is None:
                continue  # defined before this reader followed: the neighbor's base follows
            changed = ribs.adj_in.announce(fam, path, ks)
            if changed:
                loc.announce(path, changed)


class _CanonPaths:
    """``PathInterner.get`` with the neighbor's canonical source object."""

    __slots__ = ("_interner", "_source")

    def __init__(self, interner: Any, source: PeerSource | None) -> None:
        self._interner = interner
        self._source = source

    def get(self, source: PeerSource, attrs: PathAttributes) -> Path:
        return self._interner.get(self._source if self._source == source else source, attrs)
