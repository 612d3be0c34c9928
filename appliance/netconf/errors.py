"""rpc-error (RFC 6241 §4.3, appendix A): the server's own protocol errors and the mapping
of the management plane's MgmtError onto the wire."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from lxml import etree

from appliance.netconf.xmlutil import BASE_NS, XML_NS, nc, qualify_path

ERROR_TYPES = ("transport", "rpc", "protocol", "application")
ERROR_TAGS = (
    "in-use", "invalid-value", "too-big", "missing-attribute", "bad-attribute",
    "unknown-attribute", "missing-element", "bad-element", "unknown-element",
    "unknown-namespace", "access-denied", "lock-denied", "resource-denied",
    "rollback-failed", "data-exists", "data-missing", "operation-not-supported",
    "operation-failed", "partial-operation", "malformed-message",
)
# error-info children defined by RFC 6241 (base namespace); their order on the wire
INFO_ORDER = ("bad-attribute", "bad-element", "bad-namespace", "session-id",
              "ok-element", "err-element", "noop-element")


class RpcError(Exception):
    """One rpc-error raised by the server itself (same fields as MgmtError)."""

    def __init__(self, tag: str, message: str = "", *, type_: str = "protocol",
                 path: str | None = None, app_tag: str | None = None,
                 info: dict[str, Any] | None = None, severity: str = "error"):
        super().__init__(message or tag)
        self.tag = tag
        self.message = message
        self.type_ = type_
        self.path = path
        self.app_tag = app_tag
        self.info = dict(info or {})
        self.severity = severity


def _field(err: Any, name: str, default: Any = None) -> Any:
    value = getattr(err, name, default)
    return default if value is None else value


def _default_type(tag: str) -> str:
    if tag in ("malformed-message",):
        return "rpc"
    if tag in ("lock-denied", "in-use", "resource-denied", "access-denied", "rollback-failed",
               "data-exists", "data-missing", "operation-failed", "partial-operation"):
        return "application"
    return "protocol"


def errors_of(exc: BaseException) -> list[Any]:
    """The individual errors carried by an exception (MgmtError, RpcError, or a list in
    `.errors` of either), errors first, then warnings, otherwise in the order given."""
    items = getattr(exc, "errors", None)
    if not isinstance(items, (list, tuple)) or not items or not all(hasattr(i, "tag") for i in items):
        items = [exc]
    errs = [i for i in items if _field(i, "severity", "error") != "warning"]
    warns = [i for i in items if _field(i, "severity", "error") == "warning"]
    return errs + warns


def build_rpc_error(err: Any, ns_of: Callable[[str], str | None]) -> etree._Element:
    """<rpc-error> for one error object with RFC 6241 fields (tag, message, path, app_tag,
    info, severity, type_); children in the order of the RFC's XSD."""
    tag = _field(err, "tag", "operation-failed")
    if tag not in ERROR_TAGS:
        tag = "operation-failed"
    type_ = _field(err, "type_", None) or _field(err, "type", None) or _default_type(tag)
    if type_ not in ERROR_TYPES:
        type_ = _default_type(tag)
    severity = _field(err, "severity", "error")
    severity = "warning" if severity == "warning" else "error"
    el = etree.Element(nc("rpc-error"), nsmap={None: BASE_NS})
    etree.SubElement(el, nc("error-type")).text = type_
    etree.SubElement(el, nc("error-tag")).text = tag
    etree.SubElement(el, nc("error-severity")).text = severity
    app_tag = _field(err, "app_tag")
    if app_tag:
        etree.SubElement(el, nc("error-app-tag")).text = str(app_tag)
    path = _field(err, "path")
    if path:
        xpath, nsmap = qualify_path(str(path), ns_of)
        pel = etree.SubElement(el, nc("error-path"), nsmap=nsmap or None)
        pel.text = xpath
    message = _field(err, "message") or (str(err) if not isinstance(err, RpcError) else "")
    if message:
        mel = etree.SubElement(el, nc("error-message"))
        mel.set(f"{{{XML_NS}}}lang", "en")
        mel.text = str(message)
    info = _field(err, "info", {}) or {}
    if info:
        iel = etree.SubElement(el, nc("error-info"))
        keys = [k for k in INFO_ORDER if k in info] + sorted(k for k in info if k not in INFO_ORDER)
        for k in keys:
            for v in _values(info[k]):
                child = etree.SubElement(iel, nc(k) if ":" not in k and "{" not in k else k)
                child.text = _text(v)
    return el


def _values(v: Any) -> Iterable[Any]:
    return v if isinstance(v, (list, tuple)) else [v]


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, etree.QName):
        return v.localname
    return str(v)
