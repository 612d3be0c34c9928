"""NETCONF end to end: ncclient over real SSH to fcr-mgmtd, which drives an fcrd (started
empty) in a namespace peering with FRR. The management plane outlives the engine
(DESIGN.md invariant 2)."""

from __future__ import annotations

import os
import re
import time

import paramiko
import pytest
from lxml import etree
from ncclient.operations import RPCError

from tests.interop.common import FCR_AS, FCR_ID, FCR_NET4
from tests.topotest import fcr as fcrcfg
from tests.topotest import wait_until
from tests.topotest.frr import FrrRouter
from tests.topotest.mgmt import MgmtRouter

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
BGP = "urn:fcr:yang:fcr-bgp"
SYS = "urn:fcr:yang:fcr-system"
NCN = "urn:ietf:params:xml:ns:yang:ietf-netconf-notifications"
FRR_AS = 65002
FCR_ADDR, FRR_ADDR = "10.0.1.1", "10.0.1.2"
EXTRA_NET = "203.0.113.0/24"
USERS = {"admin": ("admin", "admin-pw-1"), "oper": ("operator", "oper-pw-2"), "view": ("viewer", "view-pw-3")}

NEIGHBOR_EDIT = f"""<config xmlns="{NC}"><bgp xmlns="{BGP}"><neighbors><neighbor>
<neighbor-address>{FRR_ADDR}</neighbor-address><peer-as>{FRR_AS}</peer-as>
<timers><connect-retry>2</connect-retry></timers>
<afi-safis><afi-safi><afi-safi-name>ipv4-unicast</afi-safi-name></afi-safi></afi-safis>
</neighbor></neighbors></bgp></config>"""
NETWORK_EDIT = f"""<config xmlns="{NC}"><bgp xmlns="{BGP}"><networks><network>
<prefix>{EXTRA_NET}</prefix></network></networks></bgp></config>"""


def fcr_base() -> dict:
    return fcrcfg.config(FCR_AS, FCR_ID, [], [FCR_NET4])


def topo_with_frr(topology, workdir):
    h_fcr, h_frr = topology.add_host("fcr"), topology.add_host("frr")
    topology.link(h_fcr, h_frr, [f"{FCR_ADDR}/24"], [f"{FRR_ADDR}/24"])
    frr = FrrRouter(h_frr, workdir / "frr", FrrRouter.render_bgp(
        FRR_AS, FRR_ADDR, [{"address": FCR_ADDR, "remote_as": FCR_AS, "connect_retry": 2}]))
    mr = MgmtRouter(h_fcr, workdir / "fcr", fcr_base(), USERS)
    return mr, frr


def frr_has(frr: FrrRouter, prefix: str) -> bool:
    return frr.best_path(prefix, "ipv4") is not None


def data(reply) -> etree._Element:
    return etree.fromstring(reply.xml.encode())


def notifications(m, count_max: int = 50, timeout: float = 0.2) -> list[etree._Element]:
    out = []
    for _ in range(count_max):
        n = m.take_notification(block=True, timeout=timeout)
        if n is None:
            break
        out.append(etree.fromstring(n.notification_xml.encode()))
    return out


# -- 1. the Ansible-style sequence, then a confirmed commit that is not confirmed -------------

def test_ansible_sequence_and_unconfirmed_revert(topology, workdir):
    mr, frr = topo_with_frr(topology, workdir)
    with mr.netconf("admin") as m, mr.netconf("view") as watcher:
        watcher.create_subscription()
        # lock -> edit -> validate -> get-config candidate -> commit confirmed -> confirm -> unlock
        m.lock("candidate")
        m.edit_config(target="candidate", config=NEIGHBOR_EDIT)
        m.validate(source="candidate")
        cand = m.get_config("candidate", filter=("subtree", f'<bgp xmlns="{BGP}"><neighbors/></bgp>'))
        assert FRR_ADDR in cand.data_xml
        run = m.get_config("running", filter=("subtree", f'<bgp xmlns="{BGP}"><neighbors/></bgp>'))
        assert FRR_ADDR not in run.data_xml
        m.commit(confirmed=True, timeout="30")
        m.commit()  # confirming commit
        m.unlock("candidate")
        frr.wait_established(FCR_ADDR, 30)
        assert mr.neighbor_state(FRR_ADDR) == "Established"
        assert wait_until(lambda: frr_has(frr, FCR_NET4), 15, 0.25, message="FCR's network in FRR")

        # the viewer's subscription saw the config change and the neighbor come up
        def seen_established():
            for n in notifications(watcher):
                ev = n.find(f"{{{BGP}}}neighbor-state-change")
                if ev is not None and ev.findtext(f"{{{BGP}}}session-state") == "established":
                    return (ev,)
            return None
        (ev,) = wait_until(seen_established, 10, 0.1, message="neighbor-state-change established")
        assert ev.findtext(f"{{{BGP}}}neighbor-address") == FRR_ADDR

        # a confirmed commit (3 s) that FRR sees, never confirmed: reverted, FRR sees the old state
        m.edit_config(target="candidate", config=NETWORK_EDIT)
        m.commit(confirmed=True, timeout="3")
        wait_until(lambda: frr_has(frr, EXTRA_NET), 15, 0.25, message=f"{EXTRA_NET} in FRR")
        wait_until(lambda: not frr_has(frr, EXTRA_NET), 20, 0.25, message=f"{EXTRA_NET} withdrawn after revert")
        assert frr_has(frr, FCR_NET4)
        run = m.get_config("running", filter=("subtree", f'<bgp xmlns="{BGP}"><networks/></bgp>'))
        assert EXTRA_NET not in run.data_xml and FCR_NET4 in run.data_xml
        assert frr.neighbor_state(FCR_ADDR) == "Established"  # a network change does not reset


# -- 2. restarting fcrd does not drop the NETCONF session -------------------------------------

def test_engine_restart_keeps_netconf_session(topology, workdir):
    mr, frr = topo_with_frr(topology, workdir)
    with mr.netconf("admin") as m:
        m.edit_config(target="candidate", config=NEIGHBOR_EDIT)
        m.commit()
        frr.wait_established(FCR_ADDR, 30)
        old_pid = mr.fcrd.pid
        mr.restart_fcrd()  # SIGKILL, then fcrd starts empty
        assert mr.fcrd.pid != old_pid
        # the session is still there and answers while the engine comes back
        assert FRR_ADDR in m.get_config("running").data_xml
        # fcr-mgmtd pushes running to the new engine: the neighbor is back, FRR re-establishes
        wait_until(lambda: mr.neighbor_state(FRR_ADDR) == "Established", 40, 0.25,
                   message="FCR neighbor Established after the engine restart")
        frr.wait_established(FCR_ADDR, 15)
        assert m.connected
        # and the session still commits into the new engine
        m.edit_config(target="candidate", config=NETWORK_EDIT)
        m.commit()
        wait_until(lambda: frr_has(frr, EXTRA_NET), 15, 0.25, message=f"{EXTRA_NET} in FRR")
    assert mr.mgmtd.poll() is None


# -- 3. errors, hostile input, roles, schemas, locks (no FRR needed) --------------------------

def raw_session(mr: MgmtRouter, user="admin"):
    """A raw NETCONF 1.1 session over paramiko: (transport, channel, server hello)."""
    t = paramiko.Transport(mr.socket())
    t.connect(username=user, password=USERS[user][1])
    ch = t.open_session()
    ch.settimeout(10)
    ch.invoke_subsystem("netconf")
    buf = b""
    for _ in range(1000):
        if b"]]>]]>" in buf:
            break
        buf += ch.recv(65536)
    hello = buf.split(b"]]>]]>")[0]
    ch.sendall(f'<hello xmlns="{NC}"><capabilities><capability>urn:ietf:params:netconf:base:1.1'
               '</capability></capabilities></hello>]]>]]>'.encode())
    return t, ch, hello


def chunk(msg: str | bytes) -> bytes:
    b = msg.encode() if isinstance(msg, str) else msg
    return b"\n#%d\n" % len(b) + b + b"\n##\n"


def read_chunked(ch) -> bytes | None:
    """One chunked message, or None when the server closed the channel."""
    buf = b""
    for _ in range(10000):
        if buf.endswith(b"\n##\n"):
            return b"".join(re.findall(rb"\n#\d+\n(.*?)(?=\n#)", buf, re.S))
        try:
            d = ch.recv(65536)
        except TimeoutError:
            return None
        if not d:
            return None
        buf += d
    return None


def closed(ch, timeout=10.0) -> bool:
    end = time.monotonic() + timeout
    for _ in range(int(timeout / 0.05) + 1):
        if ch.closed or ch.exit_status_ready() or ch.eof_received:
            return True
        try:
            ch.settimeout(0.05)
            if ch.recv(65536) == b"":
                return True
        except TimeoutError:
            pass
        if time.monotonic() > end:
            break
    return False


def rpc_error(exc: RPCError) -> tuple[str, str | None]:
    return exc.tag, exc.path


def test_errors_hostile_input_roles_schemas_locks(topology, workdir):
    h = topology.add_host("fcr")
    mr = MgmtRouter(h, workdir / "fcr", fcr_base(), USERS)
    with mr.netconf("admin") as a, mr.netconf("oper") as o, mr.netconf("view") as v:
        # leafref: a neighbor in a peer group that does not exist
        a.edit_config(target="candidate", config=f"""<config xmlns="{NC}"><bgp xmlns="{BGP}"><neighbors>
            <neighbor><neighbor-address>192.0.2.9</neighbor-address><peer-as>65009</peer-as>
            <peer-group>nope</peer-group></neighbor></neighbors></bgp></config>""")
        with pytest.raises(RPCError) as ei:
            a.validate(source="candidate")
        assert ei.value.tag == "data-missing", ei.value.xml
        assert ei.value.path and "peer-group" in ei.value.path and "192.0.2.9" in ei.value.path
        a.discard_changes()
        # must: keepalive-interval >= hold-time
        a.edit_config(target="candidate", config=f"""<config xmlns="{NC}"><bgp xmlns="{BGP}"><neighbors>
            <neighbor><neighbor-address>192.0.2.9</neighbor-address><peer-as>65009</peer-as>
            <timers><hold-time>9</hold-time><keepalive-interval>30</keepalive-interval></timers>
            </neighbor></neighbors></bgp></config>""")
        with pytest.raises(RPCError) as ei:
            a.commit()
        assert ei.value.tag == "operation-failed", ei.value.xml
        assert "timers" in (ei.value.path or ""), ei.value.xml
        assert "keepalive-interval must be less than hold-time" in ei.value.message
        a.discard_changes()

        # roles: a viewer cannot edit; an operator edits BGP but not users; viewers see no hashes
        with pytest.raises(RPCError) as ei:
            v.edit_config(target="candidate", config=NETWORK_EDIT)
        assert ei.value.tag == "access-denied"
        with pytest.raises(RPCError) as ei:
            o.edit_config(target="candidate", config=f"""<config xmlns="{NC}"><system xmlns="{SYS}">
                <users><user><name>view</name><role>admin</role></user></users></system></config>""")
        assert ei.value.tag == "access-denied"
        o.edit_config(target="candidate", config=NETWORK_EDIT)
        o.commit()
        with pytest.raises(RPCError) as ei:
            o.kill_session(str(v.session_id))
        assert ei.value.tag == "access-denied"
        assert "password-hash" in a.get_config("running").data_xml
        assert "password-hash" not in v.get_config("running").data_xml
        assert "password-hash" not in o.get_config("running").data_xml
        assert "password-hash" not in v.get().data_xml
        assert "<name>view</name>" in v.get_config("running").data_xml

        # get-schema returns every advertised module
        mods = set()
        for cap in a.server_capabilities:
            mm = re.search(r"[?&]module=([^&]+)", cap)
            if mm:
                mods.add(mm.group(1))
        assert {"fcr-bgp", "fcr-system", "ietf-netconf"} <= mods
        for mod in sorted(mods):
            text = v.get_schema(mod).data
            assert re.search(rf"\bmodule {re.escape(mod)}\b", text), mod

        # two sessions contending for a lock
        a.lock("candidate")
        with pytest.raises(RPCError) as ei:
            o.lock("candidate")
        assert ei.value.tag == "lock-denied"
        assert ei.value.info and str(a.session_id) in ei.value.info
        with pytest.raises(RPCError) as ei:
            o.edit_config(target="candidate", config=NETWORK_EDIT)
        assert ei.value.tag == "in-use"
        a.unlock("candidate")
        o.lock("candidate")
        o.unlock("candidate")

        # hostile input on raw sessions; each time the other sessions and the daemon are fine
        def others_fine():
            assert FCR_ID in a.get_config("running").data_xml
            assert mr.mgmtd.poll() is None

        t, ch, hello = raw_session(mr)
        try:
            assert b"urn:ietf:params:netconf:base:1.1" in hello
            # malformed XML -> malformed-message, the session stays
            ch.sendall(chunk('<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get>'))
            r = read_chunked(ch)
            assert r is not None and b"malformed-message" in r, r
            # XXE / billion laughs: a DOCTYPE is refused, entities are never expanded
            laughs = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                      '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
                      '<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
                      f'<rpc message-id="2" xmlns="{NC}"><get-config><source><running/></source>'
                      '<filter>&lol2;&xxe;</filter></get-config></rpc>')
            ch.sendall(chunk(laughs))
            r = read_chunked(ch)
            assert r is not None and b"malformed-message" in r and b"root:" not in r, r
            # unknown namespace on the operation -> operation-not-supported; on a parameter -> unknown-namespace
            ch.sendall(chunk(f'<rpc message-id="3" xmlns="{NC}"><get xmlns="urn:example:nope"/></rpc>'))
            r = read_chunked(ch)
            assert r is not None and b"operation-not-supported" in r and b'message-id="3"' in r, r
            ch.sendall(chunk(f'<rpc message-id="4" xmlns="{NC}"><get><x:filter xmlns:x="urn:example:nope"/>'
                             '</get></rpc>'))
            r = read_chunked(ch)
            assert r is not None and b"unknown-namespace" in r and b"urn:example:nope" in r, r
            # broken chunk framing -> the session is closed
            ch.sendall(b"\n#abc\n<rpc/>\n##\n")
            assert closed(ch)
        finally:
            t.close()
        others_fine()

        t, ch, _ = raw_session(mr)
        try:
            # a message over the size limit (1 MiB here) -> the session is closed
            big = b"\n#%d\n" % (2 << 20) + b" " * (2 << 20)
            try:
                ch.settimeout(20)
                ch.sendall(big)
            except (OSError, EOFError, paramiko.SSHException):
                pass
            assert closed(ch, 20)
        finally:
            t.close()
        others_fine()
        # the daemon still takes new sessions
        with mr.netconf("view") as v2:
            assert FCR_ID in v2.get_config("running").data_xml
    assert mr.mgmtd.poll() is None
    # fcr-mgmtd leaves with SIGTERM, cleanly
    os.kill(mr.mgmtd.pid, 15)
    assert mr.mgmtd.wait(15) == 0

