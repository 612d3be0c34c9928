"""The NETCONF server (RFC 6241 over RFC 6242 SSH): listener, SSH authentication, host
key, the session registry, notifications and the server's own state (yang-library,
ietf-netconf-monitoring).

    server = NetconfServer(plane, host="::", port=830, host_key_path="/var/lib/fcr/ssh_host_key",
                           authenticate=check_password, authorized_keys=keys_of,
                           engine_call=engine.call)
    await server.start()      # on the management plane's event loop
    ...
    server.on_engine_event("bgp-neighbor-state-change", {...})
    await server.stop()

SSH and the per-session reading/writing run in threads (paramiko); every operation runs
on the event loop that called start(), so the ManagementPlane is only touched there.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from lxml import etree

from appliance.netconf.filters import XPathPrefixError, subtree_filter, xpath_select
from appliance.netconf.library import Library
from appliance.netconf.ops import Dispatcher
from appliance.netconf.render import render
from appliance.netconf.session import MAX_MESSAGE, Session
from appliance.netconf.xmlutil import (
    BASE_NS,
    MON_NS,
    NOTIF_NS,
    YANGLIB_NS,
    nc,
    q,
    to_string,
)

log = logging.getLogger("fcr.netconf")

ENGINE_EVENTS = {
    "bgp-neighbor-state-change": "/fcr-bgp:neighbor-state-change",
    "neighbor-state-change": "/fcr-bgp:neighbor-state-change",
    "fcr-bgp:neighbor-state-change": "/fcr-bgp:neighbor-state-change",
    "bfd-session-state-change": "/fcr-bfd:session-state-change",
    "session-state-change": "/fcr-bfd:session-state-change",
    "fcr-bfd:session-state-change": "/fcr-bfd:session-state-change",
}
PLANE_EVENTS = {
    "netconf-config-change": "/ietf-netconf-notifications:netconf-config-change",
    "netconf-confirmed-commit": "/ietf-netconf-notifications:netconf-confirmed-commit",
}
# key leaves of the lists in the server's own state (for XPath results)
_STATE_KEYS = {
    (YANGLIB_NS, "module-set"): ("name",),
    (YANGLIB_NS, "module"): ("name",),
    (YANGLIB_NS, "schema"): ("name",),
    (YANGLIB_NS, "datastore"): ("name",),
    (MON_NS, "schema"): ("identifier", "version", "format"),
    (MON_NS, "session"): ("session-id",),
    (MON_NS, "datastore"): ("name",),
}


def load_or_create_host_key(path: str | Path) -> paramiko.PKey:
    """The host key at `path`; an Ed25519 key is generated (mode 0600) on first start."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = ed25519.Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key_file(str(path))
        except (paramiko.SSHException, ValueError):
            continue
    raise ValueError(f"{path}: not a usable SSH host key")


def _as_pkey(key: Any) -> paramiko.PKey | None:
    if isinstance(key, paramiko.PKey):
        return key
    parts = str(key).split()
    for i, part in enumerate(parts):  # authorized_keys line, options allowed in front
        if part.startswith(("ssh-", "ecdsa-")) and i + 1 < len(parts):
            try:
                return paramiko.PKey.from_type_string(part, base64.b64decode(parts[i + 1]))
            except Exception:  # noqa: BLE001
                return None
    return None


class _Auth(paramiko.ServerInterface):
    def __init__(self, server: NetconfServer):
        self.server = server
        self.user: str | None = None
        self.subsystem = threading.Event()

    def get_allowed_auths(self, username: str) -> str:
        return "publickey,password" if self.server.authorized_keys else "password"

    def check_auth_none(self, username: str) -> int:
        return paramiko.AUTH_FAILED

    def check_auth_password(self, username: str, password: str) -> int:
        try:
            ok = bool(username) and bool(password) and self.server.authenticate(username, password)
        except Exception:  # noqa: BLE001
            log.exception("netconf: authenticate() failed")
            ok = False
        if ok:
            self.user = username
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        if not self.server.authorized_keys:
            return paramiko.AUTH_FAILED
        try:
            keys = self.server.authorized_keys(username) or []
        except Exception:  # noqa: BLE001
            log.exception("netconf: authorized_keys() failed")
            keys = []
        for k in keys:
            pk = _as_pkey(k)
            if pk is not None and pk.get_name() == key.get_name() and pk.asbytes() == key.asbytes():
                self.user = username
                return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_subsystem_request(self, channel, name: str) -> bool:
        if name == "netconf":
            self.subsystem.set()
            return True
        return False


class NetconfServer:
    def __init__(
        self,
        plane: Any,
        *,
        host: str = "::",
        port: int = 830,
        host_key_path: str | Path,
        authenticate: Callable[[str, str], bool],
        authorized_keys: Callable[[str], list[Any]] | None = None,
        engine_call: Callable[..., Any] | None = None,
        role_of: Callable[[str], str | None] | None = None,
        library: Library | None = None,
        max_message: int = MAX_MESSAGE,
        max_sessions: int = 64,
    ):
        self.plane = plane
        self.host = host
        self.port = port
        self.host_key_path = Path(host_key_path)
        self.authenticate = authenticate
        self.authorized_keys = authorized_keys
        self.engine_call = engine_call
        # async (engine_id | None, vip={"address", "dev"} when given) -> {"active-engine-id",
        # "epoch"}: set by fcr-mgmtd (appliance/mgmt/switchover.py)
        self.switchover: Callable[..., Any] | None = None
        # user -> role (admin / operator / viewer, None: unknown); with it every operation is
        # checked by appliance.mgmt.access (None: no role enforcement, for embedding in tests)
        self.role_of = role_of
        self.library = library or Library()
        self.max_message = max_message
        self.max_sessions = max_sessions
        self.dispatcher = Dispatcher(self)
        self.sessions: dict[int, Session] = {}
        self.stats = {k: 0 for k in ("in-bad-hellos", "in-sessions", "dropped-sessions", "in-rpcs",
                                      "in-bad-rpcs", "out-rpc-errors", "out-notifications")}
        self.start_time = datetime.now(UTC)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._sock: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._conn_threads: set[threading.Thread] = set()
        self._transports: set[paramiko.Transport] = set()
        self._lock = threading.Lock()
        self._stopping = False
        self._host_key: paramiko.PKey | None = None
        self._hello_caps = self.library.capabilities()
        self._poller: asyncio.Task | None = None

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._host_key = load_or_create_host_key(self.host_key_path)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((self.host, self.port))
        sock.listen(64)
        sock.settimeout(0.5)
        self.port = sock.getsockname()[1]
        self._sock = sock
        subscribe = getattr(self.plane, "subscribe", None)
        if subscribe is not None:
            subscribe(self._plane_event)
        self._accept_thread = threading.Thread(target=self._accept_loop, name="netconf-accept", daemon=True)
        self._accept_thread.start()
        log.info("netconf: listening on [%s]:%d", self.host, self.port)

    async def stop(self) -> None:
        self._stopping = True
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._poller
            self._poller = None
        if self._accept_thread is not None:
            await asyncio.to_thread(self._accept_thread.join)
            self._accept_thread = None
        for s in list(self.sessions.values()):
            s.termination = "other"
            s.abort()
        with self._lock:
            transports = list(self._transports)
            threads = list(self._conn_threads)
        for t in transports:
            t.close()
        for th in threads:
            await asyncio.to_thread(th.join, 10)
        unsubscribe = getattr(self.plane, "unsubscribe", None)
        if unsubscribe is not None:
            try:
                unsubscribe(self._plane_event)
            except Exception:  # noqa: BLE001
                pass

    # -- SSH ---------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        assert self._sock is not None
        try:
            while not self._stopping:
                try:
                    conn, addr = self._sock.accept()
                except TimeoutError:
                    continue
                except OSError:
                    if self._stopping:
                        break
                    raise
                th = threading.Thread(target=self._connection, args=(conn, addr), name="netconf-conn",
                                      daemon=True)
                with self._lock:
                    self._conn_threads.add(th)
                th.start()
        finally:
            self._sock.close()

    def _connection(self, conn: socket.socket, addr: tuple) -> None:
        transport = None
        try:
            conn.settimeout(None)
            transport = paramiko.Transport(conn)
            with self._lock:
                if self._stopping:
                    return
                self._transports.add(transport)
            transport.add_server_key(self._host_key)
            auth = _Auth(self)
            transport.start_server(server=auth)
            channel = transport.accept(timeout=30)
            if channel is None or not auth.subsystem.wait(timeout=30) or auth.user is None:
                return
            if len(self.sessions) >= self.max_sessions:
                log.warning("netconf: too many sessions, refusing %s", addr)
                return
            Session(self, channel, auth.user, addr[0]).run(self.loop)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            log.debug("netconf: connection from %s ended: %r", addr, exc)
        except Exception:  # noqa: BLE001
            log.exception("netconf: connection from %s failed", addr)
        finally:
            if transport is not None:
                transport.close()
                with self._lock:
                    self._transports.discard(transport)
            conn.close()
            with self._lock:
                self._conn_threads.discard(threading.current_thread())

    # -- session hooks (event loop) ----------------------------------------------------
    async def _open(self, session: Session) -> int:
        sid = self.plane.open_session(session.user, transport="netconf")
        if asyncio.iscoroutine(sid):
            sid = await sid
        return int(sid)

    def _hello_xml(self, sid: int) -> str:
        hello = etree.Element(nc("hello"), nsmap={None: BASE_NS})
        caps = etree.SubElement(hello, nc("capabilities"))
        for c in self._hello_caps:
            etree.SubElement(caps, nc("capability")).text = c
        etree.SubElement(hello, nc("session-id")).text = str(sid)
        return to_string(hello)

    async def _started(self, session: Session) -> None:
        self.sessions[session.sid] = session
        self.stats["in-sessions"] += 1
        self._emit_session_event("netconf-session-start", session)

    async def _ended(self, session: Session) -> None:
        registered = self.sessions.pop(session.sid, None) is not None
        session.subscription = None
        if session.sid:
            try:
                await self.plane.close_session(session.sid)
            except Exception as exc:  # noqa: BLE001 - killed sessions are gone already
                log.debug("netconf: close_session(%s): %r", session.sid, exc)
        if registered:
            if session.termination in ("dropped", "other"):
                self.stats["dropped-sessions"] += 1
            self._emit_session_event("netconf-session-end", session)

    # -- notifications -----------------------------------------------------------------
    def _emit_session_event(self, name: str, session: Session) -> None:
        data: dict[str, Any] = {"username": session.user, "session-id": session.sid}
        if session.source_host:
            data["source-host"] = session.source_host
        if name == "netconf-session-end":
            if session.killed_by is not None:
                data["killed-by"] = session.killed_by
            data["termination-reason"] = session.termination
        self.notify(f"/ietf-netconf-notifications:{name}", data)

    def _plane_event(self, event: str, data: Mapping[str, Any]) -> None:
        path = PLANE_EVENTS.get(event)
        if path is None:
            log.debug("netconf: plane event %s not mapped", event)
            return
        data = dict(data)
        if "user" in data and "username" not in data:
            data["username"] = data.pop("user")
        if event == "netconf-config-change":
            if "edits" in data and "edit" not in data:
                data["edit"] = data.pop("edits")
            if "changed-by" not in data:
                by = {k: data.pop(k) for k in ("server", "username", "session-id", "source-host") if k in data}
                if not by.get("session-id"):  # made by the server itself (revert, startup)
                    by = {"server": True}
                data["changed-by"] = by
        if event == "netconf-confirmed-commit" and data.get("confirm-event") not in ("start", "extend"):
            data.pop("timeout", None)
        if event == "netconf-confirmed-commit" and "session-id" in data and "username" not in data:
            s = self.sessions.get(int(data["session-id"])) if str(data["session-id"]).isdigit() else None
            if s is not None:
                data["username"] = s.user
        self._call_in_loop(self.notify, path, data)

    def on_engine_event(self, event: str, data: Mapping[str, Any]) -> None:
        """Entry point for routing-engine events (BGP neighbor and BFD session state
        changes); safe to call from any thread."""
        path = ENGINE_EVENTS.get(event)
        if path is None:
            log.debug("netconf: engine event %s not mapped", event)
            return
        self._call_in_loop(self.notify, path, dict(data))

    def poll_engine_events(self, call: Callable[..., Any], interval: float = 1.0, *,
                           socket_path: str | None = None, resync: float = 10.0) -> None:
        """Turn the engine's state changes into notifications (EnginePoller): from its event
        stream on `socket_path` (events.subscribe) with a poll every `resync` seconds, or,
        without one, by polling `bgp.summary` and `bfd.sessions` every `interval` seconds.
        Call on the loop after start(); stop() ends it."""
        if self._poller is None:
            self._poller = asyncio.get_running_loop().create_task(
                EnginePoller(call, self.on_engine_event, interval, socket_path=socket_path, resync=resync).run())

    def _call_in_loop(self, fn: Callable, *args: Any) -> None:
        loop = self.loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)

    def notify(self, path: str, data: Mapping[str, Any]) -> None:
        """Send the notification at schema `path` built from `data` to every subscriber."""
        subscribers = [s for s in self.sessions.values() if s.subscription is not None]
        if not subscribers:
            return
        snode = next(self.library.ctx.find_path(path))
        ns = self.library.ns_of(snode.module().name())
        event = etree.Element(q(ns, snode.name()), nsmap={None: ns})
        render(event, snode, data, self.library.ns_of)
        for s in sorted(subscribers, key=lambda s: s.sid):
            content = self._filtered(event, s.subscription)
            if not content:
                continue
            notif = etree.Element(q(NOTIF_NS, "notification"), nsmap={None: NOTIF_NS})
            etree.SubElement(notif, q(NOTIF_NS, "eventTime")).text = s.event_time()
            notif.extend(content)
            s.out_notifications += 1
            self.stats["out-notifications"] += 1
            s.send(to_string(notif))

    def _filtered(self, event: etree._Element, spec: tuple) -> list[etree._Element]:
        import copy

        kind, value, nsmap = spec
        if kind == "all":
            return [copy.deepcopy(event)]
        if kind == "subtree":
            wrap = etree.Element(nc("data"))
            wrap.append(copy.deepcopy(event))
            return subtree_filter(wrap, value)
        try:
            return xpath_select([event], value, nsmap, self.state_keys)
        except XPathPrefixError:
            return []

    # -- the server's own state --------------------------------------------------------
    def state_keys(self, el: etree._Element) -> tuple[str, ...]:
        qn = etree.QName(el)
        return _STATE_KEYS.get((qn.namespace, qn.localname), ())

    def own_state(self) -> list[etree._Element]:
        return [*self.library.yang_library(), self._netconf_state()]

    def _netconf_state(self) -> etree._Element:
        def sub(parent, name, text=None):
            el = etree.SubElement(parent, q(MON_NS, name))
            if text is not None:
                el.text = str(text)
            return el

        st = etree.Element(q(MON_NS, "netconf-state"), nsmap={None: MON_NS})
        caps = sub(st, "capabilities")
        for c in self._hello_caps:
            sub(caps, "capability", c)
        dss = sub(st, "datastores")
        for name in ("running", "candidate"):
            ds = sub(dss, "datastore")
            sub(ds, "name", name)
        self.library.monitoring_schemas(st)
        sessions = sub(st, "sessions")
        for sid in sorted(self.sessions):
            s = self.sessions[sid]
            se = sub(sessions, "session")
            sub(se, "session-id", sid)
            sub(se, "transport", "netconf-ssh")
            sub(se, "username", s.user)
            if s.source_host:
                sub(se, "source-host", s.source_host)
            sub(se, "login-time", s.login_time.isoformat(timespec="seconds").replace("+00:00", "Z"))
            sub(se, "in-rpcs", s.in_rpcs)
            sub(se, "in-bad-rpcs", s.in_bad_rpcs)
            sub(se, "out-rpc-errors", s.out_rpc_errors)
            sub(se, "out-notifications", s.out_notifications)
        stats = sub(st, "statistics")
        sub(stats, "netconf-start-time", self.start_time.isoformat(timespec="seconds").replace("+00:00", "Z"))
        for k in ("in-bad-hellos", "in-sessions", "dropped-sessions", "in-rpcs", "in-bad-rpcs",
                  "out-rpc-errors", "out-notifications"):
            sub(stats, k, self.stats[k])
        return st

    def render_output(self, rpc_path: str, data: Mapping[str, Any]) -> list[etree._Element]:
        """RPC output elements (schema order) for the rpc at `rpc_path`."""
        snode = next(self.library.ctx.find_path(rpc_path))
        holder = etree.Element(nc("data"))
        render(holder, snode.output(), data, self.library.ns_of)
        out = list(holder)
        for el in out:
            ns = etree.QName(el).namespace
            holder.remove(el)
            fixed = etree.Element(el.tag, nsmap={None: ns})
            fixed.text = el.text
            fixed.extend(list(el))
            out[out.index(el)] = fixed
        return out


# -- engine state -> notifications ----------------------------------------------------------

_BFD_STATES = {"admindown": "admin-down", "admin-down": "admin-down", "down": "down", "init": "init", "up": "up"}
# the engine's diagnostic names (bfd/packet.py DIAG_NAMES) -> fcr-types:bfd-diagnostic
_BFD_DIAGS = {
    "none": "none", "control-detection-time-expired": "control-expiry", "echo-function-failed": "echo-failed",
    "neighbor-signaled-session-down": "neighbor-down", "forwarding-plane-reset": "forwarding-reset",
    "path-down": "path-down", "concatenated-path-down": "concatenated-path-down",
    "administratively-down": "admin-down", "reverse-concatenated-path-down": "reverse-concatenated-path-down",
}
_BGP_STATES = ("idle", "connect", "active", "opensent", "openconfirm", "established")


def _bgp_state(value: Any) -> str | None:
    s = str(value or "").lower()
    return s if s in _BGP_STATES else None


def _bfd_state(value: Any) -> str | None:
    return _BFD_STATES.get(str(value or "").lower().replace("_", "-"))


class EnginePoller:
    """Turns engine state changes into events (`emit(kind, data)`).

    With `socket_path` (the engine's control socket) it subscribes to the engine's event
    stream (`events.subscribe` on a connection of its own) and emits every BGP neighbor and
    BFD session state change as it happens; it subscribes again whenever the connection
    closes (engine restart, overflow). A poll of `bgp.summary` and `bfd.sessions` every
    `resync` seconds (and right after each subscription) catches whatever the stream could
    not carry. Without a socket path, or while the engine does not know `events.subscribe`
    (an older engine) or is away, it polls every `interval` seconds instead.

    Polling: an event for every neighbor or session whose state differs from the previous
    poll. The very first answer is a baseline (no events); a neighbor or session that
    appears later starts from idle / down (so a newly configured neighbor reports reaching
    established even if that took less than one interval); while the engine is away the
    last states are kept, so a restarted engine's neighbors report their way back to
    established."""

    RETRY = 1.0            # s between connection attempts to the event stream
    RETRY_UNKNOWN = 60.0   # s before asking an engine without events.subscribe again
    KINDS = ("bgp-neighbor-state", "bfd-session-state")

    def __init__(self, call: Callable[..., Any], emit: Callable[[str, dict[str, Any]], None],
                 interval: float = 1.0, *, socket_path: str | None = None, resync: float = 10.0) -> None:
        self.call = call
        self.emit = emit
        self.interval = interval
        self.socket_path = socket_path
        self.resync = resync
        self.bgp: dict[str, str] = {}
        self.bfd: dict[tuple, str] = {}
        self.bfd_available = True
        self.bgp_primed = False  # one answer seen: later newcomers start from idle / down
        self.bfd_primed = False
        self.streaming = False   # subscribed to the engine's event stream
        self._seq = 0            # stream events seen (a poll answer older than one is stale)
        self._poll_now = asyncio.Event()

    async def _call(self, method: str) -> Any:
        res = self.call(method)
        return await res if asyncio.iscoroutine(res) or isinstance(res, asyncio.Future) else res

    async def step(self) -> None:
        seq = self._seq
        try:
            summary = await self._call("bgp.summary")
        except Exception as exc:  # noqa: BLE001 - engine away: nothing to report
            log.debug("netconf: bgp.summary: %r", exc)
            summary = None
        if isinstance(summary, dict) and seq == self._seq:  # else stale: the stream was faster
            self._bgp(summary.get("neighbors") or [])
        if self.bfd_available:
            seq = self._seq
            try:
                sessions = await self._call("bfd.sessions")
            except Exception as exc:  # noqa: BLE001
                if "unknown method" in str(exc).lower():
                    self.bfd_available = False
                sessions = None
            if isinstance(sessions, dict) and seq == self._seq:
                self._bfd(sessions.get("sessions") or [])

    def _bgp(self, neighbors: list[dict[str, Any]]) -> None:
        seen = set()
        for n in neighbors:
            addr = n.get("neighbor-address")
            if addr and _bgp_state(n.get("state")) is not None:
                seen.add(addr)
                self._bgp_change(n, self.bgp.get(addr, "idle" if self.bgp_primed else None))
        for addr in set(self.bgp) - seen:  # deconfigured: forget (no event)
            del self.bgp[addr]
        self.bgp_primed = True

    def _bgp_change(self, n: dict[str, Any], before: str | None) -> None:
        addr = n.get("neighbor-address")
        state = _bgp_state(n.get("state"))
        if not addr or state is None:
            return
        self.bgp[addr] = state
        if before is None or before == state:
            return
        data: dict[str, Any] = {"neighbor-address": addr, "previous-state": before, "session-state": state}
        err = _bgp_error(n) if before == "established" else None
        if err:
            data["last-error"] = err
        self.emit("bgp-neighbor-state-change", data)

    def _bfd(self, sessions: list[dict[str, Any]]) -> None:
        seen = set()
        for s in sessions:
            key = _bfd_key(s)
            if key[0] and _bfd_state(s.get("state")) is not None:
                seen.add(key)
                self._bfd_change(s, self.bfd.get(key, "down" if self.bfd_primed else None))
        for key in set(self.bfd) - seen:
            del self.bfd[key]
        self.bfd_primed = True

    def _bfd_change(self, s: dict[str, Any], before: str | None) -> None:
        key = _bfd_key(s)
        state = _bfd_state(s.get("state"))
        if not key[0] or state is None:
            return
        self.bfd[key] = state
        if before is None or before == state:
            return
        data: dict[str, Any] = {"peer-address": key[0], "multihop": key[3],
                                "previous-state": before, "local-state": state}
        if key[1]:
            data["local-address"] = key[1]
        if key[2]:
            data["interface"] = key[2]
        if s.get("local-discriminator") is not None:
            data["local-discriminator"] = int(s["local-discriminator"])
        diag = _BFD_DIAGS.get(str(s.get("local-diagnostic") or ""))
        if diag:
            data["local-diagnostic"] = diag
        self.emit("bfd-session-state-change", data)

    def on_stream_event(self, msg: dict[str, Any]) -> None:
        """One line of the engine's event stream."""
        kind, data = msg.get("event"), msg.get("data")
        if not isinstance(data, dict):
            return
        self._seq += 1
        if kind == "bgp-neighbor-state":
            addr = data.get("neighbor-address")
            before = self.bgp.get(addr) or _bgp_state(data.get("previous-state")) if addr else None
            self._bgp_change(data, before)
        elif kind == "bfd-session-state":
            before = self.bfd.get(_bfd_key(data)) or _bfd_state(data.get("previous-state"))
            self._bfd_change(data, before)

    async def stream(self) -> None:
        """Subscribe to the engine's events and handle them; again after every close."""
        assert self.socket_path is not None
        while True:
            retry = self.RETRY
            writer = None
            try:
                reader, writer = await asyncio.open_unix_connection(self.socket_path, limit=16 << 20)
                writer.write(json.dumps({"id": 1, "method": "events.subscribe",
                                         "params": {"kinds": list(self.KINDS)}}).encode() + b"\n")
                await writer.drain()
                answer = json.loads(await reader.readline() or b"null")
                if not isinstance(answer, dict) or "result" not in answer:
                    err = str((answer or {}).get("error", {}).get("message", "")) if isinstance(answer, dict) else ""
                    if "unknown method" in err.lower():
                        log.info("netconf: the engine has no event stream; polling every %ss", self.interval)
                        retry = self.RETRY_UNKNOWN
                    continue
                self.streaming = True
                self._poll_now.set()  # resync: what happened before the subscription
                log.info("netconf: subscribed to the engine's events")
                while line := await reader.readline():
                    msg = json.loads(line)
                    if isinstance(msg, dict) and msg.get("event") == "overflow":
                        log.warning("netconf: engine event stream overflowed; resyncing")
                        break
                    if isinstance(msg, dict):
                        self.on_stream_event(msg)
            except asyncio.CancelledError:
                raise
            except (OSError, ValueError) as exc:
                log.debug("netconf: engine event stream: %r", exc)
            except Exception:  # noqa: BLE001 - the stream must come back
                log.exception("netconf: engine event stream failed")
            finally:
                if self.streaming:
                    self.streaming = False
                    self._poll_now.set()
                if writer is not None:
                    writer.close()
            await asyncio.sleep(retry)

    async def run(self) -> None:
        task = asyncio.get_running_loop().create_task(self.stream()) if self.socket_path else None
        try:
            while True:
                self._poll_now.clear()
                try:
                    await self.step()
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - the poller must survive
                    log.exception("netconf: engine poll failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._poll_now.wait(), self.resync if self.streaming else self.interval)
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def _bfd_key(s: dict[str, Any]) -> tuple:
    return (s.get("peer-address"), s.get("local-address"), s.get("interface"), bool(s.get("multihop")))


def _bgp_error(n: dict[str, Any]) -> dict[str, Any] | None:
    """The NOTIFICATION that most likely closed the session (bgp-error grouping)."""
    for direction in ("received", "sent"):
        note = n.get(f"last-notification-{direction}")
        if isinstance(note, dict) and note.get("code") is not None:
            out: dict[str, Any] = {"direction": direction, "code": int(note["code"]),
                                   "subcode": int(note.get("subcode") or 0)}
            if note.get("message"):
                out["text"] = str(note["message"])
            return out
    return None
