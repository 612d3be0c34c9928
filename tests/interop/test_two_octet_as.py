"""A 4-octet-AS FCR between a 2-octet-only BIRD, a 2-octet raw speaker and a 4-octet FRR.

RFC 6793: towards a peer without the four-octet-AS capability FCR sends AS_TRANS (23456) in
the OPEN and in AS_PATH, with the real path in AS4_PATH; from such a peer it rebuilds the
4-octet path from AS_PATH + AS4_PATH.

BIRD 2.0.12 with ``enable as4 off`` refuses a peer that announces the four-octet-AS
capability with an AS above 65535 ("Bad peer AS"), so FCR's neighbor entry for BIRD has
``capabilities/four-octet-as: false``. BIRD itself merges AS4_PATH into what it displays
(it shows the 4-octet path even with as4 off), so the AS 23456 on the wire is checked with
the raw 2-octet speaker.
"""

from __future__ import annotations

import pytest

from tests.interop.common import FCR_ID, wait_fcr_routes
from tests.topotest import fcr as fcrcfg
from tests.topotest import rawbgp, wait_until
from tests.topotest.bird import BirdRouter
from tests.topotest.fcr import FcrRouter
from tests.topotest.frr import FrrRouter

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

FCR_AS4 = 4200000001
FRR_AS4 = 4200000002
BIRD_AS = 65010
RAW_AS = 65020
FAR_AS4 = 4200000099  # prepended by BIRD: travels in AS4_PATH only

BIRD_CONF = f"""
router id 10.0.5.2;
protocol device {{ }}
protocol static s4 {{ ipv4; route 10.40.1.0/24 blackhole; }}
protocol bgp fcr {{
  local 10.0.5.2 as {BIRD_AS};
  neighbor 10.0.5.1 as 23456;
  enable as4 off;
  connect retry time 2;
  ipv4 {{
    import all;
    export filter {{ if source = RTS_STATIC then {{ bgp_path.prepend({FAR_AS4}); accept; }} reject; }};
  }};
}}
"""


def test_two_octet_as(topology, workdir):
    h_fcr, h_bird = topology.add_host("fcr"), topology.add_host("bird")
    h_frr, h_raw = topology.add_host("frr"), topology.add_host("raw")
    topology.link(h_fcr, h_bird, ["10.0.5.1/24"], ["10.0.5.2/24"])
    topology.link(h_fcr, h_frr, ["10.0.6.1/24"], ["10.0.6.2/24"])
    topology.link(h_fcr, h_raw, ["10.0.7.1/24"], ["10.0.7.2/24"])

    frr = FrrRouter(h_frr, workdir / "frr", FrrRouter.render_bgp(
        FRR_AS4, "10.0.6.2",
        [{"address": "10.0.6.1", "remote_as": FCR_AS4, "connect_retry": 2}],
        {"ipv4": ["10.30.1.0/24"]},
    ))
    bird = BirdRouter(h_bird, workdir / "bird", BIRD_CONF)
    fcr = FcrRouter(h_fcr, workdir / "fcr", fcrcfg.config(
        FCR_AS4, FCR_ID,
        [fcrcfg.neighbor("10.0.5.2", BIRD_AS, four_octet_as=False, connect_retry=2),
         fcrcfg.neighbor("10.0.6.2", FRR_AS4, connect_retry=2),
         fcrcfg.neighbor("10.0.7.2", RAW_AS, passive=True)],
    ))
    fcr.wait_established("10.0.6.2", 30)
    fcr.wait_established("10.0.5.2", 30)
    proto = bird.wait_established("fcr", 10)
    assert proto["neighbor-as"] == 23456  # FCR's OPEN carried AS_TRANS

    # BIRD (2-octet) -> FCR: AS_PATH "65010 23456" + AS4_PATH "65010 4200000099" merged
    rib = wait_fcr_routes(fcr, ["10.40.1.0/24", "10.30.1.0/24"])
    assert rib["10.40.1.0/24"]["best"]["as-path"] == f"{BIRD_AS} {FAR_AS4}", rib["10.40.1.0/24"]
    assert rib["10.30.1.0/24"]["best"]["as-path"] == str(FRR_AS4)
    path = wait_until(lambda: frr.best_path("10.40.1.0/24"), 15, message="BIRD route in FRR")
    assert path["aspath"]["string"] == f"{FCR_AS4} {BIRD_AS} {FAR_AS4}", path

    # FCR -> BIRD: BIRD rebuilds the 4-octet path from what FCR sent
    routes = wait_until(lambda: (r := bird.routes("master4", "fcr")) and "10.30.1.0/24" in r and r,
                        15, message="FRR route in BIRD")
    assert routes["10.30.1.0/24"][0]["attrs"]["BGP.as_path"] == f"{FCR_AS4} {FRR_AS4}"

    # FCR -> a 2-octet raw speaker: the bytes on the wire
    with rawbgp.RawBgpSpeaker.connect(h_raw, "10.0.7.2", "10.0.7.1", RAW_AS, "10.0.7.2",
                                      four_octet=False) as raw:
        peer_open = raw.establish()
        assert peer_open.my_as == 23456
        found = None
        for msg_type, body in raw.poll(5):
            if msg_type != rawbgp.UPDATE:
                continue
            upd = rawbgp.parse_update(body)
            if "10.30.1.0/24" in upd.nlri:
                found = upd
                break
        assert found is not None, "no UPDATE for 10.30.1.0/24 to the 2-octet speaker"
        assert found.as_path(four_octet=False) == [23456, 23456]
        assert found.as4_path() == [FCR_AS4, FRR_AS4]
