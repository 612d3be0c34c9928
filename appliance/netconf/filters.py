"""Filters: RFC 6241 §6 subtree filtering on an XML tree, and the translation of an
XPath filter's prefixes (bound by the client's xmlns declarations) to module names."""

from __future__ import annotations

import copy
from collections.abc import Callable

from lxml import etree

from appliance.netconf.xmlutil import BASE_NS, element_children, is_element

_WILDCARD_NS = (None, "", BASE_NS)


def _matches(fnode: etree._Element, dnode: etree._Element) -> bool:
    fq, dq = etree.QName(fnode), etree.QName(dnode)
    if fq.localname != dq.localname:
        return False
    if fq.namespace not in _WILDCARD_NS and fq.namespace != dq.namespace:
        return False
    # attribute match expressions
    for name, value in fnode.attrib.items():
        an = etree.QName(name)
        if an.namespace == BASE_NS:  # e.g. nc:type on the filter, not data attributes
            continue
        if dnode.get(name) != value:
            return False
    return True


def _kind(fnode: etree._Element) -> str:
    if element_children(fnode):
        return "containment"
    if (fnode.text or "").strip():
        return "content"
    return "selection"


def _filter_children(dparent: etree._Element, fchildren: list[etree._Element]) -> list[etree._Element] | None:
    """Apply one sibling set of filter nodes to the children of `dparent`. Returns the
    selected (copied) children, or None when a content match node fails."""
    dchildren = element_children(dparent)
    content = [f for f in fchildren if _kind(f) == "content"]
    others = [f for f in fchildren if _kind(f) != "content"]
    matched_content: set[int] = set()
    for f in content:
        want = (f.text or "").strip()
        hits = [i for i, d in enumerate(dchildren) if _matches(f, d) and (d.text or "").strip() == want
                and not element_children(d)]
        if not hits:
            return None
        matched_content.update(hits)
    if content and not others:
        return [copy.deepcopy(d) for d in dchildren]
    out: list[etree._Element] = []
    for i, d in enumerate(dchildren):
        if i in matched_content:
            out.append(copy.deepcopy(d))
            continue
        sel = [f for f in others if _matches(f, d)]
        if not sel:
            continue
        if any(_kind(f) == "selection" for f in sel):
            out.append(copy.deepcopy(d))
            continue
        # merge the sibling containment nodes naming the same data node
        fkids: list[etree._Element] = []
        for f in sel:
            fkids.extend(element_children(f))
        kids = _filter_children(d, fkids)
        if kids:
            node = etree.Element(d.tag, attrib=dict(d.attrib), nsmap=d.nsmap)
            node.extend(kids)
            out.append(node)
    return out


def subtree_filter(data: etree._Element, filt: etree._Element) -> list[etree._Element]:
    """Top-level nodes of `data` (a <data> wrapper) selected by the subtree filter `filt`
    (the <filter> element). An empty filter selects nothing."""
    fchildren = [c for c in filt if is_element(c)]
    if not fchildren:
        return []
    return _filter_children(data, fchildren) or []


# --- XPath ------------------------------------------------------------------------------


class XPathPrefixError(ValueError):
    pass


def _scan_names(expr: str):
    """Yield (start, end, prefix) of every 'prefix:' that starts a QName outside literals
    (not '::' axes)."""
    i, n = 0, len(expr)
    while i < n:
        ch = expr[i]
        if ch in "'\"":
            j = expr.find(ch, i + 1)
            i = n if j < 0 else j + 1
            continue
        if ch.isalpha() or ch == "_":
            j = i
            while j < n and (expr[j].isalnum() or expr[j] in "_.-"):
                j += 1
            if j < n and expr[j] == ":" and (j + 1 >= n or expr[j + 1] != ":"):
                prev = expr[i - 1] if i > 0 else ""
                if prev != "$":
                    yield i, j + 1, expr[i:j]
                j += 1
            i = j
            continue
        i += 1


def xpath_to_modules(expr: str, nsmap: dict, module_of_ns: Callable[[str], str | None]) -> str:
    """Replace the client's prefixes with the module names (what libyang expects)."""
    out, last = [], 0
    for start, end, prefix in _scan_names(expr):
        ns = nsmap.get(prefix)
        if ns is None:
            raise XPathPrefixError(f"prefix {prefix!r} is not declared")
        module = module_of_ns(ns)
        if module is None:
            raise XPathPrefixError(f"namespace {ns!r} is not a module of this server")
        out.append(expr[last:start])
        out.append(module + ":")
        last = end
    out.append(expr[last:])
    return "".join(out)


def xpath_select(tops: list[etree._Element], expr: str, nsmap: dict,
                 keys: Callable[[etree._Element], tuple[str, ...]]) -> list[etree._Element]:
    """Evaluate `expr` (client prefixes) with lxml over each top-level node (one document
    each, so '/prefix:top' works) and return new top-level nodes holding every selected
    node with its ancestors (and the key leaves of ancestor list entries, per `keys`)."""
    ns = {k: v for k, v in nsmap.items() if k}
    out: list[etree._Element] = []
    for top in tops:
        doc = etree.ElementTree(copy.deepcopy(top))
        try:
            res = doc.xpath(expr, namespaces=ns)
        except etree.XPathError as exc:
            raise XPathPrefixError(str(exc)) from None
        if not isinstance(res, list):
            continue
        selected = [r for r in res if isinstance(r, etree._Element)]
        if not selected:
            continue
        sel_ids = {id(n) for n in selected}
        mapping: dict[int, etree._Element] = {}

        def ensure(node: etree._Element, mapping=mapping) -> etree._Element:
            if id(node) in mapping:
                return mapping[id(node)]
            parent = node.getparent()
            if parent is None:
                new = etree.Element(node.tag, attrib=dict(node.attrib), nsmap=node.nsmap)
                out.append(new)
            else:
                new = etree.SubElement(ensure(parent), node.tag, attrib=dict(node.attrib))
            mapping[id(node)] = new
            for k in keys(node):
                for kid in node:
                    if is_element(kid) and etree.QName(kid).localname == k and id(kid) not in mapping:
                        kk = etree.SubElement(new, kid.tag)
                        kk.text = kid.text
                        mapping[id(kid)] = kk
            return new

        for node in selected:
            if any(id(a) in sel_ids for a in node.iterancestors()):
                continue
            if id(node) in mapping:
                continue
            parent = node.getparent()
            dup = copy.deepcopy(node)
            if parent is None:
                out.append(dup)
            else:
                ensure(parent).append(dup)
            mapping[id(node)] = dup
    return out
