"""Adj-RIB-Out of one peer: what the peer has from us and what it should get next.

Per family:
  sent:    dict[key, PathAttributes]   what the peer holds from us (exported attrs)
  pending: dict[key, Path | None]      the latest desired best per key, coalesced:
                                       ten changes to one prefix before we get to
                                       send cost one dict slot and at most one NLRI
``build_messages`` drains pending in arrival order (FIFO, so no prefix starves
under churn), exports each path through the ExportCache (one transform per
path, not per prefix), groups prefixes by exported attributes, encodes each
group's attributes once and packs many NLRI per UPDATE. It stops after about
``max_messages`` so the speaker can respect the socket's write buffer.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice, repeat
from typing import Any

from ..family import AfiSafi
from ..packet.pathattrs import PathAttributes
from .checkpoint import (
    PathWriter,
    attrs_from_plain,
    attrs_to_plain,
    family_from_text,
    family_to_text,
    group_by_path,
    pack_keys,
    read_paths,
    unpack_keys,
)
from .export import ExportCache, ExportContext, ExportPolicy
from .path import Path, PathInterner

# Bytes of an UPDATE that are not NLRI or our attributes: header (19), two length
# fields (4) and, for MP_REACH, its own header and a 32-octet next hop (~40).
_OVERHEAD = 64


class AdjRibOut:
    __slots__ = ("policy", "cache", "_sent", "_pending", "_eor")

    def __init__(self, policy: ExportPolicy | None = None) -> None:
        self.policy = policy
        self.cache: ExportCache | None = None
        self._sent: dict[AfiSafi, dict[bytes, PathAttributes]] = {}
        self._pending: dict[AfiSafi, dict[bytes, Path | None]] = {}
        # family -> last key of the initial full table: End-of-RIB follows it
        self._eor: dict[AfiSafi, bytes | None] = {}

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

    def enqueue_full(self, family: AfiSafi, items: Iterable[tuple[bytes, Path]]) -> None:
        """Queue a full table (session established, route refresh); End-of-RIB follows it."""
        pending = self._pending.get(family)
        if pending is None:
            pending = self._pending[family] = {}
        pending.update(items)
        # everything pending now goes out before End-of-RIB
        self._eor[family] = next(reversed(pending)) if pending else None

    def has_pending(self) -> bool:
        return any(self._pending.values()) or bool(self._eor)

    def pending_count(self, family: AfiSafi | None = None) -> int:
        if family is not None:
            return len(self._pending.get(family, ()))
        return sum(len(p) for p in self._pending.values())

    # -- reads -------------------------------------------------------------------
    def advertised_count(self, family: AfiSafi) -> int:
        return len(self._sent.get(family, ()))

    def sent(self, family: AfiSafi, key: bytes) -> PathAttributes | None:
        return self._sent.get(family, {}).get(key)

    def sent_items(self, family: AfiSafi) -> Iterable[tuple[bytes, PathAttributes]]:
        return self._sent.get(family, {}).items()

    def clear(self) -> None:
        """Session down: the peer holds nothing from us any more."""
        self._sent.clear()
        self._pending.clear()
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
        for family in list(self._pending.keys() | self._eor.keys()):
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
            if family in self._eor:
                last = self._eor[family]
                pending = self._pending.get(family)
                if last is None or not pending or last not in pending:
                    del self._eor[family]
                    out.append(end_of_rib(family))
            if not self._pending.get(family):
                self._pending.pop(family, None)
        return out

    def _take(
        self, family: AfiSafi, max_messages: int, max_len: int
    ) -> tuple[dict[PathAttributes, list[bytes]], list[bytes]]:
        """Pop pending changes worth about ``max_messages``; export and group them.

        The per-prefix loop only touches dicts keyed by prefix or by Path (identity
        hash, in C); everything per attribute set happens once per distinct Path.
        """
        pending = self._pending.get(family)
        withdrawn: list[bytes] = []
        if not pending:
            return {}, withdrawn
        sent = self._sent.get(family)
        if sent is None:
            sent = self._sent[family] = {}
        cache = self.cache
        assert cache is not None
        if self.policy is not None:
            return self._take_with_policy(family, pending, sent, max_messages, max_len)
        # a full table re-sends what the peer may already hold (route refresh)
        resend = family in self._eor
        usable = max_len - _OVERHEAD
        # conservative: every group may end in a partly filled message
        limit = max_messages * usable
        used = 0
        # Path -> [exported attrs or None, keys to announce with them]
        by_path: dict[Path, list[Any]] = {}
        memo_get = by_path.get
        sent_pop = sent.pop
        sent_get = sent.get
        chunk_size = 1024
        while pending and used < limit:
            # keys only: a list of (key, value) tuples would be 2 allocations per
            # prefix and wake the cyclic GC, which then walks the whole RIB
            chunk = list(islice(pending, chunk_size))
            chunk_size = min(chunk_size * 2, 1 << 16)
            taken = 0
            for k in chunk:
                best = pending[k]
                taken += 1
                if best is not None:
                    m = memo_get(best)
                    if m is None:
                        exp = cache.export(best, family)
                        m = by_path[best] = [exp, []]
                    exp = m[0]
                    if exp is not None:
                        if resend or sent_get(k) is not exp:
                            lst = m[1]
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
            if taken == len(pending):
                pending.clear()
            else:
                for k in chunk[:taken]:
                    del pending[k]
        groups: dict[PathAttributes, list[bytes]] = {}
        for exp, keys in by_path.values():
            if keys:
                sent.update(zip(keys, repeat(exp)))
                g = groups.get(exp)
                if g is None:
                    groups[exp] = keys
                else:
                    g.extend(keys)
        return groups, withdrawn

    def _take_with_policy(
        self,
        family: AfiSafi,
        pending: dict[bytes, Path | None],
        sent: dict[bytes, PathAttributes],
        max_messages: int,
        max_len: int,
    ) -> tuple[dict[PathAttributes, list[bytes]], list[bytes]]:
        """As ``_take``, calling the export policy per prefix (its result may differ per key)."""
        cache = self.cache
        policy = self.policy
        assert cache is not None and policy is not None
        resend = family in self._eor
        usable = max_len - _OVERHEAD
        limit = max_messages * usable
        used = 0
        groups: dict[PathAttributes, list[bytes]] = {}
        withdrawn: list[bytes] = []
        while pending and used < limit:
            k, best = next(iter(pending.items()))
            del pending[k]
            exp = cache.export(best, family) if best is not None else None
            if exp is not None:
                exp = policy(k, best, exp)  # type: ignore[arg-type]
            if exp is None:
                if sent.pop(k, None) is not None:
                    withdrawn.append(k)
                    used += len(k)
                continue
            exp = cache.intern(exp)
            if not resend and sent.get(k) is exp:
                continue
            sent[k] = exp
            g = groups.get(exp)
            if g is None:
                g = groups[exp] = []
                used += usable + len(cache.encoded(exp, family))
            g.append(k)
            used += len(k)
        return groups, withdrawn

    # -- checkpoints -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        writer = PathWriter()
        attrs_index: dict[PathAttributes, int] = {}
        fams: dict[str, Any] = {}
        for fam in self._sent.keys() | self._pending.keys() | self._eor.keys():
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
            if "eor-after" in entry:
                rib._eor[fam] = bytes.fromhex(entry["eor-after"]) or None
        return rib
