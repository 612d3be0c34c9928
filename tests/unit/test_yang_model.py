"""The YANG model: pyang --strict, libyang loading, examples, invalid documents, docs trees.

`python -m tests.unit.test_yang_model --update-docs` rewrites the trees in docs/yang.md.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

libyang = pytest.importorskip("libyang")

from appliance.mgmt import schema  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
YANG = ROOT / "yang"
DOC = ROOT / "docs" / "yang.md"
EXAMPLES = ROOT / "docs" / "examples"
PYANG = Path(sys.executable).with_name("pyang")
BEGIN = "<!-- BEGIN pyang-tree"
END = "<!-- END pyang-tree -->"


def _pyang(*args: str) -> subprocess.CompletedProcess:
    cmd = [str(PYANG)] if PYANG.exists() else [sys.executable, "-m", "pyang"]
    return subprocess.run(
        [*cmd, "-p", str(YANG), *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def _fcr_files() -> list[Path]:
    return [YANG / f"{name}.yang" for name in schema.FCR_MODULES]


def render_trees() -> str:
    """The generated part of docs/yang.md: one `pyang -f tree` block per fcr module."""
    out = []
    for path in _fcr_files():
        res = _pyang("-f", "tree", str(path))
        assert res.returncode == 0, res.stderr
        out.append(f"### {path.stem}\n\n```\n{res.stdout.rstrip()}\n```\n")
    return "\n".join(out)


def _doc_trees(text: str) -> str:
    start = text.index(BEGIN)
    start = text.index("\n", start) + 1
    return text[start : text.index(END)].strip("\n")


@pytest.fixture(scope="module")
def ctx():
    c = schema.load_context(YANG)
    yield c
    c.destroy()


@pytest.fixture(scope="module")
def full() -> dict:
    return json.loads((EXAMPLES / "full.json").read_text())


# -- the modules ------------------------------------------------------------------------


def test_every_fcr_file_is_a_loaded_module():
    on_disk = {p.stem for p in YANG.glob("fcr-*.yang")}
    assert on_disk == set(schema.FCR_MODULES)


def test_pyang_strict_clean():
    res = _pyang("--strict", *map(str, _fcr_files()))
    assert res.returncode == 0 and not res.stdout and not res.stderr, res.stdout + res.stderr


def test_libyang_loads_everything_implemented(ctx):
    loaded = {m.name(): m for m in ctx}
    for name, features in schema.MODULES:
        mod = loaded[name]
        assert mod.implemented(), name
        enabled = {f.name() for f in mod.features() if f.state()}
        assert enabled == set(features), name
        # the file in yang/ is what was loaded (libyang's built-in copies are the same
        # revisions: the revision in the file name must match)
        files = list(YANG.glob(f"{name}@*.yang")) + list(YANG.glob(f"{name}.yang"))
        assert len(files) == 1, name
        revision = str(next(iter(mod.revisions())))
        if "@" in files[0].stem:
            assert files[0].stem.split("@")[1] == revision, name
        if mod.filepath():
            assert Path(mod.filepath()).resolve().parent == YANG.resolve(), name


def test_rpcs_and_notifications_exist(ctx):
    def kinds(name):
        return {(c.keyword(), c.name()) for c in ctx.get_module(name).children()}

    assert ("rpc", "clear-neighbor") in kinds("fcr-bgp")
    assert ("notification", "neighbor-state-change") in kinds("fcr-bgp")
    assert ("notification", "session-state-change") in kinds("fcr-bfd")
    assert ("rpc", "switchover") in kinds("fcr-nsr")
    assert {("rpc", "rollback"), ("rpc", "compare"), ("rpc", "get-commit-history")} <= kinds(
        "fcr-mgmt"
    )


def test_docs_trees_are_current():
    assert _doc_trees(DOC.read_text()) == render_trees().strip("\n"), (
        "docs/yang.md is stale: run python -m tests.unit.test_yang_model --update-docs"
    )


# -- valid documents ---------------------------------------------------------------------


def test_fcrd_example_validates(ctx):
    tree = schema.validate_config((EXAMPLES / "fcrd.json").read_text(), ctx)
    assert tree is not None
    tree.free()


def test_full_example_validates_and_covers_every_module(ctx, full):
    members = {
        "fcr-bgp:bgp",
        "fcr-routing-policy:routing-policy",
        "fcr-static:static-routes",
        "fcr-bfd:bfd",
        "fcr-routing:routing",
        "fcr-nsr:nsr",
        "fcr-system:system",
        "ietf-interfaces:interfaces",
    }
    assert members <= set(full)
    tree = schema.validate_config(full, ctx)
    try:
        out = json.loads(tree.print_mem("json", with_siblings=True))
        assert out["fcr-bgp:bgp"]["global"]["as"] == 65001
        nb = out["fcr-bgp:bgp"]["neighbors"]["neighbor"]
        assert [n["neighbor-address"] for n in nb][:2] == ["192.0.2.2", "2001:db8:1::2"]
    finally:
        tree.free()


def test_defaults_are_filled_in(ctx):
    doc = {"fcr-bgp:bgp": {"global": {"as": 65001, "router-id": "192.0.2.1"}}}
    tree = schema.validate_config(doc, ctx)
    try:
        out = json.loads(tree.print_mem("json", with_siblings=True, include_implicit_defaults=True))
        assert out["fcr-bgp:bgp"]["global"]["listen"]["address"] == ["0.0.0.0", "::"]
        assert out["fcr-routing:routing"]["fib"]["table"] == 254
    finally:
        tree.free()


def test_empty_document_is_valid(ctx):
    tree = schema.validate_config("{}", ctx)
    if tree is not None:
        tree.free()


# -- invalid documents -------------------------------------------------------------------

NB = "/fcr-bgp:bgp/neighbors/neighbor[neighbor-address='{}']"
PS = "/fcr-routing-policy:routing-policy/defined-sets/prefix-sets/prefix-set[name='{}']"


def _nb(doc: dict, i: int) -> dict:
    return doc["fcr-bgp:bgp"]["neighbors"]["neighbor"][i]


def _prefixes(doc: dict, i: int) -> list:
    sets = doc["fcr-routing-policy:routing-policy"]["defined-sets"]["prefix-sets"]
    return sets["prefix-set"][i]["prefixes"]["prefix"]


def _dup_neighbor(d: dict) -> None:
    d["fcr-bgp:bgp"]["neighbors"]["neighbor"].append(copy.deepcopy(_nb(d, 0)))


INVALID: list[tuple[str, Callable[[dict], object], str, str]] = [
    ("unknown-leaf", lambda d: _nb(d, 0).update({"bogus": 1}), NB.format("192.0.2.2"), "bogus"),
    (
        "hold-time-2",
        lambda d: _nb(d, 0)["timers"].update({"hold-time": 2}),
        NB.format("192.0.2.2") + "/timers/hold-time",
        "range",
    ),
    (
        "keepalive-not-below-hold",
        lambda d: _nb(d, 0)["timers"].update({"hold-time": 20}),
        NB.format("192.0.2.2") + "/timers",
        "keepalive-interval must be less than hold-time",
    ),
    (
        "leafref-missing-policy",
        lambda d: _nb(d, 0)["afi-safis"]["afi-safi"][0].update({"import-policy": ["NOPE"]}),
        NB.format("192.0.2.2") + "/afi-safis/afi-safi[afi-safi-name='ipv4-unicast']"
        "/import-policy[.='NOPE']",
        "leafref",
    ),
    (
        "duplicate-key",
        _dup_neighbor,
        # libyang 2.1.30 leaves the top container out of this path
        "neighbors/neighbor[neighbor-address='192.0.2.2']",
        "Duplicate instance",
    ),
    (
        "rr-client-on-ebgp",
        lambda d: _nb(d, 0).update({"route-reflector": {"route-reflector-client": True}}),
        NB.format("192.0.2.2") + "/route-reflector/route-reflector-client",
        "iBGP",
    ),
    (
        "rr-client-ebgp-by-local-as",
        lambda d: _nb(d, 3).update({"local-as": 65999}),
        NB.format("10.255.0.3") + "/route-reflector/route-reflector-client",
        "iBGP",
    ),
    (
        "masklength-range-pattern",
        lambda d: _prefixes(d, 0).append({"ip-prefix": "10.0.0.0/8", "masklength-range": "8-24"}),
        PS.format("OWN-V4") + "/prefixes/prefix[ip-prefix='10.0.0.0/8']/masklength-range",
        "pattern",
    ),
    (
        "masklength-range-beyond-32",
        lambda d: _prefixes(d, 1).append({"ip-prefix": "10.0.0.0/8", "masklength-range": "8..33"}),
        PS.format("BOGONS") + "/prefixes/prefix[ip-prefix='10.0.0.0/8'][masklength-range='8..33']",
        "masklength-range must lie",
    ),
    (
        "ipv6-in-ipv4-set",
        lambda d: _prefixes(d, 0).append(
            {"ip-prefix": "2001:db8::/32", "masklength-range": "exact"}
        ),
        PS.format("OWN-V4"),
        "only IPv4",
    ),
    (
        "local-address-family",
        lambda d: _nb(d, 0)["transport"].update({"local-address": "2001:db8::1"}),
        NB.format("192.0.2.2") + "/transport/local-address",
        "same family",
    ),
    (
        "peer-as-missing",
        lambda d: _nb(d, 0).pop("peer-as"),
        NB.format("192.0.2.2"),
        "peer-as is required",
    ),
    (
        "as-missing",
        lambda d: d["fcr-bgp:bgp"]["global"].pop("as"),
        "/fcr-bgp:bgp/global/as",
        "Mandatory",
    ),
    (
        "state-in-config",
        lambda d: _nb(d, 0).update({"state": {"session-state": "idle"}}),
        NB.format("192.0.2.2") + "/state",
        "state",
    ),
    (
        "static-blackhole-with-address",
        lambda d: d["fcr-static:static-routes"]["route"][1]["next-hops"]["next-hop"][0].update(
            {"address": "192.0.2.9"}
        ),
        "/fcr-static:static-routes/route[prefix='198.51.100.0/24']/next-hops"
        "/next-hop[index='discard']",
        "blackhole",
    ),
    (
        "bfd-multihop-without-local-address",
        lambda d: d["fcr-bfd:bfd"]["sessions"]["session"][1].pop("local-address"),
        "/fcr-bfd:bfd/sessions/session[peer-address='2001:db8:ffff::9']/multihop",
        "local-address",
    ),
    (
        "nsr-mongodb-without-uri",
        lambda d: d["fcr-nsr:nsr"]["store"].pop("uri"),
        "/fcr-nsr:nsr/store",
        "uri",
    ),
    (
        "community-out-of-range",
        lambda d: d["fcr-routing-policy:routing-policy"]["policy-definitions"]["policy-definition"][
            0
        ]["statements"]["statement"][2]["actions"]["bgp-actions"]["set-community"].update(
            {"communities": ["65536:1"]}
        ),
        "/fcr-routing-policy:routing-policy/policy-definitions"
        "/policy-definition[name='IMPORT-TRANSIT']/statements/statement[name='prefer']"
        "/actions/bgp-actions/set-community/communities",
        "union",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "path", "message"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_document_fails_with_path(ctx, full, mutate, path, message):
    doc = copy.deepcopy(full)
    mutate(doc)
    with pytest.raises(schema.ConfigError) as info:
        schema.validate_config(doc, ctx).free()
    err = info.value
    assert err.path is not None and err.path.endswith(path), err.errors
    assert message in err.message, err.errors


def test_syntax_error_is_a_config_error(ctx):
    with pytest.raises(schema.ConfigError):
        schema.validate_config("{ nope", ctx)


# -- docs regeneration -------------------------------------------------------------------


def _update_docs() -> None:
    text = DOC.read_text()
    head = text[: text.index("\n", text.index(BEGIN)) + 1]
    tail = text[text.index(END) :]
    DOC.write_text(head + render_trees() + tail)


if __name__ == "__main__":
    if sys.argv[1:] != ["--update-docs"]:
        sys.exit("usage: python -m tests.unit.test_yang_model --update-docs")
    _update_docs()
    print(f"updated {DOC}")
