"""Loc-RIB of one address family: the selected best path per prefix.

Layout, chosen for the overwhelmingly common single-candidate case:
  _best:  dict[key, Path]        the best path of every prefix
  _multi: dict[key, list[Path]]  the candidates, only for prefixes that have
                                 more than one (one per source, arrival order)
A prefix with one candidate costs one dict entry (the key object is shared
with the Adj-RIB-In). A batch whose keys are all new is stored with two C
calls; otherwise a per-key loop runs the decision process only where a prefix
really has competing candidates.

A source is identified by ``PeerSource.peer_id``: a neighbor that reconnects
with a new PeerSource replaces its own older paths instead of competing with them.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import ItemsView, Iterable
from itertools import repeat
from typing import Any

from ..family import ADDRESS_BITS, AfiSafi, prefix_to_key
from .checkpoint import PathWriter, group_by_path, pack_keys, read_paths, unpack_keys
from .decision import DEFAULT_OPTIONS, DecisionOptions, best_path
from .path import Path, PathInterner, PeerSource

Change = tuple[bytes, Path | None]
_SEQUENCES = (list, tuple)


class LocRib:
    __slots__ = ("family", "opts", "_best", "_multi")

    def __init__(self, family: AfiSafi, opts: DecisionOptions = DEFAULT_OPTIONS) -> None:
        self.family = family
        self.opts = opts
        self._best: dict[bytes, Path] = {}
        self._multi: dict[bytes, list[Path]] = {}

    # -- updates ---------------------------------------------------------------
    def announce(self, path: Path, keys: Iterable[bytes]) -> list[Change]:
        """Add/replace ``path``'s source's candidate for ``keys``; return best changes."""
        best = self._best
        if not isinstance(keys, _SEQUENCES):
            keys = list(keys)
        if best.keys().isdisjoint(keys):
            n0 = len(best)
            best.update(zip(keys, repeat(path)))
            if len(best) - n0 != len(keys):
                keys = list(dict.fromkeys(keys))  # the UPDATE repeated a prefix
            return list(zip(keys, repeat(path)))
        changed: list[Change] = []
        multi = self._multi
        src = path.source.peer_id
        opts = self.opts
        for k in keys:
            cur = best.get(k)
            if cur is None:
                best[k] = path
                changed.append((k, path))
                continue
            if cur is path:
                continue
            cands = multi.get(k)
            if cands is None:
                if cur.source.peer_id == src:
                    best[k] = path
                    changed.append((k, path))
                    continue
                cands = multi[k] = [cur, path]
            else:
                for i, c in enumerate(cands):
                    if c.source.peer_id == src:
                        if c is path:
                            break
                        # an implicit withdraw + announce: the path becomes the newest
                        del cands[i]
                        cands.append(path)
                        break
                else:
                    cands.append(path)
            nb = best_path(cands, opts)
            if nb is not cur:
                best[k] = nb  # type: ignore[assignment]
                changed.append((k, nb))
        return changed

    def withdraw(self, source: PeerSource | str, keys: Iterable[bytes]) -> list[Change]:
        """Remove ``source``'s candidate for ``keys``; return (key, new best or None)."""
        src = source if isinstance(source, str) else source.peer_id
        best = self._best
        multi = self._multi
        changed: list[Change] = []
        for k in keys:
            cur = best.get(k)
            if cur is None:
                continue
            cands = multi.get(k)
            if cands is None:
                if cur.source.peer_id == src:
                    del best[k]
                    changed.append((k, None))
                continue
            for i, c in enumerate(cands):
                if c.source.peer_id == src:
                    del cands[i]
                    break
            else:
                continue
            if len(cands) == 1:
                nb = cands[0]
                del multi[k]
            else:
                nb = best_path(cands, self.opts)  # type: ignore[assignment]
            if nb is not cur:
                best[k] = nb
                changed.append((k, nb))
        return changed

    def set_options(self, opts: DecisionOptions) -> list[Change]:
        """Change the decision options (MED config); rerun selection where it matters."""
        self.opts = opts
        changed: list[Change] = []
        for k, cands in self._multi.items():
            nb = best_path(cands, opts)
            if nb is not self._best[k]:
                self._best[k] = nb  # type: ignore[assignment]
                changed.append((k, nb))
        return changed

    # -- reads -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._best)

    def __contains__(self, key: bytes) -> bool:
        return key in self._best

    def best(self, key: bytes) -> Path | None:
        return self._best.get(key)

    def candidates(self, key: bytes) -> list[Path]:
        cands = self._multi.get(key)
        if cands is not None:
            return list(cands)
        b = self._best.get(key)
        return [b] if b is not None else []

    def items(self) -> ItemsView[bytes, Path]:
        """(key, best) of every prefix: a live view (AdjRibOut.enqueue_full copies it fast)."""
        return self._best.items()

    def multi_count(self) -> int:
        """Prefixes with more than one candidate."""
        return len(self._multi)

    def count_by_source(self) -> dict[str, int]:
        """Selected (best) prefixes per source peer_id."""
        out: dict[str, int] = {}
        # count per Path in C first, then fold the few distinct paths per source
        for p, n in Counter(self._best.values()).items():
            out[p.source.peer_id] = out.get(p.source.peer_id, 0) + n
        return out

    def lookup(self, prefix_text: str, exact: bool = False) -> tuple[bytes, Path] | None:
        """Longest-prefix match of an address or prefix (``exact``: that prefix only)."""
        net = ipaddress.ip_network(prefix_text, strict=False)
        if ADDRESS_BITS.get(self.family.afi) != net.max_prefixlen:
            return None
        plens = [net.prefixlen] if exact else range(net.prefixlen, -1, -1)
        for plen in plens:
            key = prefix_to_key(net.supernet(new_prefix=plen))
            p = self._best.get(key)
            if p is not None:
                return key, p
        return None

    # -- checkpoints -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        writer = PathWriter()
        groups = group_by_path(self._best.items())
        best = [[writer.index(p), pack_keys(ks)] for p, ks in groups.items()]
        multi = [[k.hex(), [writer.index(p) for p in cands]] for k, cands in self._multi.items()]
        return {
            "family": f"{self.family.afi}/{self.family.safi}",
            "paths": writer.to_dict(),
            "best": best,
            "multi": multi,
        }

    @classmethod
    def from_dict(
        cls,
        d: dict[str, Any],
        opts: DecisionOptions = DEFAULT_OPTIONS,
        interner: PathInterner | None = None,
    ) -> LocRib:
        afi, safi = d["family"].split("/")
        rib = cls(AfiSafi(int(afi), int(safi)), opts)
        paths = read_paths(d["paths"], interner)
        for pi, packed in d["best"]:
            rib._best.update(dict.fromkeys(unpack_keys(packed), paths[pi]))
        for khex, idxs in d["multi"]:
            rib._multi[bytes.fromhex(khex)] = [paths[i] for i in idxs]
        return rib
