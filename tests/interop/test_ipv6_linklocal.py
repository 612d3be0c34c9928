"""IPv6 eBGP with FRR: global plus link-local next hop (RFC 2545 §3) both ways."""

from __future__ import annotations

import json

import pytest

from tests.interop.common import FCR_AS, FCR_ID, FCR_NET6, wait_fcr_routes
from tests.topotest import fcr as fcrcfg
from tests.topotest import wait_until
from tests.topotest.fcr import FcrRouter
from tests.topotest.frr import FrrRouter

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

FRR_AS = 65002
FCR_ADDR, FRR_ADDR = "2001:db8:36::1", "2001:db8:36::2"
FRR_NET = "2001:db8:36:100::/64"


def link_local(host, ifname: str) -> str:
    out = host.run(["ip", "-j", "-6", "addr", "show", "dev", ifname, "scope", "link"]).stdout
    for iface in json.loads(out):
        for a in iface.get("addr_info", []):
            if a.get("scope") == "link":
                return a["local"]
    raise AssertionError(f"no link-local address on {host.name}/{ifname}: {out}")


def test_ipv6_link_local_next_hop(topology, workdir):
    h_fcr, h_frr = topology.add_host("fcr"), topology.add_host("frr")
    if_fcr, if_frr = topology.link(h_fcr, h_frr, [f"{FCR_ADDR}/64"], [f"{FRR_ADDR}/64"])
    ll_fcr = wait_until(lambda: link_local(h_fcr, if_fcr), 5, message="FCR link-local")
    ll_frr = wait_until(lambda: link_local(h_frr, if_frr), 5, message="FRR link-local")
    frr = FrrRouter(h_frr, workdir / "frr", FrrRouter.render_bgp(
        FRR_AS, "10.0.36.2",
        [{"address": FCR_ADDR, "remote_as": FCR_AS, "connect_retry": 1, "afis": ["ipv6"]}],
        {"ipv6": [FRR_NET]}))
    fcr = FcrRouter(h_fcr, workdir / "fcr", fcrcfg.config(
        FCR_AS, FCR_ID, [fcrcfg.neighbor(FRR_ADDR, FRR_AS, afis=["ipv6-unicast"], connect_retry=1)],
        [FCR_NET6]))
    fcr.wait_established(FRR_ADDR, 30)
    frr.wait_established(FCR_ADDR, 10)

    # FCR -> FRR: MP_REACH next hop of 32 octets, global + link-local
    path = wait_until(lambda: frr.best_path(FCR_NET6, "ipv6"), 15, message=f"{FCR_NET6} in FRR")
    hops = {nh.get("scope"): nh["ip"] for nh in path["nexthops"]}
    assert hops.get("global") == FCR_ADDR, path["nexthops"]
    assert hops.get("link-local") == ll_fcr, path["nexthops"]
    assert path["aspath"]["string"] == str(FCR_AS), path
    assert path.get("valid") is True, path

    # FRR -> FCR: both shown apart
    best = wait_fcr_routes(fcr, [FRR_NET])[FRR_NET]["best"]
    assert best["next-hop"] == FRR_ADDR, best
    assert best.get("next-hop-link-local") == ll_frr, best
