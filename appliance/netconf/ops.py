"""The operations: one coroutine per RPC, dispatched by (namespace, name) of the element
under <rpc>, never by prefix. Each returns None (<ok/>) or a list of reply elements, or
raises RpcError / MgmtError. Runs on the server's event loop."""

from __future__ import annotations

import inspect
import ipaddress
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from lxml import etree

from appliance.mgmt import access, yangdata
from appliance.netconf.errors import RpcError, build_rpc_error, errors_of
from appliance.netconf.filters import (
    XPathPrefixError,
    subtree_filter,
    xpath_select,
    xpath_to_modules,
)
from appliance.netconf.xmlutil import (
    BASE_NS,
    MON_NS,
    NOTIF_OPS_NS,
    WD_NS,
    XmlError,
    element_children,
    localname,
    namespace,
    nc,
    parse,
    parse_fragment,
    q,
    text_of,
    to_string,
)

if TYPE_CHECKING:
    from appliance.netconf.server import NetconfServer
    from appliance.netconf.session import Session

log = logging.getLogger("fcr.netconf")

FCR_MGMT_NS = "urn:fcr:yang:fcr-mgmt"
FCR_BGP_NS = "urn:fcr:yang:fcr-bgp"
FCR_NSR_NS = "urn:fcr:yang:fcr-nsr"
WITH_DEFAULTS = ("report-all", "report-all-tagged", "trim", "explicit")
UINT32_MAX = 4294967295


async def _maybe(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _err(tag: str, message: str, *, type_: str = "protocol", **info: Any) -> RpcError:
    return RpcError(tag, message, type_=type_, info={k.replace("_", "-"): v for k, v in info.items()})


class Params:
    """The children of an operation element, checked against what the operation takes."""

    def __init__(self, op: etree._Element, allowed: dict[str, str | tuple[str, ...]]):
        self.op = op
        self.items: dict[str, etree._Element] = {}
        for child in element_children(op):
            name, ns = localname(child), namespace(child)
            want = allowed.get(name)
            if ns != want and not (isinstance(want, tuple) and ns in want):
                if ns is None:
                    raise _err("unknown-element", f"unexpected element {name!r} in {localname(op)}",
                               bad_element=name)
                raise _err("unknown-namespace", f"element {name!r} in unexpected namespace {ns}",
                           bad_element=name, bad_namespace=ns)
            if name in self.items:
                raise _err("bad-element", f"{name!r} given twice", bad_element=name)
            self.items[name] = child

    def get(self, name: str) -> etree._Element | None:
        return self.items.get(name)

    def require(self, name: str) -> etree._Element:
        el = self.items.get(name)
        if el is None:
            raise _err("missing-element", f"{localname(self.op)} needs <{name}>", bad_element=name)
        return el

    def text(self, name: str, default: str | None = None) -> str | None:
        el = self.items.get(name)
        return text_of(el) if el is not None else default

    def flag(self, name: str) -> bool:
        el = self.items.get(name)
        if el is None:
            return False
        if element_children(el) or text_of(el):
            raise _err("bad-element", f"<{name}> takes no content", bad_element=name)
        return True

    def enum(self, name: str, values: tuple[str, ...], default: str) -> str:
        value = self.text(name, default)
        if value not in values:
            raise _err("invalid-value", f"{name} must be one of {', '.join(values)}", bad_element=name)
        return value


def _datastore(el: etree._Element, allowed: tuple[str, ...], what: str, *, config: bool = False):
    """The datastore named under <target>/<source>: ('running'|..., None) or
    ('config', <config element>)."""
    kids = element_children(el)
    if len(kids) != 1:
        raise _err("missing-element" if not kids else "bad-element",
                   f"<{what}> needs exactly one datastore", bad_element=what)
    kid = kids[0]
    name, ns = localname(kid), namespace(kid)
    if ns != BASE_NS:
        raise _err("unknown-namespace", f"datastore {name!r} in namespace {ns}",
                   bad_element=name, bad_namespace=ns or "")
    if config and name == "config":
        return "config", kid
    if name == "url":
        raise _err("operation-not-supported", "the :url capability is not supported", bad_element="url")
    if name not in allowed:
        if name in ("running", "candidate", "startup"):
            raise _err("operation-not-supported", f"{name} is not a valid {what} here", bad_element=name)
        raise _err("bad-element", f"unknown datastore {name!r}", bad_element=name)
    if element_children(kid) or text_of(kid):
        raise _err("bad-element", f"<{name}> takes no content", bad_element=name)
    return name, None


def _config_xml(config: etree._Element) -> str:
    return "".join(to_string(c) for c in element_children(config))


class Dispatcher:
    def __init__(self, server: NetconfServer):
        self.server = server
        self.plane = server.plane
        self.library = server.library
        b = BASE_NS
        self.table: dict[tuple[str, str], Callable[[Session, etree._Element], Awaitable[Any]]] = {
            (b, "get"): self.op_get,
            (b, "get-config"): self.op_get_config,
            (b, "edit-config"): self.op_edit_config,
            (b, "copy-config"): self.op_copy_config,
            (b, "delete-config"): self.op_delete_config,
            (b, "lock"): self.op_lock,
            (b, "unlock"): self.op_unlock,
            (b, "close-session"): self.op_close_session,
            (b, "kill-session"): self.op_kill_session,
            (b, "discard-changes"): self.op_discard_changes,
            (b, "validate"): self.op_validate,
            (b, "commit"): self.op_commit,
            (b, "cancel-commit"): self.op_cancel_commit,
            (NOTIF_OPS_NS, "create-subscription"): self.op_create_subscription,
            (MON_NS, "get-schema"): self.op_get_schema,
            (FCR_MGMT_NS, "rollback"): self.op_rollback,
            (FCR_MGMT_NS, "get-commit-history"): self.op_get_commit_history,
            (FCR_MGMT_NS, "compare"): self.op_compare,
            (FCR_BGP_NS, "clear-neighbor"): self.op_clear_neighbor,
            (FCR_NSR_NS, "switchover"): self.op_switchover,
        }

    # -- message level -----------------------------------------------------------------
    def _reply(self, rpc: etree._Element | None) -> etree._Element:
        nsmap: dict[str | None, str] = {None: BASE_NS}
        attrs = list(rpc.attrib.items()) if rpc is not None else []
        for name, _ in attrs:
            ns = etree.QName(name).namespace
            if ns and ns != BASE_NS and ns not in nsmap.values():
                prefix = next((p for p, u in rpc.nsmap.items() if u == ns and p), None) or "a"
                nsmap[prefix] = ns
        reply = etree.Element(nc("rpc-reply"), nsmap=nsmap)
        for name, value in attrs:
            reply.set(name, value)
        return reply

    def _errors(self, reply: etree._Element, exc: BaseException, session: Session) -> None:
        for e in errors_of(exc):
            reply.append(build_rpc_error(e, self.library.ns_of))
            session.out_rpc_errors += 1
            self.server.stats["out-rpc-errors"] += 1

    async def handle(self, session: Session, msg: str) -> str | None:
        """Handle one message; returns "close" to end the session."""
        session.in_rpcs += 1
        self.server.stats["in-rpcs"] += 1
        try:
            root = parse(msg.strip())
        except XmlError as exc:
            return self._malformed(session, None, f"not well-formed XML: {exc}")
        if root.tag != nc("rpc"):
            return self._malformed(session, None, f"expected <rpc> in {BASE_NS}, got {root.tag}")
        reply = self._reply(root)
        action = None
        after: list[Callable[[], None]] = []
        try:
            if root.get("message-id") is None and root.get(nc("message-id")) is None:
                raise RpcError("missing-attribute", "<rpc> has no message-id", type_="rpc",
                               info={"bad-attribute": "message-id", "bad-element": "rpc"})
            ops = element_children(root)
            if not ops:
                raise _err("missing-element", "<rpc> holds no operation", type_="rpc", bad_element="rpc")
            if len(ops) > 1:
                raise _err("unknown-element", "<rpc> holds more than one operation", type_="rpc",
                           bad_element=localname(ops[1]))
            op = ops[0]
            handler = self.table.get((namespace(op) or "", localname(op)))
            if handler is None:
                raise RpcError("operation-not-supported",
                               f"operation {localname(op)!r} in namespace {namespace(op)} is not supported",
                               type_="protocol", info={"bad-element": localname(op)})
            self._authorize(session, localname(op))
            result = await handler(session, op)
            if isinstance(result, tuple):
                result, action, post = result
                if post is not None:
                    after.append(post)
            if result is None:
                etree.SubElement(reply, nc("ok"))
            else:
                reply.extend(result)
        except Exception as exc:  # noqa: BLE001 - every failure becomes rpc-error
            if not hasattr(exc, "tag") or not isinstance(exc.tag, str):
                log.exception("netconf sid=%s: operation failed", session.sid)
                exc = RpcError("operation-failed", f"internal error: {exc}", type_="application")
            session.in_bad_rpcs += 1
            self.server.stats["in-bad-rpcs"] += 1
            for child in list(reply):
                reply.remove(child)
            self._errors(reply, exc, session)
            action, after = None, []
        session.send(to_string(reply))
        for fn in after:
            fn()
        return action

    def _malformed(self, session: Session, rpc: etree._Element | None, message: str) -> str | None:
        session.in_bad_rpcs += 1
        self.server.stats["in-bad-rpcs"] += 1
        if not session.base11:
            # malformed-message does not exist in base:1.0: close the session instead
            session.termination = "other"
            return "close"
        reply = self._reply(rpc)
        self._errors(reply, RpcError("malformed-message", message, type_="rpc"), session)
        session.send(to_string(reply))
        return None

    # -- access control ----------------------------------------------------------------
    def _role(self, session: Session) -> str | None:
        """The session user's role now (users and roles change with running), or None when
        the server enforces no roles (no `role_of` callback)."""
        role_of = self.server.role_of
        if role_of is None:
            return None
        try:
            return role_of(session.user)
        except Exception:  # noqa: BLE001 - no role: the default deny of access.authorize
            log.exception("netconf: role_of(%r) failed", session.user)
            return ""

    def _authorize(self, session: Session, operation: str, datastore: str | None = None,
                   path: str | None = None) -> None:
        """access.authorize for the session's role (appliance/mgmt/access.py): the same
        rules as the CLI. Every operation is checked at dispatch by its local name (the
        names of access.OPERATIONS); writes are checked again with datastore and path."""
        if self.server.role_of is None:
            return
        access.authorize(self._role(session) or None, operation, datastore, path)

    def _authorize_change(self, session: Session, operation: str, datastore: str | None,
                          before: Callable[[], Any], after: Callable[[], Any]) -> None:
        """access.authorize_change on the datastore before and after the write (computed
        only for roles other than admin, which may write everything)."""
        if self.server.role_of is None:
            return
        role = self._role(session)
        if role == "admin":
            return
        access.authorize_change(role or None, before(), after(), operation, datastore)

    def _redacted(self, session: Session) -> bool:
        """True when this session's reads must go through access.redact()."""
        return self.server.role_of is not None and self._role(session) != "admin"

    def _datastore_json(self, name: str) -> Any:
        getter = getattr(self.plane, "get_config_json", None)
        return getter(name) if getter is not None else None

    # -- helpers -----------------------------------------------------------------------
    def _with_defaults(self, params: Params) -> str:
        el = params.get("with-defaults")
        if el is None:
            return "explicit"
        value = text_of(el)
        if value not in WITH_DEFAULTS:
            raise _err("invalid-value", f"with-defaults must be one of {', '.join(WITH_DEFAULTS)}",
                       type_="protocol", bad_element="with-defaults")
        return value

    def _filter(self, params: Params) -> tuple[str, Any, dict] | None:
        f = params.get("filter")
        if f is None:
            return None
        ftype = f.get("type", f.get(nc("type"), "subtree"))
        if ftype == "subtree":
            return "subtree", f, {}
        if ftype == "xpath":
            select = f.get("select", f.get(nc("select")))
            if select is None or not select.strip():
                raise _err("missing-attribute", "an xpath filter needs a select attribute",
                           type_="protocol", bad_attribute="select", bad_element="filter")
            return "xpath", select.strip(), dict(f.nsmap)
        raise _err("bad-attribute", f"unknown filter type {ftype!r}", bad_attribute="type",
                   bad_element="filter")

    def _module_xpath(self, select: str, nsmap: dict) -> str:
        try:
            return xpath_to_modules(select, nsmap, lambda ns: m.name if (m := self.library.by_ns.get(ns)) else None)
        except XPathPrefixError as exc:
            raise _err("invalid-value", f"xpath filter: {exc}", type_="application",
                       bad_attribute="select", bad_element="filter") from None

    def _data(self, children: list[etree._Element]) -> list[etree._Element]:
        data = etree.Element(nc("data"), nsmap={None: BASE_NS})
        data.extend(children)
        return [data]

    async def _read(self, fetch: Callable[[str | None], Awaitable[str]], filt, own: list[etree._Element]):
        """Run a read through the plane with the filter applied; `own` are the server's own
        top-level state nodes (yang-library, netconf-state) to add."""
        if filt is not None and filt[0] == "xpath":
            expr = self._module_xpath(filt[1], filt[2])
            tree = parse_fragment(await fetch(expr))
            nodes = element_children(tree)
            have = {n.tag for n in nodes}
            own = [o for o in own if o.tag not in have]
            if own:
                try:
                    nodes += xpath_select(own, filt[1], filt[2], self.server.state_keys)
                except XPathPrefixError:
                    pass
            return self._data(nodes)
        tree = parse_fragment(await fetch(None))
        have = {n.tag for n in element_children(tree)}
        for o in own:
            if o.tag not in have:
                tree.append(o)
        if filt is None:
            return self._data(element_children(tree))
        return self._data(subtree_filter(tree, filt[1]))

    # -- base operations ---------------------------------------------------------------
    async def op_get(self, session: Session, op):
        p = Params(op, {"filter": BASE_NS, "with-defaults": WD_NS})
        wd = self._with_defaults(p)
        filt = self._filter(p)

        redacted = self._redacted(session)

        async def fetch(xpath):
            if redacted:
                from appliance.mgmt.state import operational_state

                state = await operational_state(self.plane)
                cfg = access.redact(self._role(session), self.plane.get_config_json("running"))
                return yangdata.print_xml(self.plane.ctx, cfg, with_defaults=wd, xpath=xpath, extra=state)
            return await _maybe(self.plane.get(xpath=xpath, with_defaults=wd))

        own = [] if filt is not None and filt[0] == "subtree" and not element_children(filt[1]) else self.server.own_state()
        return await self._read(fetch, filt, own)

    async def op_get_config(self, session: Session, op):
        p = Params(op, {"source": BASE_NS, "filter": BASE_NS, "with-defaults": WD_NS})
        source, _ = _datastore(p.require("source"), ("running", "candidate"), "source")
        wd = self._with_defaults(p)
        filt = self._filter(p)

        self._authorize(session, "get-config", source)
        redacted = self._redacted(session)

        async def fetch(xpath):
            if redacted:
                cfg = access.redact(self._role(session), self.plane.get_config_json(source))
                return yangdata.print_xml(self.plane.ctx, cfg, with_defaults=wd, xpath=xpath)
            return await _maybe(self.plane.get_config(source, xpath=xpath, with_defaults=wd))

        return await self._read(fetch, filt, [])

    async def op_edit_config(self, session: Session, op):
        p = Params(op, {"target": BASE_NS, "default-operation": BASE_NS, "test-option": BASE_NS,
                        "error-option": BASE_NS, "config": BASE_NS, "url": BASE_NS})
        target, _ = _datastore(p.require("target"), ("running", "candidate"), "target")
        default_operation = p.enum("default-operation", ("merge", "replace", "none"), "merge")
        test_option = p.enum("test-option", ("test-then-set", "set", "test-only"), "test-then-set")
        error_option = p.enum("error-option", ("stop-on-error", "continue-on-error", "rollback-on-error"),
                              "stop-on-error")
        if p.get("url") is not None:
            raise _err("operation-not-supported", "the :url capability is not supported", bad_element="url")
        config = p.require("config")
        self._authorize(session, "edit-config", target)
        if self._role(session) != "admin" and access.edit_touches_users(
                to_string(config), default_operation):
            self._authorize(session, "edit-config", target, access.USERS_PATH)
        await _maybe(self.plane.edit_config(session.sid, target, _config_xml(config),
                                            default_operation=default_operation,
                                            error_option=error_option, test_option=test_option))
        return None

    async def op_copy_config(self, session: Session, op):
        p = Params(op, {"target": BASE_NS, "source": BASE_NS, "with-defaults": WD_NS})
        target, _ = _datastore(p.require("target"), ("running", "candidate"), "target")
        source, config = _datastore(p.require("source"), ("running", "candidate"), "source", config=True)
        self._with_defaults(p)
        self._authorize(session, "copy-config", target)
        self._authorize_change(
            session, "copy-config", target, lambda: self._datastore_json(target),
            lambda: (self.plane._parse_config(_config_xml(config)) if source == "config"
                     else self._datastore_json(source)))
        if source == "config":
            await _maybe(self.plane.copy_config(session.sid, target, config_xml=_config_xml(config)))
        else:
            await _maybe(self.plane.copy_config(session.sid, target, source=source))
        return None

    async def op_delete_config(self, session: Session, op):
        p = Params(op, {"target": BASE_NS})
        target, _ = _datastore(p.require("target"), ("running", "candidate"), "target")
        self._authorize(session, "delete-config", target)
        await _maybe(self.plane.delete_config(session.sid, target))
        return None

    async def op_lock(self, session: Session, op):
        p = Params(op, {"target": BASE_NS})
        target, _ = _datastore(p.require("target"), ("running", "candidate"), "target")
        self._authorize(session, "lock", target)
        await _maybe(self.plane.lock(session.sid, target))
        return None

    async def op_unlock(self, session: Session, op):
        p = Params(op, {"target": BASE_NS})
        target, _ = _datastore(p.require("target"), ("running", "candidate"), "target")
        self._authorize(session, "unlock", target)
        await _maybe(self.plane.unlock(session.sid, target))
        return None

    async def op_close_session(self, session: Session, op):
        Params(op, {})
        session.termination = "closed"
        session.closing = True
        return None, "close", None

    async def op_kill_session(self, session: Session, op):
        p = Params(op, {"session-id": BASE_NS})
        raw = p.text("session-id") if p.get("session-id") is not None else None
        if raw is None:
            raise _err("missing-element", "kill-session needs <session-id>", bad_element="session-id")
        try:
            target = int(raw)
            if not 1 <= target <= UINT32_MAX:
                raise ValueError
        except ValueError:
            raise _err("invalid-value", f"bad session-id {raw!r}", bad_element="session-id") from None
        if target == session.sid:
            raise _err("invalid-value", "a session cannot kill itself (use close-session)",
                       type_="protocol", bad_element="session-id")
        other = self.server.sessions.get(target)
        if other is not None:
            other.termination = "killed"
            other.killed_by = session.sid
        await _maybe(self.plane.kill_session(target, session.sid))
        if other is not None:
            other.abort()
        return None

    async def op_discard_changes(self, session: Session, op):
        Params(op, {})
        self._authorize_change(session, "discard-changes", "candidate", lambda: self._datastore_json("candidate"),
                               lambda: self._datastore_json("running"))
        await _maybe(self.plane.discard_changes(session.sid))
        return None

    async def op_validate(self, session: Session, op):
        p = Params(op, {"source": BASE_NS})
        source, config = _datastore(p.require("source"), ("running", "candidate"), "source", config=True)
        if source == "config":
            await _maybe(self.plane.validate(config_xml=_config_xml(config)))
        else:
            await _maybe(self.plane.validate(source=source))
        return None

    async def op_commit(self, session: Session, op):
        p = Params(op, {"confirmed": BASE_NS, "confirm-timeout": BASE_NS, "persist": BASE_NS,
                        "persist-id": BASE_NS})
        confirmed = p.flag("confirmed")
        timeout = 600
        raw = p.text("confirm-timeout")
        if raw is not None:
            try:
                timeout = int(raw)
                if not 1 <= timeout <= UINT32_MAX:
                    raise ValueError
            except ValueError:
                raise _err("invalid-value", f"bad confirm-timeout {raw!r}", bad_element="confirm-timeout") from None
        self._authorize_change(session, "commit", "running", lambda: self._datastore_json("running"),
                               lambda: self._datastore_json("candidate"))
        await _maybe(self.plane.commit(session.sid, confirmed=confirmed, confirm_timeout=timeout,
                                       persist=p.text("persist"), persist_id=p.text("persist-id")))
        return None

    async def op_cancel_commit(self, session: Session, op):
        p = Params(op, {"persist-id": BASE_NS})
        pending = getattr(self.plane, "_pending", None)
        if pending is not None:
            self._authorize_change(session, "cancel-commit", "running", lambda: self._datastore_json("running"),
                                   lambda: pending.rollback)
        await _maybe(self.plane.cancel_commit(session.sid, persist_id=p.text("persist-id")))
        return None

    # -- notifications -----------------------------------------------------------------
    async def op_create_subscription(self, session: Session, op):
        n = NOTIF_OPS_NS
        # RFC 5277 puts <filter> in its own namespace; clients also send the base one
        p = Params(op, {"stream": n, "filter": (n, BASE_NS), "startTime": n, "stopTime": n})
        if session.subscription is not None:
            raise _err("in-use", "this session already has a subscription", type_="protocol")
        stream = p.text("stream", "NETCONF")
        if stream != "NETCONF":
            raise _err("invalid-value", f"no stream {stream!r} (only NETCONF)", type_="application",
                       bad_element="stream")
        if p.get("startTime") is not None:
            raise _err("operation-not-supported", "replay (startTime) is not supported",
                       bad_element="startTime")
        if p.get("stopTime") is not None:
            raise _err("bad-element", "stopTime without startTime", bad_element="stopTime")
        filt = self._filter(p)
        if filt is not None and filt[0] == "xpath":
            self._module_xpath(filt[1], filt[2])  # check the prefixes now

        def subscribe():
            session.subscription = filt if filt is not None else ("all", None, {})

        return None, None, subscribe

    # -- ietf-netconf-monitoring -------------------------------------------------------
    async def op_get_schema(self, session: Session, op):
        p = Params(op, {"identifier": MON_NS, "version": MON_NS, "format": MON_NS})
        ident = p.text("identifier")
        if ident is None:
            raise _err("missing-element", "get-schema needs <identifier>", bad_element="identifier")
        version = p.text("version") or None
        fmt = "yang"
        fel = p.get("format")
        if fel is not None:
            value = text_of(fel)
            prefix, _, name = value.rpartition(":")
            ns = fel.nsmap.get(prefix or None)
            if (prefix and ns != MON_NS) or name not in ("yang", "yin"):
                raise _err("invalid-value", f"unsupported schema format {value!r}", type_="application",
                           bad_element="format")
            fmt = name
        text = self.library.schema_text(ident, version, fmt)
        if text is None:
            raise _err("invalid-value", f"no schema {ident!r}" + (f" revision {version}" if version else ""),
                       type_="application", bad_element="identifier")
        data = etree.Element(q(MON_NS, "data"), nsmap={None: MON_NS})
        data.text = text
        return [data]

    # -- fcr-mgmt ----------------------------------------------------------------------
    async def op_rollback(self, session: Session, op):
        p = Params(op, {"id": FCR_MGMT_NS, "index": FCR_MGMT_NS, "commit": FCR_MGMT_NS, "comment": FCR_MGMT_NS})
        target: str | int
        if p.get("id") is not None and p.get("index") is not None:
            raise _err("bad-element", "id and index are alternatives", type_="application", bad_element="index")
        if p.get("id") is not None:
            target = p.text("id")
        elif p.get("index") is not None:
            target = self._uint(p.text("index"), "index", 65535)
        else:
            raise _err("missing-element", "rollback needs <id> or <index>", type_="application", bad_element="index")
        commit = p.enum("commit", ("true", "false"), "false") == "true"
        comment = p.text("comment", "") or ""
        self._authorize_change(session, "rollback", "candidate", lambda: self._datastore_json("candidate"),
                               lambda: self.plane._revision(target))
        rollback = self.plane.rollback
        if "commit" in inspect.signature(rollback).parameters:
            await _maybe(rollback(session.sid, target, comment=comment, commit=commit))
        else:
            await _maybe(rollback(session.sid, target, comment=comment))
            if commit:
                await _maybe(self.plane.commit(session.sid, comment=comment))
        return None

    def _uint(self, raw: str | None, name: str, top: int) -> int:
        try:
            value = int(raw or "")
            if not 0 <= value <= top:
                raise ValueError
            return value
        except ValueError:
            raise _err("invalid-value", f"bad {name} {raw!r}", type_="application", bad_element=name) from None

    async def op_get_commit_history(self, session: Session, op):
        p = Params(op, {"max-entries": FCR_MGMT_NS})
        limit = None
        if p.get("max-entries") is not None:
            limit = self._uint(p.text("max-entries"), "max-entries", 65535)
            if limit == 0:
                raise _err("invalid-value", "max-entries must be at least 1", type_="application",
                           bad_element="max-entries")
        entries = [dict(e) for e in await _maybe(self.plane.history())]
        for e in entries:
            if "timestamp" not in e and "time" in e:
                e["timestamp"] = e["time"]
        if limit is not None:
            entries = entries[:limit]
        return self.server.render_output("/fcr-mgmt:get-commit-history", {"commit": entries})

    def _revision(self, el: etree._Element | None, name: str) -> str | int:
        if el is None:
            raise _err("missing-element", f"compare needs <{name}>", type_="application", bad_element=name)
        p = Params(el, {"id": FCR_MGMT_NS, "index": FCR_MGMT_NS, "datastore": FCR_MGMT_NS})
        if len(p.items) != 1:
            raise _err("bad-element", f"<{name}> needs one of id, index, datastore", type_="application",
                       bad_element=name)
        if p.get("id") is not None:
            return p.text("id") or ""
        if p.get("index") is not None:
            return self._uint(p.text("index"), "index", 65535)
        return p.enum("datastore", ("running", "candidate"), "running")

    async def op_compare(self, session: Session, op):
        p = Params(op, {"from": FCR_MGMT_NS, "to": FCR_MGMT_NS, "format": FCR_MGMT_NS})
        a = self._revision(p.get("from"), "from")
        b = self._revision(p.get("to"), "to")
        fmt = p.enum("format", ("text", "json"), "text")
        compare = self.plane.compare
        if fmt == "json":
            if "format" not in inspect.signature(compare).parameters:
                raise _err("operation-not-supported", "format json is not supported yet", type_="application",
                           bad_element="format")
            diff = await _maybe(compare(a, b, format="json"))
        else:
            diff = await _maybe(compare(a, b))
        return self.server.render_output("/fcr-mgmt:compare", {"difference": diff or ""})

    # -- engine ------------------------------------------------------------------------
    async def op_clear_neighbor(self, session: Session, op):
        p = Params(op, {"neighbor-address": FCR_BGP_NS, "all": FCR_BGP_NS, "soft": FCR_BGP_NS})
        soft = p.text("soft")
        if soft is not None and soft not in ("in", "out", "both"):
            raise _err("invalid-value", "soft must be in, out or both", type_="application", bad_element="soft")
        address = p.text("neighbor-address")
        every = p.flag("all")
        if (address is None) == (not every):
            raise _err("missing-element" if address is None else "bad-element",
                       "clear-neighbor needs <neighbor-address> or <all>", type_="application",
                       bad_element="neighbor-address")
        call = self.server.engine_call
        if call is None:
            raise _err("resource-denied", "the routing engine is not connected", type_="application")
        softs = [None] if soft is None else (["in", "out"] if soft == "both" else [soft])
        try:
            if every:
                neighbors = await _maybe(call("bgp.neighbors"))
                addresses = _neighbor_addresses(neighbors)
            else:
                addresses = [address]
            for addr in addresses:
                for s in softs:
                    await _maybe(call("bgp.clear", neighbor=addr, soft=s))
        except RpcError:
            raise
        except Exception as exc:  # noqa: BLE001 - engine refusals
            if hasattr(exc, "tag") and isinstance(exc.tag, str):
                raise
            raise RpcError("operation-failed", str(exc) or repr(exc), type_="application") from None
        return None

    async def op_switchover(self, session: Session, op):
        """NSR switchover: to the named (or the only live) registered standby engine; with
        none registered, an in-service upgrade on this box (a new engine process started by
        the management plane, see appliance/mgmt/switchover.py). The NETCONF session stays.
        <vip> (address with prefix length, interface): the sessions' local address moves with
        them to the standby's box; passed to nsr.release as {"address", "dev"}."""
        p = Params(op, {"engine-id": FCR_NSR_NS, "vip": FCR_NSR_NS})
        vip = _switchover_vip(p.get("vip"))
        runner = self.server.switchover
        if runner is None:
            raise RpcError("operation-not-supported", "this management plane has no routing engine to "
                           "switch over (fcr-mgmtd --engine-command)", type_="application")
        try:
            # the vip only when given: a runner without it (embedding, tests) keeps working
            out = await (runner(p.text("engine-id")) if vip is None
                         else runner(p.text("engine-id"), vip=vip))
        except RpcError:
            raise
        except Exception as exc:  # noqa: BLE001 - refusals carry their reason
            raise RpcError("operation-failed", f"switchover: {exc}", type_="application") from None
        return self.server.render_output("/fcr-nsr:switchover", {
            "active-engine-id": out["active-engine-id"], "epoch": out["epoch"]})


def _vip_address(text: str) -> str:
    """fcr-nsr:ip-address-and-prefix (10.0.92.1/24, 2001:db8:92::1/64), or an invalid-value
    error saying what is wrong with it."""

    def bad(why: str) -> RpcError:
        return _err("invalid-value", f"switchover: vip address {text!r} is not an IPv4 or IPv6 address "
                    f"with a prefix length (e.g. 10.0.92.1/24): {why}", type_="application",
                    bad_element="address")

    addr, slash, length = text.partition("/")
    if not slash:
        raise bad("no prefix length")
    if "%" in addr:
        raise bad("a zone index is not allowed")
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        raise bad(f"{addr!r} is not an IPv4 or IPv6 address") from None
    # the digits the model's patterns take (inet:ipv4-prefix / inet:ipv6-prefix)
    if not re.fullmatch(r"0|[1-9][0-9]?" if ip.version == 4 else r"[0-9]{1,2}|1[0-9]{2}", length):
        raise bad(f"prefix length {length!r} is not a decimal number without leading zeros")
    if int(length) > ip.max_prefixlen:
        raise bad(f"prefix length {length} is more than {ip.max_prefixlen}")
    return text


def _switchover_vip(el: etree._Element | None) -> dict[str, str] | None:
    """<vip><address/><interface/></vip> of fcr-nsr:switchover -> nsr.release's vip
    ({"address": "10.0.92.1/24", "dev": "eth0"}); None when absent."""
    if el is None:
        return None
    p = Params(el, {"address": FCR_NSR_NS, "interface": FCR_NSR_NS})
    for name in ("address", "interface"):
        if p.get(name) is None:
            raise _err("missing-element", f"switchover: <vip> needs <{name}>", type_="application",
                       bad_element=name)
    address = _vip_address(p.text("address") or "")
    dev = p.text("interface") or ""
    if not 1 <= len(dev) <= 15 or "/" in dev or any(c.isspace() for c in dev):
        raise _err("invalid-value", f"switchover: vip interface {dev!r} is not an interface name "
                   "(1 to 15 characters, no '/' nor blanks)", type_="application", bad_element="interface")
    return {"address": address, "dev": dev}


def _neighbor_addresses(result: Any) -> list[str]:
    """Neighbor addresses out of the engine's bgp.neighbors answer (a list of dicts, or a
    dict keyed by address, possibly under 'neighbors')."""
    if isinstance(result, dict) and "neighbors" in result:
        result = result["neighbors"]
    if isinstance(result, dict):
        return sorted(result)
    out = []
    for n in result or []:
        if isinstance(n, dict):
            addr = n.get("neighbor-address") or n.get("address") or n.get("neighbor")
            if addr:
                out.append(str(addr))
        else:
            out.append(str(n))
    return out
