"""Plain data (dicts, lists, scalars) -> XML in schema order, for notifications and RPC
output: children come out in the order the YANG module defines them, whatever the order
of the dict, so every output is deterministic."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from _libyang import lib
from lxml import etree

from appliance.netconf.xmlutil import qualify_path


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _lookup(data: Mapping[str, Any], name: str) -> Any:
    if name in data:
        return data[name]
    alt = name.replace("-", "_")
    return data.get(alt)


def render(parent: etree._Element, snode: Any, data: Mapping[str, Any],
           ns_of: Callable[[str], str | None]) -> None:
    """Append the children of schema node `snode` found in `data` to `parent`."""
    for child in snode:
        value = _lookup(data, child.name())
        if value is None:
            continue
        ns = ns_of(child.module().name())
        tag = f"{{{ns}}}{child.name()}"
        kw = child.keyword()
        if kw == "container":
            if isinstance(value, Mapping):
                el = etree.SubElement(parent, tag)
                render(el, child, value, ns_of)
        elif kw == "list":
            for entry in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(entry, Mapping):
                    el = etree.SubElement(parent, tag)
                    render(el, child, entry, ns_of)
        elif kw == "leaf-list":
            for v in value if isinstance(value, (list, tuple)) else [value]:
                etree.SubElement(parent, tag).text = _text(v)
        elif kw == "leaf":
            base = child.type().base()
            if base == lib.LY_TYPE_EMPTY:
                if value:
                    etree.SubElement(parent, tag)
            elif base == lib.LY_TYPE_INST:
                xpath, nsmap = qualify_path(str(value), ns_of)
                etree.SubElement(parent, tag, nsmap=nsmap or None).text = xpath
            else:
                etree.SubElement(parent, tag).text = _text(value)
