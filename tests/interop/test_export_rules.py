"""Standard export and import rules (RFC 4271 §5, §9; RFC 1997; RFC 7606 §7.2).

Topology: FCR (AS 65001) in the middle of
  e   FRR, eBGP AS 65002: 10.24.1.0/24; 10.24.9.0/24 with 65001 prepended (an AS loop)
  i   FRR, iBGP: 10.24.2.0/24 tagged NO_EXPORT, 10.24.3.0/24 plain
  n   FRR, iBGP, FCR has next-hop-self for it
  raw raw speaker, eBGP AS 65003: sees exactly what FCR sends to an external peer,
      and sends a route whose first AS is not its own
"""

from __future__ import annotations

import ipaddress
import time

import pytest

from tests.interop.common import FCR_AS, FCR_ID, FCR_NET4, wait_fcr_gone, wait_fcr_routes
from tests.topotest import fcr as fcrcfg
from tests.topotest import rawbgp as rb
from tests.topotest import wait_until
from tests.topotest.fcr import FcrRouter
from tests.topotest.frr import FrrRouter

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

E_AS, RAW_AS = 65002, 65003
FCR_E, E_ADDR = "10.0.24.1", "10.0.24.2"
FCR_I, I_ADDR = "10.0.25.1", "10.0.25.2"
FCR_N, N_ADDR = "10.0.26.1", "10.0.26.2"
FCR_R, RAW = "10.0.27.1", "10.0.27.2"
E_NET, LOOP_NET = "10.24.1.0/24", "10.24.9.0/24"
NOEXP_NET, I_NET = "10.24.2.0/24", "10.24.3.0/24"
FIRST_AS_NET = "10.24.50.0/24"

E_CONF = f"""
ip prefix-list LOOP seq 5 permit {LOOP_NET}
route-map OUT permit 10
 match ip address prefix-list LOOP
 set as-path prepend {FCR_AS}
route-map OUT permit 20
""" + FrrRouter.render_bgp(
    E_AS, E_ADDR, [{"address": FCR_E, "remote_as": FCR_AS, "connect_retry": 1,
               "af_extra": {"ipv4": ["route-map OUT out"]}}],
    {"ipv4": [E_NET, LOOP_NET]})

I_CONF = f"""
ip prefix-list NOEXP seq 5 permit {NOEXP_NET}
route-map OUT permit 10
 match ip address prefix-list NOEXP
 set community no-export
route-map OUT permit 20
""" + FrrRouter.render_bgp(
    FCR_AS, I_ADDR, [{"address": FCR_I, "remote_as": FCR_AS, "connect_retry": 1,
                 "af_extra": {"ipv4": ["route-map OUT out", "send-community"]}}],
    {"ipv4": [NOEXP_NET, I_NET]})

N_CONF = FrrRouter.render_bgp(
    FCR_AS, N_ADDR, [{"address": FCR_N, "remote_as": FCR_AS, "connect_retry": 1}])


class RawRib:
    """What the raw speaker has been sent: prefix -> ParsedUpdate (withdrawals applied)."""

    def __init__(self, raw: rb.RawBgpSpeaker) -> None:
        self.raw = raw
        self.routes: dict[str, rb.ParsedUpdate] = {}

    def poll(self, seconds: float) -> dict:
        for mtype, body in self.raw.poll(seconds):
            if mtype != rb.UPDATE:
                continue
            u = rb.parse_update(body)
            for p in u.withdrawn:
                self.routes.pop(p, None)
            for p in u.nlri:
                self.routes[p] = u
        return self.routes

    def wait(self, prefixes, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / 0.5) + 2):
            if set(prefixes) <= self.routes.keys() or time.monotonic() > deadline:
                break
            self.poll(0.5)
        missing = set(prefixes) - self.routes.keys()
        assert not missing, f"raw receiver never got {sorted(missing)}; has {sorted(self.routes)}"
        return self.routes


def frr_path(frr: FrrRouter, prefix: str) -> dict:
    return wait_until(lambda: (r := frr.route(prefix)) and r["paths"][0], 15,
                      message=f"{prefix} in FRR {frr.host.name}")


def test_export_rules(topology, workdir):
    h = {name: topology.add_host(name) for name in ("fcr", "e", "i", "n", "raw")}
    topology.link(h["fcr"], h["e"], [f"{FCR_E}/24"], [f"{E_ADDR}/24"])
    topology.link(h["fcr"], h["i"], [f"{FCR_I}/24"], [f"{I_ADDR}/24"])
    topology.link(h["fcr"], h["n"], [f"{FCR_N}/24"], [f"{N_ADDR}/24"])
    topology.link(h["fcr"], h["raw"], [f"{FCR_R}/24"], [f"{RAW}/24"])
    e = FrrRouter(h["e"], workdir / "e", E_CONF)
    i = FrrRouter(h["i"], workdir / "i", I_CONF)
    n = FrrRouter(h["n"], workdir / "n", N_CONF)
    fcr = FcrRouter(h["fcr"], workdir / "fcr", fcrcfg.config(FCR_AS, FCR_ID, [
        fcrcfg.neighbor(E_ADDR, E_AS, connect_retry=1),
        fcrcfg.neighbor(I_ADDR, FCR_AS, connect_retry=1),
        fcrcfg.neighbor(N_ADDR, FCR_AS, connect_retry=1, **{"next-hop-self": True}),
        fcrcfg.neighbor(RAW, RAW_AS, passive=True),
    ], [FCR_NET4]))
    for addr in (E_ADDR, I_ADDR, N_ADDR):
        fcr.wait_established(addr, 30)

    with rb.RawBgpSpeaker.connect(h["raw"], RAW, FCR_R, RAW_AS, RAW) as raw:
        raw.establish()
        fcr.wait_established(RAW, 10)
        rr = RawRib(raw)

        # -- import: AS loop and first AS ---------------------------------------------------
        wait_fcr_routes(fcr, [E_NET, I_NET, NOEXP_NET])
        rr.poll(1.0)
        assert LOOP_NET not in fcr.rib("ipv4-unicast"), fcr.route(LOOP_NET)
        ne = fcr.neighbor(E_ADDR)
        assert ne["updates-rejected-by-loop-check"] >= 1, ne
        assert ne["prefixes-received"] == 1, ne  # E_NET only
        adj = e.vtysh_json(f"show bgp ipv4 unicast neighbors {FCR_E} advertised-routes json")
        assert LOOP_NET in adj.get("advertisedRoutes", {}), adj  # FRR did send it

        raw.send(rb.update(attrs=rb.origin(0) + rb.as_path([65099]) + rb.next_hop(RAW),
                           nlri_bytes=rb.nlri(FIRST_AS_NET)))
        rr.poll(2.0)  # raises NotificationReceived: RFC 7606 §7.2 says treat-as-withdraw
        assert FIRST_AS_NET not in fcr.rib("ipv4-unicast")
        nr = fcr.neighbor(RAW)
        assert nr["state"] == "Established", nr
        assert nr["updates-rejected-by-loop-check"] + nr["updates-treated-as-withdraw"] >= 1, nr
        assert nr["prefixes-received"] == 0, nr

        # -- export to eBGP (the raw receiver): on the wire ---------------------------------
        routes = rr.wait([FCR_NET4, E_NET, I_NET], 15)
        rr.poll(1.5)  # anything else that was coming has come
        for prefix, want_path in ((FCR_NET4, [FCR_AS]), (E_NET, [FCR_AS, E_AS]),
                                  (I_NET, [FCR_AS])):
            u = routes[prefix]
            assert u.as_path(True) == want_path, (prefix, u.as_path(True))
            assert ipaddress.IPv4Address(u.attrs[3][1]) == ipaddress.IPv4Address(FCR_R), (prefix, u)
            assert 5 not in u.attrs, f"LOCAL_PREF sent to an eBGP peer for {prefix}: {u.attrs}"
            assert 9 not in u.attrs and 10 not in u.attrs, (prefix, u.attrs)
        assert 4 not in routes[E_NET].attrs, f"MED of AS {E_AS} passed to AS {RAW_AS}"
        assert NOEXP_NET not in routes, f"NO_EXPORT route sent to eBGP: {routes[NOEXP_NET]}"
        assert LOOP_NET not in routes

        # -- export to eBGP FRR --------------------------------------------------------------
        p = frr_path(e, I_NET)
        assert p["aspath"]["string"] == f"{FCR_AS}", p
        assert p["nexthops"][0]["ip"] == FCR_E, p
        assert "locPrf" not in p, p
        assert e.route(NOEXP_NET) == {}, e.route(NOEXP_NET)

        # -- export to iBGP (FRR i): LOCAL_PREF 100, eBGP next hop kept ---------------------
        p = frr_path(i, E_NET)
        assert p.get("locPrf") == 100, p
        assert p["aspath"]["string"] == f"{E_AS}", p
        assert p["nexthops"][0]["ip"] == E_ADDR, p
        p = frr_path(i, FCR_NET4)
        assert p.get("locPrf") == 100, p
        assert p["nexthops"][0]["ip"] == FCR_I, p

        # -- export to iBGP with next-hop-self (FRR n) --------------------------------------
        p = frr_path(n, E_NET)
        assert p.get("locPrf") == 100, p
        assert p["nexthops"][0]["ip"] == FCR_N, p
        # iBGP-learned routes are not sent to another (non-client) iBGP peer
        assert n.route(I_NET) == {}, n.route(I_NET)

        # the NO_EXPORT route is in FCR with its community and still goes to iBGP? (not to n:
        # learned over iBGP); FCR keeps it
        best = fcr.best(NOEXP_NET)
        assert "no-export" in str(best["communities"]).lower() or "65535:65281" in str(
            best["communities"]), best

        # withdrawal of the loop route changes nothing; E_NET withdrawal reaches raw
        e.configure(f"router bgp {E_AS}", "address-family ipv4 unicast", f"no network {E_NET}")
        wait_fcr_gone(fcr, E_NET)
        deadline = time.monotonic() + 10
        for _ in range(40):
            if E_NET not in rr.poll(0.5) or time.monotonic() > deadline:
                break
        assert E_NET not in rr.routes, "withdrawal not sent to the eBGP receiver"
