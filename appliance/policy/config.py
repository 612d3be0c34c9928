"""Routing-policy configuration: defined sets and policy definitions.

Mirrors ``fcr-routing-policy:routing-policy`` (docs/configuration.md, "Shapes agreed").
``parse_routing_policy`` turns the RFC 7951 JSON of that container into the frozen
objects below, checking every member: unknown members, wrong types, out-of-range
values, bad prefixes, bad regular expressions and references to sets that do not
exist raise ``PolicyConfigError`` carrying the JSON path of the offending member, e.g.
``/fcr-routing-policy:routing-policy/policy-definitions/policy-definition[name='in']/
statements/statement[name='10']/conditions/match-prefix-set/prefix-set``.

Everything the engine needs is resolved here, once: prefixes become integers and
mask-length ranges, communities become their wire values, regular expressions are
compiled (AS-path regexes translated from the operator dialect, see
``aspath_regex``), set references in actions are replaced by the set's members.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

TOP = "/fcr-routing-policy:routing-policy"
MODULE_KEY = "fcr-routing-policy:routing-policy"

UINT32_MAX = 0xFFFFFFFF

# RFC 1997, RFC 3765, RFC 7999, RFC 8326 well-known communities
WELL_KNOWN_COMMUNITIES: dict[str, int] = {
    "no-export": 0xFFFFFF01,
    "no-advertise": 0xFFFFFF02,
    "no-export-subconfed": 0xFFFFFF03,
    "no-peer": 0xFFFFFF04,
    "blackhole": 0xFFFF029A,
    "graceful-shutdown": 0xFFFF0000,
}

PROTOCOLS = ("bgp", "static", "connected", "controller")
ROUTE_TYPES = ("internal", "external", "local")
ORIGINS = {"igp": 0, "egp": 1, "incomplete": 2}
POLICY_RESULTS = ("accept-route", "reject-route", "next-statement", "next-policy")
PREFIX_SET_MODES = ("ipv4", "ipv6", "mixed")
SET_OPTIONS_ANY_INVERT = ("any", "invert")
SET_OPTIONS_ANY_ALL_INVERT = ("any", "all", "invert")
COMMUNITY_OPTIONS = ("add", "remove", "replace")
LENGTH_OPERATORS = ("eq", "ge", "le")


class PolicyConfigError(ValueError):
    """Invalid routing-policy configuration; ``path`` names the offending JSON member."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path or "/"
        self.message = message
        super().__init__(f"{self.path}: {message}")


# ---------------------------------------------------------------------------------
# defined sets


@dataclass(frozen=True, slots=True)
class PrefixEntry:
    """One ``prefixes/prefix`` entry: a network and the prefix lengths it admits."""

    ip_prefix: str            # normalised text, e.g. "10.0.0.0/8"
    masklength_range: str     # "exact" or "lo..hi" as configured
    version: int              # 4 or 6
    network: int              # network address as an integer (full width)
    length: int               # prefix length of ip_prefix
    lo: int                   # admitted prefix lengths lo..hi (both = length for exact)
    hi: int


@dataclass(frozen=True, slots=True)
class PrefixSet:
    name: str
    mode: str
    prefixes: tuple[PrefixEntry, ...]


@dataclass(frozen=True, slots=True)
class NeighborSet:
    name: str
    addresses: tuple[str, ...]          # normalised text
    packed: frozenset[bytes]            # the same, packed (what the engine compares)


@dataclass(frozen=True, slots=True)
class AsPathSet:
    name: str
    members: tuple[str, ...]            # as configured
    patterns: tuple[re.Pattern[str], ...]  # translated and compiled (re.search semantics)


@dataclass(frozen=True, slots=True)
class CommunitySet:
    """Members are exact values or regexes over the text form "65000:1" (full match)."""

    name: str
    members: tuple[str, ...]
    values: tuple[int, ...]             # exact members, 32-bit, configured order
    patterns: tuple[re.Pattern[str], ...]


@dataclass(frozen=True, slots=True)
class LargeCommunitySet:
    name: str
    members: tuple[str, ...]
    values: tuple[tuple[int, int, int], ...]
    patterns: tuple[re.Pattern[str], ...]


@dataclass(frozen=True, slots=True)
class ExtCommunitySet:
    name: str
    members: tuple[str, ...]
    values: tuple[bytes, ...]           # 8-octet wire values
    patterns: tuple[re.Pattern[str], ...]


@dataclass(frozen=True, slots=True)
class DefinedSets:
    prefix_sets: Mapping[str, PrefixSet] = field(default_factory=dict)
    neighbor_sets: Mapping[str, NeighborSet] = field(default_factory=dict)
    as_path_sets: Mapping[str, AsPathSet] = field(default_factory=dict)
    community_sets: Mapping[str, CommunitySet] = field(default_factory=dict)
    ext_community_sets: Mapping[str, ExtCommunitySet] = field(default_factory=dict)
    large_community_sets: Mapping[str, LargeCommunitySet] = field(default_factory=dict)


# ---------------------------------------------------------------------------------
# policy definitions


@dataclass(frozen=True, slots=True)
class MatchSet:
    set_name: str
    options: str                        # any | all | invert (all: bgp sets only)


@dataclass(frozen=True, slots=True)
class AsPathLength:
    operator: str                       # eq | ge | le
    value: int


@dataclass(frozen=True, slots=True)
class Conditions:
    match_prefix_set: MatchSet | None = None
    match_neighbor_set: MatchSet | None = None
    install_protocol_eq: str | None = None
    match_route_type: str | None = None
    next_hop_in: tuple[str, ...] = ()
    match_as_path_set: MatchSet | None = None
    match_community_set: MatchSet | None = None
    match_ext_community_set: MatchSet | None = None
    match_large_community_set: MatchSet | None = None
    as_path_length: AsPathLength | None = None
    med_eq: int | None = None
    origin_eq: int | None = None        # 0 igp, 1 egp, 2 incomplete
    local_pref_eq: int | None = None


@dataclass(frozen=True, slots=True)
class MedAction:
    op: str                             # "set" | "add" | "subtract"
    value: int

    def text(self) -> str:
        return {"set": "", "add": "+", "subtract": "-"}[self.op] + str(self.value)


@dataclass(frozen=True, slots=True)
class PrependAction:
    repeat_n: int
    asn: int | None                     # None: the local AS of the route's context


@dataclass(frozen=True, slots=True)
class CommunityAction:
    """set-community / set-large-community / set-ext-community, resolved.

    ``values`` are exact wire values (int, (int, int, int) or 8 bytes); ``patterns``
    (remove only) are full-match regexes over the text form.
    """

    options: str                        # add | remove | replace
    communities: tuple[str, ...]        # inline list as configured
    set_ref: str | None
    values: tuple[Any, ...]
    patterns: tuple[re.Pattern[str], ...] = ()


@dataclass(frozen=True, slots=True)
class Actions:
    policy_result: str = "next-statement"
    set_local_pref: int | None = None
    set_med: MedAction | None = None
    set_route_origin: int | None = None
    set_next_hop: str | None = None     # IP text or "self"
    set_weight: int | None = None
    set_as_path_prepend: PrependAction | None = None
    set_community: CommunityAction | None = None
    set_large_community: CommunityAction | None = None
    set_ext_community: CommunityAction | None = None


@dataclass(frozen=True, slots=True)
class Statement:
    name: str
    conditions: Conditions
    actions: Actions


@dataclass(frozen=True, slots=True)
class PolicyDefinition:
    name: str
    statements: tuple[Statement, ...]


@dataclass(frozen=True, slots=True)
class RoutingPolicyConfig:
    defined_sets: DefinedSets = field(default_factory=DefinedSets)
    policy_definitions: Mapping[str, PolicyDefinition] = field(default_factory=dict)

    def check_chain(self, names: tuple[str, ...] | list[str], path: str) -> None:
        """Raise PolicyConfigError(path) if a name in an import/export chain is undefined."""
        for n in names:
            if n not in self.policy_definitions:
                raise PolicyConfigError(path, f"policy-definition {n!r} is not defined")


# ---------------------------------------------------------------------------------
# text forms and member parsing (shared with the engine)


def community_text(value: int) -> str:
    return f"{value >> 16}:{value & 0xFFFF}"


def large_community_text(value: tuple[int, int, int]) -> str:
    return f"{value[0]}:{value[1]}:{value[2]}"


def ext_community_text(value: bytes) -> str:
    """Operator text of an 8-octet extended community (RFC 4360): route-target/route-origin
    for the AS/IPv4 specific types, else 0x<hex>."""
    if len(value) == 8:
        t, st = value[0] & 0x3F, value[1]  # IANA authority bit ignored for naming
        kind = {0x02: "route-target", 0x03: "route-origin"}.get(st)
        if kind is not None:
            if t == 0x00:
                return f"{kind}:{int.from_bytes(value[2:4], 'big')}:{int.from_bytes(value[4:8], 'big')}"
            if t == 0x01:
                return f"{kind}:{ipaddress.IPv4Address(value[2:6])}:{int.from_bytes(value[6:8], 'big')}"
            if t == 0x02:
                return f"{kind}:{int.from_bytes(value[2:6], 'big')}:{int.from_bytes(value[6:8], 'big')}"
    return "0x" + value.hex()


_COMMUNITY_RE = re.compile(r"(\d+):(\d+)")
_LARGE_RE = re.compile(r"(\d+):(\d+):(\d+)")
_EXT_RE = re.compile(r"(route-target|route-origin|rt|soo):(.+):(\d+)")


def parse_community(text: str) -> int | None:
    """'65000:1' or a well-known name -> 32-bit value; None if it is not an exact form.
    Raises ValueError for an exact form out of range."""
    if text in WELL_KNOWN_COMMUNITIES:
        return WELL_KNOWN_COMMUNITIES[text]
    m = _COMMUNITY_RE.fullmatch(text)
    if m:
        hi, lo = int(m.group(1)), int(m.group(2))
        if hi > 0xFFFF or lo > 0xFFFF:
            raise ValueError(f"{text!r}: both halves must be 0..65535")
        return hi << 16 | lo
    if text.isdigit():
        v = int(text)
        if v > UINT32_MAX:
            raise ValueError(f"{text!r} is out of range 0..4294967295")
        return v
    return None


def parse_large_community(text: str) -> tuple[int, int, int] | None:
    m = _LARGE_RE.fullmatch(text)
    if not m:
        return None
    v = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
    if max(v) > UINT32_MAX:
        raise ValueError(f"{text!r}: each part must be 0..4294967295")
    return v


def parse_ext_community(text: str) -> bytes | None:
    """'route-target:65000:1', 'route-origin:10.0.0.1:5', 'route-target:4200000000:7'."""
    m = _EXT_RE.fullmatch(text)
    if not m:
        return None
    kind, admin, local = m.group(1), m.group(2), int(m.group(3))
    subtype = 0x02 if kind in ("route-target", "rt") else 0x03
    if admin.isdigit():
        asn = int(admin)
        if asn <= 0xFFFF:
            if local > UINT32_MAX:
                raise ValueError(f"{text!r}: local part must be 0..4294967295")
            return bytes((0x00, subtype)) + asn.to_bytes(2, "big") + local.to_bytes(4, "big")
        if asn > UINT32_MAX:
            raise ValueError(f"{text!r}: AS number out of range")
        if local > 0xFFFF:
            raise ValueError(f"{text!r}: local part must be 0..65535 with a 4-octet AS")
        return bytes((0x02, subtype)) + asn.to_bytes(4, "big") + local.to_bytes(2, "big")
    try:
        addr = ipaddress.IPv4Address(admin)
    except ValueError:
        raise ValueError(f"{text!r}: administrator must be an AS number or an IPv4 address") from None
    if local > 0xFFFF:
        raise ValueError(f"{text!r}: local part must be 0..65535 with an IPv4 administrator")
    return bytes((0x01, subtype)) + addr.packed + local.to_bytes(2, "big")


_BOUNDARY = r"(?:^|[ ,{}()\[\]]|$)"


def aspath_regex(expr: str) -> str:
    """Operator AS-path regex -> Python regex (matched with re.search).

    ``_`` matches a boundary: the start, the end, a space, or the punctuation of an
    AS_SET/confederation segment (``{}`` ``()`` ``[]`` ``,``). Everything else is
    Python regex syntax; ``_`` inside a character class and ``\\_`` stay literal.
    """
    out: list[str] = []
    i, n = 0, len(expr)
    while i < n:
        c = expr[i]
        if c == "\\" and i + 1 < n:
            out.append(expr[i : i + 2])
            i += 2
        elif c == "[":  # copy a character class verbatim
            j = i + 1
            if j < n and expr[j] == "^":
                j += 1
            if j < n and expr[j] == "]":
                j += 1
            while j < n and expr[j] != "]":
                j += 2 if expr[j] == "\\" else 1
            out.append(expr[i : j + 1])
            i = j + 1
        elif c == "_":
            out.append(_BOUNDARY)
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


# ---------------------------------------------------------------------------------
# JSON reader


def _typename(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(v), type(v).__name__)


class _Node:
    """A JSON object being read: typed getters, and unknown members rejected by done()."""

    __slots__ = ("value", "path", "used")

    def __init__(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise PolicyConfigError(path, f"expected an object, got {_typename(value)}")
        self.value = value
        self.path = path
        self.used: set[str] = set()

    def sub(self, name: str) -> str:
        return f"{self.path}/{name}"

    def get(self, name: str, default: Any = None) -> Any:
        self.used.add(name)
        return self.value.get(name, default)

    def child(self, name: str) -> _Node | None:
        if name not in self.value:
            self.used.add(name)
            return None
        return _Node(self.get(name), self.sub(name))

    def uint(self, name: str, lo: int = 0, hi: int = UINT32_MAX) -> int | None:
        v = self.get(name)
        if v is None:
            return None
        if isinstance(v, str) and v.isdigit():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            raise PolicyConfigError(self.sub(name), f"expected an integer, got {json.dumps(v)}")
        if not lo <= v <= hi:
            raise PolicyConfigError(self.sub(name), f"{v} is out of range {lo}..{hi}")
        return v

    def string(self, name: str, required: bool = False) -> str | None:
        v = self.get(name)
        if v is None:
            if required:
                raise PolicyConfigError(self.sub(name), "missing mandatory member")
            return None
        if not isinstance(v, str):
            raise PolicyConfigError(self.sub(name), f"expected a string, got {json.dumps(v)}")
        return v

    def enum(self, name: str, allowed: tuple[str, ...] | Mapping[str, Any], default: str | None = None) -> str | None:
        v = self.string(name)
        if v is None:
            return default
        if v not in allowed:
            raise PolicyConfigError(self.sub(name), f"{v!r} is not one of {', '.join(allowed)}")
        return v

    def strings(self, name: str) -> tuple[tuple[str, str], ...]:
        """A leaf-list of strings: ((item path, value), ...)."""
        v = self.get(name, [])
        if not isinstance(v, list):
            raise PolicyConfigError(self.sub(name), f"expected a list, got {_typename(v)}")
        out = []
        for i, s in enumerate(v):
            p = f"{self.sub(name)}[{i + 1}]"
            if not isinstance(s, str):
                raise PolicyConfigError(p, f"expected a string, got {json.dumps(s)}")
            out.append((p, s))
        return tuple(out)

    def entries(self, container: str, name: str, keys: tuple[str, ...]) -> list[_Node]:
        """The YANG list ``container/name``: entries with unique keys, paths naming the keys."""
        cont = self.child(container)
        if cont is None:
            return []
        raw = cont.get(name, [])
        lpath = cont.sub(name)
        if not isinstance(raw, list):
            raise PolicyConfigError(lpath, f"expected a list, got {_typename(raw)}")
        out: list[_Node] = []
        seen: set[tuple[str, ...]] = set()
        for i, e in enumerate(raw):
            if not isinstance(e, dict) or keys[0] not in e:
                raise PolicyConfigError(f"{lpath}[{i + 1}]", f"list entry needs the key {keys[0]!r}")
            kv = tuple(str(e.get(k, "")) for k in keys)
            pred = "".join(f"[{k}='{v}']" for k, v in zip(keys, kv, strict=True) if k in e)
            epath = lpath + pred
            if kv in seen:
                raise PolicyConfigError(epath, "duplicate list entry")
            seen.add(kv)
            out.append(_Node(e, epath))
        cont.done()
        return out

    def done(self) -> None:
        unknown = sorted(set(self.value) - self.used)
        if unknown:
            raise PolicyConfigError(self.sub(unknown[0]), "unknown member (not in the model)")


# ---------------------------------------------------------------------------------
# parser


def parse_routing_policy(json_obj: Any, path: str = TOP) -> RoutingPolicyConfig:
    """Validate the JSON of ``fcr-routing-policy:routing-policy`` and build the config.

    ``json_obj`` is the container's content; a whole document whose only member is
    ``fcr-routing-policy:routing-policy`` is accepted too.
    """
    if isinstance(json_obj, dict) and set(json_obj) == {MODULE_KEY}:
        json_obj = json_obj[MODULE_KEY]
    if json_obj is None:
        json_obj = {}
    root = _Node(json_obj, path)
    ds = _parse_defined_sets(root.child("defined-sets"))
    policies: dict[str, PolicyDefinition] = {}
    for pnode in root.entries("policy-definitions", "policy-definition", ("name",)):
        name = pnode.string("name", required=True)
        assert name is not None
        stmts = []
        for snode in pnode.entries("statements", "statement", ("name",)):
            stmts.append(_parse_statement(snode, ds))
        pnode.done()
        policies[name] = PolicyDefinition(name, tuple(stmts))
    root.done()
    return RoutingPolicyConfig(ds, policies)


def _parse_defined_sets(node: _Node | None) -> DefinedSets:
    if node is None:
        return DefinedSets()
    prefix_sets: dict[str, PrefixSet] = {}
    for e in node.entries("prefix-sets", "prefix-set", ("name",)):
        ps = _parse_prefix_set(e)
        prefix_sets[ps.name] = ps
    neighbor_sets: dict[str, NeighborSet] = {}
    for e in node.entries("neighbor-sets", "neighbor-set", ("name",)):
        name = e.string("name", required=True)
        addrs = []
        for p, s in e.strings("address"):
            try:
                addrs.append(ipaddress.ip_address(s))
            except ValueError:
                raise PolicyConfigError(p, f"{s!r} is not an IP address") from None
        e.done()
        assert name is not None
        neighbor_sets[name] = NeighborSet(name, tuple(str(a) for a in addrs),
                                          frozenset(a.packed for a in addrs))
    as_path_sets: dict[str, AsPathSet] = {}
    community_sets: dict[str, CommunitySet] = {}
    ext_sets: dict[str, ExtCommunitySet] = {}
    large_sets: dict[str, LargeCommunitySet] = {}
    bgp = node.child("bgp-defined-sets")
    if bgp is not None:
        for e in bgp.entries("as-path-sets", "as-path-set", ("name",)):
            name = e.string("name", required=True)
            assert name is not None
            members = e.strings("member")
            pats = tuple(_compile(p, aspath_regex(s), s) for p, s in members)
            e.done()
            as_path_sets[name] = AsPathSet(name, tuple(s for _, s in members), pats)
        for e in bgp.entries("community-sets", "community-set", ("name",)):
            name, members, vals, pats = _parse_members(e, parse_community)
            community_sets[name] = CommunitySet(name, members, vals, pats)
        for e in bgp.entries("ext-community-sets", "ext-community-set", ("name",)):
            name, members, vals, pats = _parse_members(e, parse_ext_community)
            ext_sets[name] = ExtCommunitySet(name, members, vals, pats)
        for e in bgp.entries("large-community-sets", "large-community-set", ("name",)):
            name, members, vals, pats = _parse_members(e, parse_large_community)
            large_sets[name] = LargeCommunitySet(name, members, vals, pats)
        bgp.done()
    node.done()
    return DefinedSets(prefix_sets, neighbor_sets, as_path_sets, community_sets, ext_sets, large_sets)


def _compile(path: str, regex: str, original: str) -> re.Pattern[str]:
    try:
        return re.compile(regex)
    except re.error as exc:
        raise PolicyConfigError(path, f"bad regular expression {original!r}: {exc}") from None


def _parse_members(e: _Node, exact: Any) -> tuple[str, tuple[str, ...], tuple, tuple]:
    name = e.string("name", required=True)
    assert name is not None
    members = e.strings("member")
    vals: list[Any] = []
    pats: list[re.Pattern[str]] = []
    for p, s in members:
        try:
            v = exact(s)
        except ValueError as exc:
            raise PolicyConfigError(p, str(exc)) from None
        if v is not None:
            if v not in vals:
                vals.append(v)
        else:
            pats.append(_compile(p, s, s))
    e.done()
    return name, tuple(s for _, s in members), tuple(vals), tuple(pats)


_RANGE_RE = re.compile(r"(\d+)\.\.(\d+)")


def _parse_prefix_set(e: _Node) -> PrefixSet:
    name = e.string("name", required=True)
    assert name is not None
    mode = e.enum("mode", PREFIX_SET_MODES, "mixed")
    assert mode is not None
    entries = []
    for pe in e.entries("prefixes", "prefix", ("ip-prefix", "masklength-range")):
        text = pe.string("ip-prefix", required=True)
        assert text is not None
        try:
            net = ipaddress.ip_network(text, strict=True)
        except ValueError as exc:
            raise PolicyConfigError(pe.sub("ip-prefix"), f"{text!r} is not an IP prefix ({exc})") from None
        if mode != "mixed" and f"ipv{net.version}" != mode:
            raise PolicyConfigError(pe.sub("ip-prefix"), f"{text!r} is not an {mode} prefix (prefix-set mode)")
        width = net.max_prefixlen
        rng = pe.string("masklength-range") or "exact"
        if rng == "exact":
            lo = hi = net.prefixlen
        else:
            m = _RANGE_RE.fullmatch(rng)
            if not m:
                raise PolicyConfigError(pe.sub("masklength-range"), f"{rng!r} is not 'exact' or 'lo..hi'")
            lo, hi = int(m.group(1)), int(m.group(2))
            if not net.prefixlen <= lo <= hi <= width:
                raise PolicyConfigError(
                    pe.sub("masklength-range"),
                    f"{rng!r}: need {net.prefixlen} <= lo <= hi <= {width}",
                )
        pe.done()
        entries.append(PrefixEntry(str(net), rng, net.version, int(net.network_address),
                                   net.prefixlen, lo, hi))
    e.done()
    return PrefixSet(name, mode, tuple(entries))


def _match_set(node: _Node | None, set_member: str, sets: Mapping[str, Any], options: tuple[str, ...]) -> MatchSet | None:
    if node is None:
        return None
    name = node.string(set_member, required=True)
    assert name is not None
    if name not in sets:
        raise PolicyConfigError(node.sub(set_member), f"{set_member} {name!r} is not defined")
    opt = node.enum("match-set-options", options, "any")
    assert opt is not None
    node.done()
    return MatchSet(name, opt)


def _parse_statement(s: _Node, ds: DefinedSets) -> Statement:
    name = s.string("name", required=True)
    assert name is not None
    cond = Conditions()
    c = s.child("conditions")
    if c is not None:
        nh = []
        for p, a in c.strings("next-hop-in"):
            try:
                nh.append(str(ipaddress.ip_address(a)))
            except ValueError:
                raise PolicyConfigError(p, f"{a!r} is not an IP address") from None
        kw: dict[str, Any] = {
            "match_prefix_set": _match_set(c.child("match-prefix-set"), "prefix-set",
                                           ds.prefix_sets, SET_OPTIONS_ANY_INVERT),
            "match_neighbor_set": _match_set(c.child("match-neighbor-set"), "neighbor-set",
                                             ds.neighbor_sets, SET_OPTIONS_ANY_INVERT),
            "install_protocol_eq": c.enum("install-protocol-eq", PROTOCOLS),
            "match_route_type": c.enum("match-route-type", ROUTE_TYPES),
            "next_hop_in": tuple(nh),
        }
        b = c.child("bgp-conditions")
        if b is not None:
            kw["match_as_path_set"] = _match_set(b.child("match-as-path-set"), "as-path-set",
                                                 ds.as_path_sets, SET_OPTIONS_ANY_ALL_INVERT)
            kw["match_community_set"] = _match_set(b.child("match-community-set"), "community-set",
                                                   ds.community_sets, SET_OPTIONS_ANY_ALL_INVERT)
            kw["match_ext_community_set"] = _match_set(
                b.child("match-ext-community-set"), "ext-community-set",
                ds.ext_community_sets, SET_OPTIONS_ANY_ALL_INVERT)
            kw["match_large_community_set"] = _match_set(
                b.child("match-large-community-set"), "large-community-set",
                ds.large_community_sets, SET_OPTIONS_ANY_ALL_INVERT)
            apl = b.child("as-path-length")
            if apl is not None:
                op = apl.enum("operator", LENGTH_OPERATORS)
                val = apl.uint("value", 0, UINT32_MAX)
                if op is None or val is None:
                    raise PolicyConfigError(apl.sub("operator" if op is None else "value"),
                                            "missing mandatory member")
                apl.done()
                kw["as_path_length"] = AsPathLength(op, val)
            kw["med_eq"] = b.uint("med-eq")
            origin = b.enum("origin-eq", ORIGINS)
            kw["origin_eq"] = None if origin is None else ORIGINS[origin]
            kw["local_pref_eq"] = b.uint("local-pref-eq")
            b.done()
        c.done()
        cond = Conditions(**kw)
    act = Actions()
    a = s.child("actions")
    if a is not None:
        akw: dict[str, Any] = {"policy_result": a.enum("policy-result", POLICY_RESULTS, "next-statement")}
        b = a.child("bgp-actions")
        if b is not None:
            akw.update(_parse_bgp_actions(b, ds))
        a.done()
        act = Actions(**akw)
    s.done()
    return Statement(name, cond, act)


def _parse_med(node: _Node) -> MedAction | None:
    v = node.get("set-med")
    p = node.sub("set-med")
    if v is None:
        return None
    if isinstance(v, int) and not isinstance(v, bool):
        op, num = "set", v
    elif isinstance(v, str) and re.fullmatch(r"[+-]?\d+", v):
        op = {"+": "add", "-": "subtract"}.get(v[0], "set")
        num = int(v.lstrip("+-"))
    else:
        raise PolicyConfigError(p, f"expected an integer or '+N' / '-N', got {json.dumps(v)}")
    if not 0 <= num <= UINT32_MAX:
        raise PolicyConfigError(p, f"{num} is out of range 0..4294967295")
    return MedAction(op, num)


def _parse_bgp_actions(b: _Node, ds: DefinedSets) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "set_local_pref": b.uint("set-local-pref"),
        "set_med": _parse_med(b),
        "set_weight": b.uint("set-weight", 0, 0xFFFF),
    }
    origin = b.enum("set-route-origin", ORIGINS)
    kw["set_route_origin"] = None if origin is None else ORIGINS[origin]
    nh = b.string("set-next-hop")
    if nh is not None and nh != "self":
        try:
            nh = str(ipaddress.ip_address(nh))
        except ValueError:
            raise PolicyConfigError(b.sub("set-next-hop"), f"{nh!r} is not an IP address or 'self'") from None
    kw["set_next_hop"] = nh
    pp = b.child("set-as-path-prepend")
    if pp is not None:
        n = pp.uint("repeat-n", 1, 32)
        if n is None:
            raise PolicyConfigError(pp.sub("repeat-n"), "missing mandatory member")
        asn = pp.uint("asn", 1, UINT32_MAX)
        pp.done()
        kw["set_as_path_prepend"] = PrependAction(n, asn)
    kw["set_community"] = _community_action(
        b.child("set-community"), "community-set-ref", ds.community_sets, parse_community)
    kw["set_large_community"] = _community_action(
        b.child("set-large-community"), "large-community-set-ref", ds.large_community_sets,
        parse_large_community)
    kw["set_ext_community"] = _community_action(
        b.child("set-ext-community"), "ext-community-set-ref", ds.ext_community_sets,
        parse_ext_community)
    b.done()
    return kw


def _community_action(node: _Node | None, ref_member: str, sets: Mapping[str, Any], exact: Any) -> CommunityAction | None:
    if node is None:
        return None
    opt = node.enum("options", COMMUNITY_OPTIONS)
    if opt is None:
        raise PolicyConfigError(node.sub("options"), "missing mandatory member")
    inline = node.strings("communities")
    ref = node.string(ref_member)
    if ref is not None and inline:
        raise PolicyConfigError(node.sub(ref_member), f"give either communities or {ref_member}, not both")
    vals: list[Any] = []
    pats: list[re.Pattern[str]] = []
    if ref is not None:
        if ref not in sets:
            raise PolicyConfigError(node.sub(ref_member), f"{ref_member} {ref!r} is not defined")
        vals = list(sets[ref].values)
        pats = list(sets[ref].patterns)
        if pats and opt != "remove":
            raise PolicyConfigError(node.sub(ref_member),
                                    f"set {ref!r} has regular expressions: only 'remove' can use it")
    else:
        for p, s in inline:
            try:
                v = exact(s)
            except ValueError as exc:
                raise PolicyConfigError(p, str(exc)) from None
            if v is None:
                if opt != "remove":
                    raise PolicyConfigError(p, f"{s!r} is not a community value (regexes only with 'remove')")
                pats.append(_compile(p, s, s))
            elif v not in vals:
                vals.append(v)
    node.done()
    return CommunityAction(opt, tuple(s for _, s in inline), ref, tuple(vals), tuple(pats))
