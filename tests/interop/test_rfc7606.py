"""RFC 7606 error handling, driven by a raw BGP speaker that sends exactly chosen bytes."""

from __future__ import annotations

import pytest

from tests.interop.common import FCR_AS, FCR_ID, wait_fcr_gone, wait_fcr_routes
from tests.topotest import fcr as fcrcfg
from tests.topotest import rawbgp as rb
from tests.topotest.fcr import FcrRouter

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

RAW_AS = 65099
RAW_ADDR, FCR_ADDR = "10.0.10.2", "10.0.10.1"
P1, P2, P3 = "10.80.1.0/24", "10.80.2.0/24", "10.80.3.0/24"


def good_attrs(*extra: bytes) -> bytes:
    return rb.origin(0) + rb.as_path([RAW_AS]) + rb.next_hop(RAW_ADDR) + b"".join(extra)


def announce(raw, prefix, attrs):
    raw.send(rb.update(attrs=attrs, nlri_bytes=rb.nlri(prefix)))


def assert_no_notification(raw, fcr, seconds=1.5):
    raw.poll(seconds)  # raises NotificationReceived
    assert fcr.neighbor_state(RAW_ADDR) == "Established"


def test_rfc7606(topology, workdir):
    h_fcr, h_raw = topology.add_host("fcr"), topology.add_host("raw")
    topology.link(h_fcr, h_raw, [f"{FCR_ADDR}/24"], [f"{RAW_ADDR}/24"])
    fcr = FcrRouter(h_fcr, workdir / "fcr", fcrcfg.config(
        FCR_AS, FCR_ID, [fcrcfg.neighbor(RAW_ADDR, RAW_AS, passive=True)],
    ))
    with rb.RawBgpSpeaker.connect(h_raw, RAW_ADDR, FCR_ADDR, RAW_AS, RAW_ADDR) as raw:
        raw.establish()
        fcr.wait_established(RAW_ADDR, 10)

        # a good route
        announce(raw, P1, good_attrs())
        wait_fcr_routes(fcr, [P1])

        # ORIGIN 7: treat-as-withdraw, session stays, no NOTIFICATION
        announce(raw, P1, rb.attr(rb.WELL_KNOWN, 1, b"\x07") + rb.as_path([RAW_AS])
                 + rb.next_hop(RAW_ADDR))
        wait_fcr_gone(fcr, P1)
        assert_no_notification(raw, fcr)

        # MED with length 3: treat-as-withdraw
        announce(raw, P2, good_attrs())
        wait_fcr_routes(fcr, [P2])
        announce(raw, P2, good_attrs(rb.attr(rb.OPTIONAL, 4, b"\x00\x00\x01")))
        wait_fcr_gone(fcr, P2)
        assert_no_notification(raw, fcr)

        # ATOMIC_AGGREGATE with length 1: attribute discarded, route kept
        announce(raw, P3, good_attrs(rb.attr(rb.WELL_KNOWN, 6, b"\x00")))
        rib = wait_fcr_routes(fcr, [P3])
        assert rib[P3]["best"]["as-path"] == str(RAW_AS)
        assert_no_notification(raw, fcr)
        assert P3 in fcr.rib("ipv4-unicast")

        # NLRI with prefix length 33: NOTIFICATION UPDATE Message Error / Invalid Network Field
        raw.send(rb.update(attrs=good_attrs(), nlri_bytes=rb.raw_nlri(33, b"\x0a\x50\x04\x00\x00")))
        note = raw.wait_notification(10)
        assert (note.code, note.subcode) == (3, 10), note
