"""fcr-nsr:switchover with <vip>: a move to a standby box takes the sessions' local address.

The RPC's <vip> (address with prefix length, interface) is checked by the NETCONF
operation (appliance/netconf/ops.py, the model's fcr-nsr:ip-address-and-prefix) and reaches
the engine's nsr.release as {"address", "dev"} through the real SwitchoverRunner, whose
control calls go to a fake engine here (no processes, no sockets). With no standby
registered the switchover would be an in-service upgrade on this box: a vip is refused
before anything starts. The same over SSH with ncclient: tests/unit/test_netconf_server.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from lxml import etree

from appliance.mgmt import switchover as switchover_mod
from appliance.mgmt.switchover import SwitchoverRunner
from appliance.netconf.errors import RpcError
from appliance.netconf.ops import _vip_address
from appliance.netconf.server import NetconfServer
from appliance.nsr.issu import IssuError
from tests.unit.test_yang_model import ctx  # noqa: F401 - the libyang context of yang/, as a fixture

libyang = pytest.importorskip("libyang")

NSR = "urn:fcr:yang:fcr-nsr"
STANDBY = {"engine-id": "b", "fresh": True, "ready": True, "synchronized": True}


class FakeEngine:
    """The active engine behind the control socket: nsr.status lists ``standbys``;
    nsr.release answers as the engine does and records its parameters."""

    def __init__(self, standbys: list[dict[str, Any]]) -> None:
        self.standbys = standbys
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def call(self, path: str, method: str, **params: Any) -> Any:
        self.calls.append((method, params))
        if method == "nsr.status":
            return {"engine-id": "a", "role": "active", "active": True, "epoch": 7,
                    "standbys": self.standbys}
        if method == "nsr.release":
            return {"to": params.get("to") or "b", "epoch": 8, "peers": ["192.0.2.2"], "timing": {}}
        raise AssertionError(f"unexpected control call {method}")

    def methods(self) -> list[str]:
        return [m for m, _ in self.calls]


@pytest.fixture
def runner(tmp_path, monkeypatch):
    def make(standbys: list[dict[str, Any]]) -> tuple[SwitchoverRunner, FakeEngine]:
        engine = FakeEngine(standbys)
        r = SwitchoverRunner(str(tmp_path / "fcrd.sock"), "fcrd --nsr-store x", lambda: {})
        monkeypatch.setattr(r, "_call", engine.call)

        def no_issu(*a: Any, **kw: Any) -> None:
            raise AssertionError("an in-service upgrade was started")

        monkeypatch.setattr(switchover_mod, "run_issu", no_issu)
        return r, engine

    return make


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # the operation needs only the server's library (libyang context) and its runner
    return NetconfServer(None, host="127.0.0.1", port=0,
                         host_key_path=tmp_path_factory.mktemp("nc") / "key",
                         authenticate=lambda u, p: False)


def _op(inner: str) -> etree._Element:
    return etree.fromstring(f'<switchover xmlns="{NSR}">{inner}</switchover>')


def _vip(address: str = "10.0.92.1/24", interface: str = "eth0") -> str:
    return f"<vip><address>{address}</address><interface>{interface}</interface></vip>"


def _switchover(server: NetconfServer, inner: str) -> dict[str, str | None]:
    out = asyncio.run(server.dispatcher.op_switchover(None, _op(inner)))
    return {etree.QName(el).localname: el.text for el in out}


# -- the RPC reaches nsr.release ---------------------------------------------------------


@pytest.mark.parametrize(("address", "interface"), [("10.0.92.1/24", "eth0"),
                                                    ("2001:db8:92::1/64", "bond0.92")])
def test_vip_reaches_nsr_release(server, runner, address, interface):
    r, engine = runner([STANDBY])
    server.switchover = r
    out = _switchover(server, f"<engine-id>b</engine-id>{_vip(address, interface)}")
    assert out == {"active-engine-id": "b", "epoch": "8"}
    assert engine.methods() == ["nsr.status", "nsr.release"]
    assert engine.calls[1][1] == {"to": "b", "vip": {"address": address, "dev": interface}}


def test_vip_without_engine_id_goes_to_the_only_standby(server, runner):
    r, engine = runner([STANDBY])
    server.switchover = r
    assert _switchover(server, _vip())["active-engine-id"] == "b"
    assert engine.calls[1] == ("nsr.release", {"to": None,
                                               "vip": {"address": "10.0.92.1/24", "dev": "eth0"}})


def test_no_vip_sends_none(server, runner):
    # an engine of an older version may not take the parameter: it is left out
    r, engine = runner([STANDBY])
    server.switchover = r
    _switchover(server, "<engine-id>b</engine-id>")
    assert engine.calls[1] == ("nsr.release", {"to": "b"})


# -- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(("address", "why"), [
    ("10.0.92.1", "no prefix length"),
    ("10.0.92.300/24", "'10.0.92.300' is not an IPv4 or IPv6 address"),
    ("eth0/24", "'eth0' is not an IPv4 or IPv6 address"),
    ("10.0.92.1/33", "prefix length 33 is more than 32"),
    ("2001:db8::1/129", "prefix length 129 is more than 128"),
    ("10.0.92.1/255.255.255.0", "prefix length '255.255.255.0' is not a decimal number without leading zeros"),
    ("10.0.92.1/024", "prefix length '024' is not a decimal number without leading zeros"),
    ("fe80::1%eth0/64", "a zone index is not allowed"),
])
def test_malformed_address_is_rejected(server, runner, address, why):
    r, engine = runner([STANDBY])
    server.switchover = r
    with pytest.raises(RpcError) as exc:
        _switchover(server, f"<engine-id>b</engine-id>{_vip(address)}")
    err = exc.value
    assert err.tag == "invalid-value" and err.type_ == "application"
    assert err.info == {"bad-element": "address"}
    assert err.message == (f"switchover: vip address {address!r} is not an IPv4 or IPv6 address with "
                           f"a prefix length (e.g. 10.0.92.1/24): {why}")
    assert engine.calls == []  # refused before the engine is asked anything


@pytest.mark.parametrize(("inner", "tag", "bad", "message"), [
    ("<vip><interface>eth0</interface></vip>", "missing-element", "address",
     "switchover: <vip> needs <address>"),
    ("<vip><address>10.0.92.1/24</address></vip>", "missing-element", "interface",
     "switchover: <vip> needs <interface>"),
    (_vip(interface="a/b"), "invalid-value", "interface",
     "switchover: vip interface 'a/b' is not an interface name (1 to 15 characters, no '/' nor blanks)"),
    (_vip(interface="x" * 16), "invalid-value", "interface", None),
    ("<vip><address>10.0.92.1/24</address><interface>eth0</interface><dev>eth0</dev></vip>",
     None, "dev", None),  # Params' answer for any unexpected element (unknown-namespace today)
])
def test_incomplete_vip_is_rejected(server, runner, inner, tag, bad, message):
    r, engine = runner([STANDBY])
    server.switchover = r
    with pytest.raises(RpcError) as exc:
        _switchover(server, inner)
    assert tag is None or exc.value.tag == tag
    assert exc.value.info.get("bad-element") == bad
    if message is not None:
        assert exc.value.message == message
    assert engine.calls == []


@pytest.mark.parametrize(("address", "valid"), [
    ("10.0.92.1/24", True), ("0.0.0.0/0", True), ("10.0.92.1/32", True),
    ("2001:db8:92::1/64", True), ("::ffff:10.0.92.1/120", True), ("fe80::1/128", True),
    ("10.0.92.1", False), ("10.0.92.300/24", False), ("10.0.92.1/33", False), ("10.0.92.1/024", False),
    ("010.0.92.1/24", False), ("10.0.92.1/255.255.255.0", False), ("2001:db8::1/129", False),
    ("fe80::1%eth0/64", False), ("2001:db8::1", False), ("eth0/24", False),
])
def test_model_and_operation_agree(ctx, address, valid):  # noqa: F811 - the imported fixture
    """The model's fcr-nsr:ip-address-and-prefix and the operation's check take the same
    values; the model keeps the host bits (inet:ip-prefix's canonical form would not)."""
    xml = f'<switchover xmlns="{NSR}">{_vip(address)}</switchover>'
    try:
        tree = ctx.parse_op_mem("xml", xml, libyang.DataType.RPC_YANG)
    except libyang.LibyangError:
        by_model = False
    else:
        by_model = True
        assert f'"address": "{address}"' in tree.print_mem("json")
        tree.free()
    try:
        by_op = _vip_address(address) == address
    except RpcError:
        by_op = False
    assert (by_model, by_op) == (valid, valid)


# -- the in-service upgrade refuses a vip ----------------------------------------------------


def test_issu_path_refuses_vip(runner):
    r, engine = runner([])  # no standby registered: this would be an in-service upgrade
    with pytest.raises(IssuError) as exc:
        asyncio.run(r(None, vip={"address": "10.0.92.1/24", "dev": "eth0"}))
    assert str(exc.value) == (
        "vip 10.0.92.1/24 on eth0 needs a standby engine on another box; none is registered "
        "(fresh) in the checkpoint store, so this switchover would be an in-service upgrade on "
        "this box, where the address stays: refused, nothing changed (start the standby with "
        "fcrd --standby, or leave out <vip>)")
    assert engine.methods() == ["nsr.status"]  # no release, no new engine started


def test_issu_refusal_over_the_rpc(server, runner):
    r, engine = runner([{**STANDBY, "fresh": False}])  # a stale heartbeat does not count
    server.switchover = r
    with pytest.raises(RpcError) as exc:
        _switchover(server, _vip())
    assert exc.value.tag == "operation-failed"
    assert exc.value.message.startswith(
        "switchover: vip 10.0.92.1/24 on eth0 needs a standby engine on another box; none is registered")
    assert engine.methods() == ["nsr.status"]


def test_issu_without_vip_still_runs(runner, monkeypatch):
    r, engine = runner([])
    started: list[str] = []

    def fake_issu(socket: str, start: Any, configure: Any = None) -> dict[str, Any]:
        started.append(socket)
        return {"engine-id": "fcrd-1", "pid": 1, "switchover": 0.1, "total": 1.0,
                "adopted": {"epoch": 8}}

    monkeypatch.setattr(switchover_mod, "run_issu", fake_issu)
    assert asyncio.run(r(None)) == {"active-engine-id": "fcrd-1", "epoch": 8}
    assert started and engine.methods() == ["nsr.status"]
