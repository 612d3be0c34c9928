"""XML helpers of the NETCONF server: namespaces, a hardened parser, and the rewriting of
libyang data paths into XPath with declared namespace prefixes."""

from __future__ import annotations

import re
from collections.abc import Callable

from lxml import etree

BASE_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"
NOTIF_NS = "urn:ietf:params:xml:ns:netconf:notification:1.0"
NOTIF_OPS_NS = NOTIF_NS  # RFC 5277 create-subscription
NCN_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-notifications"
WD_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults"
MON_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
YANGLIB_NS = "urn:ietf:params:xml:ns:yang:ietf-yang-library"
DS_NS = "urn:ietf:params:xml:ns:yang:ietf-datastores"
XML_NS = "http://www.w3.org/XML/1998/namespace"


def q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def nc(name: str) -> str:
    return q(BASE_NS, name)


# No DTD, no entities, no network, no huge trees: XXE and billion laughs fail to parse.
_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
    collect_ids=False,
)


class XmlError(ValueError):
    pass


def parse(data: str | bytes) -> etree._Element:
    """Parse one XML document; refuse DOCTYPE (entities) outright."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise XmlError(str(exc)) from None
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise XmlError("DOCTYPE is not allowed")
    return root


def parse_fragment(text: str, wrapper_ns: str = BASE_NS, wrapper: str = "data") -> etree._Element:
    """Parse `text` (a sequence of elements, possibly empty) under a wrapper element."""
    head = f'<{wrapper} xmlns="{wrapper_ns}">'
    return parse(head + (text or "") + f"</{wrapper}>")


def localname(el: etree._Element) -> str:
    return etree.QName(el).localname


def namespace(el: etree._Element) -> str | None:
    return etree.QName(el).namespace


def is_element(el) -> bool:
    return isinstance(el.tag, str)


def element_children(el: etree._Element) -> list[etree._Element]:
    return [c for c in el if is_element(c)]


def text_of(el: etree._Element) -> str:
    return (el.text or "").strip()


def to_string(el: etree._Element) -> str:
    return etree.tostring(el, encoding="unicode")


# --- libyang data path -> XPath with prefixes ------------------------------------------

_SEGMENT = re.compile(r"(?:(?P<mod>[A-Za-z_][\w.-]*):)?(?P<name>[A-Za-z_][\w.-]*|\*)(?P<preds>(?:\[[^\]]*\])*)")
_PRED_KEY = re.compile(r"\[(?:(?P<mod>[A-Za-z_][\w.-]*):)?(?P<name>[A-Za-z_][\w.-]*)\s*=")


def _split_path(path: str) -> list[str]:
    """Split on '/' outside predicates and quotes."""
    parts, cur, depth, quote = [], [], 0, ""
    for ch in path:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = ""
            continue
        if ch in "'\"":
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "/" and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    return parts


def qualify_path(path: str, ns_of: Callable[[str], str | None]) -> tuple[str, dict[str, str]]:
    """Rewrite a libyang path (module name on the first node and where the module changes)
    into an XPath where every node is prefixed with its module name; return it with the
    prefix -> namespace map to declare. Unparseable input comes back unchanged."""
    if not path or not path.startswith("/"):
        return path, {}
    nsmap: dict[str, str] = {}
    out = []
    module = None
    for seg in _split_path(path)[1:]:
        m = _SEGMENT.fullmatch(seg)
        if m is None:
            return path, {}
        mod = m["mod"] or module
        if mod is None or ns_of(mod) is None:
            return path, {}
        module = mod
        nsmap[mod] = ns_of(mod)
        preds = m["preds"] or ""

        def key(km, mod=mod):
            kmod = km["mod"] or mod
            if ns_of(kmod) is not None:
                nsmap[kmod] = ns_of(kmod)
            return f"[{kmod}:{km['name']}="

        preds = _PRED_KEY.sub(key, preds)
        name = m["name"]
        out.append(f"{mod}:{name}{preds}" if name != "*" else f"{mod}:*{preds}")
    return "/" + "/".join(out), dict(sorted(nsmap.items()))
