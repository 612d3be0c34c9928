"""iBGP between FCR and BIRD (same AS): routes both ways, LOCAL_PREF, next hop unchanged."""

from __future__ import annotations

import pytest

from tests.interop.common import FCR_AS, FCR_ID, FCR_NET4, wait_fcr_routes
from tests.topotest import fcr as fcrcfg
from tests.topotest import wait_until
from tests.topotest.bird import BirdRouter
from tests.topotest.fcr import FcrRouter

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

BIRD_CONF = f"""
router id 10.0.3.2;
protocol device {{ }}
protocol static s4 {{
  ipv4;
  route 10.20.1.0/24 via 10.0.3.50;
  route 10.20.2.0/24 via 10.0.3.51;
}}
protocol bgp fcr {{
  local 10.0.3.2 as {FCR_AS};
  neighbor 10.0.3.1 as {FCR_AS};
  connect retry time 2;
  ipv4 {{
    import all;
    export filter {{ if source = RTS_STATIC then {{ bgp_local_pref = 250; accept; }} reject; }};
  }};
}}
"""


def test_bird_ibgp(topology, workdir):
    h_fcr, h_bird = topology.add_host("fcr"), topology.add_host("bird")
    topology.link(h_fcr, h_bird, ["10.0.3.1/24"], ["10.0.3.2/24"])
    bird = BirdRouter(h_bird, workdir / "bird", BIRD_CONF)
    fcr = FcrRouter(h_fcr, workdir / "fcr", fcrcfg.config(
        FCR_AS, FCR_ID, [fcrcfg.neighbor("10.0.3.2", FCR_AS, connect_retry=2)], [FCR_NET4],
    ))
    fcr.wait_established("10.0.3.2", 30)
    bird.wait_established("fcr", 10)

    # BIRD -> FCR: empty AS path (iBGP), LOCAL_PREF as set, BIRD's next hops kept
    rib = wait_fcr_routes(fcr, ["10.20.1.0/24", "10.20.2.0/24"])
    for prefix, nh in (("10.20.1.0/24", "10.0.3.50"), ("10.20.2.0/24", "10.0.3.51")):
        best = rib[prefix]["best"]
        assert best["as-path"] == "", best
        assert int(best["local-pref"]) == 250, best
        assert best["next-hop"] == nh, best
        assert best["source"] == "10.0.3.2", best

    # FCR -> BIRD: LOCAL_PREF sent on iBGP, AS path empty, next hop is FCR's address
    routes = wait_until(lambda: (r := bird.routes("master4", "fcr")) and FCR_NET4 in r and r, 15,
                        message="FCR network in BIRD")
    attrs = routes[FCR_NET4][0]["attrs"]
    assert attrs["BGP.as_path"] == "", attrs
    assert attrs["BGP.local_pref"] == "100", attrs
    assert attrs["BGP.next_hop"] == "10.0.3.1", attrs
    # FCR does not reflect BIRD's own routes back to a non-client iBGP peer
    assert bird.protocol("fcr")["channels"]["ipv4"]["imported"] == 1
