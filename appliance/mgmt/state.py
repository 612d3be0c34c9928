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


_ENGINE_ROLES = {"active", "standby", "released", "fenced"}
_NSR_DISABLED = "non-stop routing is not enabled"  # the engine's refusal (Engine._nsr)


def _time(t: Any) -> str | None:
    from .plane import rfc3339

    try:
        return rfc3339(float(t))
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def nsr_state(status: dict[str, Any] | None, *, configured_role: str = "standalone",
              switchover_available: bool = False) -> dict[str, Any]:
    """``fcr-nsr:nsr/state`` from the engine's ``nsr.status`` answer (None: the engine runs
    without a checkpoint store).

    Without a store the container is still filled, with engine-role ``disabled``,
    store-connected false, switchover-ready false: a controller that reads it before a
    switchover gets a definite "no, and why", which an absent container would not say (it
    also means "the engine does not answer", when nothing is known). ``active``/``epoch``
    are left out then: there is no lease.

    ``switchover-ready`` is about the fcr-nsr:switchover RPC of this management plane: it
    needs the RPC wired (``switchover_available``: fcr-mgmtd --engine-command), this engine
    active with its store, and either exactly one live standby, ready and synchronized (a
    handover to it), or no live standby (an in-service upgrade on this box)."""
    if status is None:
        return {"fcr-nsr:nsr": {"state": {"engine-role": "disabled", "store-connected": False,
                                          "sync-state": "not-applicable", "switchover-ready": False}}}
    st: dict[str, Any] = {}
    if status.get("engine-id"):
        st["engine-id"] = str(status["engine-id"])
    role = status.get("role")
    if role in _ENGINE_ROLES:
        st["engine-role"] = role
    active = bool(status.get("active"))
    st["active"] = active
    lease = status.get("lease") or {}
    epoch = lease.get("epoch", status.get("epoch"))
    if isinstance(epoch, int) and epoch >= 0:
        st["epoch"] = str(epoch)  # uint64: a string in RFC 7951 JSON
    if "owner" in lease and lease["owner"] is not None:
        st["lease-owner"] = str(lease["owner"])
    connected = bool(status.get("store-connected"))
    st["store-connected"] = connected
    if not connected and status.get("store-error"):
        st["store-error"] = str(status["store-error"])
    standbys: list[tuple[dict[str, Any], bool]] = []
    seen: set[str] = set()
    for rec in status.get("standbys") or []:
        eid = rec.get("engine-id")
        if not eid or eid in seen:
            continue
        seen.add(eid)
        entry: dict[str, Any] = {"engine-id": str(eid), "fresh": bool(rec.get("fresh")),
                                 "ready": bool(rec.get("ready")),
                                 "synchronized": bool(rec.get("synchronized"))}
        # same configuration, its copy of the RIBs still catching up (docs/nsr.md, RIB mirror)
        catching_up = (rec.get("config-synchronized") is True
                       and (rec.get("rib-mirror") or {}).get("synced") is False)
        if rec.get("version"):
            entry["version"] = str(rec["version"])
        if (hb := _time(rec.get("time"))) is not None:
            entry["last-heartbeat"] = hb
        standbys.append((entry, catching_up))
    live = [s for s, _c in standbys if s["fresh"]]
    catching = any(c for s, c in standbys if s["fresh"])
    standbys_out = [s for s, _c in standbys]
    if standbys_out:
        st["standby"] = standbys_out
    if any(s["ready"] and s["synchronized"] for s in live):
        st["sync-state"] = "synchronized"
    elif any(not s["ready"] for s in live) or catching:
        st["sync-state"] = "synchronizing"
    elif live or configured_role in ("primary", "standby"):
        st["sync-state"] = "not-synchronized"
    else:
        st["sync-state"] = "not-applicable"
    target_ok = (len(live) == 1 and live[0]["ready"] and live[0]["synchronized"]) or not live
    st["switchover-ready"] = bool(switchover_available and active and connected and target_ok)
    last = status.get("last-switchover") or {}
    ls: dict[str, Any] = {}
    if (t := _time(last.get("time"))) is not None:
        ls["time"] = t
    if last.get("result"):
        ls["result"] = str(last["result"])
    if isinstance(last.get("epoch"), int) and last["epoch"] >= 0:
        ls["epoch"] = str(last["epoch"])
    if last.get("from"):
        ls["from-engine-id"] = str(last["from"])
    if last.get("to"):
        ls["to-engine-id"] = str(last["to"])
    if ls:
        st["last-switchover"] = ls
    return {"fcr-nsr:nsr": {"state": st}}


async def _nsr_part(plane: Any) -> dict[str, Any]:
    try:
        status = await plane.engine.call("nsr.status")
    except EngineRefused as exc:
        if _NSR_DISABLED not in str(exc):
            log_event(log, "mgmt.state-unavailable", level=logging.INFO, part="nsr", error=str(exc))
            return {}
        status = None
    except EngineUnavailable as exc:
        log_event(log, "mgmt.state-unavailable", level=logging.INFO, part="nsr", error=str(exc))
        return {}
    if status is not None and not isinstance(status, dict):
        return {}
    role = (plane.running.get("fcr-nsr:nsr") or {}).get("role", "standalone")
    return nsr_state(status, configured_role=role,
                     switchover_available=bool(getattr(plane, "switchover_available", False)))


async def operational_state(plane: Any) -> dict[str, Any]:
    parts = [commit_history_state(plane)]
    if plane.engine is not None and "fcr-bgp:bgp" in plane.running:
        configured = {n["neighbor-address"] for n in plane.running["fcr-bgp:bgp"].get("neighbors", {}).get("neighbor", [])}
        try:
            res = await plane.engine.call("bgp.neighbors")
            parts.append(bgp_neighbor_state((res or {}).get("neighbors", []), configured))
        except (EngineUnavailable, EngineRefused) as exc:
            log_event(log, "mgmt.state-unavailable", level=logging.INFO, error=str(exc))
    if plane.engine is not None:
        # nsr.status asks the checkpoint store (each question bounded at 3 s by the engine)
        parts.append(await _nsr_part(plane))
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
