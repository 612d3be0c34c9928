"""The engine API over a Unix stream socket: one JSON object per line.

Request:  {"id": 1, "method": "bgp.summary", "params": {}}
Response: {"id": 1, "result": {...}}  or  {"id": 1, "error": {"message": "..."}}

Requests on one connection are answered in order. Methods map 1:1 onto Engine
methods (see METHODS); params are keyword arguments.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any

from ..log import log_event
from .engine import Engine, EngineError

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
}
_MAX_LINE = 1 << 20
START_WAIT = 60.0  # seconds a request waits for the engine to finish starting


class ControlServer:
    def __init__(self, engine: Engine, path: str) -> None:
        self.engine = engine
        self.path = path
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        if os.path.exists(self.path):
            os.unlink(self.path)  # a stale socket of a previous run
        self._server = await asyncio.start_unix_server(self._serve, path=self.path, limit=_MAX_LINE)
        os.chmod(self.path, 0o660)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        try:
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
                writer.write(_encode(await self.handle_line(line)))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

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
            return {"id": rid, "error": {"message": f"unknown method {method!r}", "methods": sorted(METHODS)}}
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
