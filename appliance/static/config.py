"""``fcr-static:static-routes`` -> frozen dataclasses (docs/configuration.md, "Shapes agreed").

Errors carry the JSON path of the offending node: `StaticConfigError(path, message)`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

ROOT = "/fcr-static:static-routes"


class StaticConfigError(ValueError):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True)
class StaticNextHop:
    index: str
    address: str | None = None
    interface: str | None = None
    blackhole: bool = False
    distance: int | None = None  # None: the route's distance
    bfd: bool = False
    bfd_multihop: bool = False
    bfd_local_address: str | None = None


@dataclass(frozen=True)
class StaticRoute:
    prefix: str  # normalised text
    family: int  # 4 | 6
    distance: int | None = None  # None: fcr-routing administrative-distance/static
    tag: int = 0
    next_hops: tuple[StaticNextHop, ...] = ()


@dataclass(frozen=True)
class StaticConfig:
    routes: tuple[StaticRoute, ...] = ()

    def route(self, prefix: str) -> StaticRoute | None:
        p = str(ipaddress.ip_network(prefix, strict=False))
        return next((r for r in self.routes if r.prefix == p), None)


def _int(path: str, v, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise StaticConfigError(path, f"expected an integer {lo}..{hi}, got {v!r}")
    return v


def _bool(path: str, v) -> bool:
    if not isinstance(v, bool):
        raise StaticConfigError(path, f"expected a boolean, got {v!r}")
    return v


def _obj(path: str, v) -> dict:
    if not isinstance(v, dict):
        raise StaticConfigError(path, "expected an object")
    return v


_ROUTE_KEYS = {"prefix", "distance", "tag", "next-hops"}
_NH_KEYS = {"index", "address", "interface", "blackhole", "distance", "bfd"}
_BFD_KEYS = {"enabled", "multihop", "local-address"}


def parse_static(data: dict | None) -> StaticConfig:
    """``{"fcr-static:static-routes": {"route": [...]}}`` (or the inner object)."""
    if not data:
        return StaticConfig()
    inner = _obj(ROOT, data.get("fcr-static:static-routes", data))
    routes = inner.get("route", [])
    if not isinstance(routes, list):
        raise StaticConfigError(f"{ROOT}/route", "expected a list")
    out = []
    seen = set()
    for i, r in enumerate(routes):
        path = f"{ROOT}/route[{i}]"
        r = _obj(path, r)
        if "prefix" not in r:
            raise StaticConfigError(f"{path}/prefix", "missing key")
        try:
            net = ipaddress.ip_network(r["prefix"], strict=True)
        except (TypeError, ValueError) as exc:
            raise StaticConfigError(f"{path}/prefix", f"bad prefix: {exc}") from None
        prefix = str(net)
        path = f"{ROOT}/route[prefix='{prefix}']"
        if prefix in seen:
            raise StaticConfigError(path, "duplicate route")
        seen.add(prefix)
        for k in r:
            if k not in _ROUTE_KEYS:
                raise StaticConfigError(f"{path}/{k}", "unknown leaf")
        distance = None if r.get("distance") is None else _int(f"{path}/distance", r["distance"], 1, 255)
        tag = _int(f"{path}/tag", r.get("tag", 0), 0, 0xFFFFFFFF)
        nhs_obj = _obj(f"{path}/next-hops", r.get("next-hops", {}))
        nh_list = nhs_obj.get("next-hop", [])
        if not isinstance(nh_list, list) or not nh_list:
            raise StaticConfigError(f"{path}/next-hops/next-hop", "at least one next hop")
        nhs = []
        idx_seen = set()
        for j, nh in enumerate(nh_list):
            npath = f"{path}/next-hops/next-hop[{j}]"
            nh = _obj(npath, nh)
            index = nh.get("index")
            if not isinstance(index, str) or not index:
                raise StaticConfigError(f"{npath}/index", "missing key (a string)")
            npath = f"{path}/next-hops/next-hop[index='{index}']"
            if index in idx_seen:
                raise StaticConfigError(npath, "duplicate next hop")
            idx_seen.add(index)
            for k in nh:
                if k not in _NH_KEYS:
                    raise StaticConfigError(f"{npath}/{k}", "unknown leaf")
            address = nh.get("address")
            if address is not None:
                try:
                    a = ipaddress.ip_address(address)
                except (TypeError, ValueError) as exc:
                    raise StaticConfigError(f"{npath}/address", f"bad address: {exc}") from None
                if a.version != net.version:
                    raise StaticConfigError(f"{npath}/address",
                                            f"IPv{a.version} next hop for an IPv{net.version} route")
                address = str(a)
            interface = nh.get("interface")
            if interface is not None and (not isinstance(interface, str) or not interface):
                raise StaticConfigError(f"{npath}/interface", "expected an interface name")
            blackhole = _bool(f"{npath}/blackhole", nh.get("blackhole", False))
            if blackhole and (address or interface):
                raise StaticConfigError(f"{npath}/blackhole",
                                        "a blackhole next hop has no address or interface")
            if not blackhole and address is None and interface is None:
                raise StaticConfigError(npath, "address, interface or blackhole required")
            nd = nh.get("distance")
            nd = None if nd is None else _int(f"{npath}/distance", nd, 1, 255)
            bfd = _obj(f"{npath}/bfd", nh.get("bfd", {}))
            for k in bfd:
                if k not in _BFD_KEYS:
                    raise StaticConfigError(f"{npath}/bfd/{k}", "unknown leaf")
            bfd_on = _bool(f"{npath}/bfd/enabled", bfd.get("enabled", False))
            multihop = _bool(f"{npath}/bfd/multihop", bfd.get("multihop", False))
            local = bfd.get("local-address")
            if local is not None:
                try:
                    local = str(ipaddress.ip_address(local))
                except (TypeError, ValueError) as exc:
                    raise StaticConfigError(f"{npath}/bfd/local-address",
                                            f"bad address: {exc}") from None
            if bfd_on and address is None:
                raise StaticConfigError(f"{npath}/bfd/enabled",
                                        "BFD tracking needs a next-hop address")
            nhs.append(StaticNextHop(index, address, interface, blackhole, nd, bfd_on,
                                     multihop, local))
        out.append(StaticRoute(prefix, net.version, distance, tag, tuple(nhs)))
    return StaticConfig(tuple(out))
