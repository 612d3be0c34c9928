"""Unrecognized optional attributes (RFC 4271 §5, §9): transitive ones are passed on with the
Partial bit set, non-transitive ones are dropped. Raw sender -> FCR -> raw receiver, so the
flags are read on the wire."""

from __future__ import annotations

import time

import pytest

from tests.interop.common import FCR_AS, FCR_ID, wait_fcr_routes
from tests.topotest import fcr as fcrcfg
from tests.topotest import rawbgp as rb
from tests.topotest.fcr import FcrRouter

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

SND_AS, RCV_AS = 65099, 65098
FCR_S, SND = "10.0.37.1", "10.0.37.2"
FCR_R, RCV = "10.0.38.1", "10.0.38.2"
P_TRANS, P_NONTRANS, P_LONG, P_PARTIAL = ("10.37.1.0/24", "10.37.2.0/24", "10.37.3.0/24",
                                          "10.37.4.0/24")
VAL99 = b"fcr-test-attribute-99"
VAL97 = bytes(range(256)) + b"long"  # > 255 octets: extended length


def announce(raw, prefix, *extra):
    attrs = rb.origin(0) + rb.as_path([SND_AS]) + rb.next_hop(SND) + b"".join(extra)
    raw.send(rb.update(attrs=attrs, nlri_bytes=rb.nlri(prefix)))


def collect(raw, prefixes, timeout) -> dict:
    routes: dict[str, rb.ParsedUpdate] = {}
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.5) + 2):
        for mtype, body in raw.poll(0.5):
            if mtype == rb.UPDATE:
                u = rb.parse_update(body)
                for p in u.nlri:
                    routes[p] = u
        if set(prefixes) <= routes.keys() or time.monotonic() > deadline:
            break
    missing = set(prefixes) - routes.keys()
    assert not missing, f"receiver never got {sorted(missing)}; got {sorted(routes)}"
    return routes


def test_unknown_attributes(topology, workdir):
    h_fcr, h_snd, h_rcv = (topology.add_host(x) for x in ("fcr", "snd", "rcv"))
    topology.link(h_fcr, h_snd, [f"{FCR_S}/24"], [f"{SND}/24"])
    topology.link(h_fcr, h_rcv, [f"{FCR_R}/24"], [f"{RCV}/24"])
    fcr = FcrRouter(h_fcr, workdir / "fcr", fcrcfg.config(FCR_AS, FCR_ID, [
        fcrcfg.neighbor(SND, SND_AS, passive=True),
        fcrcfg.neighbor(RCV, RCV_AS, passive=True),
    ]))
    with rb.RawBgpSpeaker.connect(h_snd, SND, FCR_S, SND_AS, SND) as snd, \
            rb.RawBgpSpeaker.connect(h_rcv, RCV, FCR_R, RCV_AS, RCV) as rcv:
        snd.establish()
        rcv.establish()
        fcr.wait_established(SND, 10)
        fcr.wait_established(RCV, 10)

        announce(snd, P_TRANS, rb.attr(rb.OPTIONAL | rb.TRANSITIVE, 99, VAL99))
        announce(snd, P_NONTRANS, rb.attr(rb.OPTIONAL, 98, b"\x01\x02\x03"))
        announce(snd, P_LONG, rb.attr(rb.OPTIONAL | rb.TRANSITIVE, 97, VAL97))
        announce(snd, P_PARTIAL, rb.attr(rb.OPTIONAL | rb.TRANSITIVE | rb.PARTIAL, 96, b"p"))
        snd.poll(1.0)  # raises on a NOTIFICATION
        rib = wait_fcr_routes(fcr, [P_TRANS, P_NONTRANS, P_LONG, P_PARTIAL])
        unknown = rib[P_TRANS]["best"].get("unknown")
        assert unknown and unknown[0]["type"] == 99 and unknown[0]["value"] == VAL99.hex(), \
            rib[P_TRANS]["best"]
        assert not rib[P_NONTRANS]["best"].get("unknown"), rib[P_NONTRANS]["best"]

        routes = collect(rcv, [P_TRANS, P_NONTRANS, P_LONG, P_PARTIAL], 15)
        snd.poll(0.1)

        flags, value = routes[P_TRANS].attrs[99]
        assert value == VAL99
        assert flags & (rb.OPTIONAL | rb.TRANSITIVE | rb.PARTIAL) == \
            rb.OPTIONAL | rb.TRANSITIVE | rb.PARTIAL, f"flags 0x{flags:02x}"

        assert 98 not in routes[P_NONTRANS].attrs, routes[P_NONTRANS].attrs

        flags, value = routes[P_LONG].attrs[97]
        assert value == VAL97
        assert flags & rb.EXTENDED and flags & rb.PARTIAL, f"flags 0x{flags:02x}"

        flags, value = routes[P_PARTIAL].attrs[96]
        assert value == b"p" and flags & rb.PARTIAL, f"flags 0x{flags:02x}"

        # the known attributes are still right
        for p in (P_TRANS, P_NONTRANS):
            assert routes[p].as_path(True) == [FCR_AS, SND_AS]
            assert 5 not in routes[p].attrs
