"""eBGP between FCR and GoBGP: `gobgp global rib add/del` and FCR's networks."""

from __future__ import annotations

import pytest

from tests.interop.common import FCR_AS, FCR_ID, FCR_NET4, wait_fcr_gone, wait_fcr_routes
from tests.topotest import fcr as fcrcfg
from tests.topotest import wait_until
from tests.topotest.fcr import FcrRouter
from tests.topotest.gobgp import GobgpRouter, path_as_path, path_next_hop

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

GOBGP_AS = 65003


def test_gobgp_ebgp(topology, workdir):
    h_fcr, h_gob = topology.add_host("fcr"), topology.add_host("gobgp")
    topology.link(h_fcr, h_gob, ["10.0.4.1/24"], ["10.0.4.2/24"])
    gob = GobgpRouter(h_gob, workdir / "gobgp", GobgpRouter.render(
        GOBGP_AS, "10.0.4.2", [{"address": "10.0.4.1", "peer_as": FCR_AS, "connect_retry": 2}]))
    fcr = FcrRouter(h_fcr, workdir / "fcr", fcrcfg.config(
        FCR_AS, FCR_ID, [fcrcfg.neighbor("10.0.4.2", GOBGP_AS, connect_retry=2)], [FCR_NET4]))
    fcr.wait_established("10.0.4.2", 30)
    gob.wait_established("10.0.4.1", 10)

    prefixes = ["10.60.1.0/24", "10.60.2.0/24"]
    for p in prefixes:
        gob.add_route(p, "nexthop", "10.0.4.2")
    rib = wait_fcr_routes(fcr, prefixes)
    for p in prefixes:
        assert rib[p]["best"]["as-path"] == str(GOBGP_AS), rib[p]
        assert rib[p]["best"]["next-hop"] == "10.0.4.2", rib[p]

    grib = wait_until(lambda: (r := gob.rib("ipv4")) and FCR_NET4 in r and r, 15,
                      message="FCR network in GoBGP")
    path = grib[FCR_NET4][0]
    assert path_as_path(path) == [FCR_AS], path
    assert path_next_hop(path) == "10.0.4.1", path

    gob.del_route(prefixes[0])
    wait_fcr_gone(fcr, prefixes[0])
    assert prefixes[1] in fcr.rib("ipv4-unicast")
    assert fcr.neighbor_state("10.0.4.2") == "Established"
