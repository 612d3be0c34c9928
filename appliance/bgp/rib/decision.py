"""The BGP decision process: RFC 4271 §9.1.2.2 with the RFC 4456 §9 tie-breaks.

Steps, in order (the first that differs decides):
  1. highest LOCAL_PREF (absent = 100)
  2. locally originated over learned
  3. shortest AS_PATH (AS_SET counts 1, confederation segments 0)
  4. lowest ORIGIN (IGP < EGP < INCOMPLETE)
  5. lowest MED (absent = 0), only between paths from the same neighbouring AS
     unless ``always_compare_med``
  6. eBGP-learned over iBGP-learned
  7. lowest IGP cost to the next hop (hook; 0 until the RIB/FIB resolver exists)
  8. lowest BGP identifier (ORIGINATOR_ID when present, RFC 4456 §9)
  9. shortest CLUSTER_LIST (RFC 4456 §9)
 10. lowest peer address

Step 5 makes the pairwise relation non-transitive, so the selection is defined
precisely:
  - always_compare_med: every step is a total order; order of candidates is irrelevant.
  - deterministic_med: candidates are grouped by neighbouring AS, each group's
    best is chosen with MED, then the group winners are compared without MED.
    This is exactly the elimination procedure the RFC describes, so the result
    does not depend on the order of the candidates.
  - neither: candidates are compared pairwise in the order given (the Loc-RIB
    keeps them in arrival order, oldest first), as most implementations do by
    default; the result can depend on that order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .path import Path

DEFAULT_LOCAL_PREF = 100

LOCAL_PREF = "local-preference"
LOCAL_ORIGIN = "locally-originated"
AS_PATH_LEN = "as-path-length"
ORIGIN = "origin"
MED = "med"
EBGP = "ebgp-over-ibgp"
IGP_COST = "igp-cost"
ROUTER_ID = "router-id"
CLUSTER_LIST_LEN = "cluster-list-length"
PEER_ADDRESS = "peer-address"
EQUAL = "equal"


@dataclass(frozen=True, slots=True)
class DecisionOptions:
    always_compare_med: bool = False
    deterministic_med: bool = False
    # next hop -> IGP metric; None means every next hop costs 0
    igp_cost: Callable[[bytes], int] | None = None


DEFAULT_OPTIONS = DecisionOptions()


def local_pref(path: Path) -> int:
    lp = path.attrs.local_pref
    return DEFAULT_LOCAL_PREF if lp is None else lp


def med(path: Path) -> int:
    m = path.attrs.med
    return 0 if m is None else m


def bgp_identifier(path: Path) -> int:
    oid = path.attrs.originator_id
    return path.source.router_id if oid is None else int.from_bytes(oid, "big")


def compare(a: Path, b: Path, opts: DecisionOptions, *, use_med: bool = True) -> tuple[int, str]:
    """(-1, step) if ``a`` is preferred, (1, step) if ``b`` is, (0, "equal") otherwise."""
    if a is b:
        return 0, EQUAL
    aa, ba = a.attrs, b.attrs
    x, y = local_pref(a), local_pref(b)
    if x != y:
        return (-1 if x > y else 1), LOCAL_PREF
    x, y = a.source.is_local, b.source.is_local
    if x != y:
        return (-1 if x else 1), LOCAL_ORIGIN
    x, y = aa.as_path_length, ba.as_path_length
    if x != y:
        return (-1 if x < y else 1), AS_PATH_LEN
    x, y = aa.origin, ba.origin
    if x != y:
        return (-1 if x < y else 1), ORIGIN
    if use_med and (opts.always_compare_med or aa.first_as == ba.first_as):
        x, y = med(a), med(b)
        if x != y:
            return (-1 if x < y else 1), MED
    x, y = a.source.ebgp, b.source.ebgp
    if x != y:
        return (-1 if x else 1), EBGP
    if opts.igp_cost is not None:
        x, y = opts.igp_cost(aa.next_hop), opts.igp_cost(ba.next_hop)
        if x != y:
            return (-1 if x < y else 1), IGP_COST
    x, y = bgp_identifier(a), bgp_identifier(b)
    if x != y:
        return (-1 if x < y else 1), ROUTER_ID
    x, y = len(aa.cluster_list), len(ba.cluster_list)
    if x != y:
        return (-1 if x < y else 1), CLUSTER_LIST_LEN
    x, y = a.source.address, b.source.address
    if x != y:
        return (-1 if x < y else 1), PEER_ADDRESS
    return 0, EQUAL


def _pairwise(paths: Sequence[Path], opts: DecisionOptions, use_med: bool) -> Path:
    best = paths[0]
    for p in paths[1:]:
        if compare(p, best, opts, use_med=use_med)[0] < 0:
            best = p
    return best


def best_path(paths: Sequence[Path], opts: DecisionOptions = DEFAULT_OPTIONS) -> Path | None:
    """The preferred path among ``paths`` (None if there are none)."""
    n = len(paths)
    if n <= 1:
        return paths[0] if n else None
    if opts.deterministic_med and not opts.always_compare_med:
        groups: dict[int | None, list[Path]] = {}
        for p in paths:
            groups.setdefault(p.attrs.first_as, []).append(p)
        if len(groups) > 1:
            winners = [_pairwise(g, opts, True) for g in groups.values()]
            return _pairwise(winners, opts, False)
    return _pairwise(paths, opts, True)


def rank(paths: Sequence[Path], opts: DecisionOptions = DEFAULT_OPTIONS) -> list[Path]:
    """All ``paths``, best first: the best, then the best of the rest, and so on."""
    rest = list(paths)
    out: list[Path] = []
    while rest:
        b = best_path(rest, opts)
        assert b is not None
        out.append(b)
        rest.remove(b)
    return out


def _value(step: str, p: Path, opts: DecisionOptions) -> object:
    a = p.attrs
    if step == LOCAL_PREF:
        return local_pref(p)
    if step == LOCAL_ORIGIN:
        return p.source.is_local
    if step == AS_PATH_LEN:
        return a.as_path_length
    if step == ORIGIN:
        return ("igp", "egp", "incomplete")[a.origin] if a.origin in (0, 1, 2) else a.origin
    if step == MED:
        return med(p)
    if step == EBGP:
        return "ebgp" if p.source.ebgp else "ibgp"
    if step == IGP_COST:
        return opts.igp_cost(a.next_hop) if opts.igp_cost else 0
    if step == ROUTER_ID:
        return bgp_identifier(p)
    if step == CLUSTER_LIST_LEN:
        return len(a.cluster_list)
    if step == PEER_ADDRESS:
        return p.source.address.hex()
    return None


def explain(a: Path, b: Path, opts: DecisionOptions = DEFAULT_OPTIONS) -> str:
    """Name the step that decides between ``a`` and ``b``, e.g. for `show bgp route`.

    MED is compared as in a pairwise comparison (same neighbouring AS, or always).
    """
    result, step = compare(a, b, opts)
    if result == 0:
        return "equal: no step prefers either path"
    winner = "first" if result < 0 else "second"
    return f"{step}: {_value(step, a, opts)} vs {_value(step, b, opts)} ({winner} path preferred)"
