"""Decision process: every tie-break step, MED semantics, rank and explain."""

from __future__ import annotations

import itertools

import pytest

from appliance.bgp.packet.constants import AsPathSegment
from appliance.bgp.packet.pathattrs import PathAttributes
from appliance.bgp.rib import decision as d
from appliance.bgp.rib.decision import DecisionOptions, best_path, explain, rank
from appliance.bgp.rib.path import Path, PeerSource

SEQ, SET = AsPathSegment.AS_SEQUENCE, AsPathSegment.AS_SET
CSEQ = AsPathSegment.AS_CONFED_SEQUENCE


def src(n: int, *, ebgp: bool = False, rid: int | None = None, local: bool = False,
        addr: int | None = None) -> PeerSource:
    a = (addr if addr is not None else n).to_bytes(4, "big")
    return PeerSource("local" if local else f"10.0.0.{n}", a, rid if rid is not None else n,
                      65000 if not ebgp else 64000 + n, 65000, ebgp)


def mk(*, lp=100, local=False, aslen=1, origin=0, med=0, first_as=100, ebgp=False, nh=1,
       rid=1, originator=None, cluster=0, addr=1, n=1) -> Path:
    s = src(n, ebgp=ebgp, rid=rid, local=local, addr=addr)
    attrs = PathAttributes(
        origin=origin,
        as_path=((SEQ, (first_as,) + (7,) * (aslen - 1)),) if aslen else (),
        next_hop=nh.to_bytes(4, "big"),
        med=med,
        local_pref=lp,
        originator_id=originator.to_bytes(4, "big") if originator is not None else None,
        cluster_list=tuple(bytes(4) for _ in range(cluster)),
    )
    return Path(s, attrs)


IGP = DecisionOptions(igp_cost=lambda nh: int.from_bytes(nh, "big"))

# For each step: (better value, worse value) of the knob that step reads. The winner
# gets the better value at that step and the worse value at every later step, the
# loser the reverse, so skipping or misordering the step flips the result.
STEPS = [
    (d.LOCAL_PREF, "lp", 200, 100),
    (d.LOCAL_ORIGIN, "local", True, False),
    (d.AS_PATH_LEN, "aslen", 1, 3),
    (d.ORIGIN, "origin", 0, 2),
    (d.MED, "med", 10, 50),
    (d.EBGP, "ebgp", True, False),
    (d.IGP_COST, "nh", 1, 5),
    (d.ROUTER_ID, "rid", 1, 9),
    (d.CLUSTER_LIST_LEN, "cluster", 0, 2),
    (d.PEER_ADDRESS, "addr", 1, 9),
]


@pytest.mark.parametrize("i", range(len(STEPS)), ids=[s[0] for s in STEPS])
def test_each_step_decides(i):
    step, knob, good, bad = STEPS[i]
    win_kw = {knob: good, "n": 1}
    lose_kw = {knob: bad, "n": 2}
    for _, k, g, b in STEPS[i + 1 :]:
        win_kw[k] = b
        lose_kw[k] = g
    win, lose = mk(**win_kw), mk(**lose_kw)
    assert best_path([win, lose], IGP) is win
    assert best_path([lose, win], IGP) is win
    assert d.compare(win, lose, IGP) == (-1, step)
    assert d.compare(lose, win, IGP) == (1, step)
    assert explain(win, lose, IGP).startswith(step + ":")
    assert "first path preferred" in explain(win, lose, IGP)


def test_missing_local_pref_is_100():
    assert best_path([mk(lp=None, n=1, rid=9), mk(lp=99, n=2, rid=1)]).attrs.local_pref is None
    assert best_path([mk(lp=None, n=1, rid=1), mk(lp=101, n=2, rid=9)]).attrs.local_pref == 101


def test_missing_med_is_zero():
    a, b = mk(med=None, n=1, rid=9), mk(med=5, n=2, rid=1)
    assert best_path([b, a]) is a


def test_as_set_counts_one_and_confed_zero():
    s1, s2 = src(1, rid=9), src(2, rid=1)
    with_set = Path(s1, PathAttributes(as_path=((SEQ, (1, 2)), (SET, (3, 4, 5)))))
    longer = Path(s2, PathAttributes(as_path=((SEQ, (1, 2, 3, 4)),)))
    assert best_path([longer, with_set]) is with_set
    confed = Path(s1, PathAttributes(as_path=((CSEQ, (65001, 65002, 65003)), (SEQ, (1,)))))
    plain = Path(s2, PathAttributes(as_path=((SEQ, (1, 2)),)))
    assert best_path([plain, confed]) is confed


def test_originator_id_replaces_router_id():
    a = mk(n=1, rid=1, originator=9)
    b = mk(n=2, rid=5)
    assert best_path([a, b]) is b
    assert d.compare(a, b, d.DEFAULT_OPTIONS)[1] == d.ROUTER_ID


def test_med_only_within_same_neighbour_as_unless_always_compare():
    a = mk(n=1, first_as=100, med=50, rid=1)
    b = mk(n=2, first_as=200, med=10, rid=9)
    assert best_path([a, b]) is a  # router id decides, MED not comparable
    assert best_path([b, a], DecisionOptions(always_compare_med=True)) is b


def test_ebgp_path_replaces_ibgp_by_ranking():
    ibgp = mk(n=1, ebgp=False, rid=1)
    ebgp = mk(n=2, ebgp=True, rid=9)
    assert best_path([ibgp, ebgp]) is ebgp


def test_empty_and_single():
    assert best_path([]) is None
    p = mk()
    assert best_path([p]) is p
    assert rank([]) == []


# The classic case: MED is compared only within an AS, so pairwise comparison is not
# transitive and the result depends on the order the candidates are looked at.
P1 = mk(n=1, first_as=100, med=200, rid=1)
P2 = mk(n=2, first_as=200, med=50, rid=2)
P3 = mk(n=3, first_as=100, med=100, rid=3)


def test_deterministic_med_is_order_independent():
    opts = DecisionOptions(deterministic_med=True)
    for perm in itertools.permutations([P1, P2, P3]):
        # AS 100 group: P3 (MED); then P3 vs P2 without MED: router id -> P2
        assert best_path(perm, opts) is P2


def test_without_deterministic_med_order_matters():
    results = {best_path(perm) for perm in itertools.permutations([P1, P2, P3])}
    assert best_path([P1, P2, P3]) is P3  # P1 beats P2 (router id), P3 beats P1 (MED)
    assert best_path([P3, P2, P1]) is P1  # P2 beats P3 (router id), P1 beats P2 (router id)
    assert best_path([P1, P3, P2]) is P2  # P3 beats P1 (MED), P2 beats P3 (router id)
    assert results == {P1, P2, P3}


def test_always_compare_med_is_global():
    opts = DecisionOptions(always_compare_med=True)
    for perm in itertools.permutations([P1, P2, P3]):
        assert best_path(perm, opts) is P2
    assert rank([P1, P2, P3], opts) == [P2, P3, P1]
    # deterministic-med adds nothing once MED is always compared
    both = DecisionOptions(always_compare_med=True, deterministic_med=True)
    assert rank([P3, P1, P2], both) == [P2, P3, P1]


def test_rank_starts_with_best():
    paths = [mk(n=i, rid=10 - i, lp=100 + (i % 3)) for i in range(1, 7)]
    ranked = rank(paths)
    assert ranked[0] is best_path(paths)
    assert sorted(map(id, ranked)) == sorted(map(id, paths))
    assert [p.attrs.local_pref for p in ranked] == [102, 102, 101, 101, 100, 100]


def test_explain_equal():
    p = mk()
    assert explain(p, p).startswith("equal")
    assert "second path preferred" in explain(mk(lp=50, n=1), mk(lp=60, n=2))
