"""Import and export hooks for the BGP speaker.

One hook per (neighbor, address family, direction), built from the neighbor's
``import-policy`` / ``export-policy`` chain and ``default-import-policy`` /
``default-export-policy``. On a policy change build a new PolicyEngine and new
hooks (caches belong to the engine).

Import, per prefix:  ``hook(key, family, source, attrs) -> attrs | None``
Import, per UPDATE:  ``hook.filter_batch(family, source, attrs, keys)
                        -> [(attrs, [keys])]`` (rejected keys omitted); when the
                     chain's outcome for ``attrs`` does not depend on the prefix this
                     is two dict lookups and no per-prefix Python call.
                     ``filter_batch_weighted`` also returns the set-weight per group.
Export, per prefix:  ``hook(key, path, attrs) -> attrs | None`` (ExportPolicy in
                     bgp/rib/export.py; ``attrs`` are the attributes after the
                     standard export rules).

The route facts the conditions see: protocol ``bgp``; route type ``local`` for a
locally originated path, else ``external``/``internal`` from the source's eBGP flag;
neighbor = the address the route was learned from (``PeerSource.address``), in both
directions. set-next-hop self leaves ``NEXT_HOP_SELF`` in the attributes unless the
hook is given the address to put there.
"""

from __future__ import annotations

from ..bgp.family import AfiSafi
from ..bgp.packet.pathattrs import PathAttributes
from ..bgp.rib.path import Path, PeerSource
from .engine import NEXT_HOP_SELF, PolicyEngine, _Class

Default = bool | str


def _default_accept(default: Default) -> bool:
    if isinstance(default, bool):
        return default
    if default == "accept-route":
        return True
    if default == "reject-route":
        return False
    raise ValueError(f"default must be accept-route or reject-route, not {default!r}")


def _route_type(src: PeerSource) -> str:
    if src.is_local:
        return "local"
    return "external" if src.ebgp else "internal"


class ImportHook:
    __slots__ = ("engine", "chain", "_ch", "_src", "_fam", "_cls")

    def __init__(self, engine: PolicyEngine, chain: list[str] | tuple[str, ...], default: Default) -> None:
        self.engine = engine
        self.chain = tuple(chain)
        self._ch = engine.chain(self.chain, _default_accept(default))
        self._src: PeerSource | None = None
        self._fam: AfiSafi | None = None
        self._cls: _Class | None = None

    def _class(self, family: AfiSafi, source: PeerSource) -> _Class:
        if source is self._src and family is self._fam:
            return self._cls  # type: ignore[return-value]
        cls = self.engine.route_class(family, source.address, "bgp", _route_type(source), source.local_as)
        self._src, self._fam, self._cls = source, family, cls
        return cls

    def __call__(self, key: bytes, family: AfiSafi, source: PeerSource, attrs: PathAttributes) -> PathAttributes | None:
        leaf = self.engine._leaf_for(self._ch, self._class(family, source), attrs, key)
        return leaf.attrs if leaf.accepted else None

    def filter_batch(self, family: AfiSafi, source: PeerSource, attrs: PathAttributes,
                     keys: list[bytes]) -> list[tuple[PathAttributes, list[bytes]]]:
        groups = self.engine._batch(self._ch, self._class(family, source), attrs, keys)
        if len(groups) <= 1:
            return [(a, ks) for a, _, ks in groups]
        merged: dict[PathAttributes, list[bytes]] = {}
        for a, _, ks in groups:  # same attrs with different set-weight: one group here
            lst = merged.get(a)
            if lst is None:
                merged[a] = ks
            else:
                lst.extend(ks)
        return list(merged.items())

    def filter_batch_weighted(self, family: AfiSafi, source: PeerSource, attrs: PathAttributes,
                              keys: list[bytes]) -> list[tuple[PathAttributes, int | None, list[bytes]]]:
        """Like filter_batch, with the weight set by policy per group (None: not set)."""
        return self.engine._batch(self._ch, self._class(family, source), attrs, keys)


class ExportHook:
    __slots__ = ("engine", "chain", "family", "local_as", "next_hop_self", "_ch", "_src", "_cls", "_nhs")

    def __init__(self, engine: PolicyEngine, chain: list[str] | tuple[str, ...], default: Default, *,
                 family: AfiSafi, local_as: int, next_hop_self: bytes | None = None) -> None:
        self.engine = engine
        self.chain = tuple(chain)
        self.family = family
        self.local_as = local_as
        self.next_hop_self = next_hop_self
        self._ch = engine.chain(self.chain, _default_accept(default))
        self._src: PeerSource | None = None
        self._cls: _Class | None = None
        self._nhs: dict[PathAttributes, PathAttributes] = {}

    def __call__(self, key: bytes, path: Path, attrs: PathAttributes) -> PathAttributes | None:
        src = path.source
        if src is self._src:
            cls = self._cls
        else:
            cls = self.engine.route_class(self.family, src.address, "bgp", _route_type(src), self.local_as)
            self._src, self._cls = src, cls
        leaf = self.engine._leaf_for(self._ch, cls, attrs, key)  # type: ignore[arg-type]
        if not leaf.accepted:
            return None
        out = leaf.attrs
        if self.next_hop_self is not None and out.next_hop == NEXT_HOP_SELF:  # type: ignore[union-attr]
            r = self._nhs.get(out)  # type: ignore[arg-type]
            if r is None:
                if len(self._nhs) >= self.engine.max_cache_entries:
                    self._nhs.clear()
                r = self._nhs[out] = self.engine.intern(out.replace(next_hop=self.next_hop_self))  # type: ignore[union-attr,index]
            out = r
        return out


def make_import_hook(engine: PolicyEngine, chain: list[str] | tuple[str, ...], default: Default = "accept-route") -> ImportHook:
    """Import hook for one neighbor/family; ``default`` is accept-route | reject-route (or a bool)."""
    return ImportHook(engine, chain, default)


def make_export_hook(engine: PolicyEngine, chain: list[str] | tuple[str, ...], default: Default = "accept-route", *,
                     family: AfiSafi, local_as: int, next_hop_self: bytes | None = None) -> ExportHook:
    """Export hook for one neighbor/family. ``local_as``: the AS we present to that peer
    (set-as-path-prepend without asn). ``next_hop_self``: our address for that session;
    None leaves NEXT_HOP_SELF in the result for the caller to resolve."""
    return ExportHook(engine, chain, default, family=family, local_as=local_as, next_hop_self=next_hop_self)
