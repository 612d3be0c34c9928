"""Configuration data as RFC 7951 JSON, with libyang for parsing, validation and printing.

A datastore is held as a plain JSON dict (`{"fcr-bgp:bgp": {...}}`) in *canonical form*:
members in schema order, instances of `ordered-by system` lists and leaf-lists sorted by
key (numbers numerically, text in natural order), `ordered-by user` ones in the order the
user gave, only explicitly set nodes (with-defaults basic mode "explicit"), no empty
non-presence containers. Two equal configurations are equal dicts and print identically.

libyang does the YANG work: it parses NETCONF XML edits (with `nc:operation` and
`yang:insert`/`yang:key`/`yang:value` metadata) into canonical JSON values, validates whole
datastores (must, when, leafref, ranges, patterns, keys, mandatory) and prints XML with the
with-defaults modes. `SchemaIndex` is a small Python view of the compiled schema (member
names, node kinds, keys, ordering, choice/case) that the edit engine (edit.py) walks.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import libyang
from _libyang import ffi, lib
from libyang.data import DNode
from libyang.util import IOType, c2str, data_load, str2c

from .errors import MgmtError
from .schema import FCR_MODULES, MODULES, YangError, _enable_error_paths, _take_errors

NC_OP = "ietf-netconf:operation"
YANG_INSERT = "yang:insert"
YANG_KEY = "yang:key"
YANG_VALUE = "yang:value"

WITH_DEFAULTS = {
    "explicit": lib.LYD_PRINT_WD_EXPLICIT,
    "trim": lib.LYD_PRINT_WD_TRIM,
    "report-all": lib.LYD_PRINT_WD_ALL,
    "report-all-tagged": lib.LYD_PRINT_WD_ALL_TAG,
}

CONTAINER, LIST, LEAF, LEAFLIST = "container", "list", "leaf", "leaf-list"
_KINDS = {lib.LYS_CONTAINER: CONTAINER, lib.LYS_LIST: LIST, lib.LYS_LEAF: LEAF, lib.LYS_LEAFLIST: LEAFLIST}


@dataclass
class SNode:
    """One data node of the schema, as the edit engine needs it."""

    name: str
    module: str
    kind: str
    member: str  # the RFC 7951 member name under its parent ("name" or "module:name")
    order: int
    config: bool
    user_ordered: bool = False
    presence: bool = False
    keys: tuple[str, ...] = ()
    # (choice, case) pairs between the data parent and this node, outermost first
    cases: tuple[tuple[str, str], ...] = ()
    cdata: Any = None
    _children: dict[str, SNode] | None = field(default=None, repr=False)

    def children(self) -> dict[str, SNode]:
        if self._children is None:
            self._children = _children_of(self.cdata, None, self.module)
        return self._children


def _cases(snode: Any, data_parent: Any) -> tuple[tuple[str, str], ...]:
    chain = []
    p = snode.parent
    case = None
    while p != ffi.NULL and p != data_parent:
        if p.nodetype == lib.LYS_CASE:
            case = c2str(p.name)
        elif p.nodetype == lib.LYS_CHOICE:
            chain.append((str(int(ffi.cast("uintptr_t", p))), case or c2str(snode.name)))
            case = None
        p = p.parent
    return tuple(reversed(chain))


def _children_of(parent: Any, module: Any, parent_module: str | None) -> dict[str, SNode]:
    out: dict[str, SNode] = {}
    last = ffi.NULL
    order = 0
    while True:
        last = lib.lys_getnext(last, parent if parent is not None else ffi.NULL,
                               module if module is not None else ffi.NULL, 0)
        if last == ffi.NULL:
            break
        kind = _KINDS.get(last.nodetype)
        if kind is None:
            continue
        name = c2str(last.name)
        mod = c2str(last.module.name)
        member = name if mod == parent_module else f"{mod}:{name}"
        keys: tuple[str, ...] = ()
        if kind == LIST:
            ks = []
            child = lib.lysc_node_child(last)
            while child != ffi.NULL:
                if child.flags & lib.LYS_KEY:
                    ks.append(c2str(child.name))
                child = child.next
            keys = tuple(ks)
        out[member] = SNode(
            name=name,
            module=mod,
            kind=kind,
            member=member,
            order=order,
            config=bool(last.flags & lib.LYS_CONFIG_W),
            user_ordered=bool(last.flags & lib.LYS_ORDBY_USER) and kind in (LIST, LEAFLIST),
            presence=kind == CONTAINER and bool(last.flags & lib.LYS_PRESENCE),
            keys=keys,
            cases=_cases(last, parent if parent is not None else ffi.NULL),
            cdata=last,
        )
        order += 1
    return out


class SchemaIndex:
    """Top-level data nodes of the implemented modules, in MODULES order."""

    def __init__(self, ctx: libyang.Context) -> None:
        self.ctx = ctx
        self.top: dict[str, SNode] = {}
        order = 0
        for name, _features in MODULES:
            mod = lib.ly_ctx_get_module_latest(ctx.cdata, str2c(name))
            if mod == ffi.NULL or mod.compiled == ffi.NULL:
                continue
            for member, sn in _children_of(None, mod.compiled, None).items():
                sn.order = order
                order += 1
                self.top[member] = sn


# -- canonical form -------------------------------------------------------------------

_NAT = re.compile(r"(\d+)")


def _natural(v: Any) -> tuple:
    if isinstance(v, bool):
        return (0, int(v), "")
    if isinstance(v, (int, float)):
        return (0, v, "")
    s = str(v)
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in _NAT.split(s) if p)
    return (1, 0, "") + parts


def canonical(index: SchemaIndex, config: dict[str, Any]) -> dict[str, Any]:
    """`config` in canonical form (see the module docstring); a new dict."""
    return _canon_members(index.top, config)


def _canon_members(children: dict[str, SNode], obj: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for member in sorted((m for m in obj if not m.startswith("@")),
                         key=lambda m: (children[m].order if m in children else 1 << 30, m)):
        sn = children.get(member)
        value = obj[member]
        if sn is None:
            out[member] = value
            continue
        if sn.kind == CONTAINER:
            inner = _canon_members(sn.children(), value or {})
            if inner or sn.presence:
                out[member] = inner
        elif sn.kind == LIST:
            entries = [_canon_members(sn.children(), e) for e in value]
            if not sn.user_ordered:
                entries.sort(key=lambda e: tuple(_natural(e.get(k)) for k in sn.keys))
            if entries:
                out[member] = entries
        elif sn.kind == LEAFLIST:
            vals = list(value)
            if not sn.user_ordered:
                vals.sort(key=_natural)
            if vals:
                out[member] = vals
        else:
            out[member] = value
    return out


def dumps(config: dict[str, Any]) -> str:
    """Deterministic JSON text of a canonical configuration (for files and hashes)."""
    return json.dumps(config, indent=2, ensure_ascii=False) + "\n"


# -- libyang parsing ------------------------------------------------------------------


def _raise_yang(errors: list[YangError], default_tag: str = "invalid-value") -> None:
    errs = [yang_error_to_mgmt(e, default_tag) for e in errors] or [MgmtError(default_tag, "invalid data")]
    raise MgmtError.many(errs)


_UNKNOWN = re.compile(r'Node "([^"]+)" not found|No module .*namespace|Unknown element "([^"]+)"')


def yang_error_to_mgmt(e: YangError, default_tag: str = "invalid-value") -> MgmtError:
    """Map one libyang error onto an rpc-error (RFC 7950 §15 for the app tags)."""
    msg = e.message
    tag, info = default_tag, {}
    app = e.app_tag
    if app in ("must-violation", "too-many-elements", "too-few-elements", "data-not-unique"):
        tag = "operation-failed"
    elif app in ("instance-required", "missing-choice"):
        tag = "data-missing"
    elif msg.startswith("Mandatory node"):
        tag = "data-missing"
        app = app or "mandatory"
    elif m := _UNKNOWN.search(msg):
        tag = "unknown-element"
        name = m.group(1) or m.group(2)
        if name:
            info["bad-element"] = name
    elif msg.startswith("Invalid state data") or "state data" in msg:
        tag = "invalid-value"
    elif "List instance is missing its key" in msg:
        tag = "missing-element"
    return MgmtError(tag, msg, path=e.path, app_tag=app, info=info)


def _parse(ctx: libyang.Context, text: str, fmt: int, parse_flags: int, validate_flags: int) -> Any:
    _enable_error_paths()
    lib.ly_err_clean(ctx.cdata, ffi.NULL)
    inp = ffi.new("struct ly_in **")
    keep: list[Any] = []
    if data_load(IOType.MEMORY, text, inp, keep) != lib.LY_SUCCESS:
        _raise_yang(_take_errors(ctx) or [YangError("cannot read the input")], "malformed-message")
    tree = ffi.new("struct lyd_node **")
    ret = lib.lyd_parse_data(ctx.cdata, ffi.NULL, inp[0], fmt, parse_flags, validate_flags, tree)
    lib.ly_in_free(inp[0], 0)
    if ret != lib.LY_SUCCESS:
        if tree[0] != ffi.NULL:
            lib.lyd_free_all(tree[0])
        _raise_yang(_take_errors(ctx))
    return tree[0]


def _check_xml(text: str) -> None:
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise MgmtError("malformed-message", "DTDs and entity declarations are not allowed", type_="rpc")


def _print(node: Any, fmt: int, flags: int) -> str:
    if node == ffi.NULL:
        return ""
    out = ffi.new("char **")
    if lib.lyd_print_mem(out, node, fmt, flags) != lib.LY_SUCCESS:
        raise MgmtError("operation-failed", "cannot print data")
    try:
        return c2str(out[0]) if out[0] != ffi.NULL else ""
    finally:
        lib.free(out[0])


def tree_to_json(node: Any) -> dict[str, Any]:
    text = _print(node, lib.LYD_JSON, lib.LYD_PRINT_WITHSIBLINGS | lib.LYD_PRINT_SHRINK)
    return json.loads(text) if text.strip() else {}


def json_to_tree(ctx: libyang.Context, config: dict[str, Any], *, validate: bool = False) -> Any:
    """A libyang tree (cdata; caller frees with lyd_free_all) of a JSON configuration."""
    if not config:
        return ffi.NULL
    pflags = lib.LYD_PARSE_STRICT | lib.LYD_PARSE_NO_STATE
    if not validate:
        pflags |= lib.LYD_PARSE_ONLY
    vflags = lib.LYD_VALIDATE_NO_STATE if validate else 0
    return _parse(ctx, json.dumps(config), lib.LYD_JSON, pflags, vflags)


def parse_config_xml(ctx: libyang.Context, index: SchemaIndex, xml: str) -> dict[str, Any]:
    """A whole configuration given as XML (children of `<config>`), type-checked, canonical;
    operation attributes are not allowed here."""
    _check_xml(xml)
    if not xml.strip():
        return {}
    tree = _parse(ctx, xml, lib.LYD_XML, lib.LYD_PARSE_ONLY | lib.LYD_PARSE_STRICT | lib.LYD_PARSE_NO_STATE, 0)
    try:
        data = tree_to_json(tree)
    finally:
        if tree != ffi.NULL:
            lib.lyd_free_all(tree)
    return canonical(index, _strip_meta(data))


def _strip_meta(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip_meta(v) for k, v in obj.items() if not k.startswith("@")}
    if isinstance(obj, list):
        return [_strip_meta(v) for v in obj]
    return obj


def parse_edit_xml(ctx: libyang.Context, index: SchemaIndex, xml: str) -> dict[str, Any]:
    """An edit-config `<config>` content as RFC 7951 JSON with its metadata as `@` members
    (`"@": {"ietf-netconf:operation": "delete"}`, `"@leaf": {...}`).

    Values are type-checked and canonical. A leaf to delete or remove may be empty
    (`<peer-as nc:operation="delete"/>`): such leaves are parsed as opaque nodes and kept;
    any other opaque node is an unknown element or an invalid value, reported with its path.
    """
    _check_xml(xml)
    if not xml.strip():
        return {}
    flags = lib.LYD_PARSE_ONLY | lib.LYD_PARSE_OPAQ | lib.LYD_PARSE_NO_STATE
    tree = _parse(ctx, xml, lib.LYD_XML, flags, 0)
    try:
        _check_opaque(ctx, index, tree)
        return tree_to_json(tree)
    finally:
        if tree != ffi.NULL:
            lib.lyd_free_all(tree)


def _meta_of(node: Any, ctx: libyang.Context) -> dict[str, str]:
    out = {}
    m = node.meta
    while m != ffi.NULL:
        name = f"{c2str(m.annotation.module.name)}:{c2str(m.name)}"
        out[name] = c2str(lib.lyd_value_get_canonical(ctx.cdata, ffi.addressof(m.value)))
        m = m.next
    return out


def _node_path(node: Any) -> str:
    p = lib.lyd_path(node, lib.LYD_PATH_STD, ffi.NULL, 0)
    try:
        return c2str(p)
    finally:
        lib.free(p)


def _check_opaque(ctx: libyang.Context, index: SchemaIndex, first: Any) -> None:
    def walk(node: Any, children: dict[str, SNode] | None, inherited: str | None) -> None:
        while node != ffi.NULL:
            if node.schema == ffi.NULL:
                _opaque(node, children, inherited)
            else:
                op = _meta_of(node, ctx).get(NC_OP, inherited)
                sn = None
                if children is not None:
                    name, mod = c2str(node.schema.name), c2str(node.schema.module.name)
                    sn = children.get(name) or children.get(f"{mod}:{name}")
                if node.schema.nodetype & (lib.LYS_CONTAINER | lib.LYS_LIST):
                    walk(lib.lyd_child(node), sn.children() if sn else None, op)
            node = node.next

    def _opaque(node: Any, children: dict[str, SNode] | None, inherited: str | None) -> None:
        path = _node_path(node)
        printed = _print(node, lib.LYD_JSON, lib.LYD_PRINT_SHRINK)
        try:
            doc = json.loads(printed)
        except ValueError:
            doc = {}
        member = next((k for k in doc if not k.startswith("@")), None)
        short = member.split(":", 1)[-1] if member else path.rsplit("/", 1)[-1].split(":")[-1]
        attrs = (doc.get(f"@{member}") or doc.get(f"@{short}") or {}) if member else {}
        if isinstance(attrs, dict) is False:
            attrs = {}
        op = next((v for k, v in attrs.items() if k.endswith(":operation")), inherited)
        sn = None
        if children is not None:
            sn = children.get(short) or (children.get(member) if member else None)
        if sn is None:
            raise MgmtError("unknown-element", f'Unknown element "{short}".', path=path,
                            info={"bad-element": short}, type_="application")
        if not sn.config:
            raise MgmtError("invalid-value", f'Invalid state data node "{short}" in configuration.', path=path)
        value = c2str(lib.lyd_get_value(node)) if lib.lyd_get_value(node) != ffi.NULL else ""
        if sn.kind == LEAF and op in ("delete", "remove"):
            return
        if sn.kind in (LEAF, LEAFLIST):
            lib.ly_err_clean(ctx.cdata, ffi.NULL)
            lib.lyd_value_validate(ctx.cdata, sn.cdata, str2c(value), len(value.encode()), ffi.NULL, ffi.NULL, ffi.NULL)
            errs = _take_errors(ctx)
            msg = errs[0].message if errs else f'Invalid value "{value}" of "{short}".'
            raise MgmtError("invalid-value", msg, path=path, info={"bad-element": short})
        if sn.kind == LIST:
            raise MgmtError("missing-element", f'List instance of "{short}" is missing a key ({", ".join(sn.keys)}).',
                            path=path, info={"bad-element": sn.keys[0] if sn.keys else short})
        raise MgmtError("bad-element", f'Element "{short}" is not valid here.', path=path,
                        info={"bad-element": short})

    walk(first, index.top, None)


# -- validation and printing ----------------------------------------------------------


def validate(ctx: libyang.Context, config: dict[str, Any]) -> None:
    """Validate a whole datastore; MgmtError (with every libyang error in `errors`) if invalid."""
    if not config:
        # An empty datastore still has to satisfy top-level mandatory nodes, if any.
        tree = ffi.new("struct lyd_node **")
        lib.ly_err_clean(ctx.cdata, ffi.NULL)
        if lib.lyd_validate_all(tree, ctx.cdata, lib.LYD_VALIDATE_NO_STATE, ffi.NULL) != lib.LY_SUCCESS:
            errs = _take_errors(ctx)
            if tree[0] != ffi.NULL:
                lib.lyd_free_all(tree[0])
            _raise_yang(errs)
        if tree[0] != ffi.NULL:
            lib.lyd_free_all(tree[0])
        return
    tree = json_to_tree(ctx, config, validate=True)
    if tree != ffi.NULL:
        lib.lyd_free_all(tree)


def print_xml(ctx: libyang.Context, config: dict[str, Any], *, with_defaults: str = "explicit",
              xpath: str | None = None, extra: dict[str, Any] | None = None) -> str:
    """XML of a datastore (the children of `<data>`), deterministic.

    `extra` is state data merged in (for `<get>`); `xpath` selects nodes (module names as
    prefixes, e.g. `/fcr-bgp:bgp/neighbors/neighbor[neighbor-address='192.0.2.1']`), which
    are printed with their ancestors and the keys of their list ancestors.
    """
    if with_defaults not in WITH_DEFAULTS:
        raise MgmtError("invalid-value", f"unsupported with-defaults mode {with_defaults!r}",
                        info={"bad-element": "with-defaults"}, type_="protocol")
    if not config and not extra:
        return ""
    tree = ffi.NULL
    try:
        if config:
            tree = _parse(ctx, json.dumps(config), lib.LYD_JSON, lib.LYD_PARSE_ONLY | lib.LYD_PARSE_NO_STATE, 0)
        if extra:
            # merged as trees, not as JSON: a list entry that carries state (a BGP neighbor's
            # state container) must join the configured entry with the same keys, not
            # replace the configured list (it did: <get> lost every neighbor's peer-as)
            st = _parse(ctx, json.dumps(extra), lib.LYD_JSON, lib.LYD_PARSE_ONLY, 0)
            if tree == ffi.NULL:
                tree = st
            elif st != ffi.NULL:
                holder = ffi.new("struct lyd_node **", tree)
                ret = lib.lyd_merge_siblings(holder, st, lib.LYD_MERGE_DESTRUCT)
                tree = holder[0]
                if ret != lib.LY_SUCCESS:
                    _raise_yang(_take_errors(ctx))
        if tree == ffi.NULL:
            return ""
        if with_defaults in ("report-all", "report-all-tagged", "trim"):
            holder = ffi.new("struct lyd_node **", tree)
            iflags = lib.LYD_IMPLICIT_NO_STATE if not extra else 0
            lib.lyd_new_implicit_all(holder, ctx.cdata, iflags, ffi.NULL)
            tree = holder[0]
        if xpath:
            tree = _select(ctx, tree, xpath)
        if tree == ffi.NULL:
            return ""
        return _print(tree, lib.LYD_XML, lib.LYD_PRINT_WITHSIBLINGS | WITH_DEFAULTS[with_defaults])
    finally:
        if tree != ffi.NULL:
            lib.lyd_free_all(tree)


def _select(ctx: libyang.Context, tree: Any, xpath: str) -> Any:
    lib.ly_err_clean(ctx.cdata, ffi.NULL)
    found = ffi.new("struct ly_set **")
    if lib.lyd_find_xpath(tree, str2c(xpath), found) != lib.LY_SUCCESS:
        errs = _take_errors(ctx)
        raise MgmtError("invalid-value", f"invalid XPath filter: {errs[0].message if errs else xpath}",
                        info={"bad-element": "filter"}, type_="protocol")
    result = ffi.new("struct lyd_node **", ffi.NULL)
    try:
        for i in range(found[0].count):
            node = found[0].dnodes[i]
            dup = ffi.new("struct lyd_node **")
            flags = lib.LYD_DUP_WITH_PARENTS | lib.LYD_DUP_RECURSIVE | lib.LYD_DUP_WITH_FLAGS
            if lib.lyd_dup_single(node, ffi.NULL, flags, dup) != lib.LY_SUCCESS:
                continue
            top = dup[0]
            while top.parent != ffi.NULL:
                top = ffi.cast("struct lyd_node *", top.parent)
            if result[0] == ffi.NULL:
                result[0] = top
            else:
                lib.lyd_merge_siblings(result, top, lib.LYD_MERGE_DESTRUCT | lib.LYD_MERGE_WITH_FLAGS)
    finally:
        lib.ly_set_free(found[0], ffi.NULL)
    lib.lyd_free_all(tree)
    return result[0]


def _merge_json(a: Any, b: Any) -> Any:
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for k, v in b.items():
            out[k] = _merge_json(out[k], v) if k in out else v
        return out
    return b


def json_of_module(config: dict[str, Any], module: str) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k.split(":", 1)[0] == module}


__all__ = [
    "FCR_MODULES",
    "SchemaIndex",
    "SNode",
    "canonical",
    "dumps",
    "parse_edit_xml",
    "parse_config_xml",
    "print_xml",
    "validate",
    "DNode",
]
