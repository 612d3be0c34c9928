"""Operational state for <get>: the engine's answers mapped onto the model's config-false nodes.

Each part is built as RFC 7951 JSON and checked by libyang on its own; a part the model
does not accept (an engine newer than the model, an engine that is down) is left out and
logged, so <get> always answers with the running configuration and what state it can.
"""

from __future__ import annotations

import logging
from typing import Any

from ..log import log_event
from . import yangdata
from .engine_link import EngineRefused, EngineUnavailable
from .errors import MgmtError

log = logging.getLogger("fcr.mgmt.state")

_SESSION_STATES = {"idle", "connect", "active", "opensent", "openconfirm", "established"}


def commit_history_state(plane: Any) -> dict[str, Any]:
    entries = []
    for e in plane.history():
        entries.append({
            "id": e["id"],
            "index": e["index"],
            "timestamp": e["time"],
            "user": e["user"],
            "client": e["client"],
            "comment": e["comment"],
            "confirmed-pending": e["confirmed-pending"],
        })
    return {"fcr-mgmt:commit-history": {"commit": entries}} if entries else {}


def bgp_neighbor_state(neighbors: list[dict[str, Any]], configured: set[str]) -> dict[str, Any]:
    out = []
    for n in neighbors:
        addr = n.get("neighbor-address")
        if addr not in configured:
            continue
        st: dict[str, Any] = {}
        state = str(n.get("state", "")).lower()
        if state in _SESSION_STATES:
            st["session-state"] = state
        if n.get("established-transitions") is not None:
            st["established-transitions"] = str(int(n["established-transitions"]))
        if n.get("uptime") is not None:
            st["uptime"] = str(int(n["uptime"]))
        if n.get("local-address"):
            st["local-address"] = n["local-address"]
        out.append({"neighbor-address": addr, "state": st})
    return {"fcr-bgp:bgp": {"neighbors": {"neighbor": out}}} if out else {}


async def operational_state(plane: Any) -> dict[str, Any]:
    parts = [commit_history_state(plane)]
    if plane.engine is not None and "fcr-bgp:bgp" in plane.running:
        configured = {n["neighbor-address"] for n in plane.running["fcr-bgp:bgp"].get("neighbors", {}).get("neighbor", [])}
        try:
            res = await plane.engine.call("bgp.neighbors")
            parts.append(bgp_neighbor_state((res or {}).get("neighbors", []), configured))
        except (EngineUnavailable, EngineRefused) as exc:
            log_event(log, "mgmt.state-unavailable", level=logging.INFO, error=str(exc))
    state: dict[str, Any] = {}
    for part in parts:
        if not part:
            continue
        try:
            yangdata.print_xml(plane.ctx, plane.running, extra=part)
        except MgmtError as exc:
            log_event(log, "mgmt.state-dropped", level=logging.WARNING, error=str(exc))
            continue
        state = yangdata._merge_json(state, part)
    return state
