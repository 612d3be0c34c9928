"""Connection collision (RFC 4271 6.8): both sides active, started together."""

from __future__ import annotations

import threading
import time

import pytest

from tests.interop.common import FCR_AS, FCR_ID
from tests.topotest import fcr as fcrcfg
from tests.topotest.fcr import FcrRouter
from tests.topotest.frr import FrrRouter

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

FRR_AS = 65002


def test_collision_single_stable_session(topology, workdir):
    h_fcr, h_frr = topology.add_host("fcr"), topology.add_host("frr")
    topology.link(h_fcr, h_frr, ["10.0.8.1/24"], ["10.0.8.2/24"])
    frr = FrrRouter(h_frr, workdir / "frr", FrrRouter.render_bgp(
        FRR_AS, "10.0.8.2", [{"address": "10.0.8.1", "remote_as": FCR_AS, "connect_retry": 1}],
    ), start=False)
    fcr = FcrRouter(h_fcr, workdir / "fcr", fcrcfg.config(
        FCR_AS, FCR_ID, [fcrcfg.neighbor("10.0.8.2", FRR_AS, connect_retry=1)],
    ), start=False)

    errors: list[BaseException] = []

    def run(fn):
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r.start,)) for r in (frr, fcr)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors

    fcr.wait_established("10.0.8.2", 30)
    frr.wait_established("10.0.8.1", 10)
    first = fcr.neighbor("10.0.8.2")
    est_before = frr.neighbor("10.0.8.1")["connectionsEstablished"]

    deadline = time.monotonic() + 10
    for _ in range(100):
        if time.monotonic() > deadline:
            break
        assert fcr.neighbor_state("10.0.8.2") == "Established"
        assert frr.neighbor_state("10.0.8.1") == "Established"
        time.sleep(0.5)

    n = frr.neighbor("10.0.8.1")
    assert n["connectionsEstablished"] == est_before == 1, n
    assert n.get("connectionsDropped", 0) == 0, n
    last = fcr.neighbor("10.0.8.2")
    assert last["messages"]["received"]["open"] == first["messages"]["received"]["open"]
