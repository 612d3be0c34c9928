"""RFC 7951 JSON of the native model -> engine configuration objects.

The YANG model in yang/ is the truth (DESIGN.md invariant 1): every document is first
validated by libyang against it (must, when, leafref, ranges, patterns, keys,
mandatory). Then this module, the only one that knows the JSON shape, maps it onto
the engine's objects; it still checks every member it reads, so a leaf the model
gained but the engine does not act on yet is refused here instead of being ignored.
Errors carry the data path (``/fcr-bgp:bgp/neighbors/neighbor[neighbor-address=
'10.0.0.2']/peer-as``) and nothing is applied.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..bfd.config import BfdConfigError, SessionConfig
from ..bfd.config import from_json as bfd_from_json
from ..bgp.config import (
    BfdTracking,
    BgpConfig,
    BgpGlobalConfig,
    FamilyConfig,
    GracefulRestartConfig,
    NeighborConfig,
    PrefixLimit,
    Redistribute,
)
from ..bgp.family import FAMILY_BY_NAME, IPV4_UNICAST
from ..policy.config import PolicyConfigError, RoutingPolicyConfig, parse_routing_policy
from ..rib.config import RoutingConfig, RoutingConfigError
from ..rib.interfaces import InterfaceConfig, InterfaceConfigError, parse_interfaces
from ..static.config import StaticConfig, StaticConfigError, parse_static


class ConfigError(ValueError):
    """Invalid configuration; ``path`` names the offending JSON member."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path or "/"
        self.message = message
        super().__init__(f"{self.path}: {message}")


@dataclass(frozen=True, slots=True)
class SystemConfig:
    hostname: str = "fcr"
    # users/user[]: validated by the model, applied by the management plane (login,
    # NETCONF/SSH), never by the routing engine; kept here only as names for the log.
    users: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Everything the routing engine applies, one field per top-level module.

    ``interfaces`` None: ``ietf-interfaces:interfaces`` absent, interfaces are not touched.
    ``not_applied``: top-level data the model validated but the engine does not act on
    (``fcr-nsr:nsr`` until the NSR issue, ``ietf-netconf-acm:nacm``, system users); the
    engine logs one line per entry.
    """

    system: SystemConfig
    bgp: BgpConfig | None
    policy: RoutingPolicyConfig = field(default_factory=RoutingPolicyConfig)
    static: StaticConfig = field(default_factory=StaticConfig)
    bfd: tuple[SessionConfig, ...] = ()
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    interfaces: tuple[InterfaceConfig, ...] | None = None
    nsr: str | None = None  # the fcr-nsr:nsr subtree as canonical JSON text (not applied yet)
    not_applied: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------
# small typed readers; each takes the object, the member name and the parent path


class _Obj:
    """A JSON object being read; remembers which members were consumed."""

    def __init__(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise ConfigError(path, f"expected an object, got {_typename(value)}")
        self.value = value
        self.path = path
        self.used: set[str] = set()

    def sub(self, name: str) -> str:
        return f"{self.path}/{name}"

    def get(self, name: str, default: Any = None) -> Any:
        self.used.add(name)
        return self.value.get(name, default)

    def has(self, name: str) -> bool:
        return name in self.value

    def obj(self, name: str) -> _Obj:
        return _Obj(self.get(name, {}), self.sub(name))

    def boolean(self, name: str, default: bool) -> bool:
        v = self.get(name, default)
        if not isinstance(v, bool):
            raise ConfigError(self.sub(name), f"expected true or false, got {json.dumps(v)}")
        return v

    def integer(self, name: str, default: int | None, lo: int, hi: int) -> int | None:
        v = self.get(name, default)
        if v is None:
            return None
        # RFC 7951: 64-bit integers are strings; smaller ones are numbers. Accept both for uint32.
        if isinstance(v, str) and v.isdigit():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(self.sub(name), f"expected an integer, got {json.dumps(v)}")
        if not lo <= v <= hi:
            raise ConfigError(self.sub(name), f"{v} is out of range {lo}..{hi}")
        return v

    def string(self, name: str, default: str | None = None) -> str | None:
        v = self.get(name, default)
        if v is not None and not isinstance(v, str):
            raise ConfigError(self.sub(name), f"expected a string, got {json.dumps(v)}")
        return v

    def ip(self, name: str, default: str | None = None) -> str | None:
        v = self.string(name, default)
        if v is None:
            return None
        try:
            return str(ipaddress.ip_address(v))
        except ValueError:
            raise ConfigError(self.sub(name), f"{v!r} is not an IP address") from None

    def ipv4(self, name: str, default: str | None = None) -> str | None:
        v = self.ip(name, default)
        if v is not None and ipaddress.ip_address(v).version != 4:
            raise ConfigError(self.sub(name), f"{v!r} is not a dotted-quad IPv4 address")
        return v

    def string_list(self, name: str) -> tuple[str, ...]:
        v = self.get(name, [])
        if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
            raise ConfigError(self.sub(name), "expected a list of strings")
        return tuple(v)

    def items(self, container: str, name: str, key: str) -> list[tuple[_Obj, str]]:
        """A YANG list ``container/name`` keyed by ``key``: [(entry, key value)], unique keys."""
        cont = self.obj(container)
        raw = cont.get(name, [])
        path = cont.sub(name)
        if not isinstance(raw, list):
            raise ConfigError(path, f"expected a list, got {_typename(raw)}")
        out: list[tuple[_Obj, str]] = []
        seen: set[str] = set()
        for i, entry in enumerate(raw):
            if not isinstance(entry, dict) or key not in entry:
                raise ConfigError(f"{path}[{i + 1}]", f"list entry needs the key {key!r}")
            kv = str(entry[key])
            epath = f"{path}[{key}='{kv}']"
            if kv in seen:
                raise ConfigError(epath, "duplicate list entry")
            seen.add(kv)
            out.append((_Obj(entry, epath), kv))
        cont.done()
        return out

    def done(self) -> None:
        unknown = sorted(set(self.value) - self.used)
        if unknown:
            raise ConfigError(self.sub(unknown[0]), "unknown member (not in the model)")


def _typename(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(v), type(v).__name__
    )


# ---------------------------------------------------------------------------------

POLICY = "fcr-routing-policy:routing-policy"
STATIC = "fcr-static:static-routes"
BFD = "fcr-bfd:bfd"
ROUTING = "fcr-routing:routing"
INTERFACES = "ietf-interfaces:interfaces"
NSR = "fcr-nsr:nsr"
NACM = "ietf-netconf-acm:nacm"
_TOP_LEVEL = {"fcr-system:system", "fcr-bgp:bgp", POLICY, STATIC, BFD, ROUTING, INTERFACES, NSR, NACM}


def validate_with_model(doc: Any) -> None:
    """libyang validation against yang/; the first error becomes a ConfigError."""
    from ..mgmt import schema  # libyang loads lazily: the engine imports native.py too

    try:
        tree = schema.validate_config(doc)
    except schema.ConfigError as exc:
        raise ConfigError(exc.path or "/", exc.message) from None
    if tree is not None:
        tree.free()


def load_file(path: str | Path) -> EngineConfig:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("/", f"cannot read {path}: {exc.strerror}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError("/", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    return parse(doc)


def parse(doc: Any, *, model: bool = True) -> EngineConfig:
    """Validate ``doc`` against the model (unless ``model`` is False), then map every
    module. Nothing is applied here: a ConfigError from any module means nothing changes."""
    top = _Obj(doc, "")
    if model:
        validate_with_model(doc)
    for name in doc:
        if name not in _TOP_LEVEL:
            hint = "" if ":" in name else " (top-level members are module-qualified, RFC 7951)"
            raise ConfigError(f"/{name}", f"unknown top-level member{hint}")
    not_applied: list[str] = []
    system = _parse_system(top.obj("fcr-system:system")) if top.has("fcr-system:system") else SystemConfig()
    if system.users:
        not_applied.append(f"fcr-system:system/users ({len(system.users)} users: for the management plane)")
    policy = _module(top, POLICY, lambda v: parse_routing_policy(v), RoutingPolicyConfig())
    bgp = _parse_bgp(top.obj("fcr-bgp:bgp")) if top.has("fcr-bgp:bgp") else None
    if bgp is not None:
        _check_policy_refs(bgp, policy)
    static = _module(top, STATIC, lambda v: parse_static({STATIC: v}), StaticConfig())
    bfd = tuple(_module(top, BFD, lambda v: bfd_from_json({BFD: v}), []))
    routing = _module(top, ROUTING, lambda v: RoutingConfig.from_json({ROUTING: v}), RoutingConfig())
    interfaces = _module(top, INTERFACES, lambda v: parse_interfaces({INTERFACES: v}), None)
    nsr = None
    if top.has(NSR):
        v = top.get(NSR)
        if not isinstance(v, dict):
            raise ConfigError(f"/{NSR}", f"expected an object, got {_typename(v)}")
        nsr = json.dumps(v, sort_keys=True)
        not_applied.append(f"{NSR} (role {v.get('role', 'standalone')}: non-stop routing is not wired yet)")
    if top.has(NACM):
        top.get(NACM)
        not_applied.append(f"{NACM} (access control: for the management plane)")
    top.done()
    return EngineConfig(system=system, bgp=bgp, policy=policy, static=static, bfd=bfd,
                        routing=routing, interfaces=interfaces, nsr=nsr,
                        not_applied=tuple(not_applied))


_SUBSYSTEM_ERRORS = (PolicyConfigError, StaticConfigError, BfdConfigError, RoutingConfigError,
                     InterfaceConfigError)


def _module(top: _Obj, name: str, parse_fn: Any, default: Any) -> Any:
    """Map one top-level module with its own parser; its errors keep their data path."""
    if not top.has(name):
        return default
    value = top.get(name)
    if value is None:
        return default
    try:
        return parse_fn(value)
    except _SUBSYSTEM_ERRORS as exc:
        path = getattr(exc, "path", "") or f"/{name}"
        message = getattr(exc, "message", None) or str(exc).split(": ", 1)[-1]
        raise ConfigError(path, message) from None
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ConfigError(f"/{name}", f"cannot map: {exc}") from None


def _check_policy_refs(bgp: BgpConfig, policy: RoutingPolicyConfig) -> None:
    """Every policy name BGP uses must be defined (the model's leafrefs say the same;
    this also holds for documents mapped without the model)."""
    base = "/fcr-bgp:bgp"

    def check(names: tuple[str, ...], path: str) -> None:
        try:
            policy.check_chain(names, path)
        except PolicyConfigError as exc:
            raise ConfigError(exc.path, exc.message) from None

    for n in bgp.neighbors:
        npath = f"{base}/neighbors/neighbor[neighbor-address='{n.neighbor_address}']/afi-safis"
        for f in n.families:
            fpath = f"{npath}/afi-safi[afi-safi-name='{f.family.name}']"
            check(f.import_policy, f"{fpath}/import-policy")
            check(f.export_policy, f"{fpath}/export-policy")
    for r in bgp.global_.redistribute:
        check(r.policy, f"{base}/global/afi-safis/afi-safi[afi-safi-name='{r.family.name}']"
                        f"/redistribute[protocol='{r.protocol}']/policy")
    for prefix, name in bgp.network_policies:
        check((name,), f"{base}/networks/network[prefix='{prefix}']/policy")


def _parse_system(o: _Obj) -> SystemConfig:
    hostname = o.string("hostname", "fcr") or "fcr"
    users: list[str] = []
    if o.has("users"):
        for _entry, name in o.items("users", "user", "name"):
            users.append(name)  # the entry's leaves are the management plane's (model-validated)
    o.done()
    return SystemConfig(hostname=hostname, users=tuple(users))


def _parse_gr(o: _Obj, default: GracefulRestartConfig) -> GracefulRestartConfig:
    gr = GracefulRestartConfig(
        enabled=o.boolean("enabled", default.enabled),
        restart_time=o.integer("restart-time", default.restart_time, 0, 4095) or 0,
        stale_routes_time=o.integer("stale-routes-time", default.stale_routes_time, 1, 3600) or 1,
    )
    o.done()
    return gr


def _parse_bgp(o: _Obj) -> BgpConfig:
    g = o.obj("global")
    if not g.has("as"):
        raise ConfigError(g.sub("as"), "mandatory leaf is missing")
    if not g.has("router-id"):
        raise ConfigError(g.sub("router-id"), "mandatory leaf is missing")
    asn = g.integer("as", None, 1, 4294967295)
    router_id = g.ipv4("router-id")
    if router_id == "0.0.0.0":
        raise ConfigError(g.sub("router-id"), "router-id must not be 0.0.0.0")
    listen = g.obj("listen")
    listen_enabled = listen.boolean("enabled", True)
    addrs = listen.get("address", ["0.0.0.0", "::"])
    if not isinstance(addrs, list):
        raise ConfigError(listen.sub("address"), "expected a list of IP addresses")
    for i, a in enumerate(addrs):
        try:
            ipaddress.ip_address(a)
        except (ValueError, TypeError):
            raise ConfigError(f"{listen.sub('address')}[{i + 1}]", f"{a!r} is not an IP address") from None
    port = listen.integer("port", 179, 1, 65535)
    listen.done()
    if not listen_enabled:
        addrs = []
    rso = g.obj("route-selection-options")
    acm = rso.boolean("always-compare-med", False)
    dmed = rso.boolean("deterministic-med", False)
    rso.done()
    cluster_id = g.ipv4("cluster-id")
    gr = _parse_gr(g.obj("graceful-restart"), GracefulRestartConfig())
    redistribute: list[Redistribute] = []
    for fam_entry, fam_name in g.items("afi-safis", "afi-safi", "afi-safi-name"):
        fam_entry.get("afi-safi-name")
        fam = FAMILY_BY_NAME[fam_name]
        red = fam_entry.get("redistribute", [])
        for i, r in enumerate(red):
            ro = _Obj(r, f"{fam_entry.sub('redistribute')}[protocol='{r.get('protocol', i)}']")
            redistribute.append(Redistribute(fam, ro.string("protocol") or "", ro.string_list("policy")))
            ro.done()
        fam_entry.done()
    g.done()
    glob = BgpGlobalConfig(
        asn=asn,  # type: ignore[arg-type]
        router_id=router_id,  # type: ignore[arg-type]
        listen_addresses=tuple(str(ipaddress.ip_address(a)) for a in addrs),
        listen_port=port,  # type: ignore[arg-type]
        cluster_id=cluster_id,
        always_compare_med=acm,
        deterministic_med=dmed,
        graceful_restart=gr,
        redistribute=tuple(redistribute),
    )
    groups = {name: entry for entry, name in o.items("peer-groups", "peer-group", "peer-group-name")}
    neighbors = tuple(
        _parse_neighbor(_with_group(entry, groups), glob)
        for entry, _ in o.items("neighbors", "neighbor", "neighbor-address")
    )
    networks: list[str] = []
    network_policies: list[tuple[str, str]] = []
    for entry, prefix in o.items("networks", "network", "prefix"):
        try:
            net = str(ipaddress.ip_network(prefix, strict=True))
        except ValueError as exc:
            raise ConfigError(entry.sub("prefix"), f"{prefix!r} is not a prefix: {exc}") from None
        networks.append(net)
        entry.get("prefix")
        pol = entry.string("policy")
        if pol:
            network_policies.append((net, pol))
        entry.done()
    o.done()
    return BgpConfig(global_=glob, neighbors=neighbors, networks=tuple(networks),
                     network_policies=tuple(network_policies))


def _with_group(entry: _Obj, groups: dict[str, _Obj]) -> _Obj:
    """A neighbor with its peer group's leaves underneath: a leaf set on the neighbor
    wins, then the group's, then the default (docs/yang.md)."""
    name = entry.get("peer-group")
    if name is None:
        return entry
    group = groups[name]  # the model's leafref guarantees it exists
    group.used.update(group.value)
    base = {k: v for k, v in group.value.items() if k != "peer-group-name"}
    merged = _deep_merge(base, {k: v for k, v in entry.value.items() if k != "peer-group"})
    out = _Obj(merged, entry.path)
    return out


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        elif k == "afi-safis" and isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = v
        else:
            out[k] = v
    return out


def _parse_neighbor(n: _Obj, glob: BgpGlobalConfig) -> NeighborConfig:
    address = n.ip("neighbor-address")
    if not n.has("peer-as"):
        raise ConfigError(n.sub("peer-as"), "mandatory leaf is missing")
    peer_as = n.integer("peer-as", None, 1, 4294967295)
    local_as = n.integer("local-as", None, 1, 4294967295)
    enabled = n.boolean("enabled", True)
    description = n.string("description", "") or ""

    t = n.obj("timers")
    hold = t.integer("hold-time", 90, 0, 65535)
    if hold in (1, 2):
        raise ConfigError(t.sub("hold-time"), "hold-time must be 0 or at least 3 seconds (RFC 4271)")
    keepalive = t.integer("keepalive-interval", 30, 1, 21845)
    connect_retry = t.integer("connect-retry", 30, 1, 65535)
    connect_retry_max = t.integer("connect-retry-max", max(120, connect_retry), connect_retry, 65535)
    mrai = t.integer("minimum-advertisement-interval", 0, 0, 600)
    t.done()

    tr = n.obj("transport")
    local_address = tr.ip("local-address")
    if local_address and ipaddress.ip_address(local_address).version != ipaddress.ip_address(address).version:
        raise ConfigError(tr.sub("local-address"), "local-address and neighbor-address are of different IP versions")
    passive = tr.boolean("passive-mode", False)
    port = tr.integer("remote-port", 179, 1, 65535)
    md5 = tr.string("tcp-md5-key")
    if md5 is not None and not 1 <= len(md5.encode()) <= 80:
        raise ConfigError(tr.sub("tcp-md5-key"), "key must be 1..80 octets (TCP_MD5SIG_MAXKEYLEN)")
    ttl_sec = tr.integer("ttl-security", None, 1, 254)
    tr.done()

    mh = n.obj("ebgp-multihop")
    mh_enabled = mh.boolean("enabled", False)
    mh_ttl = mh.integer("multihop-ttl", 255, 1, 255)
    mh.done()

    rr = n.obj("route-reflector")
    rr_client = rr.boolean("route-reflector-client", False)
    rr.done()
    nhs = n.boolean("next-hop-self", False)

    caps = n.obj("capabilities")
    four = caps.boolean("four-octet-as", True)
    rref = caps.boolean("route-refresh", True)
    erref = caps.boolean("enhanced-route-refresh", True)
    extmsg = caps.boolean("extended-message", True)
    caps.done()
    gr_obj = n.obj("graceful-restart")
    gr = GracefulRestartConfig(
        enabled=gr_obj.boolean("enabled", glob.graceful_restart.enabled),
        restart_time=glob.graceful_restart.restart_time,
        stale_routes_time=glob.graceful_restart.stale_routes_time,
    )
    gr_obj.done()
    b = n.obj("bfd")
    bfd = BfdTracking(
        enabled=b.boolean("enabled", False),
        detection_multiplier=b.integer("detection-multiplier", 3, 1, 255),  # type: ignore[arg-type]
        desired_min_tx_interval=b.integer("desired-min-tx-interval", 300_000, 1000, 60_000_000),  # type: ignore[arg-type]
        required_min_rx_interval=b.integer("required-min-rx-interval", 300_000, 1000, 60_000_000),  # type: ignore[arg-type]
    )
    b.done()

    families: list[FamilyConfig] = []
    for entry, name in n.items("afi-safis", "afi-safi", "afi-safi-name"):
        fam = FAMILY_BY_NAME.get(name)
        if fam is None:
            raise ConfigError(entry.sub("afi-safi-name"), f"unknown address family {name!r} (ipv4-unicast, ipv6-unicast)")
        entry.get("afi-safi-name")
        enabled_f = entry.boolean("enabled", True)
        limit = None
        if entry.has("prefix-limit"):
            pl = entry.obj("prefix-limit")
            if not pl.has("max-prefixes"):
                raise ConfigError(pl.sub("max-prefixes"), "mandatory leaf is missing")
            limit = PrefixLimit(
                max_prefixes=pl.integer("max-prefixes", None, 1, 4294967295),  # type: ignore[arg-type]
                warning_only=pl.boolean("warning-only", False),
                restart_timer=pl.integer("restart-timer", 0, 0, 65535),  # type: ignore[arg-type]
                shutdown_threshold_pct=pl.integer("warning-threshold-pct", 75, 1, 100),  # type: ignore[arg-type]
            )
            pl.done()
        families.append(
            FamilyConfig(
                family=fam,
                enabled=enabled_f,
                prefix_limit=limit,
                import_policy=entry.string_list("import-policy"),
                export_policy=entry.string_list("export-policy"),
                default_import_accept=_default_policy(entry, "default-import-policy"),
                default_export_accept=_default_policy(entry, "default-export-policy"),
            )
        )
        entry.done()
    if not families:
        families = [FamilyConfig(IPV4_UNICAST)]
    n.done()

    if_ebgp = peer_as != (local_as or glob.asn)
    if rr_client and if_ebgp:
        raise ConfigError(n.path + "/route-reflector/route-reflector-client", "route reflection applies to iBGP neighbors only")
    return NeighborConfig(
        neighbor_address=address,  # type: ignore[arg-type]
        peer_as=peer_as,  # type: ignore[arg-type]
        enabled=enabled,
        description=description,
        local_as=local_as,
        local_address=local_address,
        passive_mode=passive,
        port=port,  # type: ignore[arg-type]
        hold_time=hold,  # type: ignore[arg-type]
        keepalive_interval=keepalive,  # type: ignore[arg-type]
        connect_retry=connect_retry,  # type: ignore[arg-type]
        connect_retry_max=connect_retry_max,  # type: ignore[arg-type]
        minimum_advertisement_interval=float(mrai or 0),
        ebgp_multihop_ttl=mh_ttl if mh_enabled else None,
        ttl_security_hops=ttl_sec,
        tcp_md5_key=md5,
        route_reflector_client=rr_client,
        next_hop_self=nhs,
        four_octet_as=four,
        route_refresh=rref,
        enhanced_route_refresh=erref,
        extended_message=extmsg,
        graceful_restart=gr,
        bfd=bfd,
        families=tuple(families),
    )


def _default_policy(o: _Obj, name: str) -> bool:
    v = o.string(name, "accept-route")
    if v not in ("accept-route", "reject-route"):
        raise ConfigError(o.sub(name), f"{v!r}: expected accept-route or reject-route")
    return v == "accept-route"
