"""fcrd (the FCR routing engine) in a namespace, driven over its control socket.

Control protocol (docs/architecture.md, engine/control.py): a Unix stream socket, one JSON
object per line. Request ``{"id": 1, "method": "bgp.summary", "params": {...}}``; response
``{"id": 1, "result": ...}`` or ``{"id": 1, "error": {"message": "..."}}``. The socket is a
filesystem path, so the test process reaches it from the root namespace.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from . import wait_until
from .netns import Host
from .router import Router

REPO = Path(__file__).resolve().parents[2]


def fcrd_path() -> str:
    venv = REPO / ".venv" / "bin" / "fcrd"
    if venv.exists():
        return str(venv)
    found = shutil.which("fcrd")
    if not found:
        raise FileNotFoundError("fcrd not found: expected in <repo>/.venv/bin (pip install -e .)")
    return found


def fcrd_env() -> dict:
    """Environment for fcrd: the repository first on PYTHONPATH, so the tree under test is
    what runs even when the venv's editable install predates a package's __init__.py."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


class FcrError(RuntimeError):
    pass


class FcrCtlError(FcrError):
    """The engine answered with {"error": {...}}."""

    def __init__(self, method: str, error: Mapping) -> None:
        super().__init__(f"{method}: {error.get('message', error)}")
        self.error = dict(error)


def neighbor(
    address: str,
    peer_as: int,
    *,
    afis: Iterable[str] = ("ipv4-unicast",),
    passive: bool | None = None,
    hold_time: int | None = None,
    keepalive: int | None = None,
    connect_retry: int | None = None,
    rr_client: bool | None = None,
    local_address: str | None = None,
    four_octet_as: bool | None = None,
    **extra,
) -> dict:
    """One ``neighbors/neighbor[]`` entry of the native JSON (docs/configuration.md)."""
    n: dict = {"neighbor-address": address, "peer-as": peer_as}
    timers = {}
    if hold_time is not None:
        timers["hold-time"] = hold_time
    if keepalive is not None:
        timers["keepalive-interval"] = keepalive
    if connect_retry is not None:
        timers["connect-retry"] = connect_retry
    if timers:
        n["timers"] = timers
    transport = {}
    if passive is not None:
        transport["passive-mode"] = passive
    if local_address is not None:
        transport["local-address"] = local_address
    if transport:
        n["transport"] = transport
    if rr_client is not None:
        n["route-reflector"] = {"route-reflector-client": rr_client}
    if four_octet_as is not None:
        n["capabilities"] = {"four-octet-as": four_octet_as}
    n["afi-safis"] = {"afi-safi": [{"afi-safi-name": a} for a in afis]}
    n.update(extra)
    return n


def config(
    asn: int,
    router_id: str,
    neighbors: Iterable[Mapping] = (),
    networks: Iterable[str] = (),
    *,
    cluster_id: str | None = None,
    listen: Iterable[str] | None = None,
    hostname: str = "fcr",
) -> dict:
    """A complete fcrd startup document (RFC 7951 JSON of the native model)."""
    glob: dict = {"as": asn, "router-id": router_id}
    if cluster_id is not None:
        glob["cluster-id"] = cluster_id
    if listen is not None:
        glob["listen"] = {"address": list(listen)}
    bgp: dict = {"global": glob, "neighbors": {"neighbor": [dict(n) for n in neighbors]}}
    nets = list(networks)
    if nets:
        bgp["networks"] = {"network": [{"prefix": p} for p in nets]}
    return {"fcr-system:system": {"hostname": hostname}, "fcr-bgp:bgp": bgp}


class FcrRouter(Router):
    """One fcrd: ``fcrd --config fcrd.json --control control.sock`` (stderr to fcrd.log)."""

    def __init__(
        self,
        host: Host,
        workdir: os.PathLike | str,
        config: Mapping,
        *,
        start: bool = True,
        extra_args: Iterable[str] = (),
    ) -> None:
        super().__init__(host, workdir)
        self.config = config
        self.config_path = self.workdir / "fcrd.json"
        self.control = self.workdir / "control.sock"
        self.log = self.workdir / "fcrd.log"
        self.extra_args = list(extra_args)
        self._ids = itertools.count(1)
        if start:
            self.start()

    def command(self) -> list[str]:
        return [fcrd_path(), "--config", str(self.config_path), "--control", str(self.control),
                *self.extra_args]

    def start(self, timeout: float = 15.0) -> None:
        self.config_path.write_text(json.dumps(self.config, indent=2))
        log = open(self.log, "ab")  # noqa: SIM115 - closed below; the child keeps its copy
        try:
            proc = self.host.popen(self.command(), stdout=log, stderr=log, env=fcrd_env())
        finally:
            log.close()
        self.procs["fcrd"] = proc

        def ready() -> bool:
            if proc.poll() is not None:
                raise FcrError(f"fcrd exited with {proc.returncode}\n--- fcrd.log\n"
                               f"{self.tail('fcrd.log')}")
            if not self.control.exists():
                return False
            try:
                self.ctl("bgp.summary")
            except FcrCtlError:
                pass  # the socket answers; a failing method is the test's business
            return True

        deadline = time.monotonic() + timeout
        while True:
            try:
                if ready():
                    return
            except FcrError:
                if proc.poll() is not None:
                    raise
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise FcrError(f"fcrd control socket not ready after {timeout}s\n--- fcrd.log\n"
                               f"{self.tail('fcrd.log')}")
            time.sleep(0.1)

    @property
    def fcrd_pid(self) -> int:
        return self.pid("fcrd")

    @property
    def proc(self):
        return self.procs["fcrd"]

    # -- control socket ---------------------------------------------------------------------
    def ctl(self, method: str, timeout: float = 10.0, **params) -> dict:
        req_id = next(self._ids)
        req = {"id": req_id, "method": method, "params": params}
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(self.control))
            s.sendall(json.dumps(req).encode() + b"\n")
            buf = b""
            for _ in range(100_000):  # bounded; the timeout bounds the time
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if not line.strip():
                        continue
                    resp = json.loads(line)
                    if resp.get("id") != req_id:
                        continue
                    if "error" in resp and resp["error"] is not None:
                        raise FcrCtlError(method, resp["error"])
                    return resp.get("result")
        raise FcrError(f"{method}: connection closed without a response")

    # -- state ------------------------------------------------------------------------------
    def summary(self) -> dict:
        return self.ctl("bgp.summary")

    def neighbors(self) -> list[dict]:
        return self.ctl("bgp.neighbors")

    def neighbor(self, address: str) -> dict:
        """The ``bgp.summary`` entry of a neighbor ({} when unknown)."""
        for n in self.summary().get("neighbors", []):
            if n.get("neighbor-address") == address:
                return n
        return {}

    def neighbor_state(self, address: str) -> str:
        return self.neighbor(address).get("state", "")

    def wait_established(self, address: str, timeout: float = 30.0) -> dict:
        return wait_until(
            lambda: (n := self.neighbor(address)).get("state") == "Established" and n,
            timeout, 0.25, message=f"fcr {self.host.name}: {address} Established",
        )

    def rib(self, family: str = "ipv4-unicast", prefix: str | None = None,
            limit: int | None = None) -> dict:
        """{prefix: {"prefix", "best", "paths"}} from ``bgp.rib``."""
        params: dict = {"family": family}
        if prefix is not None:
            params["prefix"] = prefix
        if limit is not None:
            params["limit"] = limit
        res = self.ctl("bgp.rib", **params)
        return {r["prefix"]: r for r in res.get("routes", [])}

    def route(self, prefix: str, family: str | None = None) -> dict | None:
        family = family or ("ipv6-unicast" if ":" in prefix else "ipv4-unicast")
        return self.rib(family, prefix=prefix).get(prefix)

    def best(self, prefix: str, family: str | None = None) -> dict | None:
        r = self.route(prefix, family)
        return r.get("best") if r else None

    def clear(self, neighbor: str, soft: str | None = None) -> dict:
        return self.ctl("bgp.clear", neighbor=neighbor, soft=soft)

    def signal(self, sig: int) -> None:
        os.kill(self.fcrd_pid, sig)

    def wait_exit(self, timeout: float = 15.0) -> int:
        return self.proc.wait(timeout)
