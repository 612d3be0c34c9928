"""Role-based access: every operation x role, protected paths, startup, redaction."""

from __future__ import annotations

import copy

import pytest

from appliance.mgmt import access, yangdata
from appliance.mgmt.access import (
    OPERATIONS,
    ROLES,
    authorize,
    authorize_change,
    edit_touches_users,
    nacm_rule_list,
    redact,
)
from appliance.mgmt.errors import MgmtError
from appliance.mgmt.schema import default_context

P, D = "permit", "deny"
# operation: (admin, operator, viewer) with no datastore or path given
EXPECTED = {
    "get": (P, P, P),
    "get-config": (P, P, P),
    "get-schema": (P, P, P),
    "get-commit-history": (P, P, P),
    "compare": (P, P, P),
    "create-subscription": (P, P, P),
    "close-session": (P, P, P),
    "validate": (P, P, D),
    "lock": (P, P, D),
    "unlock": (P, P, D),
    "edit-config": (P, P, D),
    "copy-config": (P, P, D),
    "delete-config": (P, P, D),
    "discard-changes": (P, P, D),
    "commit": (P, P, D),
    "cancel-commit": (P, P, D),
    "rollback": (P, P, D),
    "clear-neighbor": (P, P, D),
    "kill-session": (P, D, D),
    "switchover": (P, D, D),
}


def _allowed(role, op, ds=None, path=None) -> bool:
    try:
        authorize(role, op, ds, path)
    except MgmtError as exc:
        assert exc.tag == "access-denied"
        return False
    return True


def test_table_covers_every_operation() -> None:
    assert set(EXPECTED) == set(OPERATIONS)


@pytest.mark.parametrize("op", OPERATIONS)
@pytest.mark.parametrize("i,role", list(enumerate(ROLES)))
def test_operation_by_role(op: str, i: int, role: str) -> None:
    assert _allowed(role, op) == (EXPECTED[op][i] == P)
    assert access.decide(role, op)[0] == EXPECTED[op][i]


def test_docs_table_matches() -> None:
    assert {r["operation"]: (r["admin"], r["operator"], r["viewer"]) for r in access.table()} == EXPECTED


@pytest.mark.parametrize("op", ["get", "edit-config", "close-session", "kill-session", "frobnicate"])
@pytest.mark.parametrize("role", [None, "", "root", "ADMIN"])
def test_unknown_role_denied_except_close(op: str, role) -> None:
    assert _allowed(role, op) == (op == "close-session" and role in ROLES)


def test_unknown_operation_denied() -> None:
    for role in ("operator", "viewer"):
        assert not _allowed(role, "frobnicate")
    assert _allowed("admin", "frobnicate")  # admin: everything


def test_error_shape() -> None:
    with pytest.raises(MgmtError) as ei:
        authorize("viewer", "edit-config", "candidate", "/fcr-bgp:bgp")
    e = ei.value
    assert e.tag == "access-denied" and e.type == "protocol" and e.info == {"bad-element": "edit-config"}
    assert "viewer" in e.message
    with pytest.raises(MgmtError) as ei:
        authorize("operator", "edit-config", "candidate", "/fcr-system:system/users/user[name='x']/role")
    e = ei.value
    assert e.tag == "access-denied" and e.type == "application"
    assert e.path == "/fcr-system:system/users/user[name='x']/role"


USER_PATHS = [
    "/fcr-system:system/users",
    "/fcr-system:system/users/",
    "/fcr-system:system/users/user[name='alice']",
    "/fcr-system:system/users/user[name='a/b']/password-hash",
    "/fcr-system:system/users/user[name='alice']/ssh-keys/ssh-key[name='k']/key",
    "/system/users/user[name='alice']/role",
]
OTHER_PATHS = [
    "/fcr-system:system/hostname",
    "/fcr-system:system/usersx",
    "/fcr-bgp:bgp/neighbors/neighbor[neighbor-address='192.0.2.1']/description",
    "/fcr-routing-policy:routing-policy",
]


@pytest.mark.parametrize("op", sorted(access.WRITE_OPS))
@pytest.mark.parametrize("path", USER_PATHS)
def test_users_paths_admin_only(op: str, path: str) -> None:
    assert _allowed("admin", op, "candidate", path)
    assert not _allowed("operator", op, "candidate", path)
    assert not _allowed("operator", op, "running", path)
    assert not _allowed("viewer", op, "candidate", path)


@pytest.mark.parametrize("path", OTHER_PATHS)
def test_operator_writes_other_paths(path: str) -> None:
    for op in ("edit-config", "copy-config", "commit", "rollback", "discard-changes"):
        assert _allowed("operator", op, "candidate", path)
        assert _allowed("operator", op, "running", path)
        assert not _allowed("viewer", op, "candidate", path)


def test_reads_of_users_paths_allowed_redacted_later() -> None:
    for role in ROLES:
        assert _allowed(role, "get-config", "running", "/fcr-system:system/users")
        assert _allowed(role, "get", None, "/fcr-system:system/users/user[name='a']/password-hash")


@pytest.mark.parametrize("op", ["copy-config", "delete-config", "lock", "unlock"])
def test_startup_admin_only(op: str) -> None:
    assert _allowed("admin", op, "startup")
    assert not _allowed("operator", op, "startup")
    assert not _allowed("viewer", op, "startup")
    if op != "delete-config":
        assert _allowed("operator", op, "candidate")
        assert _allowed("operator", op, "running")


def test_get_config_of_startup_readable() -> None:
    for role in ROLES:
        assert _allowed(role, "get-config", "startup")


# -- authorize_change, edit_touches_users --------------------------------------------------

CFG = {
    "fcr-bgp:bgp": {"global": {"as": 65000, "router-id": "10.0.0.1"}},
    "fcr-system:system": {"hostname": "r1", "users": {"user": [
        {"name": "alice", "password-hash": "$6$s$h", "role": "admin"},
        {"name": "bob", "password-hash": "$6$t$i", "role": "operator",
         "ssh-keys": {"ssh-key": [{"name": "k", "key": "ssh-ed25519 AAAA"}]}},
    ]}},
}


def test_authorize_change() -> None:
    after = copy.deepcopy(CFG)
    after["fcr-system:system"]["hostname"] = "r2"
    after["fcr-bgp:bgp"]["global"]["as"] = 65001
    for role in ("admin", "operator"):
        authorize_change(role, CFG, after)
    changed = copy.deepcopy(CFG)
    changed["fcr-system:system"]["users"]["user"][1]["role"] = "admin"
    dropped = copy.deepcopy(CFG)
    del dropped["fcr-system:system"]
    for new in (changed, dropped, {}):
        authorize_change("admin", CFG, new)
        for role in ("operator", "viewer", None):
            with pytest.raises(MgmtError) as ei:
                authorize_change(role, CFG, new, "copy-config", "running")
            assert ei.value.tag == "access-denied"
            if role is not None:
                assert ei.value.path == "/fcr-system:system/users"


NC = 'xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0"'
SYS = 'xmlns="urn:fcr:yang:fcr-system"'


@pytest.mark.parametrize("xml,default_op,touches", [
    (f'<config {NC}><system {SYS}><hostname>r2</hostname></system></config>', "merge", False),
    (f'<system {SYS}><hostname>r2</hostname></system>', "merge", False),
    (f'<config {NC}><bgp xmlns="urn:fcr:yang:fcr-bgp"><global><as>1</as></global></bgp></config>', "merge", False),
    (f'<config {NC}><system {SYS}><users><user><name>x</name></user></users></system></config>', "merge", True),
    (f'<config {NC}><system {SYS} nc:operation="replace"><hostname>r</hostname></system></config>', "merge", True),
    (f'<config {NC}><system {SYS} nc:operation="delete"/></config>', "none", True),
    (f'<config {NC}><system {SYS}><hostname>r2</hostname></system></config>', "replace", True),
    ('<config><not-closed>', "merge", True),
])
def test_edit_touches_users(xml: str, default_op: str, touches: bool) -> None:
    assert edit_touches_users(xml, default_op) is touches


# -- redact -------------------------------------------------------------------------------

def _has(obj, name: str) -> bool:
    if isinstance(obj, dict):
        return name in obj or any(_has(v, name) for v in obj.values())
    if isinstance(obj, list):
        return any(_has(v, name) for v in obj)
    return False


SECRETS = {
    "fcr-bgp:bgp": {
        "global": {"as": 65000, "router-id": "10.0.0.1"},
        "peer-groups": {"peer-group": [{"peer-group-name": "g", "transport": {"tcp-md5-key": "pg-secret"}}]},
        "neighbors": {"neighbor": [
            {"neighbor-address": "192.0.2.1", "peer-as": 65001, "transport": {"tcp-md5-key": "n-secret"}},
            {"neighbor-address": "192.0.2.2", "peer-as": 65002},
        ]},
    },
    "fcr-bfd:bfd": {"sessions": {"session": [
        {"peer-address": "192.0.2.1", "authentication": {"type": "keyed-sha1", "key-id": 1, "key": "bfd-secret"}},
    ]}},
}


def test_redact_admin_untouched() -> None:
    cfg = {**CFG, **SECRETS}
    assert redact("admin", cfg) is cfg


def test_redact_operator_removes_password_hashes_only() -> None:
    cfg = {**copy.deepcopy(CFG), **copy.deepcopy(SECRETS)}
    before = copy.deepcopy(cfg)
    out = redact("operator", cfg)
    assert cfg == before  # input untouched
    assert not _has(out, "password-hash")
    users = out["fcr-system:system"]["users"]["user"]
    assert [u["name"] for u in users] == ["alice", "bob"]
    assert users[0] == {"name": "alice", "role": "admin"}
    assert users[1]["ssh-keys"] == CFG["fcr-system:system"]["users"]["user"][1]["ssh-keys"]
    assert out["fcr-bgp:bgp"] == SECRETS["fcr-bgp:bgp"]  # operators edit BGP keys: they see them


@pytest.mark.parametrize("role", ["viewer", None, "nobody"])
def test_redact_viewer_removes_secrets(role) -> None:
    cfg = {**copy.deepcopy(CFG), **copy.deepcopy(SECRETS)}
    out = redact(role, cfg)
    for name in ("password-hash", "ssh-keys", "tcp-md5-key"):
        assert not _has(out, name)
    assert out["fcr-bfd:bfd"]["sessions"]["session"][0]["authentication"] == {"type": "keyed-sha1", "key-id": 1}
    # empty containers are dropped, the rest stays
    assert "transport" not in out["fcr-bgp:bgp"]["neighbors"]["neighbor"][0]
    assert out["fcr-bgp:bgp"]["global"] == SECRETS["fcr-bgp:bgp"]["global"]
    assert out["fcr-system:system"]["hostname"] == "r1"


def test_redacted_config_still_valid_yang() -> None:
    ctx = default_context()
    index = yangdata.SchemaIndex(ctx)
    cfg = yangdata.canonical(index, {
        "fcr-system:system": {"hostname": "r1", "users": {"user": [
            {"name": "alice", "password-hash": "$6$saltsalt$abcdefghijk", "role": "admin",
             "ssh-keys": {"ssh-key": [{"name": "k", "key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA"}]}},
        ]}},
    })
    yangdata.validate(ctx, cfg)
    for role in ROLES:
        out = redact(role, cfg)
        yangdata.validate(ctx, out)
        xml = yangdata.print_xml(ctx, out)
        assert ("password-hash" in xml) == (role == "admin")


def test_nacm_rule_list_valid_in_model() -> None:
    ctx = default_context()
    index = yangdata.SchemaIndex(ctx)
    nacm = yangdata.canonical(index, nacm_rule_list())
    yangdata.validate(ctx, nacm)
    lists = {rl["group"][0]: rl for rl in nacm["ietf-netconf-acm:nacm"]["rule-list"]}
    assert set(lists) == set(ROLES)
    viewer_rpcs = {r.get("rpc-name") for r in lists["viewer"]["rule"] if r["action"] == "permit"}
    assert "edit-config" not in viewer_rpcs and "get-config" in viewer_rpcs
    assert not any(r.get("rpc-name") == "kill-session" for r in lists["operator"]["rule"])
