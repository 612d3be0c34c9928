"""The engine API over a Unix stream socket: one JSON object per line.

Request:  {"id": 1, "method": "bgp.summary", "params": {}}
Response: {"id": 1, "result": {...}}  or  {"id": 1, "error": {"message": "..."}}

Requests on one connection are answered in order. Methods map 1:1 onto Engine
methods (see METHODS); params are keyword arguments.

Event stream: ``{"id": 1, "method": "events.subscribe", "params": {"kinds": [...]}}``
(kinds from engine.EVENT_KINDS; none or empty: all) is answered with
``{"id": 1, "result": {"subscribed": [...]}}``; from then on the connection carries one
line per event, ``{"event": kind, "time": <unix time>, "data": {...}}``, and further
requests on it are ignored. Events are only queued by the engine (never blocking it); a
subscriber whose queue reaches EVENT_QUEUE events gets a last ``{"event": "overflow"}``
line and is disconnected: it has missed events and must resync by polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections import deque
from typing import Any

from ..log import log_event
from .engine import EVENT_KINDS, Engine, EngineError

log = logging.getLogger("fcr.control")

METHODS = {
    "engine.ping": "ping",
    "config.apply": "apply_json",
    "bgp.summary": "bgp_summary",
    "bgp.neighbors": "bgp_neighbors",
    "bgp.rib": "bgp_rib",
    "bgp.adj-rib": "bgp_adj_rib",
    "bgp.clear": "bgp_clear",
    "rib.routes": "rib_routes",
    "static.push": "static_push",
    "static.withdraw": "static_withdraw",
    "static.list": "static_list",
    "static.clear": "static_clear",
    "bfd.sessions": "bfd_sessions",
    "policy.test": "policy_test",
    "interfaces.state": "interfaces_state",
    "nsr.status": "nsr_status",
    "nsr.release": "nsr_release",
    "nsr.adopt": "nsr_adopt",
    "nsr.resume": "nsr_resume",
}
_MAX_LINE = 1 << 20
START_WAIT = 60.0  # seconds a request waits for the engine to finish starting
SUBSCRIBE = "events.subscribe"
EVENT_QUEUE = 10_000  # events queued per subscriber before it is dropped (overflow)
EVENT_SEND_TIMEOUT = 30.0  # a subscriber that reads nothing for this long is dropped


class _Subscriber:
    """One events.subscribe connection: the engine callback only appends to a bounded
    queue and wakes the connection's writer."""

    def __init__(self, kinds: frozenset[str], limit: int) -> None:
        self.kinds = kinds
        self.limit = limit
        self.queue: deque[dict[str, Any]] = deque()
        self.overflow = False
        self.wake = asyncio.Event()

    def __call__(self, event: dict[str, Any]) -> None:
        if self.overflow or event.get("event") not in self.kinds:
            return
        if len(self.queue) >= self.limit:
            self.overflow = True
            self.queue.clear()
        else:
            self.queue.append(event)
        self.wake.set()


class ControlServer:
    def __init__(self, engine: Engine, path: str, *, event_queue: int = EVENT_QUEUE) -> None:
        self.engine = engine
        self.path = path
        self.event_queue = event_queue
        self._server: asyncio.AbstractServer | None = None
        self._streams: set[asyncio.StreamWriter] = set()  # subscribed connections

    async def start(self) -> None:
        if os.path.exists(self.path):
            os.unlink(self.path)  # a stale socket of a previous run
        self._server = await asyncio.start_unix_server(self._serve, path=self.path, limit=_MAX_LINE)
        os.chmod(self.path, 0o660)
        self._inode = os.stat(self.path).st_ino

    def move_to(self, path: str) -> None:
        """Serve on ``path`` from now on (rename: an NSR standby takes the active engine's
        well-known socket path once it owns the sessions)."""
        os.replace(self.path, path)
        self.path = path

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._streams):  # subscribers see the end of the stream
                w.close()
            await self._server.wait_closed()
        try:  # only our own socket: a new engine may have taken the path over
            if os.stat(self.path).st_ino == getattr(self, "_inode", None):
                os.unlink(self.path)
        except FileNotFoundError:
            pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readline()
                except (asyncio.LimitOverrunError, ValueError):
                    writer.write(_encode({"id": None, "error": {"message": "request line too long"}}))
                    break
                if not line:
                    break
                if SUBSCRIBE.encode() in line:
                    req = _subscribe_request(line)
                    if req is not None:
                        await self._stream_events(req, reader, writer)
                        break
                writer.write(_encode(await self.handle_line(line)))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _stream_events(self, req: dict[str, Any], reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
        """Answer events.subscribe, then send the connection's events until it closes
        or overflows."""
        rid = req.get("id")
        params = req.get("params") or {}
        kinds = params.get("kinds") if isinstance(params, dict) else None
        if kinds is None or kinds == []:
            kinds = list(EVENT_KINDS)
        bad = [k for k in kinds if k not in EVENT_KINDS] if isinstance(kinds, list) else [kinds]
        if not isinstance(params, dict) or bad:
            writer.write(_encode({"id": rid, "error": {"message": f"bad params for {SUBSCRIBE}: unknown kinds {bad!r}",
                                                       "kinds": list(EVENT_KINDS)}}))
            await writer.drain()
            return
        sub = _Subscriber(frozenset(kinds), self.event_queue)
        self.engine.subscribe(sub)
        self._streams.add(writer)
        log_event(log, "control.subscribe", kinds=",".join(sorted(sub.kinds)))
        closed = asyncio.get_running_loop().create_task(_until_eof(reader))
        try:
            writer.write(_encode({"id": rid, "result": {"subscribed": sorted(sub.kinds)}}))
            await writer.drain()
            while True:
                wake = asyncio.get_running_loop().create_task(sub.wake.wait())
                done, _ = await asyncio.wait({wake, closed}, return_when=asyncio.FIRST_COMPLETED)
                if closed in done:
                    wake.cancel()
                    return
                sub.wake.clear()
                if sub.overflow:
                    log_event(log, "control.subscriber-overflow", level=logging.WARNING, limit=sub.limit)
                    writer.write(_encode({"event": "overflow"}))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(writer.drain(), EVENT_SEND_TIMEOUT)
                    return
                while sub.queue:
                    writer.write(_encode(sub.queue.popleft()))
                try:
                    await asyncio.wait_for(writer.drain(), EVENT_SEND_TIMEOUT)
                except TimeoutError:
                    log_event(log, "control.subscriber-stuck", level=logging.WARNING)
                    writer.transport.abort()
                    return
        finally:
            self.engine.unsubscribe(sub)
            self._streams.discard(writer)
            closed.cancel()

    async def handle_line(self, line: bytes) -> dict[str, Any]:
        try:
            req = json.loads(line)
        except json.JSONDecodeError as exc:
            return {"id": None, "error": {"message": f"invalid JSON: {exc.msg}"}}
        if not isinstance(req, dict):
            return {"id": None, "error": {"message": "request must be a JSON object"}}
        rid = req.get("id")
        method = req.get("method")
        params = req.get("params") or {}
        name = METHODS.get(method) if isinstance(method, str) else None
        if name is None:
            return {"id": rid, "error": {"message": f"unknown method {method!r}", "methods": sorted([*METHODS, SUBSCRIBE])}}
        if not isinstance(params, dict):
            return {"id": rid, "error": {"message": "params must be an object"}}
        starting = getattr(self.engine, "starting", None)
        if starting is not None and not starting.is_set() and method != "engine.ping":
            try:  # answer from a fully started engine only (start is bounded by its own waits)
                await asyncio.wait_for(starting.wait(), START_WAIT)
            except TimeoutError:
                return {"id": rid, "error": {"message": "the engine is still starting"}}
        try:
            result = getattr(self.engine, name)(**{k.replace("-", "_"): v for k, v in params.items()})
            if asyncio.iscoroutine(result):
                result = await result
        except EngineError as exc:
            return {"id": rid, "error": {"message": str(exc)}}
        except TypeError as exc:
            return {"id": rid, "error": {"message": f"bad params for {method}: {exc}"}}
        except Exception as exc:  # noqa: BLE001 - the API must answer, and we log the bug
            log_event(log, "control.error", level=logging.ERROR, method=method, error=repr(exc))
            return {"id": rid, "error": {"message": f"internal error: {exc}"}}
        return {"id": rid, "result": result}


def _encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, default=str).encode() + b"\n"


def _subscribe_request(line: bytes) -> dict[str, Any] | None:
    try:
        req = json.loads(line)
    except json.JSONDecodeError:
        return None
    return req if isinstance(req, dict) and req.get("method") == SUBSCRIBE else None


async def _until_eof(reader: asyncio.StreamReader) -> None:
    """Read (and ignore) what a subscriber sends until it closes the connection."""
    with contextlib.suppress(ConnectionError, ValueError, asyncio.LimitOverrunError):
        while await reader.read(65536):
            pass
