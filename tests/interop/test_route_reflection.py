"""FCR as route reflector for two FRR iBGP clients (RFC 4456)."""

from __future__ import annotations

import pytest

from tests.interop.common import FCR_AS, FCR_ID, wait_fcr_routes
from tests.topotest import fcr as fcrcfg
from tests.topotest import wait_until
from tests.topotest.fcr import FcrRouter
from tests.topotest.frr import FrrRouter

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

CLUSTER_ID = "10.255.255.1"
A_ID, B_ID = "10.1.1.1", "10.2.2.2"


def client(host, workdir, router_id, rr_addr, networks=()):
    return FrrRouter(host, workdir, FrrRouter.render_bgp(
        FCR_AS, router_id,
        [{"address": rr_addr, "remote_as": FCR_AS, "connect_retry": 2}],
        {"ipv4": list(networks)},
    ))


def test_route_reflection(topology, workdir):
    h_rr, h_a, h_b = topology.add_host("rr"), topology.add_host("a"), topology.add_host("b")
    topology.link(h_rr, h_a, ["10.0.1.1/24"], ["10.0.1.2/24"])
    topology.link(h_rr, h_b, ["10.0.2.1/24"], ["10.0.2.2/24"])
    a = client(h_a, workdir / "a", A_ID, "10.0.1.1", ["10.70.1.0/24"])
    b = client(h_b, workdir / "b", B_ID, "10.0.2.1", ["10.70.2.0/24"])
    fcr = FcrRouter(h_rr, workdir / "fcr", fcrcfg.config(
        FCR_AS, FCR_ID,
        [fcrcfg.neighbor("10.0.1.2", FCR_AS, rr_client=True, connect_retry=2),
         fcrcfg.neighbor("10.0.2.2", FCR_AS, rr_client=True, connect_retry=2)],
        cluster_id=CLUSTER_ID,
    ))
    fcr.wait_established("10.0.1.2", 30)
    fcr.wait_established("10.0.2.2", 30)
    wait_fcr_routes(fcr, ["10.70.1.0/24", "10.70.2.0/24"])

    for dst, prefix, origin_id, nh in ((b, "10.70.1.0/24", A_ID, "10.0.1.2"),
                                       (a, "10.70.2.0/24", B_ID, "10.0.2.2")):
        # the client's next hop is not reachable from the other client, so FRR may mark the
        # path invalid; it still shows it with all attributes
        route = wait_until(lambda d=dst, p=prefix: d.route(p), 15, message=f"{prefix} reflected")
        path = route["paths"][0]
        assert path["originatorId"] == origin_id, path
        assert path["clusterList"]["list"] == [CLUSTER_ID], path
        assert path["aspath"]["string"] in ("", "Local"), path
        assert path["nexthops"][0]["ip"] == nh, path
        assert path["peer"]["routerId"] == FCR_ID, path
