"""The routing-policy engine: compiled policy chains, per-attribute-set caching.

``PolicyEngine(config)`` compiles every policy definition once: each statement becomes
a tuple of condition functions, an optional prefix test (per address family) and an
action function. A chain (list of policy names + default) is evaluated per route as
``evaluate`` does, or in bulk per attribute set (``evaluate_batch``, the import hook's
``filter_batch``), or explained statement by statement (``explain``).

Caching (``cache=True``, the default). A route's outcome depends on its attributes,
on a few facts that are constant for a whole UPDATE or peer (family, neighbor,
protocol, route type, local AS: the route *class*) and on its prefix. The only
prefix-dependent condition is match-prefix-set, so for one (chain, class, attrs) the
chain is a small decision tree whose inner nodes are prefix tests: evaluation runs the
chain with the attributes, and when it reaches a statement whose other conditions
all hold but which also tests the prefix, it stops there and records a branch node
(the statement position and the attributes so far). The two children (statement
matched / not matched) are computed the same way on first use. Every node is
therefore exactly what running the chain would do from that position with that
state; a cached answer never skips a prefix test, it only skips re-evaluating the
attribute conditions and actions. The tree's root is cached per (chain, class,
attrs value); its leaves hold the resulting (interned) attributes.

Results of set-actions are interned: the same input attributes through the same
statement give the same output object, so the RIBs keep sharing attribute sets.
"""

from __future__ import annotations

import ipaddress
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import compress
from typing import Any

from ..bgp.family import AfiSafi
from ..bgp.packet.constants import Afi, AsPathSegment, Safi
from ..bgp.packet.pathattrs import PathAttributes
from .config import (
    Actions,
    CommunityAction,
    Conditions,
    PolicyConfigError,
    PrefixSet,
    RoutingPolicyConfig,
    Statement,
    community_text,
    ext_community_text,
    large_community_text,
)

ACCEPT, REJECT, NEXT_STATEMENT, NEXT_POLICY = 0, 1, 2, 3
_RESULT_CODES = {"accept-route": ACCEPT, "reject-route": REJECT,
                 "next-statement": NEXT_STATEMENT, "next-policy": NEXT_POLICY}

# set-next-hop "self": a marker in PathAttributes.next_hop that the caller resolves to
# its own address for the session (6 octets: no real next hop has that length).
NEXT_HOP_SELF = b"\x00self\x00"

UINT32_MAX = 0xFFFFFFFF
MAX_SEGMENT_ASNS = 255
_SEQ = int(AsPathSegment.AS_SEQUENCE)
_SET = int(AsPathSegment.AS_SET)
_CSEQ = int(AsPathSegment.AS_CONFED_SEQUENCE)
_IPV4, _IPV6 = int(Afi.IPV4), int(Afi.IPV6)
_ORIGIN_NAMES = {0: "igp", 1: "egp", 2: "incomplete"}


def aspath_text(as_path: tuple[tuple[int, tuple[int, ...]], ...]) -> str:
    """The AS path as AS-path regexes see it: "65001 65002 {65003,65004} (65010 65011)".

    AS_SEQUENCE: ASNs separated by spaces; AS_SET: {a,b}; confederation sequence (a b);
    confederation set [a,b]. Empty path: "".
    """
    parts = []
    for t, asns in as_path:
        if not asns:
            continue
        if t == _SEQ:
            parts.append(" ".join(map(str, asns)))
        elif t == _SET:
            parts.append("{" + ",".join(map(str, asns)) + "}")
        elif t == _CSEQ:
            parts.append("(" + " ".join(map(str, asns)) + ")")
        else:
            parts.append("[" + ",".join(map(str, asns)) + "]")
    return " ".join(parts)


def prepend(as_path: tuple, asn: int, n: int) -> tuple:
    """``asn`` n times at the left of the path (into the first AS_SEQUENCE while it has room)."""
    add = (asn,) * n
    if as_path and as_path[0][0] == _SEQ and len(as_path[0][1]) + n <= MAX_SEGMENT_ASNS:
        return ((_SEQ, add + tuple(as_path[0][1])),) + tuple(as_path[1:])
    return ((_SEQ, add),) + tuple(as_path)


# ---------------------------------------------------------------------------------
# routes and results


class RouteContext:
    """A route to evaluate.

    Either ``prefix`` text ("10.0.0.0/24"; host bits are cleared) or ``key`` (NLRI wire
    bytes, bgp/family.py) with ``family``. ``attrs`` are the route's PathAttributes; for
    a route without them (static, connected, controller) a base set is made from
    ``next_hop`` (origin incomplete, or igp for protocol bgp). ``neighbor`` is the
    neighbor the route was learned from (text or packed; b"" for none), in import and
    export alike. ``local_as`` is the AS that set-as-path-prepend uses without an asn;
    ``weight`` the route's weight before policy.
    """

    __slots__ = ("key", "family", "attrs", "protocol", "route_type", "neighbor", "next_hop",
                 "local_as", "weight")

    def __init__(
        self,
        prefix: str | None = None,
        *,
        key: bytes | None = None,
        family: AfiSafi | None = None,
        attrs: PathAttributes | None = None,
        protocol: str = "bgp",
        route_type: str = "external",
        neighbor: str | bytes = b"",
        next_hop: str | bytes | None = None,
        local_as: int = 0,
        weight: int | None = None,
    ) -> None:
        if prefix is not None:
            net = ipaddress.ip_network(prefix, strict=False)
            nbytes = (net.prefixlen + 7) >> 3
            key = bytes((net.prefixlen,)) + net.network_address.packed[:nbytes]
            family = AfiSafi(Afi.IPV4 if net.version == 4 else Afi.IPV6, Safi.UNICAST)
        if key is None or family is None:
            raise ValueError("RouteContext needs prefix, or key and family")
        self.key = key
        self.family = family
        self.attrs = attrs
        self.protocol = protocol
        self.route_type = route_type
        self.neighbor = ipaddress.ip_address(neighbor).packed if isinstance(neighbor, str) and neighbor else (neighbor or b"")
        if isinstance(next_hop, str):
            next_hop = ipaddress.ip_address(next_hop).packed
        self.next_hop = next_hop
        self.local_as = local_as
        self.weight = weight

    @property
    def prefix(self) -> str:
        width = 4 if self.family.afi == _IPV4 else 16
        addr = self.key[1:] + b"\x00" * (width - len(self.key) + 1)
        return f"{ipaddress.ip_address(addr)}/{self.key[0]}"


@dataclass(frozen=True, slots=True)
class PolicyResult:
    accepted: bool
    attrs: PathAttributes | None      # resulting attributes (None when rejected)
    weight: int | None                # resulting weight (None when rejected or never set)
    trace: list[str] | None = None


class _Class:
    """The per-route facts other than prefix and attributes; interned per engine, so
    it hashes by identity."""

    __slots__ = ("afi", "family", "neighbor", "protocol", "route_type", "local_as")

    def __init__(self, family: AfiSafi, neighbor: bytes, protocol: str, route_type: str, local_as: int) -> None:
        self.afi = int(family.afi)
        self.family = family
        self.neighbor = neighbor
        self.protocol = protocol
        self.route_type = route_type
        self.local_as = local_as


class _Leaf:
    __slots__ = ("accepted", "attrs", "weight", "decided_by")

    def __init__(self, accepted: bool, attrs: PathAttributes | None, weight: int | None) -> None:
        self.accepted = accepted
        self.attrs = attrs
        self.weight = weight      # set-weight value, None: unchanged


_REJECTED = _Leaf(False, None, None)


class _Branch:
    """Statement (pi, si) matches iff test(prefix key); state = attrs and weight so far."""

    __slots__ = ("test", "pi", "si", "attrs", "wset", "yes", "no")

    def __init__(self, test: Callable[[bytes], bool], pi: int, si: int, attrs: PathAttributes, wset: int | None) -> None:
        self.test = test
        self.pi = pi
        self.si = si
        self.attrs = attrs
        self.wset = wset
        self.yes: _Leaf | _Branch | None = None
        self.no: _Leaf | _Branch | None = None


# ---------------------------------------------------------------------------------
# compilation


def _never(_key: bytes) -> bool:
    return False


def compile_prefix_set(ps: PrefixSet, afi: int) -> Callable[[bytes], bool]:
    """A test ``key -> bool`` for one family: does the prefix key match an entry?

    Exact entries are a frozenset of wire keys (one C-level lookup). Range entries are
    grouped by the entry's own length L: ``{network >> (width - L): mask of admitted
    lengths}``; a key of length p checks only the groups with L <= p that admit p.
    """
    version = 4 if afi == _IPV4 else 6
    width = 32 if version == 4 else 128
    exact: set[bytes] = set()
    groups: dict[int, dict[int, int]] = {}
    for e in ps.prefixes:
        if e.version != version:
            continue
        if e.lo == e.hi == e.length:
            nb = (e.length + 7) >> 3
            exact.add(bytes((e.length,)) + e.network.to_bytes(width // 8, "big")[:nb])
        else:
            d = groups.setdefault(e.length, {})
            top = e.network >> (width - e.length) if e.length else 0
            d[top] = d.get(top, 0) | (((1 << (e.hi + 1)) - 1) ^ ((1 << e.lo) - 1))
    exact_f = frozenset(exact)
    if not groups:
        return exact_f.__contains__ if exact_f else _never
    union = {L: _or_all(d.values()) for L, d in groups.items()}
    by_plen: list[tuple[tuple[int, dict[int, int]], ...]] = [
        tuple((L, groups[L]) for L in sorted(groups) if L <= p and (union[L] >> p) & 1)
        for p in range(width + 1)
    ]
    from_bytes = int.from_bytes

    def test(key: bytes) -> bool:
        if key in exact_f:
            return True
        p = key[0]
        if p > width:
            return False
        cands = by_plen[p]
        if cands:
            v = from_bytes(key[1:], "big")
            bits = (len(key) - 1) << 3
            for L, d in cands:
                m = d.get(v >> (bits - L))
                if m is not None and (m >> p) & 1:
                    return True
        return False

    return test


def _or_all(values: Iterable[int]) -> int:
    r = 0
    for v in values:
        r |= v
    return r


def _member_fns(values: tuple, patterns: tuple, text: Callable[[Any], str], option: str) -> Callable[[tuple], bool]:
    """Condition over a tuple of route communities for one set and match-set-option."""
    vs = frozenset(values)

    def one(c: Any) -> bool:
        if c in vs:
            return True
        if patterns:
            t = text(c)
            for p in patterns:
                if p.fullmatch(t):
                    return True
        return False

    def any_(comms: tuple) -> bool:
        for c in comms:
            if one(c):
                return True
        return False

    if option == "invert":
        return lambda comms: not any_(comms)
    if option == "all":
        def all_(comms: tuple) -> bool:
            have = set(comms)
            for v in values:
                if v not in have:
                    return False
            if patterns:
                texts = [text(c) for c in comms]
                for p in patterns:
                    if not any(p.fullmatch(t) for t in texts):
                        return False
            return True
        return all_
    return any_


def _nh_key(nh: bytes) -> bytes:
    return nh[:16] if len(nh) == 32 else nh


class _Stmt:
    """One compiled statement."""

    __slots__ = ("uid", "policy", "name", "conds", "labels", "prefix_tests", "prefix_label",
                 "result", "result_name", "apply", "weight", "action_labels")

    def __init__(self, uid: int, policy: str, st: Statement, engine: PolicyEngine) -> None:
        self.uid = uid
        self.policy = policy
        self.name = st.name
        conds, labels = _compile_conditions(st.conditions, engine)
        self.conds = tuple(conds)
        self.labels = tuple(labels)
        mps = st.conditions.match_prefix_set
        if mps is not None:
            tests = engine._prefix_tests(mps.set_name)
            if mps.options == "invert":
                tests = {afi: _negate(t) for afi, t in tests.items()}
            self.prefix_tests: dict[int, Callable[[bytes], bool]] | None = tests
            self.prefix_label = f"match-prefix-set {mps.set_name} {mps.options}"
        else:
            self.prefix_tests = None
            self.prefix_label = ""
        self.result_name = st.actions.policy_result
        self.result = _RESULT_CODES[st.actions.policy_result]
        self.apply, self.action_labels = _compile_actions(st.actions)
        self.weight = st.actions.set_weight


def _negate(t: Callable[[bytes], bool]) -> Callable[[bytes], bool]:
    return lambda key: not t(key)


def _compile_conditions(c: Conditions, engine: PolicyEngine) -> tuple[list, list]:
    """Non-prefix conditions: functions (attrs, cls) -> bool, cheapest first."""
    ds = engine.config.defined_sets
    conds: list[Callable[[PathAttributes, _Class], bool]] = []
    labels: list[str] = []

    def add(label: str, fn: Callable[[PathAttributes, _Class], bool]) -> None:
        labels.append(label)
        conds.append(fn)

    if c.install_protocol_eq is not None:
        proto = c.install_protocol_eq
        add(f"install-protocol-eq {proto}", lambda a, k, proto=proto: k.protocol == proto)
    if c.match_route_type is not None:
        rt = c.match_route_type
        add(f"match-route-type {rt}", lambda a, k, rt=rt: k.route_type == rt)
    if c.match_neighbor_set is not None:
        ns = ds.neighbor_sets[c.match_neighbor_set.set_name].packed
        inv = c.match_neighbor_set.options == "invert"
        add(f"match-neighbor-set {c.match_neighbor_set.set_name} {c.match_neighbor_set.options}",
            lambda a, k, ns=ns, inv=inv: (k.neighbor in ns) != inv)
    if c.med_eq is not None:
        med = c.med_eq
        add(f"med-eq {med}", lambda a, k, med=med: a.med == med)
    if c.local_pref_eq is not None:
        lp = c.local_pref_eq
        add(f"local-pref-eq {lp}", lambda a, k, lp=lp: a.local_pref == lp)
    if c.origin_eq is not None:
        og = c.origin_eq
        add(f"origin-eq {_ORIGIN_NAMES[og]}", lambda a, k, og=og: a.origin == og)
    if c.as_path_length is not None:
        op = {"eq": operator.eq, "ge": operator.ge, "le": operator.le}[c.as_path_length.operator]
        n = c.as_path_length.value
        add(f"as-path-length {c.as_path_length.operator} {n}", lambda a, k, op=op, n=n: op(a.as_path_length, n))
    if c.next_hop_in:
        nhs = frozenset(ipaddress.ip_address(x).packed for x in c.next_hop_in)
        add("next-hop-in " + ",".join(c.next_hop_in), lambda a, k, nhs=nhs: _nh_key(a.next_hop) in nhs)
    if c.match_community_set is not None:
        m = c.match_community_set
        s = ds.community_sets[m.set_name]
        f = _member_fns(s.values, s.patterns, community_text, m.options)
        add(f"match-community-set {m.set_name} {m.options}", lambda a, k, f=f: f(a.communities))
    if c.match_large_community_set is not None:
        m = c.match_large_community_set
        s2 = ds.large_community_sets[m.set_name]
        g = _member_fns(s2.values, s2.patterns, large_community_text, m.options)
        add(f"match-large-community-set {m.set_name} {m.options}", lambda a, k, g=g: g(a.large_communities))
    if c.match_ext_community_set is not None:
        m = c.match_ext_community_set
        s3 = ds.ext_community_sets[m.set_name]
        h = _member_fns(s3.values, s3.patterns, ext_community_text, m.options)
        add(f"match-ext-community-set {m.set_name} {m.options}", lambda a, k, h=h: h(a.ext_communities))
    if c.match_as_path_set is not None:
        m = c.match_as_path_set
        pats = ds.as_path_sets[m.set_name].patterns
        opt = m.options
        if opt == "all":
            def fn(a: PathAttributes, k: _Class) -> bool:
                t = aspath_text(a.as_path)
                return all(p.search(t) for p in pats)
        else:
            inv2 = opt == "invert"

            def fn(a: PathAttributes, k: _Class, inv: bool = inv2) -> bool:
                t = aspath_text(a.as_path)
                return any(p.search(t) for p in pats) != inv
        add(f"match-as-path-set {m.set_name} {opt}", fn)
    return conds, labels


def _community_op(act: CommunityAction, text: Callable[[Any], str]) -> Callable[[tuple], tuple]:
    vals = act.values
    vset = frozenset(vals)
    pats = act.patterns
    if act.options == "replace":
        return lambda cur: vals
    if act.options == "add":
        def add(cur: tuple) -> tuple:
            have = set(cur)
            extra = tuple(v for v in vals if v not in have)
            return cur + extra if extra else cur
        return add

    def remove(cur: tuple) -> tuple:
        out = []
        for c in cur:
            if c in vset:
                continue
            if pats:
                t = text(c)
                if any(p.fullmatch(t) for p in pats):
                    continue
            out.append(c)
        return tuple(out) if len(out) != len(cur) else cur
    return remove


def _compile_actions(a: Actions) -> tuple[Callable[[PathAttributes, int], PathAttributes] | None, tuple[str, ...]]:
    """The attribute changes of a statement as one function (attrs, local_as) -> attrs.

    Order: local-pref, MED, origin, next hop, communities, large, ext, AS-path prepend.
    """
    labels: list[str] = []
    lp = a.set_local_pref
    if lp is not None:
        labels.append(f"set-local-pref {lp}")
    med = a.set_med
    if med is not None:
        labels.append(f"set-med {med.text()}")
    origin = a.set_route_origin
    if origin is not None:
        labels.append(f"set-route-origin {_ORIGIN_NAMES[origin]}")
    nh: bytes | None = None
    if a.set_next_hop is not None:
        nh = NEXT_HOP_SELF if a.set_next_hop == "self" else ipaddress.ip_address(a.set_next_hop).packed
        labels.append(f"set-next-hop {a.set_next_hop}")
    comm = lcomm = ecomm = None
    if a.set_community is not None:
        comm = _community_op(a.set_community, community_text)
        labels.append(_comm_label("set-community", a.set_community))
    if a.set_large_community is not None:
        lcomm = _community_op(a.set_large_community, large_community_text)
        labels.append(_comm_label("set-large-community", a.set_large_community))
    if a.set_ext_community is not None:
        ecomm = _community_op(a.set_ext_community, ext_community_text)
        labels.append(_comm_label("set-ext-community", a.set_ext_community))
    pp = a.set_as_path_prepend
    if pp is not None:
        labels.append(f"set-as-path-prepend {pp.asn if pp.asn is not None else 'local-as'} x{pp.repeat_n}")
    if a.set_weight is not None:
        labels.append(f"set-weight {a.set_weight}")
    if lp is None and med is None and origin is None and nh is None and comm is None \
            and lcomm is None and ecomm is None and pp is None:
        return None, tuple(labels)

    def apply(attrs: PathAttributes, local_as: int) -> PathAttributes:
        ch: dict[str, Any] = {}
        if lp is not None:
            ch["local_pref"] = lp
        if med is not None:
            cur = attrs.med or 0
            if med.op == "set":
                ch["med"] = med.value
            elif med.op == "add":
                ch["med"] = min(cur + med.value, UINT32_MAX)
            else:
                ch["med"] = max(cur - med.value, 0)
        if origin is not None:
            ch["origin"] = origin
        if nh is not None:
            ch["next_hop"] = nh
        if comm is not None:
            ch["communities"] = comm(attrs.communities)
        if lcomm is not None:
            ch["large_communities"] = lcomm(attrs.large_communities)
        if ecomm is not None:
            ch["ext_communities"] = ecomm(attrs.ext_communities)
        if pp is not None:
            asn = pp.asn if pp.asn is not None else local_as
            ch["as_path"] = prepend(attrs.as_path, asn, pp.repeat_n)
        return attrs.replace(**ch)

    return apply, tuple(labels)


def _comm_label(kind: str, act: CommunityAction) -> str:
    what = act.set_ref if act.set_ref is not None else ",".join(act.communities)
    return f"{kind} {act.options} {what}"


class _Chain:
    __slots__ = ("names", "policies", "default_accept", "roots", "n_roots")

    def __init__(self, names: tuple[str, ...], policies: tuple[tuple[_Stmt, ...], ...], default_accept: bool) -> None:
        self.names = names
        self.policies = policies
        self.default_accept = default_accept
        self.roots: dict[_Class, dict[PathAttributes, _Leaf | _Branch]] = {}
        self.n_roots = 0


# ---------------------------------------------------------------------------------
# the engine


class PolicyEngine:
    """Compiled routing policy. Immutable apart from its caches: on a configuration
    change build a new engine (and new hooks) from the new RoutingPolicyConfig."""

    def __init__(self, config: RoutingPolicyConfig, *, cache: bool = True, max_cache_entries: int = 1 << 18) -> None:
        self.config = config
        self.cache = cache
        self.max_cache_entries = max_cache_entries
        self._prefix_cache: dict[str, dict[int, Callable[[bytes], bool]]] = {}
        self._classes: dict[tuple, _Class] = {}
        self._chains: dict[tuple[tuple[str, ...], bool], _Chain] = {}
        self._intern: dict[PathAttributes, PathAttributes] = {}
        self._applied: dict[tuple[int, PathAttributes, int], PathAttributes] = {}
        self._policies: dict[str, tuple[_Stmt, ...]] = {}
        uid = 0
        for name, pd in config.policy_definitions.items():
            stmts = []
            for st in pd.statements:
                stmts.append(_Stmt(uid, name, st, self))
                uid += 1
            self._policies[name] = tuple(stmts)

    # -- compilation helpers ------------------------------------------------------
    def _prefix_tests(self, name: str) -> dict[int, Callable[[bytes], bool]]:
        t = self._prefix_cache.get(name)
        if t is None:
            ps = self.config.defined_sets.prefix_sets[name]
            t = self._prefix_cache[name] = {_IPV4: compile_prefix_set(ps, _IPV4),
                                            _IPV6: compile_prefix_set(ps, _IPV6)}
        return t

    def chain(self, names: Sequence[str], default_accept: bool = True) -> _Chain:
        """The compiled chain for these policy names (cached); unknown names raise
        PolicyConfigError."""
        key = (tuple(names), bool(default_accept))
        ch = self._chains.get(key)
        if ch is None:
            pols = []
            for n in key[0]:
                p = self._policies.get(n)
                if p is None:
                    raise PolicyConfigError("", f"policy-definition {n!r} is not defined")
                pols.append(p)
            ch = self._chains[key] = _Chain(key[0], tuple(pols), key[1])
        return ch

    def route_class(self, family: AfiSafi, neighbor: bytes = b"", protocol: str = "bgp",
                    route_type: str = "external", local_as: int = 0) -> _Class:
        k = (family, neighbor, protocol, route_type, local_as)
        c = self._classes.get(k)
        if c is None:
            if len(self._classes) >= 1 << 16:
                self._classes.clear()
                for ch in self._chains.values():
                    ch.roots.clear()
                    ch.n_roots = 0
            c = self._classes[k] = _Class(family, neighbor, protocol, route_type, local_as)
        return c

    def clear_cache(self) -> None:
        for ch in self._chains.values():
            ch.roots.clear()
            ch.n_roots = 0
        self._intern.clear()
        self._applied.clear()

    def intern(self, attrs: PathAttributes) -> PathAttributes:
        d = self._intern
        if len(d) >= self.max_cache_entries:
            d.clear()
        return d.setdefault(attrs, attrs)

    def _context(self, route: RouteContext) -> tuple[_Class, PathAttributes]:
        cls = self.route_class(route.family, route.neighbor, route.protocol, route.route_type, route.local_as)
        attrs = route.attrs
        if attrs is None:
            attrs = self.intern(PathAttributes(origin=0 if route.protocol == "bgp" else 2,
                                               next_hop=route.next_hop or b""))
        return cls, attrs

    # -- the interpreter ------------------------------------------------------------
    def _apply(self, st: _Stmt, attrs: PathAttributes, local_as: int) -> PathAttributes:
        if self.cache:
            k = (st.uid, attrs, local_as)
            r = self._applied.get(k)
            if r is None:
                r = self.intern(st.apply(attrs, local_as))  # type: ignore[misc]
                if len(self._applied) >= self.max_cache_entries:
                    self._applied.clear()
                self._applied[k] = r
            return r
        return self.intern(st.apply(attrs, local_as))  # type: ignore[misc]

    def _run(self, ch: _Chain, pi: int, si: int, attrs: PathAttributes, wset: int | None,
             cls: _Class, key: bytes | None, fire: bool) -> _Leaf | _Branch:
        """Run the chain from policy pi, statement si.

        ``key`` None: stop at a statement whose non-prefix conditions hold and that tests
        the prefix, returning a _Branch. ``fire``: statement (pi, si) is known to match.
        """
        pols = ch.policies
        npol = len(pols)
        while pi < npol:
            stmts = pols[pi]
            nst = len(stmts)
            while si < nst:
                st = stmts[si]
                if fire:
                    fire = False
                else:
                    ok = True
                    for f in st.conds:
                        if not f(attrs, cls):
                            ok = False
                            break
                    if not ok:
                        si += 1
                        continue
                    tests = st.prefix_tests
                    if tests is not None:
                        test = tests.get(cls.afi, _never)
                        if key is None:
                            return _Branch(test, pi, si, attrs, wset)
                        if not test(key):
                            si += 1
                            continue
                # statement matched
                r = st.result
                if r == REJECT:
                    return _REJECTED
                if st.apply is not None:
                    attrs = self._apply(st, attrs, cls.local_as)
                if st.weight is not None:
                    wset = st.weight
                if r == ACCEPT:
                    return _Leaf(True, attrs, wset)
                if r == NEXT_POLICY:
                    break
                si += 1
            pi += 1
            si = 0
        return _Leaf(True, attrs, wset) if ch.default_accept else _REJECTED

    def _root(self, ch: _Chain, cls: _Class, attrs: PathAttributes) -> _Leaf | _Branch:
        by_attrs = ch.roots.get(cls)
        if by_attrs is None:
            by_attrs = ch.roots[cls] = {}
        node = by_attrs.get(attrs)
        if node is None:
            if ch.n_roots >= self.max_cache_entries:
                ch.roots.clear()
                ch.n_roots = 0
                by_attrs = ch.roots[cls] = {}
            node = by_attrs[attrs] = self._run(ch, 0, 0, attrs, None, cls, None, False)
            ch.n_roots += 1
        return node

    def _child(self, ch: _Chain, cls: _Class, b: _Branch, matched: bool) -> _Leaf | _Branch:
        if matched:
            n = b.yes
            if n is None:
                n = b.yes = self._run(ch, b.pi, b.si, b.attrs, b.wset, cls, None, True)
        else:
            n = b.no
            if n is None:
                n = b.no = self._run(ch, b.pi, b.si + 1, b.attrs, b.wset, cls, None, False)
        return n

    def _leaf_for(self, ch: _Chain, cls: _Class, attrs: PathAttributes, key: bytes) -> _Leaf:
        if not self.cache:
            return self._run(ch, 0, 0, attrs, None, cls, key, False)  # type: ignore[return-value]
        node = self._root(ch, cls, attrs)
        while node.__class__ is _Branch:
            node = self._child(ch, cls, node, node.test(key))  # type: ignore[union-attr]
        return node  # type: ignore[return-value]

    def _batch(self, ch: _Chain, cls: _Class, attrs: PathAttributes, keys: list[bytes]) -> list[tuple[PathAttributes, int | None, list[bytes]]]:
        """Accepted keys grouped by (resulting attrs, set-weight or None)."""
        if not keys:
            return []
        if not self.cache:
            groups: dict[tuple, list[bytes]] = {}
            run = self._run
            for k in keys:
                leaf = run(ch, 0, 0, attrs, None, cls, k, False)
                if leaf.accepted:  # type: ignore[union-attr]
                    g = (leaf.attrs, leaf.weight)
                    lst = groups.get(g)
                    if lst is None:
                        groups[g] = [k]
                    else:
                        lst.append(k)
            return [(a, w, ks) for (a, w), ks in groups.items()]
        node = self._root(ch, cls, attrs)
        if node.__class__ is _Leaf:
            return [(node.attrs, node.weight, keys)] if node.accepted else []  # type: ignore[union-attr,list-item]
        out: dict[tuple, list[bytes]] = {}
        stack: list[tuple[Any, list[bytes]]] = [(node, keys)]
        while stack:
            n, ks = stack.pop()
            if n.__class__ is _Leaf:
                if n.accepted:
                    g = (n.attrs, n.weight)
                    lst = out.get(g)
                    if lst is None:
                        out[g] = ks
                    else:
                        lst.extend(ks)
                continue
            flags = list(map(n.test, ks))
            yes = list(compress(ks, flags))
            if yes:
                stack.append((self._child(ch, cls, n, True), yes))
            if len(yes) < len(ks):
                no = yes and list(compress(ks, map(operator.not_, flags))) or ks
                stack.append((self._child(ch, cls, n, False), no))
        return [(a, w, ks) for (a, w), ks in out.items()]

    # -- public API -------------------------------------------------------------------
    def evaluate(self, chain: Sequence[str], route: RouteContext, default_accept: bool = True,
                 trace: bool = False) -> PolicyResult:
        """Run ``route`` through the policies of ``chain`` in order; ``default_accept`` decides
        a route no statement accepted or rejected. ``trace`` adds one line per statement."""
        if trace:
            ex = self.explain(chain, route, default_accept)
            lines = [_trace_line(s) for s in ex["steps"]]
            lines.append(f"decision: {ex['decision']} ({ex['decided-by']})")
            r = self.evaluate(chain, route, default_accept)
            return PolicyResult(r.accepted, r.attrs, r.weight, lines)
        ch = self.chain(chain, default_accept)
        cls, attrs = self._context(route)
        leaf = self._leaf_for(ch, cls, attrs, route.key)
        if not leaf.accepted:
            return PolicyResult(False, None, None)
        return PolicyResult(True, leaf.attrs, leaf.weight if leaf.weight is not None else route.weight)

    def evaluate_batch(
        self, chain: Sequence[str], family: AfiSafi, attrs: PathAttributes, keys: list[bytes], *,
        neighbor: bytes = b"", protocol: str = "bgp", route_type: str = "external",
        local_as: int = 0, weight: int | None = None, default_accept: bool = True,
    ) -> list[tuple[PathAttributes, int | None, list[bytes]]]:
        """Many prefixes under one attribute set: [(attrs, weight, accepted keys)]."""
        ch = self.chain(chain, default_accept)
        cls = self.route_class(family, neighbor, protocol, route_type, local_as)
        groups = self._batch(ch, cls, attrs, keys)
        if weight is None:
            return groups
        return [(a, w if w is not None else weight, ks) for a, w, ks in groups]

    def explain(self, chain: Sequence[str], route: RouteContext, default_accept: bool = True) -> dict[str, Any]:
        """Evaluate without installing anything and say why: every statement visited, each
        condition with its result (all are evaluated, for the display), the actions applied,
        the decision and the resulting attributes (``test policy``)."""
        ch = self.chain(chain, default_accept)
        cls, attrs = self._context(route)
        steps: list[dict[str, Any]] = []
        wset: int | None = None
        decision: bool | None = None
        decided_by = "default"
        for pi, stmts in enumerate(ch.policies):
            pname = ch.names[pi]
            ended = False
            for st in stmts:
                conds = []
                matched = True
                for label, f in zip(st.labels, st.conds, strict=True):
                    ok = bool(f(attrs, cls))
                    conds.append({"condition": label, "matched": ok})
                    matched = matched and ok
                if st.prefix_tests is not None:
                    ok = bool(st.prefix_tests.get(cls.afi, _never)(route.key))
                    conds.append({"condition": st.prefix_label, "matched": ok})
                    matched = matched and ok
                step: dict[str, Any] = {"policy": pname, "statement": st.name,
                                        "conditions": conds, "matched": matched}
                steps.append(step)
                if not matched:
                    step["result"] = "no match"
                    continue
                step["result"] = st.result_name
                if st.result == REJECT:
                    decision, decided_by = False, f"{pname}/{st.name}"
                    break
                step["actions"] = list(st.action_labels)
                if st.apply is not None:
                    attrs = self._apply(st, attrs, cls.local_as)
                if st.weight is not None:
                    wset = st.weight
                if st.result == ACCEPT:
                    decision, decided_by = True, f"{pname}/{st.name}"
                    break
                if st.result == NEXT_POLICY:
                    ended = True
                    break
            if decision is not None:
                break
            steps.append({"policy": pname, "end": "next-policy" if ended else "end of policy"})
        if decision is None:
            decision = ch.default_accept
        weight = (wset if wset is not None else route.weight) if decision else None
        return {
            "chain": list(ch.names),
            "prefix": route.prefix,
            "protocol": route.protocol,
            "route-type": route.route_type,
            "neighbor": str(ipaddress.ip_address(route.neighbor)) if route.neighbor else None,
            "input-attributes": (route.attrs.to_dict() if route.attrs is not None else None),
            "steps": steps,
            "decision": "accept-route" if decision else "reject-route",
            "decided-by": decided_by,
            "attributes": _attrs_dict(attrs) if decision else None,
            "weight": weight,
        }


def _attrs_dict(attrs: PathAttributes) -> dict[str, Any]:
    selfnh = attrs.next_hop == NEXT_HOP_SELF
    d = (attrs.replace(next_hop=b"") if selfnh else attrs).to_dict()
    if selfnh:
        d["next-hop"] = "self"
    if attrs.ext_communities:
        d["ext-communities"] = [ext_community_text(c) for c in attrs.ext_communities]
    return d


def _trace_line(step: dict[str, Any]) -> str:
    if "end" in step:
        return f"{step['policy']}: {step['end']}"
    failed = [c["condition"] for c in step["conditions"] if not c["matched"]]
    head = f"{step['policy']}/{step['statement']}: "
    if failed:
        return head + "no match (" + "; ".join(failed) + ")"
    acts = step.get("actions") or []
    return head + "match -> " + step["result"] + (" [" + "; ".join(acts) + "]" if acts else "")
