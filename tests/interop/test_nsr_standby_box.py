"""NSR: the sessions move to a standby box with their local address (VIP), against FRR.

    fcra  eth0 10.0.92.11 (+ VIP 10.0.92.1 while active) ─┐
    fcrb  eth0 10.0.92.12 (+ VIP 10.0.92.1 while active) ─┼─ br0 (namespace sw)
    frr   eth0 10.0.92.2 ─────────────────────────────────┘

FRR peers with the VIP (eBGP, TCP-MD5, BFD 300 ms x 3), 10,000 routes each way. fcrd A
(engine "a") is active in namespace fcra, fcrd B (engine "b") a standby in fcrb; both use
one embedded checkpoint store file. A controller (this test) drives the switchover over
the control sockets: wait until A sees B in sync, ``nsr.release {to: b, vip}`` on A (the
address leaves A once its sockets are closed silently), ``nsr.adopt {vip}`` on B (the
4-tuples are frozen on B, the address is added with a gratuitous ARP, the sockets
restored, the freeze lifted). Then back: A is restarted as a standby and takes the
sessions back from B the same way. FRR must notice nothing: same established time, no
NOTIFICATION, no new OPEN, prefix counts and UPDATE counters unchanged, BFD never left Up,
no RST or FIN in a capture on its interface; its ARP entry for the VIP follows the box.

A smaller test checks vip.add/remove alone (IPv4 gratuitous ARP, IPv6 unsolicited NA):
the peer's neighbour entry moves to the new box at once, without traffic.
"""

from __future__ import annotations

import signal
import time

import pytest

from appliance.nsr import netlock, vip
from tests.interop import nsr_peer
from tests.interop.nsr_peer import SESSION_KEYS, assert_unchanged, prefixes
from tests.topotest import wait_until
from tests.topotest.fcr import FcrRouter
from tests.topotest.frr import FrrRouter

pytestmark = [pytest.mark.interop, pytest.mark.timeout(420)]

VIP, FRR_ADDR = "10.0.92.1", "10.0.92.2"
BOX_A, BOX_B = "10.0.92.11/24", "10.0.92.12/24"
VIP_PARAMS = {"address": f"{VIP}/24", "dev": "eth0"}
KEY = "nsr-s3cret"
N_ROUTES = 10_000


FRR_NETS = prefixes("10.128.0.0/9", N_ROUTES)
FCR_NETS = prefixes("172.16.0.0/12", N_ROUTES)


def fcr_config() -> dict:
    return nsr_peer.fcr_config(FRR_ADDR, KEY, FCR_NETS, local_address=VIP)


def frr_config() -> str:
    return nsr_peer.frr_config(FRR_ADDR, VIP, KEY, FRR_NETS, bfd_profile="nsr")


def frr_view(frr: FrrRouter) -> dict:
    return nsr_peer.frr_view(frr, VIP)


def frr_bfd(frr: FrrRouter, what: str = "peers") -> dict:
    return nsr_peer.frr_bfd(frr, VIP, what)


def mac(host, dev: str = "eth0") -> str:
    return host.run(["cat", f"/sys/class/net/{dev}/address"]).stdout.strip()


def neigh_mac(host, addr: str, dev: str = "eth0") -> str:
    words = host.run(["ip", "neigh", "show", addr, "dev", dev]).stdout.split()
    return words[words.index("lladdr") + 1] if "lladdr" in words else ""


def bridge(topology, names: list[str], addrs: list[list[str]]):
    """Hosts ``names`` joined by one bridge (br0 in namespace sw); returns the hosts."""
    sw = topology.add_host("sw")
    hosts = [topology.add_host(n) for n in names]
    ports = [topology.link(h, sw, a, [])[1] for h, a in zip(hosts, addrs, strict=True)]
    sw.run(["ip", "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0"])
    for p in ports:
        sw.run(["ip", "link", "set", "dev", p, "master", "br0"])
    sw.run(["ip", "link", "set", "dev", "br0", "up"])
    return hosts


def switch_over(src: FcrRouter, dst: FcrRouter, dst_id: str) -> dict:
    """What a controller does: wait until ``src`` sees ``dst`` in sync, release, adopt."""
    def in_sync() -> bool:
        st = src.ctl("nsr.status")
        return any(s.get("engine-id") == dst_id and s.get("fresh") and s.get("synchronized")
                   and s.get("ready") for s in st.get("standbys", []))

    wait_until(in_sync, 60, 0.2, f"standby {dst_id} in sync")
    t0 = time.monotonic()
    released = src.ctl("nsr.release", to=dst_id, vip=VIP_PARAMS, timeout=60)
    t1 = time.monotonic()
    adopted = dst.ctl("nsr.adopt", vip=VIP_PARAMS, timeout=120)
    t2 = time.monotonic()
    return {"released": released, "adopted": adopted, "release-call": t1 - t0, "adopt-call": t2 - t1,
            "switchover": t2 - t0}


def check_frr_saw_nothing(frr: FrrRouter, before: dict, when: str) -> None:
    assert_unchanged(frr_view(frr), before, (*SESSION_KEYS, "prefixes-sent"), when)
    assert frr_bfd(frr).get("status") == "up", (when, frr_bfd(frr))


def test_standby_box_frr(topology, workdir):
    ha, hb, f = bridge(topology, ["fcra", "fcrb", "frr"], [[BOX_A], [BOX_B], [f"{FRR_ADDR}/24"]])
    frr = FrrRouter(f, workdir / "frr", frr_config(), bfd=True)
    res = frr.vtysh("configure terminal", "bfd", "profile nsr", "receive-interval 300",
                    "transmit-interval 300", "detect-multiplier 3", daemon="bfdd")
    assert "%" not in res.stdout, res.stdout
    store = str(workdir / "nsr.db")
    vip.add(f"{VIP}/24", "eth0", netns=ha.ns)  # the active box holds the VIP
    a = FcrRouter(ha, workdir / "fcra", fcr_config(), extra_args=["--nsr-store", store, "--engine-id", "a"])
    b = FcrRouter(hb, workdir / "fcrb", fcr_config(),
                  extra_args=["--nsr-store", store, "--engine-id", "b", "--standby"])
    a.wait_established(FRR_ADDR, 60)
    wait_until(lambda: frr_view(frr)["prefixes-received"] == N_ROUTES, 60, 0.5, "FRR has our routes")
    wait_until(lambda: a.summary()["rib"]["ipv4-unicast"] == 2 * N_ROUTES, 60, 0.5,
               "FCR has FRR's routes and its own")
    wait_until(lambda: frr_bfd(frr).get("status") == "up", 20, 0.2, "BFD up")
    wait_until(lambda: neigh_mac(f, VIP) == mac(ha), 5, 0.1, "FRR's ARP entry for the VIP is box A")
    time.sleep(1)
    before = frr_view(frr)
    bfd_before = frr_bfd(frr)
    cap = workdir / "frr.pcap"
    tcpdump = f.popen(["tcpdump", "-i", "eth0", "-n", "-U", "-w", str(cap), "tcp port 179"],
                      log=workdir / "tcpdump.log")
    time.sleep(1.0)

    # -- A -> B ---------------------------------------------------------------------------
    out = switch_over(a, b, "b")
    print(f"\nA -> B: switchover {out['switchover']:.3f} s (release call {out['release-call']:.3f} s, "
          f"adopt call {out['adopt-call']:.3f} s)\n  release {out['released']['timing']}\n"
          f"  adopt {out['adopted']['timing']}")
    assert out["adopted"]["peers"] == [FRR_ADDR]
    assert not vip.present(f"{VIP}/24", "eth0", ha.ns) and vip.present(f"{VIP}/24", "eth0", hb.ns)
    assert netlock.tables(ha.ns) == [] and netlock.tables(hb.ns) == [], "a freeze was left behind"
    assert b.neighbor_state(FRR_ADDR) == "Established"
    assert b.summary()["rib"]["ipv4-unicast"] == 2 * N_ROUTES
    assert neigh_mac(f, VIP) == mac(hb), "FRR's ARP entry did not follow the VIP"
    check_frr_saw_nothing(frr, before, "A -> B")
    assert a.ctl("nsr.status")["role"] == "released"

    # -- back: A restarted as a standby, B -> A ------------------------------------------------
    ha.stop_process(a.proc)  # the old engine owns nothing: it exits without a word
    time.sleep(4)  # more than a keepalive interval with B alone
    check_frr_saw_nothing(frr, before, "B alone")
    a2 = FcrRouter(ha, workdir / "fcra2", fcr_config(),
                   extra_args=["--nsr-store", store, "--engine-id", "a", "--standby"])
    out = switch_over(b, a2, "a")
    print(f"B -> A: switchover {out['switchover']:.3f} s (release call {out['release-call']:.3f} s, "
          f"adopt call {out['adopt-call']:.3f} s)\n  release {out['released']['timing']}\n"
          f"  adopt {out['adopted']['timing']}")
    assert out["adopted"]["peers"] == [FRR_ADDR]
    assert vip.present(f"{VIP}/24", "eth0", ha.ns) and not vip.present(f"{VIP}/24", "eth0", hb.ns)
    assert netlock.tables(ha.ns) == [] and netlock.tables(hb.ns) == [], "a freeze was left behind"
    assert a2.neighbor_state(FRR_ADDR) == "Established"
    assert a2.summary()["rib"]["ipv4-unicast"] == 2 * N_ROUTES
    assert neigh_mac(f, VIP) == mac(ha), "FRR's ARP entry did not follow the VIP"
    check_frr_saw_nothing(frr, before, "B -> A")
    hb.stop_process(b.proc)

    time.sleep(4)  # a keepalive interval more: the last engine keeps the session
    check_frr_saw_nothing(frr, before, "the end")
    view = frr_view(frr)
    assert view["updates-recv"] == before["updates-recv"], (view, before)  # nothing re-sent or withdrawn
    bfd_after = frr_bfd(frr)
    assert bfd_after.get("status") == "up" and bfd_after.get("uptime", 0) >= bfd_before.get("uptime", 0), \
        (bfd_before, bfd_after)
    ctr = frr_bfd(frr, "peers counters")
    assert ctr.get("session-down-events", 0) == 0, ctr
    tcpdump.send_signal(signal.SIGINT)
    tcpdump.wait(10)
    flags = f.run(["tcpdump", "-r", str(cap), "-n", "tcp[tcpflags] & (tcp-rst|tcp-fin) != 0"]).stdout
    assert flags.strip() == "", flags
    for r in (a, b, a2):  # no engine logged an error (a failed VIP step, a keeper error)
        bad = [ln for ln in r.log.read_text(errors="replace").splitlines()
               if "level=error" in ln or "level=critical" in ln or "Traceback" in ln]
        assert not bad, (r.workdir.name, bad)


@pytest.mark.parametrize("address", ["10.0.93.1/24", "fd00:93::1/64"])
def test_vip_announce(topology, address):
    """vip.add announces the address: the peer's neighbour entry points at the new box
    right away (gratuitous ARP request / unsolicited NA with override), even within the
    ARP locktime of an entry just confirmed."""
    peer_addr = "10.0.93.2/24" if "." in address else "fd00:93::2/64"
    hx, hy, p = bridge(topology, ["x", "y", "p"], [[], [], [peer_addr]])
    ip = address.split("/")[0]
    vip.add(address, "eth0", netns=hx.ns)
    assert vip.present(address, "eth0", hx.ns)
    vip.add(address, "eth0", netns=hx.ns)  # idempotent
    fam = "AF_INET6" if ":" in ip else "AF_INET"
    p.run(["python3", "-c", f"import socket; socket.socket(socket.{fam}, socket.SOCK_DGRAM)"
                            f".sendto(b'x', ('{ip}', 9))"])
    wait_until(lambda: neigh_mac(p, ip) == mac(hx), 5, 0.05, "peer resolved the address to x")
    vip.remove(address, "eth0", netns=hx.ns)
    vip.remove(address, "eth0", netns=hx.ns)  # idempotent
    vip.add(address, "eth0", netns=hy.ns)
    wait_until(lambda: neigh_mac(p, ip) == mac(hy), 0.5, 0.02, "peer's entry moved to y")
    assert not vip.present(address, "eth0", hx.ns)
    vip.remove(address, "eth0", netns=hy.ns)
    vip.add(address, "eth0", netns=hx.ns)
    wait_until(lambda: neigh_mac(p, ip) == mac(hx), 0.5, 0.02, "and back to x")
