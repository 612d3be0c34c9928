"""The engine API over its control socket: what the management plane relies on."""

from __future__ import annotations

import asyncio
import json

from appliance.config.native import EngineConfig, SystemConfig
from appliance.engine.client import ControlClient
from appliance.engine.control import ControlServer
from appliance.engine.engine import Engine


def _example() -> dict:
    with open("docs/examples/fcrd.json") as f:
        cfg = json.load(f)
    cfg["fcr-bgp:bgp"]["global"]["listen"] = {"enabled": False}  # no socket needed here
    return cfg


def test_empty_engine_takes_config_and_refuses_bad_one(tmp_path):
    async def scenario() -> None:
        engine = Engine(EngineConfig(SystemConfig(), None))
        server = ControlServer(engine, str(tmp_path / "ctl.sock"))
        await server.start()
        await engine.start()
        try:
            call = server.handle_line
            r = await call(b'{"id": 1, "method": "bgp.summary"}')
            assert r["error"]["message"] == "BGP is not configured"
            cfg = _example()
            r = await call(json.dumps({"id": 2, "method": "config.apply", "params": {"config": cfg}}).encode())
            assert r == {"id": 2, "result": {"added": [], "removed": [], "reset": ["bgp"]}}
            bad = json.loads(json.dumps(cfg))
            bad["fcr-bgp:bgp"]["global"]["as"] = 0
            r = await call(json.dumps({"id": 3, "method": "config.apply", "params": {"config": bad}}).encode())
            assert r["error"]["message"].startswith("/fcr-bgp:bgp/global/as:")
            # nothing half-applied: still the good configuration
            r = await call(b'{"id": 4, "method": "bgp.summary"}')
            assert r["result"]["as"] == 65001
            assert [n["neighbor-address"] for n in r["result"]["neighbors"]] == ["127.0.0.2"]
            # a neighbor added and one removed without touching the instance
            more = json.loads(json.dumps(cfg))
            more["fcr-bgp:bgp"]["neighbors"]["neighbor"] = [{"neighbor-address": "127.0.0.3", "peer-as": 65003}]
            r = await call(json.dumps({"id": 5, "method": "config.apply", "params": {"config": more}}).encode())
            assert r["result"] == {"added": ["127.0.0.3"], "removed": ["127.0.0.2"], "reset": []}
            r = await call(b'{"id": 6, "method": "no.such"}')
            assert "unknown method" in r["error"]["message"]
            r = await call(b"not json")
            assert "invalid JSON" in r["error"]["message"]
        finally:
            await engine.stop("test over")
            await server.close()

    asyncio.run(scenario())


def test_client_round_trip(tmp_path):
    path = str(tmp_path / "ctl.sock")

    async def scenario() -> None:
        engine = Engine(EngineConfig(SystemConfig(), None))
        server = ControlServer(engine, path)
        await server.start()
        try:
            def blocking() -> dict:
                with ControlClient(path, timeout=5) as c:
                    return c.call("engine.ping")

            result = await asyncio.get_running_loop().run_in_executor(None, blocking)
            assert result["version"]
        finally:
            await server.close()

    asyncio.run(scenario())
