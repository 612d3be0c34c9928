"""RIB and FIB through fcrd: BGP multipath (ECMP) from two FRR peers, next-hop tracking,
and a restart of fcrd that leaves the kernel routes in place and reconciles them.

    frr1 10.0.71.2 ---- eth0 fcr eth1 ---- 10.0.72.2 frr2     (both AS 65002, eBGP)

- ECMP: both peers announce 10.70.0.0/24 with equal attributes; with ecmp/maximum-paths 2
  the kernel route has both next hops (the speaker hands the equal BGP paths to the RIB);
  maximum-paths 1 by config.apply leaves one, 2 brings both back.
- Next-hop tracking: frr1 announces 10.80.0.0/24 with the third-party next hop 10.9.9.9
  (an outbound route-map); it is in the kernel only while a route to 10.9.9.9 exists (a
  controller route via frr1), resolved recursively to the gateway 10.0.71.2.
- Restart: SIGTERM -> exit 0, our routes (protocol 196) still in the kernel between stop
  and start; the new fcrd finds them, relearns, and after End-of-RIB from both peers
  converges without deleting anything (`ip monitor route` shows no deletion) and ends with
  the same table.
"""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.topotest import wait_until
from tests.topotest.fcr import FcrRouter
from tests.topotest.frr import FrrRouter

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

FCR_AS, FRR_AS = 65001, 65002
A1, B1 = "10.0.71.1", "10.0.71.2"
A2, B2 = "10.0.72.1", "10.0.72.2"
ECMP, NHT, NH = "10.70.0.0/24", "10.80.0.0/24", "10.9.9.9"
STATIC = "192.0.2.0/24"

FRR1 = f"""
ip prefix-list NHT seq 5 permit {NHT}
route-map OUT permit 10
 match ip address prefix-list NHT
 set ip next-hop {NH}
route-map OUT permit 20
""" + FrrRouter.render_bgp(FRR_AS, B1, [{"address": A1, "remote_as": FCR_AS, "connect_retry": 1,
                                          "af_extra": {"ipv4": ["route-map OUT out"]}}],
                           {"ipv4": [ECMP, NHT]})
FRR2 = FrrRouter.render_bgp(FRR_AS, B2, [{"address": A2, "remote_as": FCR_AS, "connect_retry": 1}],
                            {"ipv4": [ECMP]})


def config(maximum_paths: int = 2) -> dict:
    return {
        "fcr-system:system": {"hostname": "fcr"},
        "fcr-routing:routing": {"ecmp": {"maximum-paths": maximum_paths}},
        "fcr-static:static-routes": {"route": [
            {"prefix": STATIC, "next-hops": {"next-hop": [{"index": "1", "address": B2}]}}]},
        "fcr-bgp:bgp": {
            "global": {"as": FCR_AS, "router-id": "10.255.0.1"},
            "neighbors": {"neighbor": [
                {"neighbor-address": b, "peer-as": FRR_AS, "timers": {"connect-retry": 1}}
                for b in (B1, B2)]},
        },
    }


def kernel(host) -> dict:
    out = host.run(["ip", "-N", "-j", "-4", "route", "show", "table", "254"]).stdout
    return {r["dst"]: r for r in json.loads(out or "[]") if str(r.get("protocol")) == "196"}


def hops(r):
    if r is None:
        return None
    if "nexthops" in r:
        return sorted((n.get("gateway"), n["dev"]) for n in r["nexthops"])
    return [(r.get("gateway"), r.get("dev"))]


def wait_kernel(host, prefix, want, timeout=10.0):
    return wait_until(lambda: hops(kernel(host).get(prefix)) == want, timeout, 0.1,
                      message=f"kernel {prefix} -> {want}")


def test_ecmp_nexthop_tracking_and_restart(topology, workdir):
    h, f1, f2 = topology.add_host("fcr"), topology.add_host("frr1"), topology.add_host("frr2")
    topology.link(h, f1, [f"{A1}/24"], [f"{B1}/24"])
    topology.link(h, f2, [f"{A2}/24"], [f"{B2}/24"])
    frr1 = FrrRouter(f1, workdir / "frr1", FRR1)
    frr2 = FrrRouter(f2, workdir / "frr2", FRR2)
    fcr = FcrRouter(h, workdir / "fcr", config())
    fcr.wait_established(B1, 30)
    fcr.wait_established(B2, 30)

    # -- ECMP from two BGP peers --------------------------------------------------------
    both = [(B1, "eth0"), (B2, "eth1")]
    wait_kernel(h, ECMP, both)
    bgp = fcr.route(ECMP)
    assert len(bgp["paths"]) == 2, bgp
    st = fcr.ctl("rib.routes", prefix=ECMP)["routes"]["ipv4"][0]
    assert st["selected"]["origin"] == "bgp" and st["fib"] == "installed", st
    assert sorted(h["address"] for h in st["selected"]["next-hops"]) == [B1, B2], st
    assert fcr.ctl("config.apply", config=config(1))["reset"] == []
    wait_until(lambda: len(hops(kernel(h).get(ECMP)) or []) == 1, 10, 0.1, "maximum-paths 1")
    fcr.ctl("config.apply", config=config(2))
    wait_kernel(h, ECMP, both)

    # -- next-hop tracking -----------------------------------------------------------------
    wait_until(lambda: fcr.route(NHT), 10, 0.2, message=f"{NHT} in FCR's BGP RIB")
    assert fcr.best(NHT)["next-hop"] == NH
    time.sleep(0.5)
    assert NHT not in kernel(h)  # 10.9.9.9 unreachable: not installed
    st = fcr.ctl("rib.routes", prefix=NHT)["routes"]["ipv4"][0]
    assert [(c["origin"], c["valid"]) for c in st["candidates"]] == [("bgp", False)], st
    fcr.ctl("static.push", prefix="10.9.9.0/24", **{"next-hops": [B1]})
    wait_kernel(h, NHT, [(B1, "eth0")])          # resolved recursively: via frr1
    fcr.ctl("static.clear")
    wait_until(lambda: NHT not in kernel(h), 10, 0.1, f"{NHT} out of the kernel with its next hop")
    assert fcr.best(NHT) is not None  # still in BGP, only not installed
    fcr.ctl("static.push", prefix="10.9.9.0/24", **{"next-hops": [B1]})
    wait_kernel(h, NHT, [(B1, "eth0")])
    fcr.ctl("static.clear")  # controller routes are not configuration: gone across a restart
    wait_until(lambda: NHT not in kernel(h), 10, 0.1, f"{NHT} out of the kernel")
    wait_kernel(h, STATIC, [(B2, "eth1")])
    before = {p: hops(r) for p, r in kernel(h).items()}
    assert before == {ECMP: both, STATIC: [(B2, "eth1")]}, before

    # -- restart: routes stay, the new engine reconciles without deleting ---------------
    fcr.signal(signal.SIGTERM)
    assert fcr.wait_exit(15) == 0
    between = {p: hops(r) for p, r in kernel(h).items()}
    assert between == before, between
    wait_until(lambda: frr1.neighbor_state(A1) != "Established" and frr2.neighbor_state(A2) != "Established",
               10, 0.1, "FRR saw the CEASE")
    mon = workdir / "monitor.log"
    h.popen(["ip", "-4", "monitor", "route"], log=mon)
    time.sleep(0.3)
    fcr.start()
    fcr.wait_established(B1, 30)
    fcr.wait_established(B2, 30)
    st = wait_until(lambda: (x := fcr.ctl("rib.routes", prefix=ECMP)).get("converged") and x, 20, 0.1,
                    "new fcrd converged (End-of-RIB from both peers)")
    wait_kernel(h, ECMP, both)
    time.sleep(0.5)
    after = {p: hops(r) for p, r in kernel(h).items()}
    assert after == before, after
    fib = fcr.ctl("rib.routes", prefix=ECMP)["fib"]
    assert fib["found-at-start"] == 2 and fib["deleted"] == 0 and fib["added"] == 0, fib
    events = [ln for ln in mon.read_text().splitlines() if ln.strip()]
    ours = [e for e in events if ECMP.split("/")[0] in e or STATIC.split("/")[0] in e]
    assert not [e for e in ours if e.startswith("Deleted")], events
    print(f"\nrestart: {fib['found-at-start']} routes found in the kernel, {fib['unchanged']} unchanged, "
          f"{fib['replaced']} replaced, 0 deleted; kernel events for our prefixes: {len(ours)}")
