"""edit-config operations (RFC 6241 §7.2) on a canonical JSON datastore.

`apply_edit(index, target, edit, default_operation)` walks the edit (RFC 7951 JSON with
its metadata as `@` members, as `yangdata.parse_edit_xml` returns it) against the target
and returns the new datastore plus the list of changes (`{"target": path, "operation": op}`)
for netconf-config-change. The target is never modified in place.

Per node, the operation is its own `nc:operation` attribute or the one inherited from its
parent (at the top: `default_operation`):

- merge: create the node if missing, set leaf values, recurse.
- replace: the node becomes exactly the edit's subtree.
- create: like merge, but `data-exists` if the node is already there.
- delete: remove the node, `data-missing` if it is not there.
- remove: remove the node if it is there.
- none: only descend; a node that is missing is created only when something below it is
  merged, replaced or created.

`yang:insert` (first | last | before | after, with `yang:key` for lists and `yang:value`
for leaf-lists) places instances of `ordered-by user` lists and leaf-lists, and moves
existing ones. Setting a node of one case of a choice removes the nodes of its other cases.
Errors carry the data path of the node (`/fcr-bgp:bgp/neighbors/neighbor[neighbor-address=
'192.0.2.1']/peer-as`).
"""

from __future__ import annotations

import copy
import re
from typing import Any

from .errors import MgmtError
from .yangdata import (
    CONTAINER,
    LEAF,
    LIST,
    NC_OP,
    YANG_INSERT,
    YANG_KEY,
    YANG_VALUE,
    SchemaIndex,
    SNode,
)

OPERATIONS = ("merge", "replace", "create", "delete", "remove", "none")
_CREATING = ("merge", "replace", "create")


def _quote(v: Any) -> str:
    s = _text(v)
    return f'"{s}"' if "'" in s else f"'{s}'"


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v == [None]:
        return ""
    return str(v)


def entry_path(parent: str, sn: SNode, entry: dict[str, Any]) -> str:
    preds = "".join(f"[{k}={_quote(entry.get(k))}]" for k in sn.keys)
    return f"{parent}/{sn.member}{preds}"


class EditContext:
    def __init__(self, continue_on_error: bool = False) -> None:
        self.changes: list[dict[str, str]] = []
        self.errors: list[MgmtError] = []
        self.continue_on_error = continue_on_error
        # id(list) -> (list, {key texts: position}); O(1) lookups of list entries
        self._keyidx: dict[int, tuple[list[Any], dict[tuple[str, ...], int]]] = {}

    def find(self, entries: list[dict[str, Any]], sn: SNode, keys: dict[str, Any]) -> int | None:
        got = self._keyidx.get(id(entries))
        if got is None or got[0] is not entries or len(got[1]) != len(entries):
            idx = {tuple(_text(e.get(k)) for k in sn.keys): i for i, e in enumerate(entries)}
            self._keyidx[id(entries)] = (entries, idx)
        else:
            idx = got[1]
        return idx.get(tuple(_text(keys.get(k)) for k in sn.keys))

    def placed(self, entries: list[dict[str, Any]], sn: SNode, node: dict[str, Any] | None,
               current: int | None, pos: int | None) -> None:
        """After _place (or a delete: node None): keep the index when positions did not move."""
        got = self._keyidx.get(id(entries))
        if got is None or (node is not None and pos is None and current is not None):
            return  # replaced in place: same key, same position
        if node is not None and pos is None:
            got[1][tuple(_text(node.get(k)) for k in sn.keys)] = len(entries) - 1  # appended
        else:
            del self._keyidx[id(entries)]

    def fail(self, err: MgmtError) -> None:
        if not self.continue_on_error:
            raise err
        self.errors.append(err)

    def changed(self, path: str, op: str) -> None:
        self.changes.append({"target": path, "operation": op})


def apply_edit(index: SchemaIndex, target: dict[str, Any], edit: dict[str, Any], *,
               default_operation: str = "merge", continue_on_error: bool = False
               ) -> tuple[dict[str, Any], list[dict[str, str]], list[MgmtError]]:
    if default_operation not in ("merge", "replace", "none"):
        raise MgmtError("invalid-value", f"invalid default-operation {default_operation!r}",
                        info={"bad-element": "default-operation"}, type_="protocol")
    ctx = EditContext(continue_on_error)
    if default_operation == "replace":
        # RFC 6241 §7.2: the <config> content completely replaces the target datastore.
        result: dict[str, Any] = {}
        _members(ctx, index.top, result, edit, "replace", "")
        for member in target:
            if member not in result:
                ctx.changed(f"/{member}", "delete")
    else:
        result = copy.deepcopy(target)
        _members(ctx, index.top, result, edit, default_operation, "")
    return result, ctx.changes, ctx.errors


def _op_of(ctx: EditContext, meta: Any, inherited: str, path: str) -> str | None:
    op = inherited
    if isinstance(meta, dict) and NC_OP in meta:
        op = meta[NC_OP]
        if op not in OPERATIONS[:5]:
            ctx.fail(MgmtError("bad-attribute", f"invalid operation {op!r}", path=path,
                               info={"bad-attribute": "operation", "bad-element": path.rsplit("/", 1)[-1]},
                               type_="protocol"))
            return None
        if inherited in ("delete", "remove") and op in _CREATING:
            ctx.fail(MgmtError("bad-attribute", f"operation {op!r} inside a {inherited!r}", path=path,
                               info={"bad-attribute": "operation"}, type_="protocol"))
            return None
    return op


def _members(ctx: EditContext, children: dict[str, SNode], target: dict[str, Any], edit: dict[str, Any],
             op: str, path: str, skip: tuple[str, ...] = ()) -> None:
    for member, value in edit.items():
        if member.startswith("@") or member in skip:
            continue
        sn = children.get(member)
        mpath = f"{path}/{member}"
        if sn is None:
            ctx.fail(MgmtError("unknown-element", f'Unknown element "{member}".', path=mpath,
                               info={"bad-element": member.split(":")[-1]}))
            continue
        if not sn.config:
            ctx.fail(MgmtError("invalid-value", f'"{member}" is state data, not configuration.', path=mpath,
                               info={"bad-element": sn.name}))
            continue
        if sn.kind == CONTAINER:
            _guarded(ctx, _container, ctx, sn, children, target, value or {}, op, mpath)
        elif sn.kind == LIST:
            for entry in value:
                _guarded(ctx, _list_entry, ctx, sn, target, entry, op, path)
        elif sn.kind == LEAF:
            _guarded(ctx, _leaf, ctx, sn, children, target, value, edit.get(f"@{member}"), op, mpath)
        else:
            metas = edit.get(f"@{member}") or []
            for i, v in enumerate(value):
                _guarded(ctx, _leaflist_value, ctx, sn, children, target, v,
                         metas[i] if i < len(metas) else None, op, path)


def _guarded(ctx: EditContext, fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except MgmtError as err:
        ctx.fail(err)


def _clear_other_cases(children: dict[str, SNode], target: dict[str, Any], sn: SNode) -> None:
    if not sn.cases:
        return
    mine = dict(sn.cases)
    for member in list(target):
        other = children.get(member)
        if other is None or other is sn:
            continue
        for choice, case in other.cases:
            if choice in mine and mine[choice] != case:
                del target[member]
                break


def _wants_creation(edit: Any, op: str) -> bool:
    """Whether an edit subtree under operation `op` creates or sets anything."""
    if op in _CREATING:
        return True
    if isinstance(edit, dict):
        for k, v in edit.items():
            if k.startswith("@"):
                metas = v if isinstance(v, list) else [v]
                if any(isinstance(m, dict) and m.get(NC_OP) in _CREATING for m in metas):
                    return True
                continue
            if _wants_creation(v, op):
                return True
    elif isinstance(edit, list):
        return any(_wants_creation(v, op) for v in edit)
    return False


def _removing(op: str, exists: bool, what: str, path: str) -> bool:
    """The existence rules shared by every node kind (RFC 6241 §7.2): delete of a missing
    node -> data-missing, create of an existing one -> data-exists. True when ``op``
    removes the node (the caller removes it if it exists)."""
    if op == "delete" and not exists:
        raise MgmtError("data-missing", f"{what} does not exist.", path=path)
    if op in ("delete", "remove"):
        return True
    if op == "create" and exists:
        raise MgmtError("data-exists", f"{what} already exists.", path=path)
    return False


def _container(ctx: EditContext, sn: SNode, siblings: dict[str, SNode], target: dict[str, Any],
               edit: dict[str, Any], inherited: str, path: str) -> None:
    op = _op_of(ctx, edit.get("@"), inherited, path)
    if op is None:
        return
    exists = sn.member in target
    if _removing(op, exists, f'Data node "{sn.name}"', path):
        if exists:
            del target[sn.member]
            ctx.changed(path, "delete")
        return
    if op == "replace":
        node: dict[str, Any] = {}
        _members(ctx, sn.children(), node, edit, "merge", path)
        if not exists or target[sn.member] != node:
            ctx.changed(path, "replace" if exists else "create")
        if not exists:
            _clear_other_cases(siblings, target, sn)
        target[sn.member] = node
        return
    if op == "none" and not exists and not _wants_creation(edit, op):
        _members(ctx, sn.children(), {}, edit, op, path)  # only to report delete of missing data
        return
    if not exists:
        _clear_other_cases(siblings, target, sn)
        target[sn.member] = {}
        if op != "none":
            ctx.changed(path, "create")
    _members(ctx, sn.children(), target[sn.member], edit, op if op != "create" else "merge", path)


def _find_entry(entries: list[dict[str, Any]], sn: SNode, keys: dict[str, Any]) -> int | None:
    for i, e in enumerate(entries):
        if all(_text(e.get(k)) == _text(keys.get(k)) for k in sn.keys):
            return i
    return None


_PRED = re.compile(r"\[\s*(?:[\w.-]+:)?([\w.-]+)\s*=\s*(?:'([^']*)'|\"([^\"]*)\")\s*\]")


def _parse_key_pred(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2) if m.group(2) is not None else m.group(3) for m in _PRED.finditer(text or "")}


def _insert_position(ctx: EditContext, sn: SNode, seq: list[Any], meta: Any, path: str,
                     find: Any, anchor_attr: str) -> int | None:
    """Index at which to insert per yang:insert, or None for the default (append)."""
    if not isinstance(meta, dict) or YANG_INSERT not in meta:
        return None
    where = meta[YANG_INSERT]
    if not sn.user_ordered:
        raise MgmtError("bad-attribute", f'"insert" on "{sn.name}", which is not ordered-by user.', path=path,
                        info={"bad-attribute": "insert", "bad-element": sn.name}, type_="protocol")
    if where == "first":
        return 0
    if where == "last":
        return len(seq)
    if where in ("before", "after"):
        anchor = meta.get(anchor_attr)
        if anchor is None:
            raise MgmtError("missing-attribute", f'"insert" {where} needs the "{anchor_attr.split(":")[1]}" attribute.',
                            path=path, info={"bad-attribute": anchor_attr.split(":")[1], "bad-element": sn.name},
                            type_="protocol")
        i = find(anchor)
        if i is None:
            raise MgmtError("bad-attribute", f'The instance that "insert" refers to ({anchor}) does not exist.',
                            path=path, app_tag="missing-instance",
                            info={"bad-attribute": anchor_attr.split(":")[1], "bad-element": sn.name},
                            type_="protocol")
        return i if where == "before" else i + 1
    raise MgmtError("bad-attribute", f"invalid insert value {where!r}", path=path,
                    info={"bad-attribute": "insert", "bad-element": sn.name}, type_="protocol")


def _place(seq: list[Any], item: Any, current: int | None, pos: int | None) -> None:
    """Put `item` at `pos` (None: where it is, or at the end); `current` is its index now."""
    if current is not None:
        if pos is None:
            seq[current] = item
            return
        del seq[current]
        if pos > current:
            pos -= 1
    if pos is None:
        seq.append(item)
    else:
        seq.insert(pos, item)


def _list_entry(ctx: EditContext, sn: SNode, target: dict[str, Any], edit: dict[str, Any], inherited: str,
                parent_path: str) -> None:
    keys = {k: edit.get(k) for k in sn.keys}
    path = entry_path(parent_path, sn, keys)
    for k in sn.keys:
        if k not in edit:
            raise MgmtError("missing-element", f'List instance is missing its key "{k}".', path=path,
                            info={"bad-element": k})
    op = _op_of(ctx, edit.get("@"), inherited, path)
    if op is None:
        return
    entries: list[dict[str, Any]] = target.setdefault(sn.member, [])
    try:
        i = ctx.find(entries, sn, keys)
        exists = i is not None
        if _removing(op, exists, f'Data node "{sn.name}"', path):
            if exists:
                del entries[i]
                ctx.placed(entries, sn, None, i, None)
                ctx.changed(path, "delete")
            return
        if op == "none" and not exists and not _wants_creation(edit, op):
            _members(ctx, sn.children(), dict(keys), edit, op, path, skip=sn.keys)
            return
        pos = _insert_position(ctx, sn, entries, edit.get("@"), path,
                               lambda pred: _find_entry(entries, sn, _parse_key_pred(pred)), YANG_KEY)
        if op == "replace" or not exists:
            node = dict(keys)
            mark = len(ctx.changes)
            _members(ctx, sn.children(), node, edit, "merge" if op in ("replace", "create") else op, path,
                     skip=sn.keys)
            if not exists:
                ctx.changes.insert(mark, {"target": path, "operation": "create"})
            elif entries[i] != node:
                ctx.changes.insert(mark, {"target": path, "operation": "replace"})
            _place(entries, node, i, pos)
            ctx.placed(entries, sn, node, i, pos)
            return
        node = entries[i]
        if pos is not None:
            _place(entries, node, i, pos)
            ctx.placed(entries, sn, node, i, pos)
            ctx.changed(path, "merge")
        _members(ctx, sn.children(), node, edit, op, path, skip=sn.keys)
    finally:
        if not entries:
            target.pop(sn.member, None)


def _leaf(ctx: EditContext, sn: SNode, siblings: dict[str, SNode], target: dict[str, Any], value: Any, meta: Any,
          inherited: str, path: str) -> None:
    op = _op_of(ctx, meta, inherited, path)
    if op is None or op == "none":
        return
    exists = sn.member in target
    if _removing(op, exists, f'Data node "{sn.name}"', path):
        if exists:
            del target[sn.member]
            ctx.changed(path, "delete")
        return
    if exists and target[sn.member] == value:
        return
    _clear_other_cases(siblings, target, sn)
    ctx.changed(path, "create" if not exists else ("replace" if op == "replace" else "merge"))
    target[sn.member] = value


def _leaflist_value(ctx: EditContext, sn: SNode, siblings: dict[str, SNode], target: dict[str, Any], value: Any,
                    meta: Any, inherited: str, parent_path: str) -> None:
    path = f"{parent_path}/{sn.member}[.={_quote(value)}]"
    op = _op_of(ctx, meta, inherited, path)
    if op is None or op == "none":
        return
    values: list[Any] = target.setdefault(sn.member, [])
    try:
        i = next((j for j, v in enumerate(values) if _text(v) == _text(value)), None)
        exists = i is not None
        if _removing(op, exists, f'Data node "{sn.name}" with value "{_text(value)}"', path):
            if exists:
                del values[i]
                ctx.changed(path, "delete")
            return
        pos = _insert_position(ctx, sn, values, meta, path,
                               lambda v: next((j for j, x in enumerate(values) if _text(x) == str(v)), None),
                               YANG_VALUE)
        if exists and pos is None:
            return
        if not exists:
            _clear_other_cases(siblings, target, sn)
        _place(values, value, i, pos)
        ctx.changed(path, "create" if not exists else "merge")
    finally:
        if not values:
            target.pop(sn.member, None)
