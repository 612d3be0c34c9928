"""The routing engine: owns the protocol instances and answers the engine API.

Everything the management plane (or a test, or a benchmark) may ask of the engine
is a method here taking and returning plain JSON-able data; control.py exposes the
same methods over a Unix socket, so the management plane can live in another
process and outlive the engine (DESIGN.md invariant 2).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from .. import __version__
from ..bgp.config import BgpConfig
from ..bgp.speaker import Speaker
from ..config.native import ConfigError, EngineConfig
from ..config.native import parse as parse_config
from ..log import log_event

log = logging.getLogger("fcr.engine")


class EngineError(Exception):
    """A request the engine refuses; the message is shown to the caller."""


class Engine:
    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.bgp: Speaker | None = None
        self.started_at = time.time()

    async def start(self) -> None:
        if self.config.bgp is not None:
            self.bgp = Speaker(self.config.bgp, loop=asyncio.get_running_loop())
            await self.bgp.start()
        log_event(log, "engine.start", version=__version__, hostname=self.config.system.hostname)

    async def stop(self, message: str = "") -> None:
        if self.bgp is not None:
            await self.bgp.stop(message)
        log_event(log, "engine.stop", message=message)

    # -- configuration ------------------------------------------------------------
    async def apply(self, new: EngineConfig) -> dict[str, Any]:
        """Converge to ``new``: neighbors added, removed or changed; the rest restarts nothing."""
        old_bgp, new_bgp = self.config.bgp, new.bgp
        changes: dict[str, list[str]] = {"added": [], "removed": [], "reset": []}
        if old_bgp is None and new_bgp is None:
            self.config = new
            return changes
        if old_bgp is None or new_bgp is None or old_bgp.global_ != new_bgp.global_:
            # Global changes (AS, router-id, listen) restart the instance.
            if self.bgp is not None:
                await self.bgp.stop("BGP instance reconfigured")
            self.config = new
            self.bgp = None
            if new_bgp is not None:
                self.bgp = Speaker(new_bgp, loop=asyncio.get_running_loop())
                await self.bgp.start()
            changes["reset"].append("bgp")
            return changes
        assert self.bgp is not None
        old_n = {n.neighbor_address: n for n in old_bgp.neighbors}
        new_n = {n.neighbor_address: n for n in new_bgp.neighbors}
        for addr in old_n.keys() - new_n.keys():
            await self.bgp.remove_neighbor(addr)
            changes["removed"].append(addr)
        for addr, n in new_n.items():
            if addr not in old_n:
                await self.bgp.add_neighbor(n)
                changes["added"].append(addr)
            elif old_n[addr] != n:
                await self.bgp.remove_neighbor(addr)
                await self.bgp.add_neighbor(n)
                changes["reset"].append(addr)
        if old_bgp.networks != new_bgp.networks:
            self.bgp.set_networks(new_bgp.networks)
        self.bgp.config = new_bgp
        self.config = new
        return changes

    async def apply_json(self, config: dict[str, Any]) -> dict[str, Any]:
        """The management plane's entry point: a whole RFC 7951 configuration; it is
        validated against the model and mapped first, so a bad one changes nothing."""
        try:
            new = parse_config(config)
        except ConfigError as exc:
            raise EngineError(f"{exc.path}: {exc.message}") from None
        changes = await self.apply(new)
        log_event(log, "engine.config-applied", **{k: ",".join(v) for k, v in changes.items() if v})
        return changes

    # -- operational state (the engine API) ----------------------------------------
    def _speaker(self) -> Speaker:
        if self.bgp is None:
            raise EngineError("BGP is not configured")
        return self.bgp

    def ping(self) -> dict[str, Any]:
        return {"version": __version__, "uptime": round(time.time() - self.started_at, 3)}

    def bgp_summary(self) -> dict[str, Any]:
        return self._speaker().summary()

    def bgp_neighbors(self, neighbor: str | None = None) -> dict[str, Any]:
        sp = self._speaker()
        if neighbor is not None:
            if neighbor not in sp.peers:
                raise EngineError(f"no such neighbor {neighbor}")
            return {"neighbors": [sp.neighbor_state(neighbor, detail=True)]}
        return {"neighbors": [sp.neighbor_state(a, detail=True) for a in sorted(sp.peers)]}

    def bgp_rib(self, family: str = "ipv4-unicast", prefix: str | None = None, limit: int | None = 100,
                exact: bool = False) -> dict[str, Any]:
        try:
            return {"routes": self._speaker().rib_routes(family, prefix, limit, exact)}
        except ValueError as exc:
            raise EngineError(str(exc)) from None

    def bgp_adj_rib(self, neighbor: str, family: str = "ipv4-unicast", direction: str = "in",
                    limit: int | None = 100) -> dict[str, Any]:
        sp = self._speaker()
        if neighbor not in sp.peers:
            raise EngineError(f"no such neighbor {neighbor}")
        if direction == "in":
            return {"routes": sp.adj_rib_in(neighbor, family, limit)}
        if direction == "out":
            return {"routes": sp.adj_rib_out(neighbor, family, limit)}
        raise EngineError("direction must be 'in' or 'out'")

    def bgp_clear(self, neighbor: str, soft: str | None = None) -> dict[str, Any]:
        sp = self._speaker()
        if neighbor not in sp.peers:
            raise EngineError(f"no such neighbor {neighbor}")
        if soft not in (None, "in", "out"):
            raise EngineError("soft must be 'in', 'out' or null")
        sp.clear_neighbor(neighbor, soft)
        return {"cleared": neighbor, "soft": soft}


def bgp_config_of(engine: Engine) -> BgpConfig | None:
    return engine.config.bgp
