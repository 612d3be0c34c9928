"""Management plane: edits, validation, commits, history, confirmed commits, locks, engine link.

No NETCONF and no real engine: FakeEngine has the EngineLink interface and can be told to
refuse or to be unreachable.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from appliance.mgmt.engine_link import EngineLink, EngineRefused, EngineUnavailable
from appliance.mgmt.errors import MgmtError
from appliance.mgmt.plane import ManagementPlane

NS = ('xmlns="urn:fcr:yang:fcr-bgp" xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0" '
      'xmlns:yang="urn:ietf:params:xml:ns:yang:1"')
BASE = (f'<bgp {NS}><global><as>65000</as><router-id>10.255.0.1</router-id></global>'
        '<neighbors><neighbor><neighbor-address>192.0.2.1</neighbor-address><peer-as>65001</peer-as></neighbor>'
        '</neighbors></bgp>')
N1 = "/fcr-bgp:bgp/neighbors/neighbor[neighbor-address='192.0.2.1']"


def neighbor(addr: str, asn: int = 65010, op: str | None = None) -> str:
    attr = f' nc:operation="{op}"' if op else ""
    return (f'<bgp {NS}><neighbors><neighbor{attr}><neighbor-address>{addr}</neighbor-address>'
            f'<peer-as>{asn}</peer-as></neighbor></neighbors></bgp>')


class FakeEngine:
    def __init__(self) -> None:
        self.config: dict[str, Any] | None = None
        self.applied: list[dict[str, Any]] = []
        self.refuse: str | None = None
        self.down = False
        self.on_restart = None
        self.started = False

    async def apply(self, config: dict[str, Any]) -> dict[str, Any]:
        if self.down:
            raise EngineUnavailable("engine down")
        if self.refuse:
            raise EngineRefused(self.refuse)
        self.config = json.loads(json.dumps(config))
        self.applied.append(self.config)
        return {"added": [], "removed": [], "reset": []}

    async def call(self, method: str, **params: Any) -> Any:
        if self.down:
            raise EngineUnavailable("engine down")
        if method == "bgp.neighbors":
            return {"neighbors": [{"neighbor-address": "192.0.2.1", "state": "Established",
                                   "established-transitions": 1, "uptime": 12.5}]}
        return {}

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.started = False


def run(coro):
    return asyncio.run(coro)


async def make(tmp: Path, engine: FakeEngine | None = None) -> tuple[ManagementPlane, FakeEngine, int]:
    engine = engine or FakeEngine()
    plane = ManagementPlane(tmp, engine)
    await plane.start()
    sid = plane.open_session("admin")
    return plane, engine, sid


async def seeded(tmp: Path) -> tuple[ManagementPlane, FakeEngine, int]:
    plane, engine, sid = await make(tmp)
    await plane.edit_config(sid, "candidate", BASE)
    await plane.commit(sid, comment="base")
    return plane, engine, sid


def err(exc: pytest.ExceptionInfo) -> MgmtError:
    return exc.value


# -- edit operations ----------------------------------------------------------------------


def test_merge_create_replace_delete_remove(tmp_path):
    async def scenario():
        plane, _e, sid = await seeded(tmp_path)
        await plane.edit_config(sid, "candidate", neighbor("192.0.2.2", op="create"))
        assert "192.0.2.2" in plane.get_config("candidate")
        with pytest.raises(MgmtError) as e:
            await plane.edit_config(sid, "candidate", neighbor("192.0.2.2", op="create"))
        assert err(e).tag == "data-exists"
        assert err(e).path == "/fcr-bgp:bgp/neighbors/neighbor[neighbor-address='192.0.2.2']"
        # merge changes a leaf, replace swaps the entry's content
        await plane.edit_config(sid, "candidate", neighbor("192.0.2.2", 65020))
        assert "<peer-as>65020</peer-as>" in plane.get_config("candidate")
        await plane.edit_config(sid, "candidate",
                                f'<bgp {NS}><neighbors><neighbor nc:operation="replace"><neighbor-address>192.0.2.2'
                                '</neighbor-address><peer-as>65030</peer-as><description>x</description>'
                                '</neighbor></neighbors></bgp>')
        assert "<description>x</description>" in plane.get_config("candidate")
        # delete a leaf given without a value
        await plane.edit_config(sid, "candidate",
                                f'<bgp {NS}><neighbors><neighbor><neighbor-address>192.0.2.2</neighbor-address>'
                                '<description nc:operation="delete"/></neighbor></neighbors></bgp>')
        assert "<description>" not in plane.get_config("candidate")
        with pytest.raises(MgmtError) as e:
            await plane.edit_config(sid, "candidate",
                                    f'<bgp {NS}><neighbors><neighbor><neighbor-address>192.0.2.2</neighbor-address>'
                                    '<description nc:operation="delete"/></neighbor></neighbors></bgp>')
        assert err(e).tag == "data-missing"
        assert err(e).path == "/fcr-bgp:bgp/neighbors/neighbor[neighbor-address='192.0.2.2']/description"
        await plane.edit_config(sid, "candidate", neighbor("192.0.2.2", op="delete"))
        assert "192.0.2.2" not in plane.get_config("candidate")
        with pytest.raises(MgmtError) as e:
            await plane.edit_config(sid, "candidate", neighbor("192.0.2.2", op="delete"))
        assert err(e).tag == "data-missing"
        await plane.edit_config(sid, "candidate", neighbor("192.0.2.2", op="remove"))  # missing: fine
        assert plane.candidate == plane.running

    run(scenario())


def test_unknown_element_and_invalid_value_have_paths(tmp_path):
    async def scenario():
        plane, _e, sid = await seeded(tmp_path)
        before = plane.get_config("candidate")
        with pytest.raises(MgmtError) as e:
            await plane.edit_config(sid, "candidate", f'<bgp {NS}><global><bogus>1</bogus></global></bgp>')
        assert err(e).tag == "unknown-element"
        assert err(e).path == "/fcr-bgp:bgp/global/bogus"
        assert err(e).info == {"bad-element": "bogus"}
        with pytest.raises(MgmtError) as e:
            await plane.edit_config(sid, "candidate", neighbor("192.0.2.1").replace("65010", "abc"))
        assert err(e).tag == "invalid-value"
        assert err(e).path == f"{N1}/peer-as"
        with pytest.raises(MgmtError) as e:
            await plane.edit_config(sid, "candidate", '<nothing xmlns="urn:example:none"/>')
        assert err(e).tag == "unknown-element"
        with pytest.raises(MgmtError) as e:
            await plane.edit_config(sid, "candidate", neighbor("192.0.2.1", op="frobnicate"))
        assert err(e).tag in ("bad-attribute", "invalid-value")
        assert plane.get_config("candidate") == before

    run(scenario())


def test_error_options_and_default_operation(tmp_path):
    async def scenario():
        plane, _e, sid = await seeded(tmp_path)
        two = (f'<bgp {NS}><neighbors>'
               '<neighbor nc:operation="create"><neighbor-address>192.0.2.1</neighbor-address></neighbor>'
               '<neighbor nc:operation="create"><neighbor-address>192.0.2.3</neighbor-address>'
               '<peer-as>65003</peer-as></neighbor></neighbors></bgp>')
        with pytest.raises(MgmtError):
            await plane.edit_config(sid, "candidate", two, error_option="rollback-on-error")
        assert "192.0.2.3" not in plane.get_config("candidate")
        with pytest.raises(MgmtError) as e:
            await plane.edit_config(sid, "candidate", two, error_option="continue-on-error")
        assert err(e).tag == "data-exists"
        assert "192.0.2.3" in plane.get_config("candidate")
        plane.discard_changes(sid)
        # none: nothing unless asked
        await plane.edit_config(sid, "candidate", neighbor("192.0.2.1", 65099), default_operation="none")
        assert plane.candidate == plane.running
        # replace: the whole datastore
        await plane.edit_config(sid, "candidate",
                                f'<bgp {NS}><global><as>65001</as><router-id>192.0.2.9</router-id></global></bgp>',
                                default_operation="replace")
        assert "neighbor" not in plane.get_config("candidate")
        # test-only validates and changes nothing
        plane.discard_changes(sid)
        await plane.edit_config(sid, "candidate", neighbor("192.0.2.7"), test_option="test-only")
        assert plane.candidate == plane.running

    run(scenario())


def test_ordered_by_user_insert(tmp_path):
    async def scenario():
        plane, _e, sid = await seeded(tmp_path)

        def pol(body: str) -> str:
            return (f'<bgp {NS}><neighbors><neighbor><neighbor-address>192.0.2.1</neighbor-address><afi-safis>'
                    f'<afi-safi><afi-safi-name>ipv4-unicast</afi-safi-name>{body}</afi-safi></afi-safis>'
                    '</neighbor></neighbors></bgp>')

        def order() -> list[str]:
            c = plane.candidate["fcr-bgp:bgp"]["neighbors"]["neighbor"][0]["afi-safis"]["afi-safi"][0]
            return c["import-policy"]

        await plane.edit_config(sid, "candidate", pol("<import-policy>b</import-policy>"
                                                      "<import-policy>c</import-policy>"))
        await plane.edit_config(sid, "candidate", pol('<import-policy yang:insert="first">a</import-policy>'))
        assert order() == ["a", "b", "c"]
        await plane.edit_config(sid, "candidate",
                                pol('<import-policy yang:insert="after" yang:value="a">c</import-policy>'))
        assert order() == ["a", "c", "b"]
        with pytest.raises(MgmtError) as e:
            await plane.edit_config(sid, "candidate",
                                    pol('<import-policy yang:insert="before" yang:value="zz">d</import-policy>'))
        assert err(e).tag == "bad-attribute"
        assert order() == ["a", "c", "b"]

    run(scenario())


# -- validate, get-config ---------------------------------------------------------------


def test_validate_and_with_defaults(tmp_path):
    async def scenario():
        plane, _e, sid = await seeded(tmp_path)
        plane.validate("candidate")
        plane.validate(config_xml=BASE)
        # a neighbor without peer-as nor peer-group is accepted at edit time, refused on validate
        await plane.edit_config(sid, "candidate",
                                f'<bgp {NS}><neighbors><neighbor><neighbor-address>192.0.2.5</neighbor-address>'
                                '<peer-group>nope</peer-group></neighbor></neighbors></bgp>')
        with pytest.raises(MgmtError) as e:
            plane.validate("candidate")
        assert err(e).path and "192.0.2.5" in err(e).path
        with pytest.raises(MgmtError):
            await plane.commit(sid)
        assert "192.0.2.5" not in plane.get_config("running")
        explicit = plane.get_config("running")
        assert "<port>" not in explicit
        assert "<port>179</port>" in plane.get_config("running", with_defaults="report-all")
        tagged = plane.get_config("running", with_defaults="report-all-tagged")
        assert 'default="true"' in tagged
        assert plane.get_config("running") == explicit  # deterministic
        sel = plane.get_config("running", xpath=f"{N1}/peer-as")
        assert "<peer-as>65001</peer-as>" in sel and "<global>" not in sel
        state = await plane.get()
        assert "<session-state>established</session-state>" in state
        assert "commit-history" in state

    run(scenario())


# -- commits ------------------------------------------------------------------------------


def test_commit_pushes_and_writes_startup(tmp_path):
    async def scenario():
        plane, engine, sid = await seeded(tmp_path)
        assert engine.config == plane.running
        startup = json.loads((tmp_path / "startup.json").read_text())
        assert startup == plane.running
        assert not list(tmp_path.glob(".*.tmp"))
        events = []
        plane.subscribe(lambda ev, data: events.append((ev, data)))
        await plane.edit_config(sid, "running", neighbor("192.0.2.2"))  # writable-running
        assert engine.config["fcr-bgp:bgp"]["neighbors"]["neighbor"][1]["neighbor-address"] == "192.0.2.2"
        assert "192.0.2.2" in plane.get_config("candidate")
        assert any(ev == "netconf-config-change" and d["datastore"] == "running" for ev, d in events)
        await plane.stop()
        again = ManagementPlane(tmp_path, FakeEngine())
        await again.start()
        assert again.running == plane.running
        assert again.engine.config == plane.running
        await again.stop()

    run(scenario())


def test_engine_refusal_leaves_running(tmp_path):
    async def scenario():
        plane, engine, sid = await seeded(tmp_path)
        before, startup_before = plane.running, (tmp_path / "startup.json").read_text()
        n_hist = len(plane.history())
        await plane.edit_config(sid, "candidate", neighbor("192.0.2.2"))
        engine.refuse = "neighbor 192.0.2.2: no route"
        with pytest.raises(MgmtError) as e:
            await plane.commit(sid)
        assert err(e).tag == "operation-failed" and "no route" in err(e).message
        assert plane.running == before
        assert (tmp_path / "startup.json").read_text() == startup_before
        assert len(plane.history()) == n_hist
        engine.refuse, engine.down = None, True
        with pytest.raises(MgmtError):
            await plane.commit(sid)
        assert plane.running == before
        engine.down = False
        await plane.commit(sid)
        assert "192.0.2.2" in plane.get_config("running")

    run(scenario())


def test_history_rollback_compare(tmp_path):
    async def scenario():
        plane, _e, sid = await seeded(tmp_path)
        for i in range(55):
            await plane.edit_config(sid, "candidate", f'<bgp {NS}><global><as>{66000 + i}</as></global></bgp>')
            await plane.commit(sid, comment=f"as {66000 + i}")
        hist = plane.history()
        assert len(hist) >= 50
        assert [h["index"] for h in hist[:3]] == [0, 1, 2]
        assert hist[0]["comment"] == "as 66054" and hist[0]["user"] == "admin"
        assert hist[0]["time"].endswith("Z")
        ids = [h["id"] for h in hist]
        assert len(set(ids)) == len(ids)
        target_id = hist[5]["id"]
        # ids are stable: the same revision keeps its id as new ones are added
        await plane.rollback(sid, 1)
        assert "<as>66053</as>" in plane.get_config("running")
        assert plane.history()[6]["id"] == target_id
        await plane.rollback(sid, target_id, comment="back")
        assert "<as>66049</as>" in plane.get_config("running")
        assert plane.history()[0]["comment"] == "back"
        diff = plane.compare(1, 0)
        assert '-      "as": 66053' in diff and '+      "as": 66049' in diff
        assert plane.compare("running", 0) == ""
        with pytest.raises(MgmtError):
            plane.compare("r9999-nothing")

    run(scenario())


# -- confirmed commit ---------------------------------------------------------------------


def test_confirmed_commit_timeout_reverts(tmp_path):
    async def scenario():
        plane, engine, sid = await seeded(tmp_path)
        before = plane.running
        events = []
        plane.subscribe(lambda ev, d: events.append((ev, d.get("confirm-event"))))
        await plane.edit_config(sid, "candidate", neighbor("192.0.2.2"))
        await plane.commit(sid, confirmed=True, confirm_timeout=1)
        assert "192.0.2.2" in json.dumps(engine.config)
        assert (tmp_path / "confirmed.json").exists()
        await asyncio.sleep(1.5)
        assert plane.running == before and engine.config == before
        assert json.loads((tmp_path / "startup.json").read_text()) == before
        assert not (tmp_path / "confirmed.json").exists()
        assert ("netconf-confirmed-commit", "timeout") in events
        assert plane.history()[0]["client"] == "rollback"

    run(scenario())


def test_confirmed_commit_extend_confirm_cancel(tmp_path):
    async def scenario():
        plane, _e, sid = await seeded(tmp_path)
        await plane.edit_config(sid, "candidate", neighbor("192.0.2.2"))
        await plane.commit(sid, confirmed=True, confirm_timeout=1)
        await asyncio.sleep(0.6)
        await plane.commit(sid, confirmed=True, confirm_timeout=2)  # extends
        await asyncio.sleep(0.8)
        assert "192.0.2.2" in plane.get_config("running")
        await plane.commit(sid)  # confirms
        await asyncio.sleep(1.5)
        assert "192.0.2.2" in plane.get_config("running")
        assert plane.pending_confirmed() is None
        # cancel-commit
        await plane.edit_config(sid, "candidate", neighbor("192.0.2.3"))
        await plane.commit(sid, confirmed=True, confirm_timeout=60)
        other = plane.open_session("bob")
        with pytest.raises(MgmtError):
            await plane.cancel_commit(other)
        with pytest.raises(MgmtError):
            await plane.commit(other)
        await plane.cancel_commit(sid)
        assert "192.0.2.3" not in plane.get_config("running")
        assert "192.0.2.2" in plane.get_config("running")
        with pytest.raises(MgmtError) as e:
            await plane.cancel_commit(sid)
        assert err(e).tag == "operation-failed"

    run(scenario())


def test_confirmed_commit_reverts_when_session_goes(tmp_path):
    async def scenario():
        plane, _e, sid = await seeded(tmp_path)
        before = plane.running
        await plane.edit_config(sid, "candidate", neighbor("192.0.2.2"))
        await plane.commit(sid, confirmed=True, confirm_timeout=60)
        await plane.close_session(sid)
        assert plane.running == before

    run(scenario())


def test_persist_survives_restart_and_reverts_after_deadline(tmp_path):
    async def scenario():
        plane, _e, sid = await seeded(tmp_path)
        before = plane.running
        await plane.edit_config(sid, "candidate", neighbor("192.0.2.2"))
        await plane.commit(sid, confirmed=True, confirm_timeout=1, persist="tok")
        await plane.close_session(sid)  # persist: the session going away changes nothing
        assert "192.0.2.2" in plane.get_config("running")
        await plane.stop()  # the daemon goes down with the commit pending
        engine2 = FakeEngine()
        plane2 = ManagementPlane(tmp_path, engine2)
        await plane2.start()
        assert "192.0.2.2" in plane2.get_config("running")  # still pending, timer re-armed
        assert plane2.pending_confirmed()["persist"] == "tok"
        await asyncio.sleep(1.5)
        assert plane2.running == before and engine2.config == before
        await plane2.stop()
        # a restart after the deadline reverts at once
        s2 = (plane3 := ManagementPlane(tmp_path, FakeEngine())).open_session("admin")
        await plane3.start()
        await plane3.edit_config(s2, "candidate", neighbor("192.0.2.4"))
        await plane3.commit(s2, confirmed=True, confirm_timeout=1, persist="t2")
        await plane3.stop()
        time.sleep(1.2)
        plane4 = ManagementPlane(tmp_path, FakeEngine())
        await plane4.start()
        assert plane4.running == before
        assert not (tmp_path / "confirmed.json").exists()
        await plane4.stop()

    run(scenario())


def test_persist_id_confirms_from_another_session(tmp_path):
    async def scenario():
        plane, _e, sid = await seeded(tmp_path)
        await plane.edit_config(sid, "candidate", neighbor("192.0.2.2"))
        await plane.commit(sid, confirmed=True, confirm_timeout=60, persist="abc")
        other = plane.open_session("bob")
        with pytest.raises(MgmtError) as e:
            await plane.commit(other, persist_id="wrong")
        assert err(e).tag == "invalid-value"
        await plane.commit(other, persist_id="abc")
        assert plane.pending_confirmed() is None
        assert "192.0.2.2" in plane.get_config("running")

    run(scenario())


# -- locks ----------------------------------------------------------------------------------


def test_locks(tmp_path):
    async def scenario():
        plane, _e, a = await seeded(tmp_path)
        b = plane.open_session("bob")
        plane.lock(a, "candidate")
        with pytest.raises(MgmtError) as e:
            plane.lock(b, "candidate")
        assert err(e).tag == "lock-denied" and err(e).info == {"session-id": str(a)}
        with pytest.raises(MgmtError) as e:
            await plane.edit_config(b, "candidate", neighbor("192.0.2.9"))
        assert err(e).tag == "in-use" and err(e).info["session-id"] == str(a)
        with pytest.raises(MgmtError):
            plane.unlock(b, "candidate")
        await plane.kill_session(a, by=b)
        plane.lock(b, "candidate")
        plane.unlock(b, "candidate")
        # candidate with changes of another session cannot be locked
        c = plane.open_session("carol")
        await plane.edit_config(c, "candidate", neighbor("192.0.2.9"))
        with pytest.raises(MgmtError) as e:
            plane.lock(b, "candidate")
        assert err(e).tag == "lock-denied"
        plane.lock(c, "candidate")  # its own changes: fine
        plane.unlock(c, "candidate")
        with pytest.raises(MgmtError):
            await plane.kill_session(c, by=c)

    run(scenario())


# -- engine restarts ------------------------------------------------------------------------


def test_engine_restart_gets_running_again(tmp_path):
    async def scenario():
        plane, engine, _sid = await seeded(tmp_path)
        engine.config = None  # fcrd restarted empty
        await engine.on_restart()
        assert engine.config == plane.running

    run(scenario())


def test_engine_link_detects_restart_over_socket(tmp_path):
    """A real EngineLink against a tiny control-socket server that restarts."""

    async def scenario():
        path = str(tmp_path / "e.sock")
        got: list[dict[str, Any]] = []
        started = time.time()

        async def serve(reader, writer):
            while line := await reader.readline():
                req = json.loads(line)
                if req["method"] == "engine.ping":
                    res = {"result": {"uptime": time.time() - started}}
                else:
                    got.append(req["params"]["config"])
                    res = {"result": {"added": []}}
                writer.write(json.dumps({"id": req["id"], **res}).encode() + b"\n")
                await writer.drain()
            writer.close()

        server = await asyncio.start_unix_server(serve, path=path)
        link = EngineLink(path, poll_interval=0.05)
        plane = ManagementPlane(tmp_path / "state", link)
        await plane.start()
        sid = plane.open_session("admin")
        await plane.edit_config(sid, "running", BASE)
        n = len(got)
        server.close()
        await server.wait_closed()
        link._drop()  # the old engine is gone
        os.unlink(path)
        await asyncio.sleep(0.2)
        started = time.time()
        server = await asyncio.start_unix_server(serve, path=path)
        for _ in range(100):
            await asyncio.sleep(0.05)
            if len(got) > n:
                break
        assert got[-1] == plane.running
        await plane.stop()
        server.close()

    run(scenario())


def test_crash_leftovers_are_ignored(tmp_path):
    async def scenario():
        plane, _e, _sid = await seeded(tmp_path)
        running = plane.running
        await plane.stop()
        (tmp_path / ".startup.json.x.tmp").write_text("{ half")  # a crash mid-write
        plane2 = ManagementPlane(tmp_path, FakeEngine())
        await plane2.start()
        assert plane2.running == running
        assert not list(tmp_path.glob(".*.tmp"))

    run(scenario())
