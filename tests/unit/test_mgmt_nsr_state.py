"""fcr-nsr:nsr/state in <get>: the engine's nsr.status mapped onto the model, checked by libyang.

Same path as the BGP state in test_mgmt_plane.py (ManagementPlane.get with a fake engine
link); the NETCONF server prints what plane.get returns.
"""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

import pytest
from lxml import etree

from appliance.mgmt.engine_link import EngineRefused, EngineUnavailable
from appliance.mgmt.plane import ManagementPlane
from appliance.mgmt.state import nsr_state

libyang = pytest.importorskip("libyang")

NSR = "urn:fcr:yang:fcr-nsr"
BGP_NS = ('xmlns="urn:fcr:yang:fcr-bgp"')
BASE = (f'<bgp {BGP_NS}><global><as>65000</as><router-id>10.255.0.1</router-id></global>'
        '<neighbors><neighbor><neighbor-address>192.0.2.1</neighbor-address><peer-as>65001</peer-as>'
        '</neighbor></neighbors></bgp>')
NOW = time.time()
STATUS = {
    "engine-id": "e0", "role": "active", "store": "/var/lib/fcr/nsr.db", "active": True, "epoch": 3,
    "pid": 1234, "store-connected": True, "lease": {"owner": "e0", "epoch": 3},
    "standbys": [{"engine-id": "b", "ready": True, "config-digest": "abc", "pid": 99, "version": "0.1.0",
                  "time": NOW - 0.4, "fresh": True, "synchronized": True}],
    "sessions": ["192.0.2.1"],
    "last-switchover": {"time": NOW - 60, "from": "fcrd-1a2b3c4d", "result": "adopted", "epoch": 3,
                        "timing": {"done": 0.21}},
}


class NsrEngine:
    """The EngineLink interface; nsr.status answers ``status``, or refuses as an engine
    without --nsr-store does, or the engine is down."""

    def __init__(self, status: dict[str, Any] | None = STATUS, down: bool = False) -> None:
        self.status = status
        self.down = down
        self.on_restart = None

    async def apply(self, config: dict[str, Any]) -> dict[str, Any]:
        return {"added": [], "removed": [], "reset": []}

    async def call(self, method: str, **params: Any) -> Any:
        if self.down:
            raise EngineUnavailable("engine down")
        if method == "bgp.neighbors":
            return {"neighbors": [{"neighbor-address": "192.0.2.1", "state": "Established"}]}
        if method == "nsr.status":
            if self.status is None:
                raise EngineRefused("non-stop routing is not enabled (fcrd --nsr-store)")
            return copy.deepcopy(self.status)
        return {}

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass


async def _get(tmp_path, engine: NsrEngine, *, switchover: bool = False, xpath: str | None = None) -> str:
    plane = ManagementPlane(tmp_path, engine)
    plane.switchover_available = switchover
    await plane.start()
    sid = plane.open_session("admin")
    await plane.edit_config(sid, "candidate", BASE)
    await plane.commit(sid)
    try:
        out = await plane.get(xpath=xpath)
        _validate(plane, out)
        return out
    finally:
        await plane.stop()


def _validate(plane: ManagementPlane, xml: str) -> None:
    """The whole <get> answer, state included, is valid data of the model (strict)."""
    if not xml:
        return
    tree = plane.ctx.parse_data_mem(xml, "xml", strict=True, validate_present=True)
    if tree is not None:
        tree.free()


def _state(xml: str) -> etree._Element | None:
    root = etree.fromstring(f"<data>{xml}</data>")
    return root.find(f"{{{NSR}}}nsr/{{{NSR}}}state")


def _text(st: etree._Element, path: str) -> str | None:
    el = st.find("/".join(f"{{{NSR}}}{p}" for p in path.split("/")))
    return None if el is None else el.text


def test_get_fills_nsr_state(tmp_path):
    out = asyncio.run(_get(tmp_path, NsrEngine(), switchover=True))
    st = _state(out)
    assert st is not None, out
    assert _text(st, "engine-id") == "e0"
    assert _text(st, "engine-role") == "active"
    assert _text(st, "active") == "true"
    assert _text(st, "epoch") == "3"
    assert _text(st, "lease-owner") == "e0"
    assert _text(st, "store-connected") == "true"
    assert _text(st, "sync-state") == "synchronized"
    assert _text(st, "switchover-ready") == "true"
    assert _text(st, "standby/engine-id") == "b"
    assert _text(st, "standby/fresh") == "true"
    assert _text(st, "standby/synchronized") == "true"
    assert _text(st, "standby/version") == "0.1.0"
    assert _text(st, "standby/last-heartbeat")[:10] == time.strftime("%Y-%m-%d", time.gmtime(NOW - 0.4))
    assert _text(st, "last-switchover/result") == "adopted"
    assert _text(st, "last-switchover/from-engine-id") == "fcrd-1a2b3c4d"
    assert _text(st, "last-switchover/time")[:10] == time.strftime("%Y-%m-%d", time.gmtime(NOW - 60))
    # the BGP state is still there, and a filter on the NSR state works
    assert "<session-state>established</session-state>" in out
    assert "<peer-as>65001</peer-as>" in out  # the neighbor state joins its configuration
    sel = asyncio.run(_get(tmp_path / "f", NsrEngine(), xpath="/fcr-nsr:nsr/state/engine-role"))
    assert "<engine-role>active</engine-role>" in sel and "<bgp" not in sel


def test_no_store_says_disabled(tmp_path):
    out = asyncio.run(_get(tmp_path, NsrEngine(status=None), switchover=True))
    st = _state(out)
    assert st is not None, out
    assert _text(st, "engine-role") == "disabled"
    assert _text(st, "store-connected") == "false"
    assert _text(st, "switchover-ready") == "false"
    assert _text(st, "active") is None and _text(st, "epoch") is None


def test_engine_down_leaves_state_out(tmp_path):
    out = asyncio.run(_get(tmp_path, NsrEngine(down=True)))
    assert _state(out) is None
    assert "<as>65000</as>" in out  # get still answers with the configuration


def test_store_unreachable(tmp_path):
    status = {"engine-id": "e0", "role": "active", "active": True, "epoch": 3, "pid": 1,
              "store-connected": False, "store-error": "checkpoint store did not answer within 3 s",
              "sessions": [], "last-switchover": None}
    out = asyncio.run(_get(tmp_path, NsrEngine(status=status), switchover=True))
    st = _state(out)
    assert _text(st, "store-connected") == "false"
    assert "did not answer" in _text(st, "store-error")
    assert _text(st, "switchover-ready") == "false"
    assert _text(st, "sync-state") == "not-applicable"
    assert st.find(f"{{{NSR}}}standby") is None


@pytest.mark.parametrize("standbys, role, sync, ready", [
    ([], "standalone", "not-applicable", True),            # ISSU on this box
    ([], "primary", "not-synchronized", True),             # a pair without its standby
    ([{"engine-id": "b", "fresh": True, "ready": False, "synchronized": True}],
     "primary", "synchronizing", False),
    ([{"engine-id": "b", "fresh": True, "ready": True, "synchronized": False}],
     "primary", "not-synchronized", False),
    ([{"engine-id": "b", "fresh": True, "ready": True, "synchronized": False,   # RIB copy behind
       "config-synchronized": True, "rib-mirror": {"synced": False, "applied": 0}}],
     "primary", "synchronizing", False),
    ([{"engine-id": "b", "fresh": True, "ready": True, "synchronized": False,   # other config
       "config-synchronized": False, "rib-mirror": {"synced": False, "applied": 0}}],
     "primary", "not-synchronized", False),
    ([{"engine-id": "b", "fresh": False, "ready": True, "synchronized": True}],
     "standalone", "not-applicable", True),                # a dead standby's old heartbeat
    ([{"engine-id": "b", "fresh": True, "ready": True, "synchronized": True},
      {"engine-id": "c", "fresh": True, "ready": True, "synchronized": True}],
     "primary", "synchronized", False),                    # which one? the RPC refuses
])
def test_sync_state_and_switchover_ready(standbys, role, sync, ready):
    st = nsr_state(dict(STATUS, standbys=standbys), configured_role=role,
                   switchover_available=True)["fcr-nsr:nsr"]["state"]
    assert st["sync-state"] == sync
    assert st["switchover-ready"] is ready
    assert nsr_state(dict(STATUS, standbys=standbys), configured_role=role)["fcr-nsr:nsr"]["state"][
        "switchover-ready"] is False  # no fcr-nsr:switchover RPC wired


def test_standby_and_released_engines():
    st = nsr_state(dict(STATUS, role="standby", active=False, epoch=None, standbys=[],
                        lease={"owner": "e9", "epoch": 4}, **{"last-switchover": None}),
                   switchover_available=True)["fcr-nsr:nsr"]["state"]
    assert st["engine-role"] == "standby" and st["active"] is False
    assert st["epoch"] == "4" and st["lease-owner"] == "e9"
    assert st["switchover-ready"] is False and "last-switchover" not in st
    st = nsr_state(dict(STATUS, role="released", active=False, epoch=None, lease={"owner": "b", "epoch": 4},
                        **{"last-switchover": {"time": NOW, "to": "b", "result": "released", "epoch": 4}}))
    ls = st["fcr-nsr:nsr"]["state"]["last-switchover"]
    assert ls == {"time": ls["time"], "result": "released", "epoch": "4", "to-engine-id": "b"}
