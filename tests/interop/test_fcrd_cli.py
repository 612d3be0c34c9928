"""fcrd as a process: configuration errors and shutdown on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest

from tests.interop.common import FCR_AS, FCR_ID
from tests.topotest import fcr as fcrcfg
from tests.topotest import wait_until
from tests.topotest.fcr import FcrRouter, fcrd_env, fcrd_path
from tests.topotest.frr import FrrRouter

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

FRR_AS = 65002


def test_bad_config_exit_2_names_path(topology, workdir):
    host = topology.add_host("fcr")
    cfg = fcrcfg.config(FCR_AS, FCR_ID, listen=[])
    cfg["fcr-bgp:bgp"]["global"]["bogus-member"] = 1
    bad = workdir / "bad.json"
    bad.write_text(json.dumps(cfg))
    res = subprocess.run(
        host.wrap([fcrd_path(), "--config", str(bad), "--control", str(workdir / "c.sock")]),
        capture_output=True, text=True, timeout=20, env=fcrd_env(),
    )
    out = res.stdout + res.stderr
    assert res.returncode == 2, out
    assert "bogus-member" in out, out
    assert "global" in out, out  # the JSON path of the offending member
    assert not (workdir / "c.sock").exists()


def test_sigterm_sends_admin_shutdown(topology, workdir):
    h_fcr, h_frr = topology.add_host("fcr"), topology.add_host("frr")
    topology.link(h_fcr, h_frr, ["10.0.11.1/24"], ["10.0.11.2/24"])
    frr = FrrRouter(h_frr, workdir / "frr", FrrRouter.render_bgp(
        FRR_AS, "10.0.11.2",
        [{"address": "10.0.11.1", "remote_as": FCR_AS, "connect_retry": 2}],
    ))
    fcr = FcrRouter(h_fcr, workdir / "fcr", fcrcfg.config(
        FCR_AS, FCR_ID, [fcrcfg.neighbor("10.0.11.2", FRR_AS, connect_retry=2)],
    ))
    fcr.wait_established("10.0.11.2", 30)
    frr.wait_established("10.0.11.1", 10)

    fcr.signal(signal.SIGTERM)
    assert fcr.wait_exit(15) == 0, fcr.tail("fcrd.log")

    n = wait_until(lambda: (n := frr.neighbor("10.0.11.1")).get("bgpState") != "Established"
                   and n.get("lastNotificationReason") and n, 10,
                   message="FRR saw the NOTIFICATION")
    # FRR 8.4: "lastNotificationReason": "Cease/Administrative Shutdown",
    # "lastResetDueTo": "BGP Notification received", "lastShutdownDescription": "<RFC 8203 text>"
    assert n["lastNotificationReason"] == "Cease/Administrative Shutdown", n
    assert n["lastResetDueTo"] == "BGP Notification received", n
    assert n.get("lastShutdownDescription"), n
