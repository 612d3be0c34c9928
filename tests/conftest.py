"""Shared fixtures: network topologies for interop tests and their cleanup safety nets."""

from __future__ import annotations

import os
import re
import secrets
import shutil
from pathlib import Path

import pytest

from tests.topotest.netns import Topology, cleanup_stale_namespaces, netns_usable

_RUN_TAG = f"{os.getpid()}x{secrets.token_hex(2)}"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


@pytest.fixture(scope="session")
def netns_session():
    """Skip (with the reason) when namespaces cannot be used; else clean stale ``fcrt-*``
    namespaces of dead test runs at start and this run's leftovers at the end."""
    ok, reason = netns_usable()
    if not ok:
        pytest.skip(reason)
    cleanup_stale_namespaces()
    yield
    cleanup_stale_namespaces(include_own=True)


@pytest.fixture(scope="session")
def run_dir():
    """Short, world-traversable per-run directory (FRR drops to user frr; Unix socket paths
    must stay under 108 bytes). Removed at the end unless a test failed and kept files."""
    path = Path(f"/tmp/fcrt-{_RUN_TAG}")
    path.mkdir(mode=0o755)
    os.chmod(path, 0o755)
    yield path
    if not any(path.iterdir()):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def workdir(request, run_dir):
    """Per-test directory for configs, logs and sockets; kept when the test failed."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:48]
    path = run_dir / name
    if path.exists():
        path = run_dir / f"{name}-{secrets.token_hex(2)}"
    path.mkdir(mode=0o755)
    os.chmod(path, 0o755)
    yield path
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.passed:
        shutil.rmtree(path, ignore_errors=True)
    else:
        print(f"\nkept test files in {path}")


@pytest.fixture
def topology(netns_session):
    """A `Topology` torn down after the test: processes stopped by pid, namespaces deleted."""
    topo = Topology()
    try:
        yield topo
    finally:
        topo.close()
