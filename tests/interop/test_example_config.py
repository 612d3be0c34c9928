"""`make run`'s configuration: fcrd starts with docs/examples/fcrd.json and a peer connects.

Runs in a namespace of its own (so port 179 on the host is untouched); the peer is the
raw speaker on 127.0.0.2, as the example describes.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.topotest import rawbgp as rb
from tests.topotest import wait_until
from tests.topotest.fcr import FcrRouter

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "fcrd.json"


def test_example_config_accepts_a_peer(topology, workdir):
    host = topology.add_host("fcr")
    config = json.loads(EXAMPLE.read_text())
    fcr = FcrRouter(host, workdir / "fcr", config)
    with rb.RawBgpSpeaker.connect(host, "127.0.0.2", "127.0.0.1", 65002, "192.0.2.2") as raw:
        peer_open = raw.establish()
        assert peer_open.four_octet_as == 65001
        fcr.wait_established("127.0.0.2", 10)
        # The example originates 198.51.100.0/24: the peer receives it with our AS.
        updates = []

        def got_route():
            for mtype, body in raw.poll(0.3):
                if mtype == 2:
                    updates.append(rb.parse_update(body))
            return any("198.51.100.0/24" in u.nlri for u in updates)

        wait_until(got_route, 10, message="198.51.100.0/24 from fcrd")
        u = next(u for u in updates if "198.51.100.0/24" in u.nlri)
        assert u.as_path(four_octet=True) == [65001]
    fcr.signal(signal.SIGTERM)
    assert fcr.wait_exit(15) == 0
