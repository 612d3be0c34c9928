"""FCR's BFD (appliance.bfd.standalone in a namespace) against FRR 8.4 bfdd.

Single-hop over a veth and multihop through a router namespace, 50 ms × 3 both sides.
Detection is provoked with an nftables drop rule in FRR's namespace (and by cutting the
veth); the measured detection time is printed. FRR 8.4 bfdd has no authentication
support (no `authentication` command in its peer node), so keyed SHA1 is tested between
two FCR instances in tests/unit/test_bfd_loopback.py.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from tests.topotest import wait_until
from tests.topotest.frr import FrrRouter

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

REPO = Path(__file__).resolve().parents[2]
DETECT = 0.150


def _frr_bfd(host, workdir, peer_lines):
    frr = FrrRouter(host, workdir / "frr", "", bfd=True)
    lines = ["configure terminal", "bfd", *peer_lines,
             "receive-interval 50", "transmit-interval 50", "detect-multiplier 3"]
    res = frr.vtysh(*lines, daemon="bfdd")
    assert "%" not in res.stdout, res.stdout
    return frr


def _frr_peer(frr, peer):
    for p in frr.vtysh_json_bfd("show bfd peers json"):
        if p.get("peer") == peer:
            return p
    return {}


def _vtysh_json_bfd(self, cmd):
    out = self.vtysh(cmd, daemon="bfdd").stdout
    return json.loads(out) if out.strip() else []


FrrRouter.vtysh_json_bfd = _vtysh_json_bfd  # bfdd's JSON is a list, bgpd's helper wants a dict


class FcrBfd:
    """The standalone driver in a namespace; reads its transitions and state file."""

    def __init__(self, host, workdir: Path, sessions: list[dict]):
        workdir.mkdir(parents=True, exist_ok=True)
        self.cfg = workdir / "bfd.json"
        self.cfg.write_text(json.dumps({"fcr-bfd:bfd": {"sessions": {"session": sessions}}}))
        self.state_file = workdir / "state.json"
        self.log = workdir / "fcr-bfd.out"
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
        self.proc = host.popen(
            [sys.executable, "-m", "appliance.bfd.standalone", "--config", str(self.cfg),
             "--state-file", str(self.state_file), "--duration", "120"],
            log=self.log, env=env, cwd=str(REPO),
        )

    def events(self):
        out = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                ev = json.loads(line)
                if ev.get("event") == "transition":
                    out.append(ev)
        return out

    def session(self, peer):
        try:
            data = json.loads(self.state_file.read_text())
        except (OSError, json.JSONDecodeError):
            return {}
        return next((s for s in data["sessions"] if s["peer-address"] == peer), {})


def _nft_drop(host, chain_hook, port):
    host.run(["nft", "add", "table", "inet", "bfdt"])
    host.run(["nft", "add", "chain", "inet", "bfdt", chain_hook,
              f"{{ type filter hook {chain_hook} priority 0 ; }}"])
    host.run(["nft", "add", "rule", "inet", "bfdt", chain_hook, "udp", "dport", str(port), "drop"])


def _wait_up(fcr, frr, fcr_peer, frr_peer):
    wait_until(lambda: fcr.session(fcr_peer).get("state") == "Up", 20, 0.1, "FCR session Up")
    wait_until(lambda: _frr_peer(frr, frr_peer).get("status") == "up", 20, 0.2, "FRR peer up")
    # the Poll/Final that follows Up brings both to 50 ms
    wait_until(lambda: fcr.session(fcr_peer).get("detection-time") == 150_000, 10, 0.1,
               "FCR detection time 150 ms")
    time.sleep(2.0)
    s = fcr.session(fcr_peer)
    assert s["counters"]["down_count"] == 0, s
    p = _frr_peer(frr, frr_peer)
    assert p["status"] == "up" and p["remote-receive-interval"] == 50 and p["remote-transmit-interval"] == 50, p
    return s


def _detect(fcr, host_frr, fcr_peer, hook, port):
    n0 = len(fcr.events())
    t0 = time.monotonic()
    _nft_drop(host_frr, hook, port)
    ev = wait_until(
        lambda: next((e for e in fcr.events()[n0:] if e["new"] == "Down"), None),
        5, 0.02, "FCR session Down",
    )
    return ev, ev["monotonic"] - t0


@pytest.mark.parametrize("cut", ["nftables", "veth"])
def test_bfd_single_hop(topology, workdir, cut):
    h1, h2 = topology.add_host("fcr"), topology.add_host("frr")
    _, if2 = topology.link(h1, h2, ["10.0.1.1/24"], ["10.0.1.2/24"])
    frr = _frr_bfd(h2, workdir, [f"peer 10.0.1.1 local-address 10.0.1.2 interface {if2}"])
    fcr = FcrBfd(h1, workdir / "fcr", [{
        "peer-address": "10.0.1.2", "local-address": "10.0.1.1", "interface": "eth0",
        "desired-min-tx-interval": 50000, "required-min-rx-interval": 50000,
        "detection-multiplier": 3,
    }])
    s = _wait_up(fcr, frr, "10.0.1.2", "10.0.1.1")
    assert s["negotiated-tx-interval"] == 50_000
    if cut == "nftables":   # FRR's packets to FCR dropped as they leave FRR's namespace
        ev, took = _detect(fcr, h2, "10.0.1.2", "output", 3784)
        assert ev["diag"] == "control-detection-time-expired"
        # FRR then hears FCR's Down and drops its side too
        wait_until(lambda: _frr_peer(frr, "10.0.1.1").get("status") != "up", 5, 0.05, "FRR down")
    else:
        n0 = len(fcr.events())
        t0 = time.monotonic()
        h2.cut_link(if2)
        ev = wait_until(lambda: next((e for e in fcr.events()[n0:] if e["new"] == "Down"), None),
                        5, 0.02, "FCR session Down")
        took = ev["monotonic"] - t0
        assert ev["diag"] == "control-detection-time-expired"
        t1 = time.monotonic()
        wait_until(lambda: _frr_peer(frr, "10.0.1.1").get("status") == "down", 5, 0.02, "FRR down")
        print(f"\nFRR saw the cut veth within {(time.monotonic() - t1 + took) * 1000:.0f} ms "
              "(vtysh polling resolution)")
    print(f"\nsingle-hop ({cut}): FCR detection {took * 1000:.1f} ms "
          f"(detection time {DETECT * 1000:.0f} ms)")
    assert took <= DETECT + 0.100


def test_bfd_multihop(topology, workdir):
    h1, r, h2 = topology.add_host("fcr"), topology.add_host("r"), topology.add_host("frr")
    topology.link(h1, r, ["10.0.1.1/24"], ["10.0.1.2/24"])
    topology.link(r, h2, ["10.0.2.1/24"], ["10.0.2.2/24"])
    r.sysctl("net.ipv4.ip_forward", 1)
    h1.run(["ip", "route", "add", "10.0.2.0/24", "via", "10.0.1.2"])
    h2.run(["ip", "route", "add", "10.0.1.0/24", "via", "10.0.2.1"])
    frr = _frr_bfd(h2, workdir, ["peer 10.0.1.1 multihop local-address 10.0.2.2"])
    fcr = FcrBfd(h1, workdir / "fcr", [{
        "peer-address": "10.0.2.2", "local-address": "10.0.1.1", "multihop": True,
        "desired-min-tx-interval": 50000, "required-min-rx-interval": 50000,
    }])
    _wait_up(fcr, frr, "10.0.2.2", "10.0.1.1")
    ev, took = _detect(fcr, h2, "10.0.2.2", "output", 4784)
    assert ev["diag"] == "control-detection-time-expired"
    print(f"\nmultihop: FCR detection {took * 1000:.1f} ms (detection time {DETECT * 1000:.0f} ms)")
    assert took <= DETECT + 0.100
    # and back up once the rule is gone
    h2.run(["nft", "delete", "table", "inet", "bfdt"])
    wait_until(lambda: fcr.session("10.0.2.2").get("state") == "Up", 10, 0.1, "FCR Up again")


def test_bfd_single_hop_ttl_enforced(topology, workdir):
    """FRR's single-hop packets crossing a router arrive with TTL 254: FCR drops them."""
    h1, r, h2 = topology.add_host("fcr"), topology.add_host("r"), topology.add_host("frr")
    topology.link(h1, r, ["10.0.1.1/24"], ["10.0.1.2/24"])
    topology.link(r, h2, ["10.0.2.1/24"], ["10.0.2.2/24"])
    r.sysctl("net.ipv4.ip_forward", 1)
    h1.run(["ip", "route", "add", "10.0.2.0/24", "via", "10.0.1.2"])
    h2.run(["ip", "route", "add", "10.0.1.0/24", "via", "10.0.2.1"])
    _frr_bfd(h2, workdir, ["peer 10.0.1.1 local-address 10.0.2.2"])
    fcr = FcrBfd(h1, workdir / "fcr", [{
        "peer-address": "10.0.2.2", "local-address": "10.0.1.1", "multihop": False,
        "desired-min-tx-interval": 50000, "required-min-rx-interval": 50000,
    }])
    time.sleep(3.0)
    s = fcr.session("10.0.2.2")
    assert s["state"] == "Down" and s["counters"]["rx_packets"] == 0, s
    assert s["counters"]["rx_ttl_drops"] > 0, s
