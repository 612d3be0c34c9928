"""Export rules: split horizon, communities, eBGP/iBGP rewriting, route reflection, cache."""

from __future__ import annotations

import pytest

from appliance.bgp.family import IPV4_UNICAST, IPV6_UNICAST
from appliance.bgp.packet.constants import AsPathSegment
from appliance.bgp.packet.pathattrs import PathAttributes
from appliance.bgp.rib import export as export_mod
from appliance.bgp.rib.export import (
    NO_ADVERTISE,
    NO_EXPORT,
    NO_EXPORT_SUBCONFED,
    ExportCache,
    ExportContext,
    export_attrs,
    prepend_as,
)
from appliance.bgp.rib.path import Path, PathInterner, PeerSource, local_source

SEQ, SET = AsPathSegment.AS_SEQUENCE, AsPathSegment.AS_SET
CSEQ = AsPathSegment.AS_CONFED_SEQUENCE
LOCAL_AS = 65000
ME_V4 = bytes([192, 0, 2, 1])
ME_V6 = bytes.fromhex("20010db8000000000000000000000001")
CLUSTER = bytes([1, 1, 1, 1])
NH = bytes([203, 0, 113, 9])


def peer(n: int, *, ebgp: bool, client: bool = False) -> PeerSource:
    return PeerSource(f"10.0.0.{n}", bytes([10, 0, 0, n]), n, 64500 + n if ebgp else LOCAL_AS,
                      LOCAL_AS, ebgp, client)


EBGP_SRC = peer(1, ebgp=True)
IBGP_CLIENT = peer(2, ebgp=False, client=True)
IBGP_NONCLIENT = peer(3, ebgp=False)
LOCAL = local_source(0x01010101, LOCAL_AS)


def ctx(to: PeerSource, **kw) -> ExportContext:
    return ExportContext(LOCAL_AS, 0x01010101, CLUSTER, to, local_address_v4=ME_V4,
                         local_address_v6=ME_V6, rr_client=to.rr_client, **kw)


def path(source: PeerSource, **kw) -> Path:
    kw.setdefault("as_path", ((SEQ, (64501, 7)),))
    kw.setdefault("next_hop", NH)
    return Path(source, PathAttributes(**kw))


TO_EBGP = ctx(peer(10, ebgp=True))
TO_IBGP = ctx(peer(11, ebgp=False))
TO_CLIENT = ctx(peer(12, ebgp=False, client=True))


def test_split_horizon():
    p = path(EBGP_SRC)
    assert export_attrs(p, ctx(EBGP_SRC)) is None
    assert export_attrs(p, TO_EBGP) is not None


@pytest.mark.parametrize("to", [TO_EBGP, TO_IBGP, TO_CLIENT])
def test_no_advertise_goes_nowhere(to):
    assert export_attrs(path(EBGP_SRC, communities=(NO_ADVERTISE,)), to) is None


@pytest.mark.parametrize("community", [NO_EXPORT, NO_EXPORT_SUBCONFED])
def test_no_export_stays_inside_the_as(community):
    p = path(EBGP_SRC, communities=(100 << 16 | 1, community))
    assert export_attrs(p, TO_EBGP) is None
    out = export_attrs(p, TO_IBGP)
    assert out is not None and out.communities == p.attrs.communities


def test_to_ebgp_rewrites():
    p = path(IBGP_NONCLIENT, med=10, local_pref=300, originator_id=b"\x09\x09\x09\x09",
             cluster_list=(b"\x02\x02\x02\x02",))
    out = export_attrs(p, TO_EBGP)
    assert out.as_path == ((SEQ, (LOCAL_AS, 64501, 7)),)
    assert out.local_pref is None
    assert out.med is None                     # MED from another AS goes no further
    assert out.originator_id is None and out.cluster_list == ()
    assert out.next_hop == ME_V4


def test_to_ebgp_keeps_med_of_local_routes_and_sets_v6_next_hop():
    p = path(LOCAL, as_path=(), med=42, next_hop=b"")
    out = export_attrs(p, TO_EBGP, IPV4_UNICAST)
    assert out.med == 42 and out.as_path == ((SEQ, (LOCAL_AS,)),) and out.next_hop == ME_V4
    v6 = path(EBGP_SRC, next_hop=bytes(16))
    assert export_attrs(v6, TO_EBGP, IPV6_UNICAST).next_hop == ME_V6
    assert export_attrs(v6, TO_EBGP).next_hop == ME_V6  # inferred from the next hop length


def test_prepend_as_segments():
    assert prepend_as((), 1) == ((SEQ, (1,)),)
    assert prepend_as(((SET, (2, 3)),), 1) == ((SEQ, (1,)), (SET, (2, 3)))
    full = ((SEQ, tuple(range(100, 355))),)
    assert prepend_as(full, 1) == ((SEQ, (1,)),) + full
    assert prepend_as(((SEQ, tuple(range(254))),), 1)[0][1][:2] == (1, 0)
    assert prepend_as(((CSEQ, (65001,)), (SEQ, (5,))), 1) == ((SEQ, (1, 5)),)


def test_to_ibgp_from_ebgp():
    out = export_attrs(path(EBGP_SRC), TO_IBGP)
    assert out.local_pref == 100 and out.next_hop == NH and out.as_path == ((SEQ, (64501, 7)),)
    out = export_attrs(path(EBGP_SRC, local_pref=250, med=7), TO_IBGP)
    assert out.local_pref == 250 and out.med == 7
    assert export_attrs(path(EBGP_SRC), ctx(peer(11, ebgp=False), next_hop_self=True)).next_hop == ME_V4


def test_to_ibgp_local_route_gets_our_next_hop():
    out = export_attrs(path(LOCAL, as_path=(), next_hop=b""), TO_IBGP, IPV4_UNICAST)
    assert out.next_hop == ME_V4 and out.local_pref == 100 and out.originator_id is None


def test_ibgp_learned_not_to_ibgp_without_reflection():
    assert export_attrs(path(IBGP_NONCLIENT, local_pref=100), TO_IBGP) is None


def test_reflection_non_client_to_client():
    p = path(IBGP_NONCLIENT, local_pref=100, cluster_list=(b"\x07\x07\x07\x07",))
    out = export_attrs(p, TO_CLIENT)
    assert out.originator_id == (3).to_bytes(4, "big")   # the source's router id
    assert out.cluster_list == (CLUSTER, b"\x07\x07\x07\x07")
    assert out.next_hop == NH and out.local_pref == 100
    # RFC 4456 §10: next-hop-self does not touch reflected routes
    nhs = ctx(peer(12, ebgp=False, client=True), next_hop_self=True)
    assert export_attrs(p, nhs).next_hop == NH


def test_reflection_client_to_all():
    p = path(IBGP_CLIENT, local_pref=100, originator_id=b"\x05\x05\x05\x05")
    for to in (TO_IBGP, TO_CLIENT):
        out = export_attrs(p, to)
        assert out.originator_id == b"\x05\x05\x05\x05"  # kept when present
        assert out.cluster_list == (CLUSTER,)
    # never reflected back to its originator
    originator = PeerSource("10.0.0.5", bytes([10, 0, 0, 5]), 0x05050505, LOCAL_AS, LOCAL_AS, False)
    assert export_attrs(p, ctx(originator)) is None


def test_unchanged_attrs_are_not_copied():
    p = path(EBGP_SRC, local_pref=100)
    assert export_attrs(p, TO_IBGP) is p.attrs


def test_cache_transforms_once_per_attribute_set(monkeypatch):
    calls = []
    real = export_mod.export_attrs

    def counting(p, c, f=None):
        calls.append(p)
        return real(p, c, f)

    monkeypatch.setattr(export_mod, "export_attrs", counting)
    interner = PathInterner()
    cache = ExportCache(TO_EBGP)
    sets = [PathAttributes(as_path=((SEQ, (64501, i)),), next_hop=NH) for i in range(3)]
    other = peer(4, ebgp=True)
    results = set()
    for _ in range(100):
        for a in sets:
            results.add(id(cache.export(interner.get(EBGP_SRC, a), IPV4_UNICAST)))
            # a second eBGP source of the same kind shares the transform
            cache.export(interner.get(other, a), IPV4_UNICAST)
    assert len(calls) == 3 + 3  # router_id differs between the two sources -> own class
    assert len(results) == 3
    # equal results are one object
    x = cache.export(interner.get(EBGP_SRC, sets[0]), IPV4_UNICAST)
    y = cache.export(interner.get(other, sets[0]), IPV4_UNICAST)
    assert x is y
    cache.set_context(TO_EBGP)          # same context keeps the cache
    assert len(cache) == 6
    cache.set_context(TO_IBGP)          # another one drops it
    assert len(cache) == 0
