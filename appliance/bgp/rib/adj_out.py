"""Adj-RIB-Out of one peer: what the peer has from us and what it should get next.

Per family:
  sent:    dict[key, PathAttributes]   what the peer holds from us (exported attrs)
  pending: dict[key, Path | None]      the latest desired best per key, coalesced:
                                       ten changes to one prefix before we get to
                                       send cost one dict slot and at most one NLRI
  full:    a full-table snapshot being sent (session established, route refresh):
           two parallel lists (keys, paths) and a cursor. Copying a 1M-prefix
           Loc-RIB into ``pending`` would cost a dict insert and delete per prefix;
           the lists are two C-level copies. A key that changes after the snapshot
           is in ``pending`` and the snapshot entry is skipped.
``build_messages`` sends the snapshot first, then pending in arrival order (FIFO,
so no prefix starves under churn). Each path is exported once per call through
the ExportCache (one transform per attribute set, not per prefix), prefixes are
grouped by exported attributes, each group's attributes are encoded once and
many NLRI go into each UPDATE. It stops after about ``max_messages`` so the
speaker can respect the socket's write buffer. End-of-RIB follows the snapshot
and whatever was pending when the snapshot was drained.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import islice, repeat
from typing import Any

from ..family import AfiSafi
from ..packet.pathattrs import PathAttributes
from .checkpoint import (
    Journal,
    PathWriter,
    attrs_from_plain,
    attrs_to_plain,
    family_from_text,
    family_to_text,
    group_by_path,
    note_keys,
    pack_keys,
    read_paths,
    unpack_keys,
)
from .export import ExportCache, ExportContext, ExportPolicy
from .path import Path, PathInterner

# Bytes of an UPDATE that are not NLRI or our attributes: header (19), two length
# fields (4) and, for MP_REACH, its own header and a 32-octet next hop (~40).
_OVERHEAD = 64
_FIRST_CHUNK = 1024
_MAX_CHUNK = 1 << 16
# Entries one ``_take`` may look at, sent or not: a queue whose entries are filtered
# (NO_EXPORT, split horizon) or unchanged costs no octets, and without this bound one
# flush would walk a whole 1M-entry queue while keepalives wait.
_MAX_EXAMINED = 1 << 16
_MISSING = object()


class TableSnapshot:
    """A Loc-RIB's (key, best) as two lists, taken once and shared read-only by every peer
    that is given the full table in the same callback (``mapping``, the live table, is
    valid only until the Loc-RIB next changes). One copy per peer of a 1M-route table
    was two 8 MB lists each, and every young GC pass walked them all: releasing the held
    output of 100 peers after a crash held the loop for 5 s."""

    __slots__ = ("keys", "paths", "mapping")

    def __init__(self, items: Iterable[tuple[bytes, Path]]) -> None:
        table = getattr(items, "mapping", None)
        if table is None:
            table = dict(items)
        self.mapping = table
        self.keys: list[bytes] = list(table)
        self.paths: list[Path] = list(table.values())


class _FullTable:
    """A full table being sent: parallel key/path lists and how far we got."""

    __slots__ = ("keys", "paths", "pos")

    def __init__(self, keys: list[bytes], paths: list[Path], pos: int = 0) -> None:
        self.keys = keys
        self.paths = paths
        self.pos = pos

    def remaining(self) -> int:
        return len(self.keys) - self.pos


class AdjRibOut:
    __slots__ = ("policy", "cache", "_sent", "_pending", "_full", "_eor", "journal")

    def __init__(self, policy: ExportPolicy | None = None) -> None:
        self.policy = policy
        self.cache: ExportCache | None = None
        self._sent: dict[AfiSafi, dict[bytes, PathAttributes]] = {}
        self._pending: dict[AfiSafi, dict[bytes, Path | None]] = {}
        self._full: dict[AfiSafi, _FullTable] = {}
        # family -> End-of-RIB goes out once this pending key is sent (None: at once)
        self._eor: dict[AfiSafi, bytes | None] = {}
        # family -> {key: new sent entry (None: withdrawn)} since the NSR mirror last
        # looked (None: no mirror; appliance/nsr/ribmirror.py)
        self.journal: Journal | None = None

    def _note(self, family: AfiSafi, keys: Iterable[bytes], value: PathAttributes | None) -> None:
        note_keys(self.journal, family, keys, value)

    # -- queueing ----------------------------------------------------------------
    def enqueue(self, family: AfiSafi, key: bytes, best: Path | None) -> None:
        pending = self._pending.get(family)
        if pending is None:
            pending = self._pending[family] = {}
        pending[key] = best

    def enqueue_many(self, family: AfiSafi, changes: Iterable[tuple[bytes, Path | None]]) -> None:
        """Queue (key, best) pairs as LocRib.announce/withdraw return them (one C call)."""
        pending = self._pending.get(family)
        if pending is None:
            pending = self._pending[family] = {}
        pending.update(changes)

    def enqueue_full(self, family: AfiSafi, items: Iterable[tuple[bytes, Path]] | TableSnapshot) -> None:
        """Queue a full table (session established, route refresh); End-of-RIB follows it.

        ``items`` is best a dict items view (``LocRib.items()`` is one): the snapshot
        is then two C-level list copies; or a TableSnapshot shared with other peers.
        """
        snap = items if isinstance(items, TableSnapshot) else TableSnapshot(items)
        table, keys, paths = snap.mapping, snap.keys, snap.paths
        pending = self._pending.get(family)
        if pending:
            # pending entries are older than the snapshot: bring them up to date, they
            # win over the snapshot entry of the same key (see _take)
            for k in list(pending):
                p = table.get(k, _MISSING)
                if p is not _MISSING:
                    pending[k] = p
        self._full[family] = _FullTable(keys, paths)
        self._eor.pop(family, None)

    def has_pending(self) -> bool:
        return any(self._pending.values()) or bool(self._full) or bool(self._eor)

    def pending_count(self, family: AfiSafi | None = None) -> int:
        """Queued entries; a key changed during a full-table send counts twice."""
        fams = [family] if family is not None else list(self._pending.keys() | self._full.keys())
        n = 0
        for f in fams:
            n += len(self._pending.get(f, ()))
            full = self._full.get(f)
            if full is not None:
                n += full.remaining()
        return n

    # -- reads -------------------------------------------------------------------
    def advertised_count(self, family: AfiSafi) -> int:
        return len(self._sent.get(family, ()))

    def sent(self, family: AfiSafi, key: bytes) -> PathAttributes | None:
        return self._sent.get(family, {}).get(key)

    def sent_items(self, family: AfiSafi) -> Iterable[tuple[bytes, PathAttributes]]:
        return self._sent.get(family, {}).items()

    def clear(self) -> None:
        """Session down: the peer holds nothing from us any more."""
        if self.journal is not None:
            for fam, sent in self._sent.items():
                self._note(fam, sent, None)
        self._sent.clear()
        self._pending.clear()
        self._full.clear()
        self._eor.clear()
        if self.cache is not None:
            self.cache.clear()

    # -- output ------------------------------------------------------------------
    def build_messages(self, ctx: ExportContext, max_messages: int, max_len: int = 4096) -> list[bytes]:
        """Up to about ``max_messages`` complete UPDATE messages; the rest stays pending."""
        from ..packet.update import end_of_rib, pack_updates, pack_withdrawals

        if self.cache is None:
            self.cache = ExportCache(ctx)
        else:
            self.cache.set_context(ctx)
        cache = self.cache
        out: list[bytes] = []
        for family in list(self._pending.keys() | self._full.keys() | self._eor.keys()):
            room = max_messages - len(out)
            if room <= 0:
                break
            groups, withdrawn = self._take(family, room, max_len)
            if withdrawn:
                out.extend(pack_withdrawals(family, withdrawn, max_len=max_len))
            for attrs, keys in groups.items():
                out.extend(
                    pack_updates(family, cache.encoded(attrs, family), attrs.next_hop, keys, max_len=max_len)
                )
            pending = self._pending.get(family)
            if family in self._eor:
                last = self._eor[family]
                if last is None or not pending or last not in pending:
                    del self._eor[family]
                    out.append(end_of_rib(family))
            if not pending:
                self._pending.pop(family, None)
        return out

    def _take(
        self, family: AfiSafi, max_messages: int, max_len: int
    ) -> tuple[dict[PathAttributes, list[bytes]], list[bytes]]:
        """Take changes worth about ``max_messages``; export and group them; update sent.

        The per-prefix loop only touches dicts keyed by prefix or by Path (identity
        hash, in C); everything per attribute set happens once per distinct Path.
        """
        pending = self._pending.get(family)
        full = self._full.get(family)
        withdrawn: list[bytes] = []
        if not pending and full is None:
            return {}, withdrawn
        sent = self._sent.get(family)
        if sent is None:
            sent = self._sent[family] = {}
        cache = self.cache
        assert cache is not None
        policy = self.policy
        # a full table re-sends what the peer may already hold (route refresh)
        resend = full is not None or family in self._eor
        usable = max_len - _OVERHEAD
        # conservative: every group may end in a partly filled message
        limit = max_messages * usable
        used = 0
        by_path: dict[Path, list[Any]] = {}   # Path -> [exported attrs | None, keys]
        by_attrs: dict[PathAttributes, list[bytes]] = {}  # per-key policy results
        memo_get = by_path.get
        sent_pop = sent.pop
        sent_get = sent.get

        def consume(pairs: Iterable[tuple[bytes, Path | None]], skip: Callable[[bytes], bool] | None) -> int:
            nonlocal used
            taken = 0
            for k, best in pairs:
                taken += 1
                if skip is not None and skip(k):
                    continue  # changed since the snapshot: pending has it
                if best is not None:
                    m = memo_get(best)
                    if m is None:
                        m = by_path[best] = [cache.export(best, family), []]
                    exp = m[0]
                    if exp is not None:
                        if policy is None:
                            lst = m[1]
                        else:
                            exp = policy(k, best, exp)
                            if exp is None:
                                if sent_pop(k, None) is not None:
                                    withdrawn.append(k)
                                    used += len(k)
                                continue
                            exp = cache.intern(exp)
                            lst = by_attrs.get(exp)
                            if lst is None:
                                lst = by_attrs[exp] = []
                        if resend or sent_get(k) is not exp:
                            if not lst:
                                used += usable + len(cache.encoded(exp, family))
                            lst.append(k)
                            used += len(k)
                            if used >= limit:
                                break
                        continue
                if sent_pop(k, None) is not None:
                    withdrawn.append(k)
                    used += len(k)
                    if used >= limit:
                        break
            return taken

        size = _FIRST_CHUNK
        examined = 0
        if full is not None:
            skip = pending.__contains__ if pending else None
            keys, paths = full.keys, full.paths
            while full.pos < len(keys) and used < limit and examined < _MAX_EXAMINED:
                end = full.pos + min(size, _MAX_EXAMINED - examined)
                n = consume(zip(keys[full.pos : end], paths[full.pos : end], strict=True), skip)
                full.pos += n
                examined += n
                size = min(size * 2, _MAX_CHUNK)
            if full.pos >= len(keys):
                del self._full[family]
                # what was pending when the table ran out still belongs before End-of-RIB
                self._eor[family] = next(reversed(pending)) if pending else None
        while pending and used < limit and examined < _MAX_EXAMINED:
            # keys and values as two C-level copies: no tuple per prefix, no lookups
            chunk = min(size, _MAX_EXAMINED - examined)
            keys = list(islice(pending, chunk))
            taken = consume(zip(keys, list(islice(pending.values(), chunk)), strict=True), None)
            examined += taken
            size = min(size * 2, _MAX_CHUNK)
            if taken == len(pending):
                pending.clear()
            else:
                for k in keys[:taken]:
                    del pending[k]

        groups: dict[PathAttributes, list[bytes]] = {}
        journal = self.journal
        if journal is not None and withdrawn:
            self._note(family, withdrawn, None)
        for exp, keys in [*by_path.values(), *by_attrs.items()]:
            if keys and exp is not None:
                sent.update(zip(keys, repeat(exp)))
                if journal is not None:
                    self._note(family, keys, exp)
                g = groups.get(exp)
                if g is None:
                    groups[exp] = keys
                else:
                    g.extend(keys)
        return groups, withdrawn

    # -- NSR: a mirror of what the peer holds, and continuing another engine's queue ------
    def sent_table(self, family: AfiSafi) -> dict[bytes, PathAttributes]:
        """The family's sent map itself (the NSR mirror reads and writes it)."""
        t = self._sent.get(family)
        if t is None:
            t = self._sent[family] = {}
        return t

    def sent_families(self) -> list[AfiSafi]:
        return [f for f, t in self._sent.items() if t]

    def handover_state(self, family: AfiSafi) -> dict[str, Any]:
        """What is queued for the peer and not sent (the sent map travels in the mirror):
        pending keys in order, the rest of a full table, and a due End-of-RIB."""
        d: dict[str, Any] = {"pending": pack_keys(self._pending.get(family, ()))}
        full = self._full.get(family)
        if full is not None:
            d["full"] = pack_keys(full.keys[full.pos :])
        if family in self._eor:
            last = self._eor[family]
            d["eor-after"] = last.hex() if last is not None else ""
        return d

    def continue_from(self, family: AfiSafi, state: dict[str, Any], table: Any, ctx: ExportContext,
                      interned: Iterable[PathAttributes] = ()) -> None:
        """Continue the queue ``handover_state`` described, with this engine's current best
        paths (``table``: a Loc-RIB, ``best(key)``). ``interned``: the distinct attribute
        objects of the sent map, made this peer's canonical exported attributes so an
        unchanged route compares by identity in ``_take`` and is not sent again."""
        if self.cache is None:
            self.cache = ExportCache(ctx)
        else:
            self.cache.set_context(ctx)
        intern = self.cache.intern
        for a in interned:
            intern(a)
        best = table.best
        keys = unpack_keys(state.get("pending", ""))
        if keys:
            self.enqueue_many(family, [(k, best(k)) for k in keys])
        if "full" in state:
            fkeys: list[bytes] = []
            fpaths: list[Path] = []
            gone: list[tuple[bytes, None]] = []
            for k in unpack_keys(state["full"]):
                p = best(k)
                if p is None:
                    gone.append((k, None))
                else:
                    fkeys.append(k)
                    fpaths.append(p)
            self._full[family] = _FullTable(fkeys, fpaths)
            if gone:
                self.enqueue_many(family, gone)
        if "eor-after" in state:
            self._eor[family] = bytes.fromhex(state["eor-after"]) or None

    # -- checkpoints -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        writer = PathWriter()
        attrs_index: dict[PathAttributes, int] = {}
        fams: dict[str, Any] = {}
        for fam in self._sent.keys() | self._pending.keys() | self._full.keys() | self._eor.keys():
            sent = [
                [attrs_index.setdefault(a, len(attrs_index)), pack_keys(ks)]
                for a, ks in group_by_path(self._sent.get(fam, {}).items()).items()  # type: ignore[arg-type]
            ]
            # pending keeps its order (FIFO) and its withdrawals (-1)
            pending = self._pending.get(fam, {})
            entry: dict[str, Any] = {
                "sent": sent,
                "pending-keys": pack_keys(pending),
                "pending-paths": [-1 if p is None else writer.index(p) for p in pending.values()],
            }
            full = self._full.get(fam)
            if full is not None:
                rest = zip(full.keys[full.pos :], full.paths[full.pos :], strict=True)
                entry["full"] = [[writer.index(p), pack_keys(ks)] for p, ks in group_by_path(rest).items()]
            if fam in self._eor:
                last = self._eor[fam]
                entry["eor-after"] = last.hex() if last is not None else ""
            fams[family_to_text(fam)] = entry
        return {
            "paths": writer.to_dict(),
            "attrs": [attrs_to_plain(a) for a in attrs_index],
            "families": fams,
        }

    @classmethod
    def from_dict(
        cls,
        d: dict[str, Any],
        policy: ExportPolicy | None = None,
        interner: PathInterner | None = None,
    ) -> AdjRibOut:
        rib = cls(policy)
        paths = read_paths(d["paths"], interner)
        attrs = [attrs_from_plain(a) for a in d["attrs"]]
        for fam_text, entry in d["families"].items():
            fam = family_from_text(fam_text)
            sent = rib._sent[fam] = {}
            for ai, packed in entry["sent"]:
                sent.update(dict.fromkeys(unpack_keys(packed), attrs[ai]))
            keys = unpack_keys(entry["pending-keys"])
            if keys:
                rib._pending[fam] = {
                    k: (None if i < 0 else paths[i]) for k, i in zip(keys, entry["pending-paths"], strict=True)
                }
            if "full" in entry:
                fkeys: list[bytes] = []
                fpaths: list[Path] = []
                for pi, packed in entry["full"]:
                    ks = unpack_keys(packed)
                    fkeys.extend(ks)
                    fpaths.extend(repeat(paths[pi], len(ks)))
                rib._full[fam] = _FullTable(fkeys, fpaths)
            if "eor-after" in entry:
                rib._eor[fam] = bytes.fromhex(entry["eor-after"]) or None
        return rib
