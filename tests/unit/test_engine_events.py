"""The engine's event stream (events.subscribe on the control socket) and its NETCONF use."""

from __future__ import annotations

import asyncio
import json

from appliance.bgp.fsm import StateChanged
from appliance.config.native import EngineConfig, SystemConfig
from appliance.engine.control import ControlServer
from appliance.engine.engine import Engine
from appliance.netconf.server import EnginePoller

SUBSCRIBE = b'{"id": 7, "method": "events.subscribe", "params": {"kinds": ["bgp-neighbor-state", "bfd-session-state"]}}\n'


def _example() -> dict:
    with open("docs/examples/fcrd.json") as f:
        cfg = json.load(f)
    cfg["fcr-bgp:bgp"]["global"]["listen"] = {"enabled": False}
    return cfg


async def _subscribe(path: str, request: bytes = SUBSCRIBE):
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(request)
    await writer.drain()
    answer = json.loads(await asyncio.wait_for(reader.readline(), 5))
    return reader, writer, answer


async def _wait_for(pred, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_peer_state_change_reaches_subscriber(tmp_path):
    async def scenario() -> None:
        engine = Engine(EngineConfig(SystemConfig(), None))
        path = str(tmp_path / "ctl.sock")
        server = ControlServer(engine, path)
        await server.start()
        await engine.start()
        try:
            r = await server.handle_line(json.dumps({"id": 1, "method": "config.apply",
                                                      "params": {"config": _example()}}).encode())
            assert "result" in r, r
            reader, writer, answer = await _subscribe(path)
            assert answer == {"id": 7, "result": {"subscribed": ["bfd-session-state", "bgp-neighbor-state"]}}
            # a state change as the FSM reports it, on the peer's session
            peer = engine.bgp.peers["127.0.0.2"]
            peer.stats.last_notification_sent = (6, 2, "bye")
            peer._run(peer._primary, [StateChanged("Established", "Idle", "ManualStop")])
            while True:  # the real session may report its own changes first
                msg = json.loads(await asyncio.wait_for(reader.readline(), 5))
                if msg["data"].get("previous-state") == "Established":
                    break
                assert msg["event"] == "bgp-neighbor-state"
            assert msg["event"] == "bgp-neighbor-state"
            assert isinstance(msg["time"], float)
            assert msg["data"] == {"neighbor-address": "127.0.0.2", "previous-state": "Established",
                                   "state": "Idle",
                                   "last-notification-sent": {"code": 6, "subcode": 2, "message": "bye"},
                                   "last-notification-received": None}
            # a BFD change through the engine's BFD listener
            engine._on_bfd("127.0.0.9", "Down", "Up", "none")
            while True:
                msg = json.loads(await asyncio.wait_for(reader.readline(), 5))
                if msg["event"] == "bfd-session-state":
                    break
            assert msg["data"] == {"peer-address": "127.0.0.9", "local-address": None, "interface": None,
                                   "multihop": False, "local-discriminator": None, "previous-state": "Down",
                                   "state": "Up", "local-diagnostic": "none"}
            writer.close()
        finally:
            await engine.stop("test over")
            await server.close()

    asyncio.run(scenario())


def test_overflow_drops_the_subscriber(tmp_path):
    async def scenario() -> None:
        engine = Engine(EngineConfig(SystemConfig(), None))
        path = str(tmp_path / "ctl.sock")
        server = ControlServer(engine, path, event_queue=3)
        await server.start()
        await engine.start()
        try:
            reader, writer, answer = await _subscribe(path)
            assert "result" in answer
            await _wait_for(lambda: len(engine._subscribers) == 1)
            for i in range(10):  # in one loop turn: the queue cannot drain in between
                engine._publish("bgp-neighbor-state", {"neighbor-address": f"10.0.0.{i}", "state": "Idle"})
            lines = []
            while line := await asyncio.wait_for(reader.readline(), 5):
                lines.append(json.loads(line))
            assert lines == [{"event": "overflow"}]
            await _wait_for(lambda: engine._subscribers == [])
            # below the limit everything arrives, in order
            reader, writer, _ = await _subscribe(path)
            await _wait_for(lambda: len(engine._subscribers) == 1)
            for i in range(3):
                engine._publish("bgp-neighbor-state", {"neighbor-address": f"10.0.0.{i}", "state": "Idle"})
            got = [json.loads(await asyncio.wait_for(reader.readline(), 5)) for _ in range(3)]
            assert [m["data"]["neighbor-address"] for m in got] == ["10.0.0.0", "10.0.0.1", "10.0.0.2"]
            writer.close()
        finally:
            await engine.stop("test over")
            await server.close()

    asyncio.run(scenario())


def test_unsubscribe_on_disconnect_and_bad_kinds(tmp_path):
    async def scenario() -> None:
        engine = Engine(EngineConfig(SystemConfig(), None))
        path = str(tmp_path / "ctl.sock")
        server = ControlServer(engine, path)
        await server.start()
        await engine.start()
        try:
            _, writer, answer = await _subscribe(path, b'{"id": 1, "method": "events.subscribe", "params": {"kinds": ["bfd-session-state"]}}\n')
            assert answer == {"id": 1, "result": {"subscribed": ["bfd-session-state"]}}
            await _wait_for(lambda: len(engine._subscribers) == 1)
            writer.close()
            await _wait_for(lambda: engine._subscribers == [])
            engine._publish("bfd-session-state", {"peer-address": "10.0.0.1"})  # nobody: no error
            _, writer, answer = await _subscribe(path, b'{"id": 2, "method": "events.subscribe", "params": {"kinds": ["nope"]}}\n')
            assert "unknown kinds" in answer["error"]["message"]
            assert engine._subscribers == []
            writer.close()
        finally:
            await engine.stop("test over")
            await server.close()

    asyncio.run(scenario())


def test_engine_poller_uses_the_stream(tmp_path):
    async def scenario() -> None:
        engine = Engine(EngineConfig(SystemConfig(), None))
        path = str(tmp_path / "ctl.sock")
        server = ControlServer(engine, path)
        await server.start()
        await engine.start()
        events: list = []

        async def call(method: str):
            r = await server.handle_line(json.dumps({"id": 1, "method": method}).encode())
            if "error" in r:
                raise RuntimeError(r["error"]["message"])
            return r["result"]

        poller = EnginePoller(call, lambda e, d: events.append((e, d)), 1.0, socket_path=path, resync=10.0)
        task = asyncio.get_running_loop().create_task(poller.run())
        try:
            await _wait_for(lambda: poller.streaming and len(engine._subscribers) == 1)
            # flaps far shorter than any poll interval are all reported
            for old, new in (("Idle", "Connect"), ("Connect", "OpenSent"), ("OpenSent", "Idle")):
                engine._publish("bgp-neighbor-state", {"neighbor-address": "10.0.0.2", "previous-state": old,
                                                       "state": new, "last-notification-sent": None,
                                                       "last-notification-received": None})
            await _wait_for(lambda: len(events) == 3)
            assert [(d["previous-state"], d["session-state"]) for _, d in events] == [
                ("idle", "connect"), ("connect", "opensent"), ("opensent", "idle")]
            # engine restart: the stream closes, the poller subscribes again
            await server.close()
            await _wait_for(lambda: not poller.streaming)
            await server.start()
            await _wait_for(lambda: poller.streaming and len(engine._subscribers) == 1)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await engine.stop("test over")
            await server.close()

    asyncio.run(scenario())


def test_engine_poller_falls_back_to_polling(tmp_path):
    """An engine without events.subscribe: the poller polls at its interval."""
    async def scenario() -> None:
        path = str(tmp_path / "old.sock")

        async def old_engine(reader, writer):
            while line := await reader.readline():
                req = json.loads(line)
                writer.write(json.dumps({"id": req["id"], "error": {"message": f"unknown method {req['method']!r}"}}).encode() + b"\n")
            writer.close()

        srv = await asyncio.start_unix_server(old_engine, path=path)
        polls: list[str] = []

        def call(method: str):
            polls.append(method)
            return {"neighbors": []} if method == "bgp.summary" else {"sessions": []}

        poller = EnginePoller(call, lambda e, d: None, 0.05, socket_path=path, resync=10.0)
        task = asyncio.get_running_loop().create_task(poller.run())
        try:
            await _wait_for(lambda: polls.count("bgp.summary") >= 5)
            assert not poller.streaming
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            srv.close()
            await srv.wait_closed()

    asyncio.run(scenario())
