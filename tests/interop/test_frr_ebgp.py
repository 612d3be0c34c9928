"""eBGP between FCR and FRR, over IPv4 and over IPv6 transport."""

from __future__ import annotations

import pytest

from tests.interop.common import (
    FCR_AS,
    FCR_ID,
    FCR_NET4,
    FCR_NET6,
    wait_fcr_gone,
    wait_fcr_routes,
)
from tests.topotest import fcr as fcrcfg
from tests.topotest import wait_until
from tests.topotest.fcr import FcrRouter
from tests.topotest.frr import FrrRouter

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

FRR_AS = 65002
CASES = {
    "ipv4": dict(
        fcr_addr="10.0.1.1", frr_addr="10.0.1.2", afi="ipv4", family="ipv4-unicast",
        frr_nets=["10.10.1.0/24", "10.10.2.0/24", "10.10.3.0/24"], fcr_net=FCR_NET4,
    ),
    "ipv6": dict(
        fcr_addr="2001:db8:1::1", frr_addr="2001:db8:1::2", afi="ipv6", family="ipv6-unicast",
        frr_nets=["2001:db8:10:1::/64", "2001:db8:10:2::/64", "2001:db8:10:3::/64"],
        fcr_net=FCR_NET6,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_frr_ebgp(topology, workdir, case):
    c = CASES[case]
    h_fcr, h_frr = topology.add_host("fcr"), topology.add_host("frr")
    topology.link(h_fcr, h_frr, ["10.0.1.1/24", "2001:db8:1::1/64"],
                  ["10.0.1.2/24", "2001:db8:1::2/64"])
    frr = FrrRouter(h_frr, workdir / "frr", FrrRouter.render_bgp(
        FRR_AS, "10.0.1.2",
        [{"address": c["fcr_addr"], "remote_as": FCR_AS, "connect_retry": 2, "afis": [c["afi"]]}],
        {c["afi"]: c["frr_nets"]},
    ))
    fcr = FcrRouter(h_fcr, workdir / "fcr", fcrcfg.config(
        FCR_AS, FCR_ID,
        [fcrcfg.neighbor(c["frr_addr"], FRR_AS, afis=[c["family"]], connect_retry=2)],
        [c["fcr_net"]],
    ))
    fcr.wait_established(c["frr_addr"], 30)
    frr.wait_established(c["fcr_addr"], 10)

    # FRR -> FCR: AS path and next hop
    rib = wait_fcr_routes(fcr, c["frr_nets"])
    for prefix in c["frr_nets"]:
        best = rib[prefix]["best"]
        assert best["as-path"] == str(FRR_AS), best
        assert best["next-hop"] == c["frr_addr"], best
        assert best["source"] == c["frr_addr"], best
        assert best["origin"].lower() in ("igp", "i"), best

    # FCR -> FRR
    path = wait_until(lambda: frr.best_path(c["fcr_net"], c["afi"]), 15,
                      message=f"{c['fcr_net']} in FRR")
    assert path["aspath"]["string"] == str(FCR_AS), path
    nexthops = [nh["ip"] for nh in path["nexthops"]]
    assert c["fcr_addr"] in nexthops, path

    before = fcr.neighbor(c["frr_addr"])
    assert before["messages"]["received"]["update"] >= 1, before
    assert before["messages"]["sent"]["update"] >= 1, before
    assert before["messages"]["received"]["open"] == 1, before
    assert before["prefixes-received"] == 3, before

    # withdrawal
    frr.configure(f"router bgp {FRR_AS}", f"address-family {c['afi']} unicast",
                  f"no network {c['frr_nets'][1]}")
    wait_fcr_gone(fcr, c["frr_nets"][1])
    assert set(c["frr_nets"]) - {c["frr_nets"][1]} <= fcr.rib(c["family"]).keys()
    after = fcr.neighbor(c["frr_addr"])
    assert after["messages"]["received"]["update"] > before["messages"]["received"]["update"]
    assert after["messages"]["received"]["total"] > before["messages"]["received"]["total"]
    assert after["prefixes-received"] == 2, after
    assert after["state"] == "Established"
