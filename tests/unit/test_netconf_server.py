"""NETCONF server: ncclient (and a raw paramiko client) over real SSH on 127.0.0.1 against
the real ManagementPlane (no routing engine), one server per test on an ephemeral port."""

from __future__ import annotations

import asyncio
import threading
import time

import paramiko
import pytest
from lxml import etree
from ncclient import manager
from ncclient.operations import RPCError

from appliance.mgmt.plane import ManagementPlane
from appliance.netconf.library import Library
from appliance.netconf.server import NetconfServer

pytestmark = pytest.mark.timeout(60)

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
BGP = "urn:fcr:yang:fcr-bgp"
NCN = "urn:ietf:params:xml:ns:yang:ietf-netconf-notifications"

BGP_CONFIG = f"""<config xmlns="{NC}"><bgp xmlns="{BGP}"><global><as>65001</as>
<router-id>192.0.2.1</router-id></global><neighbors><neighbor>
<neighbor-address>192.0.2.2</neighbor-address><peer-as>65002</peer-as>
<description>n2</description></neighbor><neighbor><neighbor-address>192.0.2.3</neighbor-address>
<peer-as>65003</peer-as></neighbor></neighbors></bgp></config>"""


class Loop:
    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout=30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn, *args):
        async def go():
            return fn(*args)
        return self.run(go())

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def host_key(tmp_path_factory):
    return tmp_path_factory.mktemp("nc") / "ssh_host_key"


@pytest.fixture
def env(tmp_path, host_key):
    loop = Loop()
    calls = []

    def engine_call(method, **params):
        calls.append((method, params))
        if method == "bgp.neighbors":
            return [{"neighbor-address": "192.0.2.2"}, {"neighbor-address": "192.0.2.3"}]
        return {}

    async def setup():
        plane = ManagementPlane(tmp_path / "state", None)
        await plane.start()
        server = NetconfServer(plane, host="127.0.0.1", port=0, host_key_path=host_key,
                               authenticate=lambda u, p: p == "secret-" + u, engine_call=engine_call)
        await server.start()
        return plane, server

    plane, server = loop.run(setup())
    managers = []

    class Env:
        pass

    e = Env()
    e.loop, e.plane, e.server, e.calls = loop, plane, server, calls

    def connect(user="admin", **kw):
        m = manager.connect(host="127.0.0.1", port=server.port, username=user, password="secret-" + user,
                            hostkey_verify=False, allow_agent=False, look_for_keys=False, timeout=20, **kw)
        managers.append(m)
        return m

    e.connect = connect
    yield e
    for m in managers:
        try:
            if m.connected:
                m.close_session()
        except Exception:
            pass
    loop.run(server.stop())
    loop.run(plane.stop())
    loop.close()
    assert not server.sessions


def wait_for(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


def data_of(reply):
    return etree.fromstring(reply.xml.encode()) if hasattr(reply, "xml") else reply


# -- hello ------------------------------------------------------------------------------

def test_hello_capabilities_exact(env):
    m = env.connect()
    caps = list(m.server_capabilities)
    assert caps == Library().capabilities()
    assert caps[:13] == [
        "urn:ietf:params:netconf:base:1.0",
        "urn:ietf:params:netconf:base:1.1",
        "urn:ietf:params:netconf:capability:writable-running:1.0",
        "urn:ietf:params:netconf:capability:candidate:1.0",
        "urn:ietf:params:netconf:capability:confirmed-commit:1.0",
        "urn:ietf:params:netconf:capability:confirmed-commit:1.1",
        "urn:ietf:params:netconf:capability:rollback-on-error:1.0",
        "urn:ietf:params:netconf:capability:validate:1.0",
        "urn:ietf:params:netconf:capability:validate:1.1",
        "urn:ietf:params:netconf:capability:xpath:1.0",
        "urn:ietf:params:netconf:capability:with-defaults:1.0?basic-mode=explicit"
        "&also-supported=report-all,report-all-tagged,trim",
        "urn:ietf:params:netconf:capability:notification:1.0",
        "urn:ietf:params:netconf:capability:interleave:1.0",
    ]
    lib = [c for c in caps if "yang-library:1.1" in c]
    assert len(lib) == 1 and lib[0].startswith(
        "urn:ietf:params:netconf:capability:yang-library:1.1?revision=2019-01-04&content-id=")
    assert any(c.startswith("urn:ietf:params:netconf:capability:yang-library:1.0?revision=2019-01-04"
                            "&module-set-id=") for c in caps)
    assert "urn:fcr:yang:fcr-bgp?module=fcr-bgp&revision=2026-11-22" in caps
    assert ("urn:ietf:params:xml:ns:netconf:base:1.0?module=ietf-netconf&revision=2011-06-01&features="
            "writable-running,candidate,confirmed-commit,rollback-on-error,validate,xpath") in caps
    assert wait_for(lambda: int(m.session_id) in env.server.sessions)


def test_yang_library_data(env):
    m = env.connect()
    content_id = next(c for c in m.server_capabilities if "content-id=" in c).split("content-id=")[1]
    r = m.get(filter=("subtree", '<yang-library xmlns="urn:ietf:params:xml:ns:yang:ietf-yang-library"/>'))
    root = data_of(r)
    ns = {"nc": NC, "yl": "urn:ietf:params:xml:ns:yang:ietf-yang-library"}
    assert root.xpath("/nc:rpc-reply/nc:data/yl:yang-library/yl:content-id/text()", namespaces=ns) == [content_id]
    names = root.xpath("//yl:module-set/yl:module/yl:name/text()", namespaces=ns)
    assert "fcr-bgp" in names and names == sorted(names)
    # nothing else was selected
    assert [etree.QName(e).localname for e in root.find(f"{{{NC}}}data")] == ["yang-library"]
    # the same via an XPath filter with the client's own prefix
    r = m.get(filter=("xpath", ({"y": ns["yl"]}, "/y:modules-state/y:module-set-id")))
    assert data_of(r).xpath("//yl:module-set-id/text()", namespaces=ns) == [content_id]


def test_base10_only_raw_client(env):
    """A client that speaks only base:1.0 (spelled as the namespace URN) gets EOM framing."""
    t = paramiko.Transport(("127.0.0.1", env.server.port))
    try:
        t.connect(username="admin", password="secret-admin")
        ch = t.open_session()
        ch.invoke_subsystem("netconf")
        ch.settimeout(10)
        buf = b""
        while b"]]>]]>" not in buf:
            buf += ch.recv(65536)
        hello, buf = buf.split(b"]]>]]>", 1)
        assert b"<session-id>" in hello
        ch.sendall(b'<?xml version="1.0"?><hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">'
                   b"<capabilities><capability>urn:ietf:params:xml:ns:netconf:base:1.0</capability>"
                   b"</capabilities></hello>]]>]]>")
        ch.sendall(b'<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="7" xmlns:x="urn:x"'
                   b' x:tag="keep"><get-config><source><running/></source></get-config></rpc>]]>]]>')
        while b"]]>]]>" not in buf:
            buf += ch.recv(65536)
        reply = etree.fromstring(buf.split(b"]]>]]>")[0])
        assert reply.tag == f"{{{NC}}}rpc-reply"
        assert reply.get("message-id") == "7" and reply.get("{urn:x}tag") == "keep"
        assert reply.find(f"{{{NC}}}data") is not None
    finally:
        t.close()


def test_chunked_hello_and_malformed_message(env):
    t = paramiko.Transport(("127.0.0.1", env.server.port))
    try:
        t.connect(username="admin", password="secret-admin")
        ch = t.open_session()
        ch.invoke_subsystem("netconf")
        ch.settimeout(10)
        buf = b""
        while b"]]>]]>" not in buf:
            buf += ch.recv(65536)
        hello = (b'<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities>'
                 b"<capability>urn:ietf:params:netconf:base:1.1</capability></capabilities></hello>")
        ch.sendall(b"\n#%d\n" % len(hello) + hello + b"\n##\n")

        def chunked(msg):
            ch.sendall(b"\n#%d\n" % len(msg) + msg + b"\n##\n")

        def read():
            data = b""
            while not data.endswith(b"\n##\n"):
                data += ch.recv(65536)
            body, rest = b"", data
            while rest.startswith(b"\n#") and not rest.startswith(b"\n##"):
                head, rest = rest[2:].split(b"\n", 1)
                n = int(head)
                body, rest = body + rest[:n], rest[n:]
            return etree.fromstring(body)

        chunked(b"<rpc xmlns='urn:ietf:params:xml:ns:netconf:base:1.0' message-id='1'><get-config>")
        r = read()
        assert r.findtext(f".//{{{NC}}}error-tag") == "malformed-message"
        chunked(b"<rpc xmlns='urn:ietf:params:xml:ns:netconf:base:1.0'><discard-changes/></rpc>")
        r = read()
        assert r.findtext(f".//{{{NC}}}error-tag") == "missing-attribute"
        assert r.findtext(f".//{{{NC}}}bad-attribute") == "message-id"
        assert r.find(f"{{{NC}}}ok") is None
        chunked(b"<!DOCTYPE x [<!ENTITY a 'aaaa'>]><rpc xmlns='urn:ietf:params:xml:ns:netconf:base:1.0'"
                b" message-id='2'><get/></rpc>")
        assert read().findtext(f".//{{{NC}}}error-tag") == "malformed-message"
        chunked(b"<rpc xmlns='urn:ietf:params:xml:ns:netconf:base:1.0' message-id='3'>"
                b"<frobnicate xmlns='urn:x'/></rpc>")
        r = read()
        assert r.findtext(f".//{{{NC}}}error-tag") == "operation-not-supported"
        assert r.get("message-id") == "3"
        # the session is still usable
        chunked(b"<rpc xmlns='urn:ietf:params:xml:ns:netconf:base:1.0' message-id='4'><discard-changes/></rpc>")
        assert read().find(f"{{{NC}}}ok") is not None
    finally:
        t.close()


# -- configuration --------------------------------------------------------------------------

def test_edit_validate_commit_with_locks(env):
    a = env.connect()
    b = env.connect()
    with a.locked("candidate"):
        with pytest.raises(RPCError) as exc:
            b.lock("candidate")
        assert exc.value.tag == "lock-denied"
        assert exc.value.info and f"<session-id>{a.session_id}</session-id>" in exc.value.info.replace(
            f' xmlns="{NC}"', "")
        a.edit_config(target="candidate", config=BGP_CONFIG)
        a.validate(source="candidate")
        cand = a.get_config(source="candidate").data_xml
        assert "192.0.2.2" in cand
        assert "192.0.2.2" not in a.get_config(source="running").data_xml
        a.commit()
    running = b.get_config(source="running").data_xml
    assert "192.0.2.3" in running


def test_get_config_filters(env):
    m = env.connect()
    m.edit_config(target="candidate", config=BGP_CONFIG)
    m.commit()
    ns = {"nc": NC, "b": BGP}
    f = (f'<bgp xmlns="{BGP}"><neighbors><neighbor><neighbor-address>192.0.2.2</neighbor-address>'
         "</neighbor></neighbors></bgp>")
    root = data_of(m.get_config(source="running", filter=("subtree", f)))
    assert root.xpath("//b:neighbor/b:neighbor-address/text()", namespaces=ns) == ["192.0.2.2"]
    assert root.xpath("//b:neighbor/b:description/text()", namespaces=ns) == ["n2"]
    assert not root.xpath("//b:global", namespaces=ns)
    # selection + containment
    f = f'<bgp xmlns="{BGP}"><global><as/></global></bgp>'
    root = data_of(m.get_config(source="running", filter=("subtree", f)))
    assert root.xpath("//b:global/*/text()", namespaces=ns) == ["65001"]
    # XPath with the client's prefix
    r = m.get_config(source="running", filter=("xpath", ({"x": BGP},
                     "/x:bgp/x:neighbors/x:neighbor[x:neighbor-address='192.0.2.3']/x:peer-as")))
    root = data_of(r)
    assert root.xpath("//b:peer-as/text()", namespaces=ns) == ["65003"]
    assert "192.0.2.2" not in r.data_xml
    # the same request twice gives the same text
    again = m.get_config(source="running", filter=("xpath", ({"x": BGP},
                         "/x:bgp/x:neighbors/x:neighbor[x:neighbor-address='192.0.2.3']/x:peer-as")))
    assert again.data_xml == r.data_xml


def test_rpc_error_fields_for_invalid_value(env):
    m = env.connect()
    bad = (f'<config xmlns="{NC}"><bgp xmlns="{BGP}"><global><as>65001</as><router-id>192.0.2.1</router-id>'
           "</global><neighbors><neighbor><neighbor-address>192.0.2.2</neighbor-address><peer-as>65002</peer-as>"
           "<timers><hold-time>2</hold-time></timers></neighbor></neighbors></bgp></config>")
    with pytest.raises(RPCError) as exc:
        m.edit_config(target="candidate", config=bad)
        m.validate(source="candidate")
    err = exc.value
    assert err.tag == "invalid-value"
    assert err.severity == "error"
    xml = etree.fromstring(err.xml.encode() if isinstance(err.xml, str) else etree.tostring(err.xml))
    path_el = xml.find(f"{{{NC}}}error-path")
    assert path_el is not None
    assert "hold-time" in path_el.text
    assert path_el.nsmap.get("fcr-bgp") == BGP
    assert path_el.text.startswith("/fcr-bgp:bgp/fcr-bgp:neighbors/fcr-bgp:neighbor[fcr-bgp:neighbor-address=")
    msg = xml.find(f"{{{NC}}}error-message")
    assert msg.get("{http://www.w3.org/XML/1998/namespace}lang") == "en"
    order = [etree.QName(c).localname for c in xml]
    assert order[:3] == ["error-type", "error-tag", "error-severity"]
    assert order.index("error-path") < order.index("error-message")


def test_discard_changes(env):
    m = env.connect()
    m.edit_config(target="candidate", config=BGP_CONFIG)
    assert "192.0.2.2" in m.get_config(source="candidate").data_xml
    m.discard_changes()
    assert "192.0.2.2" not in m.get_config(source="candidate").data_xml


def test_confirmed_commit_and_cancel(env):
    m = env.connect()
    m.edit_config(target="candidate", config=BGP_CONFIG)
    m.commit(confirmed=True, timeout="60", persist="tok")
    assert "192.0.2.2" in m.get_config(source="running").data_xml
    m.cancel_commit(persist_id="tok")
    assert "192.0.2.2" not in m.get_config(source="running").data_xml
    # confirmed + confirming commit
    m.edit_config(target="candidate", config=BGP_CONFIG)
    m.commit(confirmed=True, timeout="60")
    m.commit()
    assert "192.0.2.2" in m.get_config(source="running").data_xml
    with pytest.raises(RPCError) as exc:
        m.cancel_commit()
    assert exc.value.tag == "operation-failed"


def test_confirmed_commit_reverts_when_session_closes(env):
    m = env.connect()
    m.edit_config(target="candidate", config=BGP_CONFIG)
    m.commit(confirmed=True, timeout="60")
    other = env.connect()
    assert "192.0.2.2" in other.get_config(source="running").data_xml
    m.close_session()
    assert wait_for(lambda: "192.0.2.2" not in other.get_config(source="running").data_xml)


def test_kill_session_releases_lock(env):
    a = env.connect()
    b = env.connect()
    a.lock("running")
    with pytest.raises(RPCError) as exc:
        b.lock("running")
    assert exc.value.tag == "lock-denied"
    with pytest.raises(RPCError) as exc:
        b.kill_session(b.session_id)
    assert exc.value.tag == "invalid-value"
    b.kill_session(a.session_id)
    assert wait_for(lambda: int(a.session_id) not in env.server.sessions)
    b.lock("running")
    b.unlock("running")


def test_with_defaults_modes(env):
    m = env.connect()
    m.edit_config(target="candidate", config=BGP_CONFIG)
    m.commit()
    f = (f'<bgp xmlns="{BGP}"><neighbors><neighbor><neighbor-address>192.0.2.3</neighbor-address>'
         "</neighbor></neighbors></bgp>")

    def get(mode):
        return m.get_config(source="running", filter=("subtree", f), with_defaults=mode).data_xml

    explicit = get("explicit")
    trim = get("trim")
    report_all = get("report-all")
    tagged = get("report-all-tagged")
    assert "hold-time" not in explicit and "hold-time" not in trim
    assert "<hold-time>90</hold-time>" in report_all
    assert "urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults" in tagged and "default=\"true\"" in tagged
    with pytest.raises(RPCError) as exc:
        m.dispatch(etree.fromstring(
            f'<get-config xmlns="{NC}"><source><running/></source><with-defaults '
            'xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults">everything</with-defaults>'
            "</get-config>"))
    assert exc.value.tag == "invalid-value"


def test_get_schema(env):
    m = env.connect()
    text = m.get_schema("fcr-bgp").data
    assert text.startswith("module fcr-bgp {")
    assert text == open("yang/fcr-bgp.yang").read()
    assert "<module" in m.get_schema("fcr-bgp", version="2026-11-22", format="yin").data
    with pytest.raises(RPCError) as exc:
        m.get_schema("fcr-bgp", version="1999-01-01")
    assert exc.value.tag == "invalid-value"


def test_notification_after_commit(env):
    sub = env.connect()
    sub.create_subscription()
    other = env.connect()
    other.edit_config(target="candidate", config=BGP_CONFIG)
    other.commit()
    # interleave: the subscribed session still answers RPCs
    assert "192.0.2.2" in sub.get_config(source="running").data_xml
    seen = []
    end = time.monotonic() + 10
    while time.monotonic() < end:
        n = sub.take_notification(timeout=1)
        if n is None:
            continue
        root = etree.fromstring(n.notification_xml.encode())
        event = root[1]
        seen.append(etree.QName(event).localname)
        if (etree.QName(event).localname == "netconf-config-change"
                and event.findtext(f"{{{NCN}}}datastore") == "running"):
            assert etree.QName(event).namespace == NCN
            assert event.findtext(f"{{{NCN}}}datastore") == "running"
            assert event.findtext(f"{{{NCN}}}changed-by/{{{NCN}}}username") == "admin"
            assert event.findtext(f"{{{NCN}}}changed-by/{{{NCN}}}session-id") == other.session_id
            targets = [t.text for t in event.iter(f"{{{NCN}}}target")]
            assert targets and all(t.startswith("/fcr-bgp:bgp") for t in targets)
            break
    assert "netconf-config-change" in seen, seen
    with pytest.raises(RPCError) as exc:
        sub.create_subscription()
    assert exc.value.tag == "in-use"


def test_engine_event_and_session_notifications(env):
    sub = env.connect()
    sub.create_subscription(filter=("subtree", f'<neighbor-state-change xmlns="{BGP}"/>'))
    env.server.on_engine_event("bgp-neighbor-state-change",
                               {"session-state": "established", "neighbor-address": "192.0.2.2",
                                "previous-state": "openconfirm"})
    n = sub.take_notification(timeout=5)
    assert n is not None
    event = etree.fromstring(n.notification_xml.encode())[1]
    assert [etree.QName(c).localname for c in event] == ["neighbor-address", "previous-state", "session-state"]
    # session start/end of another session are filtered out by the subtree filter
    env.connect().close_session()
    assert sub.take_notification(timeout=0.5) is None


def test_custom_rpcs(env):
    m = env.connect()
    m.edit_config(target="candidate", config=BGP_CONFIG)
    m.commit()
    r = m.dispatch(etree.fromstring('<get-commit-history xmlns="urn:fcr:yang:fcr-mgmt"/>'))
    root = etree.fromstring(r.xml.encode())
    ids = root.xpath("//m:commit/m:id/text()", namespaces={"m": "urn:fcr:yang:fcr-mgmt"})
    assert len(ids) >= 2
    r = m.dispatch(etree.fromstring(
        '<compare xmlns="urn:fcr:yang:fcr-mgmt"><from><index>1</index></from>'
        "<to><datastore>running</datastore></to></compare>"))
    diff = etree.fromstring(r.xml.encode()).findtext(".//{urn:fcr:yang:fcr-mgmt}difference")
    assert "192.0.2.2" in diff
    m.dispatch(etree.fromstring('<rollback xmlns="urn:fcr:yang:fcr-mgmt"><index>1</index>'
                                "<commit>true</commit></rollback>"))
    assert "192.0.2.2" not in m.get_config(source="running").data_xml
    m.dispatch(etree.fromstring(f'<clear-neighbor xmlns="{BGP}"><all/><soft>in</soft></clear-neighbor>'))
    assert ("bgp.clear", {"neighbor": "192.0.2.3", "soft": "in"}) in env.calls
    with pytest.raises(RPCError) as exc:
        m.dispatch(etree.fromstring('<switchover xmlns="urn:fcr:yang:fcr-nsr"/>'))
    assert exc.value.tag == "operation-not-supported"


def test_switchover_with_vip(env):
    """fcr-nsr:switchover with <vip> over SSH: the real SwitchoverRunner passes it to the
    active engine's nsr.release as {"address", "dev"} (the control calls go to a fake
    engine); a malformed address is an invalid-value rpc-error that names it (more cases in
    test_switchover_vip.py)."""
    from appliance.mgmt.switchover import SwitchoverRunner

    calls = []

    def control(path, method, **params):
        calls.append((method, params))
        if method == "nsr.status":
            return {"role": "active", "standbys": [{"engine-id": "b", "fresh": True}]}
        assert method == "nsr.release"
        return {"to": params["to"], "epoch": 8}

    runner = SwitchoverRunner("/nonexistent/fcrd.sock", "fcrd", lambda: {})
    runner._call = control
    env.server.switchover = runner
    m = env.connect()
    nsr = "urn:fcr:yang:fcr-nsr"
    r = m.dispatch(etree.fromstring(
        f'<switchover xmlns="{nsr}"><engine-id>b</engine-id><vip><address>10.0.92.1/24</address>'
        "<interface>eth0</interface></vip></switchover>"))
    reply = etree.fromstring(r.xml.encode())
    assert reply.findtext(f".//{{{nsr}}}active-engine-id") == "b"
    assert reply.findtext(f".//{{{nsr}}}epoch") == "8"
    assert calls[-1] == ("nsr.release", {"to": "b", "vip": {"address": "10.0.92.1/24", "dev": "eth0"}})
    n = len(calls)
    with pytest.raises(RPCError) as exc:
        m.dispatch(etree.fromstring(
            f'<switchover xmlns="{nsr}"><engine-id>b</engine-id><vip><address>10.0.92.1</address>'
            "<interface>eth0</interface></vip></switchover>"))
    assert exc.value.tag == "invalid-value"
    assert exc.value.message == ("switchover: vip address '10.0.92.1' is not an IPv4 or IPv6 address "
                                 "with a prefix length (e.g. 10.0.92.1/24): no prefix length")
    assert len(calls) == n  # the engine was not asked
