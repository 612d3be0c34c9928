"""Role-based access of the management plane: one check for NETCONF and the CLI.

    authorize(role, "edit-config", "candidate", "/fcr-bgp:bgp")      # None, or MgmtError
    authorize_change(role, before, after)    # a write that would change system/users
    redact(role, config_json)                # what get-config may show to this role

Roles (fcr-system `role`): admin, operator, viewer. The rules are a NACM-like rule list
(RFC 8341: groups = roles, rules on protocol operations, datastores and data paths, first
match wins, default deny) kept in code as RULES; `nacm_rule_list()` renders it as
`ietf-netconf-acm` data. NACM rules are not read from the configuration yet: the
`ietf-netconf-acm:nacm` container is validated but has no effect (docs/mgmt.md).

Pure module: no I/O, no state.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from .errors import MgmtError

ROLES = ("admin", "operator", "viewer")

# every operation of the NETCONF server (and the CLI commands mapped onto them)
OPERATIONS = (
    "get", "get-config", "get-schema", "get-commit-history", "compare", "create-subscription",
    "close-session", "validate", "lock", "unlock", "edit-config", "copy-config", "delete-config",
    "discard-changes", "commit", "cancel-commit", "rollback", "clear-neighbor",
    "kill-session", "switchover",
)
READ_OPS = frozenset({"get", "get-config", "get-schema", "get-commit-history", "compare",
                      "create-subscription"})
# operations that write a datastore (checked against protected paths and startup)
WRITE_OPS = frozenset({"edit-config", "copy-config", "delete-config", "discard-changes", "commit",
                       "cancel-commit", "rollback"})

USERS_PATH = "/fcr-system:system/users"
ALL = frozenset(ROLES)


@dataclass(frozen=True)
class Rule:
    """One rule: `roles` doing `operations` (None: any) on `datastores` (None: any) at or
    below `path` (None: any) get `action`."""

    name: str
    roles: frozenset[str]
    action: str  # "permit" | "deny"
    operations: frozenset[str] | None = None
    datastores: frozenset[str] | None = None
    path: str | None = None
    comment: str = ""


def _r(name: str, roles: tuple[str, ...] | frozenset[str], action: str, ops: tuple[str, ...] | None = None,
       datastores: tuple[str, ...] | None = None, path: str | None = None, comment: str = "") -> Rule:
    return Rule(name, frozenset(roles), action, frozenset(ops) if ops is not None else None,
                frozenset(datastores) if datastores is not None else None, path, comment)


# First match wins; nothing matched: deny.
RULES: tuple[Rule, ...] = (
    _r("close-session", ALL, "permit", ("close-session",),
       comment="a session may always end itself (RFC 8341 §3.2.5)"),
    _r("admin-all", ("admin",), "permit", comment="everything"),
    _r("users-write", ("operator", "viewer"), "deny", tuple(WRITE_OPS), path=USERS_PATH,
       comment="users, password hashes, keys and roles: admin only"),
    _r("startup-write", ("operator", "viewer"), "deny",
       ("copy-config", "delete-config", "lock", "unlock"), ("startup",),
       comment="what the box boots: admin only (startup follows running on every commit anyway)"),
    _r("read", ALL - {"admin"}, "permit", tuple(READ_OPS),
       comment="reads; password hashes redacted (redact())"),
    _r("operator-config", ("operator",), "permit",
       ("validate", "lock", "unlock", "edit-config", "copy-config", "delete-config", "discard-changes",
        "commit", "cancel-commit", "rollback"),
       comment="change the configuration except users"),
    _r("operator-ops", ("operator",), "permit", ("clear-neighbor",), comment="operational commands"),
    # kill-session, switchover and anything unknown: no rule for operator and viewer -> deny
)

# leaves a role may not read: removed from get / get-config output (module-qualified JSON
# member names; list entries are walked through)
REDACTED: dict[str, tuple[tuple[str, ...], ...]] = {
    "admin": (),
    "operator": (
        ("fcr-system:system", "users", "user", "password-hash"),
    ),
    "viewer": (
        ("fcr-system:system", "users", "user", "password-hash"),
        ("fcr-system:system", "users", "user", "ssh-keys"),
        ("fcr-bgp:bgp", "neighbors", "neighbor", "transport", "tcp-md5-key"),
        ("fcr-bgp:bgp", "peer-groups", "peer-group", "transport", "tcp-md5-key"),
        ("fcr-bfd:bfd", "sessions", "session", "authentication", "key"),
    ),
}


def _norm(path: str) -> str:
    """A data path without keys and with the module prefix kept only where it is written:
    `/fcr-system:system/users/user[name='x']/role` -> `/fcr-system:system/users/user/role`."""
    out, depth = [], 0
    for ch in path:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    p = "".join(out).rstrip("/")
    return p or "/"


def _under(path: str, top: str) -> bool:
    p = _norm(path)
    # accept the prefix-less form of the top element too (`/system/users`)
    alt = "/" + top.split(":", 1)[1] if ":" in top else top
    return any(p == t or p.startswith(t + "/") for t in (top, alt))


def _matches(rule: Rule, role: str, operation: str, datastore: str | None, path: str | None) -> bool:
    if role not in rule.roles:
        return False
    if rule.operations is not None and operation not in rule.operations:
        return False
    if rule.datastores is not None and datastore not in rule.datastores:
        return False
    return not (rule.path is not None and (path is None or not _under(path, rule.path)))


def decide(role: str | None, operation: str, datastore: str | None = None,
           path: str | None = None) -> tuple[str, Rule | None]:
    """("permit" | "deny", the rule that decided; None for the default deny)."""
    for rule in RULES:
        if role is not None and _matches(rule, role, operation, datastore, path):
            return rule.action, rule
    return "deny", None


def authorize(role: str | None, operation: str, datastore: str | None = None,
              path: str | None = None) -> None:
    """Raise MgmtError("access-denied") unless `role` may do `operation` (a NETCONF
    operation name, see OPERATIONS) on `datastore` (the target, or the source of a read) at
    `path` (the data node written, module-prefixed as in error-paths)."""
    action, rule = decide(role, operation, datastore, path)
    if action == "permit":
        return
    who = f"role {role!r}" if role else "a user without a role"
    if rule is not None and rule.path is not None:
        raise MgmtError("access-denied", f"{who} may not change {rule.path}", path=path,
                        app_tag=None, type_="application")
    where = f" on {datastore}" if datastore and rule is not None and rule.datastores else ""
    raise MgmtError("access-denied", f"{who} may not use {operation}{where}", type_="protocol",
                    info={"bad-element": operation})


def users_of(config: dict[str, Any] | None) -> Any:
    return ((config or {}).get("fcr-system:system") or {}).get("users")


def authorize_change(role: str | None, before: dict[str, Any] | None, after: dict[str, Any] | None,
                     operation: str = "edit-config", datastore: str | None = None) -> None:
    """The exact check for a write whose result is known: access-denied if `after` differs
    from `before` under /fcr-system:system/users and the role may not write there. Covers
    every way to get there (replace of a parent, default-operation replace, copy-config,
    rollback)."""
    if users_of(before) != users_of(after):
        authorize(role, operation, datastore, USERS_PATH)


SYSTEM_NS = "urn:fcr:yang:fcr-system"
NC_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"


def edit_touches_users(config_xml: str, default_operation: str = "merge") -> bool:
    """Conservative pre-check of an edit-config `<config>` (its XML text, with or without the
    `<config>` wrapper): True if it may change /fcr-system:system/users: a `users` element
    under fcr-system's `system`, a `system` with an nc:operation replace, delete or remove,
    or default-operation replace (which rewrites the whole datastore). For operators and
    viewers a True here means authorize(role, "edit-config", target, USERS_PATH); the exact
    check, once the result is known, is authorize_change()."""
    from lxml import etree  # parsing only; no entities, no network

    if default_operation == "replace":
        return True
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = etree.fromstring(config_xml.encode() if isinstance(config_xml, str) else config_xml, parser)
    except etree.XMLSyntaxError:
        return True
    op_attr = f"{{{NC_NS}}}operation"
    for system in root.iter(f"{{{SYSTEM_NS}}}system"):
        if system.get(op_attr) in ("replace", "delete", "remove"):
            return True
        if system.find(f"{{{SYSTEM_NS}}}users") is not None:
            return True
    return False


def redact(role: str | None, config_json: dict[str, Any]) -> dict[str, Any]:
    """A copy of an RFC 7951 configuration without the leaves `role` may not read (for admin
    the same dict object, untouched). An unknown role gets the viewer's view."""
    rules = REDACTED.get(role or "", REDACTED["viewer"])
    if not rules or not any(r[0] in config_json for r in rules):
        return config_json
    out = dict(config_json)
    for top in {r[0] for r in rules if r[0] in config_json}:
        out[top] = copy.deepcopy(config_json[top])
    for rule in rules:
        if rule[0] in out:
            _strip(out, rule)
    return out


def _strip(node: Any, steps: tuple[str, ...]) -> None:
    if isinstance(node, list):
        for entry in node:
            _strip(entry, steps)
        return
    if not isinstance(node, dict) or not steps:
        return
    head, rest = steps[0], steps[1:]
    if head not in node:
        return
    if not rest:
        del node[head]
        return
    _strip(node[head], rest)
    child = node[head]
    if isinstance(child, dict) and not child:  # no empty non-presence containers
        del node[head]


def table() -> list[dict[str, str]]:
    """operation x role -> permit/deny, with no datastore or path (the docs' table)."""
    return [{"operation": op, **{r: decide(r, op)[0] for r in ROLES}} for op in OPERATIONS]


def nacm_rule_list() -> dict[str, Any]:
    """RULES as `ietf-netconf-acm` data (groups named after the roles). NACM has no
    datastore condition: rules with one (startup-write) are enforced in code only and left
    out here."""
    rules = []
    for rule in RULES:
        if rule.datastores is not None:
            continue
        base: dict[str, Any] = {"name": rule.name}
        if rule.path is not None:
            base["path"] = rule.path
            base["access-operations"] = "create update delete"
        elif rule.operations is not None:
            base["rpc-name"] = " ".join(sorted(rule.operations))
            base["access-operations"] = "exec"
        else:
            base["module-name"] = "*"
            base["access-operations"] = "*"
        base["action"] = rule.action
        if rule.comment:
            base["comment"] = rule.comment
        rules.append((rule, base))
    rule_lists = []
    for role in ROLES:
        mine = []
        for rule, base in rules:
            if role not in rule.roles:
                continue
            if "rpc-name" in base and " " in base["rpc-name"]:
                # NACM names one rpc per rule
                for i, op in enumerate(sorted(rule.operations or ())):
                    mine.append({**base, "name": f"{rule.name}-{i + 1}", "rpc-name": op})
            else:
                mine.append(dict(base))
        rule_lists.append({"name": f"{role}-rules", "group": [role], "rule": mine})
    return {"ietf-netconf-acm:nacm": {
        "enable-nacm": True,
        "read-default": "permit",
        "write-default": "deny",
        "exec-default": "deny",
        "groups": {"group": [{"name": r} for r in ROLES]},
        "rule-list": rule_lists,
    }}
