"""Graceful Restart helper (RFC 4724 §4.2) driven by a raw speaker, which controls exactly the
capability of the re-established session: with the Forwarding State bit set the stale routes
live until End-of-RIB; with the bit clear, or without the capability, they go at once."""

from __future__ import annotations

import time

import pytest

from tests.interop.common import FCR_AS, FCR_ID, wait_fcr_gone, wait_fcr_routes
from tests.topotest import fcr as fcrcfg
from tests.topotest import rawbgp as rb
from tests.topotest import wait_until
from tests.topotest.fcr import FcrRouter

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

RAW_AS = 65097
FCR_ADDR, RAW = "10.0.39.1", "10.0.39.2"
P1, P2 = "10.39.1.0/24", "10.39.2.0/24"
GR_F = rb.graceful_restart_cap(30, ((1, 1, 0x80),))


def announce(raw, prefix):
    attrs = rb.origin(0) + rb.as_path([RAW_AS]) + rb.next_hop(RAW)
    raw.send(rb.update(attrs=attrs, nlri_bytes=rb.nlri(prefix)))


def connect(h_raw, fcr, extra_caps) -> rb.RawBgpSpeaker:
    """Connect and establish, retrying while FCR still refuses (IdleHold)."""
    last = None
    for _ in range(20):
        raw = rb.RawBgpSpeaker.connect(h_raw, RAW, FCR_ADDR, RAW_AS, RAW, extra_caps=extra_caps)
        try:
            raw.establish(5)
            return raw
        except rb.RawBgpError as exc:
            last = exc
            raw.close()
            time.sleep(0.5)
    raise AssertionError(f"raw speaker could not establish: {last!r}")


def stale(fcr, prefix):
    r = fcr.route(prefix)
    return None if r is None else bool(r["best"].get("stale"))


CASES = {
    "forwarding-preserved": rb.graceful_restart_cap(30, ((1, 1, 0x80),), restart_state=True),
    "forwarding-not-preserved": rb.graceful_restart_cap(30, ((1, 1, 0x00),), restart_state=True),
    "no-gr-capability": b"",
}


@pytest.mark.parametrize("case", list(CASES))
def test_gr_helper_forwarding_bit(topology, workdir, case):
    h_fcr, h_raw = topology.add_host("fcr"), topology.add_host("raw")
    topology.link(h_fcr, h_raw, [f"{FCR_ADDR}/24"], [f"{RAW}/24"])
    fcr = FcrRouter(h_fcr, workdir / "fcr", fcrcfg.config(
        FCR_AS, FCR_ID, [fcrcfg.neighbor(RAW, RAW_AS, passive=True)]))

    raw = connect(h_raw, fcr, GR_F)
    fcr.wait_established(RAW, 10)
    announce(raw, P1)
    announce(raw, P2)
    raw.send(rb.end_of_rib_ipv4())
    wait_fcr_routes(fcr, [P1, P2])
    raw.poll(0.5)
    raw.close()  # no NOTIFICATION: a restart as far as FCR can tell

    wait_until(lambda: fcr.neighbor_state(RAW) != "Established", 10, 0.1, message="session down")
    time.sleep(0.5)
    assert stale(fcr, P1) is not None and stale(fcr, P2) is not None, "helper mode did not keep them"
    wait_until(lambda: fcr.neighbor_state(RAW) == "Active", 10, 0.2, message="FCR ready again")

    raw = connect(h_raw, fcr, CASES[case])
    try:
        fcr.wait_established(RAW, 10)
        raw.poll(1.5)  # nothing sent by us yet: no UPDATE, no End-of-RIB
        if case == "forwarding-preserved":
            assert stale(fcr, P1) is not None and stale(fcr, P2) is not None, \
                "stale routes dropped before End-of-RIB although forwarding was preserved"
            announce(raw, P1)
            raw.send(rb.end_of_rib_ipv4())
            wait_fcr_gone(fcr, P2, 5)
            assert fcr.route(P1) is not None
            assert fcr.neighbor(RAW)["prefixes-received"] == 1
        else:
            # RFC 4724 §4.2: "If the Graceful Restart Capability is not received in the
            # re-established session at all, or if [it] is received but the Forwarding State
            # bit for an AFI/SAFI is not set, the Receiving Speaker MUST immediately remove all
            # the stale routes from the peer that it is retaining for that address family."
            rib = fcr.rib("ipv4-unicast")
            assert P1 not in rib and P2 not in rib, (
                f"{case}: stale routes kept after re-establishment without End-of-RIB: "
                f"{ {p: rib[p]['best'] for p in (P1, P2) if p in rib} }")
            assert fcr.neighbor(RAW)["prefixes-received"] == 0
    finally:
        raw.close()
