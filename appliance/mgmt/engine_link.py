"""The management plane's client of the routing engine's control socket (asyncio).

JSON lines over a Unix socket (appliance/engine/control.py). The link reconnects on its
own; a watcher polls `engine.ping` and calls `on_restart()` whenever the engine it talks to
is a new one (first connection, reconnection after the socket closed, or an uptime that went
backwards), so the management plane can push the running configuration again: fcrd may
start empty and wait for it (DESIGN.md invariant 2).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..log import log_event

log = logging.getLogger("fcr.mgmt.engine")


class EngineUnavailable(Exception):
    """No connection to the routing engine."""


class EngineRefused(Exception):
    """The engine answered with an error."""


class EngineLink:
    def __init__(self, path: str, *, timeout: float = 30.0, poll_interval: float = 1.0) -> None:
        self.path = path
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.on_restart: Callable[[], Awaitable[None]] | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()
        self._id = 0
        self._uptime: float | None = None
        self._watcher: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self._writer is not None

    async def start(self) -> None:
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch())

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        self._drop()

    def _drop(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def _connect(self) -> None:
        self._reader, self._writer = await asyncio.open_unix_connection(self.path, limit=64 << 20)

    async def call(self, method: str, **params: Any) -> Any:
        async with self._lock:
            if self._writer is None:
                try:
                    await self._connect()
                except OSError as exc:
                    raise EngineUnavailable(f"routing engine unavailable: {exc}") from None
            assert self._reader is not None and self._writer is not None
            self._id += 1
            try:
                self._writer.write(json.dumps({"id": self._id, "method": method, "params": params}).encode() + b"\n")
                await self._writer.drain()
                line = await asyncio.wait_for(self._reader.readline(), self.timeout)
            except (TimeoutError, OSError) as exc:
                self._drop()
                raise EngineUnavailable(f"routing engine unavailable: {exc!r}") from None
            if not line:
                self._drop()
                raise EngineUnavailable("routing engine closed the control connection")
            resp = json.loads(line)
            if "error" in resp:
                raise EngineRefused(resp["error"].get("message", "error"))
            return resp.get("result")

    async def apply(self, config: dict[str, Any]) -> dict[str, Any]:
        return await self.call("config.apply", config=config)

    async def ping(self) -> dict[str, Any]:
        return await self.call("engine.ping")

    async def check(self) -> bool:
        """One watcher step: True if the engine is a new one (it must get the configuration)."""
        was_connected = self.connected
        try:
            info = await self.ping()
        except EngineUnavailable:
            self._uptime = None
            return False
        except EngineRefused:
            return False
        uptime = float((info or {}).get("uptime", 0.0))
        restarted = not was_connected or self._uptime is None or uptime + 0.5 < self._uptime
        self._uptime = uptime
        return restarted

    async def _watch(self) -> None:
        while True:
            try:
                if await self.check():
                    log_event(log, "mgmt.engine-connected", path=self.path)
                    if self.on_restart is not None:
                        await self.on_restart()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the watcher must survive
                log_event(log, "mgmt.engine-watch-error", level=logging.WARNING, error=repr(exc))
            await asyncio.sleep(self.poll_interval)
