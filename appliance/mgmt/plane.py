"""The management plane: datastores, sessions and locks, the commit pipeline, confirmed
commits, history and rollback. See docs/mgmt.md.

Datastores are canonical RFC 7951 JSON dicts (yangdata.py); running is what the routing
engine has been told (config.apply, all-or-nothing) and what startup.json holds; candidate
is shared by all sessions. Every mutation of running goes through `_commit_config`, which
validates with libyang, asks the engine, and only when the engine has accepted records the
revision and writes startup.json atomically. Coroutines that touch running hold one
asyncio lock, so commits, reverts and re-pushes to a restarted engine never interleave.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import difflib
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import libyang

from ..log import log_event
from . import yangdata
from .edit import apply_edit, entry_path
from .engine_link import EngineRefused, EngineUnavailable
from .errors import MgmtError
from .schema import default_context
from .store import Store, config_hash

log = logging.getLogger("fcr.mgmt")

DATASTORES = ("running", "candidate", "startup")


class EngineLinkLike(Protocol):
    on_restart: Any

    async def apply(self, config: dict[str, Any]) -> dict[str, Any]: ...
    async def call(self, method: str, **params: Any) -> Any: ...
    async def start(self) -> None: ...
    async def close(self) -> None: ...


@dataclass
class Session:
    sid: int
    user: str
    transport: str


@dataclass
class Pending:
    """A confirmed commit waiting for its confirmation."""

    sid: int | None  # None once restored from disk (its session is gone)
    user: str
    persist: str | None
    timeout: int
    deadline: float  # wall clock (time.time())
    rollback: dict[str, Any]
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def record(self) -> dict[str, Any]:
        return {
            "session-id": self.sid,
            "user": self.user,
            "persist": self.persist,
            "timeout": self.timeout,
            "deadline": self.deadline,
            "deadline-time": rfc3339(self.deadline),
            "rollback": self.rollback,
        }


def rfc3339(t: float | None = None) -> str:
    t = time.time() if t is None else t
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _client(transport: str) -> str:
    return transport if transport in ("netconf", "cli", "startup", "rollback") else "netconf"


class ManagementPlane:
    def __init__(self, state_dir: str | Path, engine: EngineLinkLike | None,
                 ctx: libyang.Context | None = None, *, max_history: int = 100) -> None:
        self.ctx = ctx if ctx is not None else default_context()
        self.index = yangdata.SchemaIndex(self.ctx)
        self.store = Store(state_dir, max_history)
        self.engine = engine
        # the fcr-nsr:switchover RPC is wired (fcr-mgmtd --engine-command): nsr/state's
        # switchover-ready depends on it
        self.switchover_available = False
        self.running: dict[str, Any] = {}
        self.candidate: dict[str, Any] = {}
        self._sessions: dict[int, Session] = {}
        self._sids = itertools.count(1)
        self._locks: dict[str, int] = {}
        self._cand_editors: set[int] = set()
        self._pending: Pending | None = None
        self._op = asyncio.Lock()
        self._subs: list[Callable[[str, dict[str, Any]], None]] = []
        self._started = False

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        self.running = self._load_startup()
        self.candidate = copy.deepcopy(self.running)
        hist = self.store.history()
        newest = self.store.revision(hist[0]["id"]) if hist else None
        if newest is None or config_hash(newest["config"]) != config_hash(self.running):
            self.store.append(self.running, self._meta("system", 0, "startup", "loaded from startup"))
        rec = self.store.read_confirmed()
        if rec is not None:
            await self._restore_pending(rec)
        if self.engine is not None:
            self.engine.on_restart = self._push_running
            try:
                await self.engine.apply(self.running)
            except EngineUnavailable as exc:
                log_event(log, "mgmt.engine-unavailable", level=logging.WARNING, error=str(exc))
            except EngineRefused as exc:
                log_event(log, "mgmt.engine-refused-running", level=logging.ERROR, error=str(exc))
            await self.engine.start()
        self._started = True
        log_event(log, "mgmt.start", revision=self.store.history()[0]["id"])

    def _load_startup(self) -> dict[str, Any]:
        try:
            startup = self.store.read_startup()
        except ValueError as exc:
            log_event(log, "mgmt.startup-unreadable", level=logging.ERROR, error=str(exc))
            startup = None
        candidates = [startup] if startup is not None else []
        if startup is not None:
            # fall back to the newest revision that is valid, should startup.json be bad
            for meta in self.store.history():
                rev = self.store.revision(meta["id"])
                if rev is not None:
                    candidates.append(rev["config"])
        for i, cfg in enumerate(candidates):
            try:
                cfg = yangdata.canonical(self.index, cfg)
                yangdata.validate(self.ctx, cfg)
                if i:
                    log_event(log, "mgmt.startup-fallback", level=logging.ERROR, revision=i)
                return cfg
            except (MgmtError, KeyError, TypeError, AttributeError) as exc:
                log_event(log, "mgmt.startup-invalid", level=logging.ERROR, error=str(exc))
        return {}

    async def stop(self) -> None:
        if self._pending is not None and self._pending.task is not None:
            self._pending.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pending.task
            self._pending.task = None
        if self.engine is not None:
            await self.engine.close()
        self._started = False

    async def _push_running(self) -> None:
        """The engine is new (started empty): give it the running configuration."""
        if self.engine is None:
            return
        async with self._op:
            try:
                changes = await self.engine.apply(self.running)
                log_event(log, "mgmt.engine-pushed", revision=self.store.history()[0]["id"],
                          changes=str(changes))
            except EngineUnavailable as exc:
                log_event(log, "mgmt.engine-unavailable", level=logging.WARNING, error=str(exc))
            except EngineRefused as exc:
                log_event(log, "mgmt.engine-refused-running", level=logging.ERROR, error=str(exc))

    # -- notifications ----------------------------------------------------------------
    def subscribe(self, callback: Callable[[str, dict[str, Any]], None]) -> None:
        self._subs.append(callback)

    def _emit(self, event: str, data: dict[str, Any]) -> None:
        for cb in list(self._subs):
            try:
                cb(event, data)
            except Exception as exc:  # noqa: BLE001 - a subscriber must not break a commit
                log_event(log, "mgmt.subscriber-error", level=logging.WARNING, error=repr(exc))

    def _config_change(self, datastore: str, sid: int, changes: list[dict[str, str]]) -> None:
        if not changes:
            return
        s = self._sessions.get(sid)
        self._emit("netconf-config-change", {
            "datastore": datastore,
            "user": s.user if s else "system",
            "session-id": sid,
            "edits": changes,
        })

    # -- sessions and locks -------------------------------------------------------------
    def open_session(self, user: str, transport: str = "netconf") -> int:
        sid = next(self._sids)
        self._sessions[sid] = Session(sid, user, transport)
        return sid

    def _session(self, sid: int) -> Session:
        s = self._sessions.get(sid)
        if s is None:
            raise MgmtError("invalid-value", f"no session {sid}", info={"bad-element": "session-id"})
        return s

    async def close_session(self, sid: int) -> None:
        if sid not in self._sessions:
            return
        if self._locks.get("candidate") == sid and sid in self._cand_editors and self.candidate != self.running:
            # RFC 6241 §8.3.5.2: the lock holder went away; its uncommitted changes go too
            self.candidate = copy.deepcopy(self.running)
            self._cand_editors.clear()
        for target in [t for t, holder in self._locks.items() if holder == sid]:
            del self._locks[target]
        self._cand_editors.discard(sid)
        p = self._pending
        if p is not None and p.persist is None and p.sid == sid:
            async with self._op:
                if self._pending is p:
                    await self._revert("cancel", sid)
        del self._sessions[sid]

    async def kill_session(self, sid: int, by: int) -> None:
        if sid == by:
            raise MgmtError("invalid-value", "a session cannot kill itself", info={"bad-element": "session-id"},
                            type_="protocol")
        if sid not in self._sessions:
            raise MgmtError("invalid-value", f"no session {sid}", info={"bad-element": "session-id"},
                            type_="protocol")
        await self.close_session(sid)

    def sessions(self) -> list[dict[str, Any]]:
        return [{"session-id": s.sid, "user": s.user, "transport": s.transport} for s in self._sessions.values()]

    @staticmethod
    def _check_target(target: str, allowed: tuple[str, ...] = DATASTORES) -> None:
        if target not in allowed:
            raise MgmtError("invalid-value", f"unsupported datastore {target!r}", info={"bad-element": "target"},
                            type_="protocol")

    def lock(self, sid: int, target: str) -> None:
        self._check_target(target)
        self._session(sid)
        holder = self._locks.get(target)
        if holder is not None:
            raise MgmtError("lock-denied", f"the {target} datastore is locked by session {holder}",
                            info={"session-id": str(holder)}, type_="protocol")
        if target == "candidate" and self.candidate != self.running:
            others = sorted(self._cand_editors - {sid})
            if others or not self._cand_editors:
                owner = next((o for o in others if o in self._sessions), 0)
                raise MgmtError("lock-denied", "the candidate has uncommitted changes of another session",
                                info={"session-id": str(owner)}, type_="protocol")
        if target == "running" and self._pending is not None and self._pending.sid not in (None, sid):
            raise MgmtError("lock-denied", "another session has a confirmed commit pending",
                            info={"session-id": str(self._pending.sid)}, type_="protocol")
        self._locks[target] = sid

    def unlock(self, sid: int, target: str) -> None:
        self._check_target(target)
        if self._locks.get(target) != sid:
            raise MgmtError("operation-failed", f"the {target} datastore is not locked by this session",
                            type_="protocol")
        del self._locks[target]

    def _check_write(self, sid: int, *targets: str) -> None:
        for target in targets:
            holder = self._locks.get(target)
            if holder is not None and holder != sid:
                raise MgmtError("in-use", f"the {target} datastore is locked by session {holder}",
                                info={"session-id": str(holder)})

    # -- reads --------------------------------------------------------------------------
    def _datastore(self, source: str) -> dict[str, Any]:
        self._check_target(source)
        if source == "running":
            return self.running
        if source == "candidate":
            return self.candidate
        try:
            cfg = self.store.read_startup()
        except ValueError:
            cfg = None
        return yangdata.canonical(self.index, cfg or {})

    def get_config(self, source: str, xpath: str | None = None, with_defaults: str = "explicit") -> str:
        return yangdata.print_xml(self.ctx, self._datastore(source), with_defaults=with_defaults, xpath=xpath)

    def get_config_json(self, source: str) -> dict[str, Any]:
        return copy.deepcopy(self._datastore(source))

    async def get(self, xpath: str | None = None, with_defaults: str = "explicit") -> str:
        from .state import operational_state

        state = await operational_state(self)
        return yangdata.print_xml(self.ctx, self.running, with_defaults=with_defaults, xpath=xpath, extra=state)

    # -- edits --------------------------------------------------------------------------
    def _parse_config(self, config_xml: str) -> dict[str, Any]:
        return yangdata.parse_config_xml(self.ctx, self.index, config_xml)

    async def edit_config(self, sid: int, target: str, config_xml: str, *, default_operation: str = "merge",
                          error_option: str = "stop-on-error", test_option: str = "test-then-set") -> None:
        s = self._session(sid)
        self._check_target(target, ("running", "candidate"))
        if error_option not in ("stop-on-error", "continue-on-error", "rollback-on-error"):
            raise MgmtError("invalid-value", f"invalid error-option {error_option!r}",
                            info={"bad-element": "error-option"}, type_="protocol")
        if test_option not in ("test-then-set", "set", "test-only"):
            raise MgmtError("invalid-value", f"invalid test-option {test_option!r}",
                            info={"bad-element": "test-option"}, type_="protocol")
        self._check_write(sid, target)
        edit = yangdata.parse_edit_xml(self.ctx, self.index, config_xml)
        base = self.candidate if target == "candidate" else self.running
        new, changes, errors = apply_edit(self.index, base, edit, default_operation=default_operation,
                                          continue_on_error=error_option == "continue-on-error")
        new = yangdata.canonical(self.index, new)
        if test_option == "test-only":
            yangdata.validate(self.ctx, new)
            if errors:
                raise MgmtError.many(errors)
            return
        if target == "candidate":
            if new != self.candidate:
                self.candidate = new
                self._cand_editors.add(sid)
                self._config_change("candidate", sid, changes)
        else:
            async with self._op:
                self._check_write(sid, "running")
                clean = self.candidate == self.running
                if new != self.running:
                    await self._commit_config(new, s, "edit-config on running", changes=changes)
                if clean:
                    self.candidate = copy.deepcopy(self.running)
        if errors:
            raise MgmtError.many(errors)

    async def copy_config(self, sid: int, target: str, source: str | None = None,
                          config_xml: str | None = None) -> None:
        s = self._session(sid)
        self._check_target(target)
        if (source is None) == (config_xml is None):
            raise MgmtError("missing-element" if source is None else "invalid-value",
                            "give exactly one of a source datastore and an inline config",
                            info={"bad-element": "source"}, type_="protocol")
        if source is not None:
            if source == target:
                raise MgmtError("invalid-value", "source and target are the same datastore",
                                info={"bad-element": "source"}, type_="protocol")
            cfg = copy.deepcopy(self._datastore(source))
        else:
            cfg = self._parse_config(config_xml or "")
        self._check_write(sid, target)
        if target == "candidate":
            if cfg != self.candidate:
                self.candidate = cfg
                self._cand_editors.add(sid)
                self._config_change("candidate", sid, [{"target": "/", "operation": "replace"}])
        elif target == "running":
            async with self._op:
                self._check_write(sid, "running")
                clean = self.candidate == self.running
                if cfg != self.running:
                    await self._commit_config(cfg, s, "copy-config to running")
                if clean:
                    self.candidate = copy.deepcopy(self.running)
        else:
            yangdata.validate(self.ctx, cfg)
            self.store.write_startup(cfg)
            self._config_change("startup", sid, [{"target": "/", "operation": "replace"}])

    async def delete_config(self, sid: int, target: str) -> None:
        self._session(sid)
        if target != "startup":
            raise MgmtError("operation-not-supported", f"the {target} datastore cannot be deleted",
                            info={"bad-element": "target"}, type_="protocol")
        self._check_write(sid, "startup")
        self.store.delete_startup()
        self._config_change("startup", sid, [{"target": "/", "operation": "delete"}])

    def discard_changes(self, sid: int) -> None:
        self._session(sid)
        self._check_write(sid, "candidate")
        self.candidate = copy.deepcopy(self.running)
        self._cand_editors.clear()

    def validate(self, source: str | None = None, config_xml: str | None = None) -> None:
        if config_xml is not None:
            cfg = self._parse_config(config_xml)
        else:
            cfg = self._datastore(source or "candidate")
        yangdata.validate(self.ctx, cfg)

    # -- the commit pipeline ------------------------------------------------------------
    def _meta(self, user: str, sid: int, client: str, comment: str) -> dict[str, Any]:
        return {"user": user, "time": rfc3339(), "comment": comment, "session-id": sid, "client": client}

    async def _commit_config(self, new: dict[str, Any], session: Session | None, comment: str, *,
                             client: str | None = None, force: bool = False,
                             changes: list[dict[str, str]] | None = None) -> dict[str, Any]:
        """running := new, through the engine. Caller holds self._op. With `force` (reverts)
        an unreachable engine does not stop it: the engine gets running when it is back."""
        yangdata.validate(self.ctx, new)
        old = self.running
        if self.engine is not None:
            try:
                await self.engine.apply(new)
            except EngineRefused as exc:
                if not force:
                    raise MgmtError("operation-failed", f"the routing engine refused the configuration: {exc}",
                                    app_tag="engine-refused") from None
                log_event(log, "mgmt.revert-refused", level=logging.ERROR, error=str(exc))
            except EngineUnavailable as exc:
                if not force:
                    raise MgmtError("operation-failed", f"{exc}; the running configuration is unchanged",
                                    app_tag="engine-unavailable") from None
                log_event(log, "mgmt.engine-unavailable", level=logging.WARNING, error=str(exc))
        user = session.user if session else "system"
        sid = session.sid if session else 0
        try:
            meta = self.store.append(new, self._meta(user, sid, client or _client(session.transport if session
                                                                                   else "rollback"), comment))
            self.store.write_startup(new)
        except OSError as exc:
            if self.engine is not None:
                with contextlib.suppress(EngineRefused, EngineUnavailable):
                    await self.engine.apply(old)
            raise MgmtError("operation-failed", f"cannot record the commit: {exc}; running is unchanged") from None
        self.running = new
        self._config_change("running", sid, changes if changes is not None else diff_paths(self.index, old, new))
        log_event(log, "mgmt.commit", id=meta["id"], user=user, session=sid, comment=comment)
        return meta

    async def commit(self, sid: int, *, confirmed: bool = False, confirm_timeout: int = 600,
                     persist: str | None = None, persist_id: str | None = None, comment: str = "") -> None:
        s = self._session(sid)
        if confirmed and (not isinstance(confirm_timeout, int) or confirm_timeout < 1):
            raise MgmtError("invalid-value", "confirm-timeout must be a positive number of seconds",
                            info={"bad-element": "confirm-timeout"}, type_="protocol")
        async with self._op:
            self._check_write(sid, "running", "candidate")
            p = self._pending
            if p is not None:
                if p.persist is not None:
                    if persist_id != p.persist:
                        raise MgmtError("invalid-value", "persist-id does not match the pending confirmed commit",
                                        info={"bad-element": "persist-id"}, type_="protocol")
                elif persist_id is not None:
                    raise MgmtError("invalid-value", "the pending confirmed commit has no persist token",
                                    info={"bad-element": "persist-id"}, type_="protocol")
                elif p.sid != sid:
                    raise MgmtError("in-use", f"session {p.sid} has a confirmed commit pending",
                                    info={"session-id": str(p.sid)})
            elif persist_id is not None:
                raise MgmtError("invalid-value", "no confirmed commit is pending for that persist-id",
                                info={"bad-element": "persist-id"}, type_="protocol")
            new = self.candidate
            if confirmed:
                deadline = time.time() + confirm_timeout
                if p is None:
                    p = Pending(sid, s.user, persist, confirm_timeout, deadline,
                                copy.deepcopy(self.running))
                    event = "start"
                else:
                    p.timeout, p.deadline = confirm_timeout, deadline
                    if persist is not None:
                        p.persist = persist
                    event = "extend"
                previous = self.store.read_confirmed()
                self.store.write_confirmed(p.record())  # before startup.json: a crash reverts
                try:
                    if new != self.running:
                        await self._commit_config(copy.deepcopy(new), s, comment or "commit confirmed")
                except BaseException:
                    if previous is None:
                        self.store.clear_confirmed()
                    else:
                        self.store.write_confirmed(previous)
                    raise
                self._pending = p
                self._arm(p)
                self._emit("netconf-confirmed-commit", {"confirm-event": event, "session-id": sid,
                                                        "username": s.user, "timeout": confirm_timeout})
            else:
                if new != self.running:
                    await self._commit_config(copy.deepcopy(new), s, comment)
                if p is not None:
                    self._disarm(p)
                    self._pending = None
                    self.store.clear_confirmed()
                    self._emit("netconf-confirmed-commit", {"confirm-event": "complete", "session-id": sid,
                                                            "username": s.user})
            self._cand_editors.clear()

    async def cancel_commit(self, sid: int, persist_id: str | None = None) -> None:
        self._session(sid)
        async with self._op:
            p = self._pending
            if p is None:
                raise MgmtError("operation-failed", "no confirmed commit is pending", type_="protocol")
            if p.persist is not None:
                if persist_id != p.persist:
                    raise MgmtError("invalid-value", "persist-id does not match the pending confirmed commit",
                                    info={"bad-element": "persist-id"}, type_="protocol")
            else:
                if persist_id is not None:
                    raise MgmtError("invalid-value", "the pending confirmed commit has no persist token",
                                    info={"bad-element": "persist-id"}, type_="protocol")
                if p.sid != sid:
                    raise MgmtError("in-use", f"session {p.sid} has the confirmed commit pending",
                                    info={"session-id": str(p.sid)})
            await self._revert("cancel", sid)

    def _arm(self, p: Pending) -> None:
        self._disarm(p)
        p.task = asyncio.get_running_loop().create_task(self._expire(p))

    @staticmethod
    def _disarm(p: Pending) -> None:
        if p.task is not None and p.task is not asyncio.current_task():
            p.task.cancel()
        p.task = None

    async def _expire(self, p: Pending) -> None:
        while True:
            left = p.deadline - time.time()
            if left <= 0:
                break
            await asyncio.sleep(min(left, 60.0))
        async with self._op:
            if self._pending is p and p.deadline <= time.time():
                p.task = None
                await self._revert("timeout", 0)

    async def _revert(self, reason: str, sid: int) -> None:
        """Undo the pending confirmed commit (caller holds self._op)."""
        p = self._pending
        assert p is not None
        self._disarm(p)
        if p.rollback != self.running:
            await self._commit_config(copy.deepcopy(p.rollback), None,
                                      f"confirmed commit {'timed out' if reason == 'timeout' else 'cancelled'}: "
                                      "reverted", client="rollback", force=True)
        self._pending = None
        self.store.clear_confirmed()
        self.candidate = copy.deepcopy(self.running)
        self._cand_editors.clear()
        log_event(log, "mgmt.confirmed-revert", reason=reason, session=sid)
        self._emit("netconf-confirmed-commit", {"confirm-event": reason, "session-id": sid,
                                                "username": p.user, "timeout": 0})

    async def _restore_pending(self, rec: dict[str, Any]) -> None:
        try:
            rollback = yangdata.canonical(self.index, rec["rollback"])
            p = Pending(None, rec.get("user", "system"), rec.get("persist"), int(rec.get("timeout", 0)),
                        float(rec["deadline"]), rollback)
        except (KeyError, TypeError, ValueError) as exc:
            log_event(log, "mgmt.confirmed-unreadable", level=logging.ERROR, error=repr(exc))
            self.store.clear_confirmed()
            return
        self._pending = p
        async with self._op:
            if p.persist is None or p.deadline <= time.time():
                # the session that asked for it is gone, or the time ran out while we were down
                await self._revert("timeout", 0)
            else:
                self._arm(p)
                log_event(log, "mgmt.confirmed-restored", deadline=rfc3339(p.deadline))

    def pending_confirmed(self) -> dict[str, Any] | None:
        p = self._pending
        if p is None:
            return None
        return {"session-id": p.sid, "persist": p.persist, "timeout": p.timeout, "deadline": rfc3339(p.deadline)}

    # -- history, rollback, compare -------------------------------------------------------
    def history(self) -> list[dict[str, Any]]:
        out = []
        pending = self._pending is not None
        for e in self.store.history():
            out.append({
                "id": e["id"],
                "index": e["index"],
                "user": e.get("user", ""),
                "time": e.get("time", ""),
                "comment": e.get("comment", ""),
                "session-id": e.get("session-id", 0),
                "client": e.get("client", "netconf"),
                "confirmed-pending": pending and e["index"] == 0,
            })
        return out

    def _revision(self, ref: str | int) -> dict[str, Any]:
        if isinstance(ref, str) and ref in DATASTORES:
            return self._datastore(ref)
        hist = self.store.history()
        meta = None
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            i = int(ref)
            meta = hist[i] if 0 <= i < len(hist) else None
        else:
            meta = next((e for e in hist if e["id"] == ref), None)
        rec = self.store.revision(meta["id"]) if meta else None
        if rec is None:
            raise MgmtError("invalid-value", f"no revision {ref!r} in the commit history",
                            info={"bad-element": "id" if isinstance(ref, str) else "index"})
        return yangdata.canonical(self.index, rec["config"])

    async def rollback(self, sid: int, target: str | int, comment: str = "", *, commit: bool = True) -> None:
        self._session(sid)
        cfg = self._revision(target)
        self._check_write(sid, "candidate")
        self.candidate = copy.deepcopy(cfg)
        self._cand_editors.add(sid)
        if commit:
            await self.commit(sid, comment=comment or f"rollback to {target}")

    def compare(self, a: str | int, b: str | int = "running") -> str:
        left, right = self._revision(a), self._revision(b)
        lines = difflib.unified_diff(yangdata.dumps(left).splitlines(), yangdata.dumps(right).splitlines(),
                                     fromfile=str(a), tofile=str(b), lineterm="", n=3)
        return "\n".join(lines) + ("\n" if left != right else "")


def diff_paths(index: yangdata.SchemaIndex, old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, str]]:
    """The edits that turn `old` into `new`, as netconf-config-change wants them."""
    out: list[dict[str, str]] = []
    _diff_members(index.top, old, new, "", out)
    return out


def _diff_members(children: dict[str, yangdata.SNode], old: dict[str, Any], new: dict[str, Any], path: str,
                  out: list[dict[str, str]]) -> None:
    for member in sorted(set(old) | set(new), key=lambda m: (children[m].order if m in children else 0, m)):
        sn = children.get(member)
        p = f"{path}/{member}"
        if member not in new:
            out.append({"target": p, "operation": "delete"})
        elif member not in old:
            out.append({"target": p, "operation": "create"})
        elif old[member] == new[member]:
            continue
        elif sn is None or sn.kind in (yangdata.LEAF, yangdata.LEAFLIST):
            out.append({"target": p, "operation": "replace"})
        elif sn.kind == yangdata.CONTAINER:
            _diff_members(sn.children(), old[member], new[member], p, out)
        else:
            def key(e: dict[str, Any], keys: tuple[str, ...] = sn.keys) -> tuple:
                return tuple(str(e.get(k)) for k in keys)

            o = {key(e): e for e in old[member]}
            n = {key(e): e for e in new[member]}
            for k in sorted(set(o) | set(n)):
                ep = entry_path(path, sn, o.get(k) or n[k])
                if k not in n:
                    out.append({"target": ep, "operation": "delete"})
                elif k not in o:
                    out.append({"target": ep, "operation": "create"})
                elif o[k] != n[k]:
                    _diff_members(sn.children(), o[k], n[k], ep, out)
            if [key(e) for e in old[member] if key(e) in n] != [key(e) for e in new[member] if key(e) in o]:
                out.append({"target": p, "operation": "replace"})
