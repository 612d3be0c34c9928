"""FRR (zebra + bgpd [+ bfdd]) in a namespace, with private sockets, pid files and logs."""

from __future__ import annotations

import json
import os
import pwd
import stat
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from . import wait_until
from .netns import Host
from .router import Router, render

FRR_DIR = "/usr/lib/frr"
FRR_USER = "frr"  # root is not in the vty group (frrvty), so FRR refuses -u root


def _frr_ids() -> tuple[int, int]:
    pw = pwd.getpwnam(FRR_USER)
    return pw.pw_uid, pw.pw_gid


def _check_traversable(path: Path) -> None:
    """The daemons drop to user frr before they read config and open logs."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if parent != path and not mode & stat.S_IXOTH:
            raise FrrError(
                f"{parent} is not traversable by user {FRR_USER}; put FRR workdirs under a "
                "world-traversable directory (the `workdir` fixture does)"
            )


class FrrError(RuntimeError):
    pass


class FrrRouter(Router):
    """One FRR instance.

    ``config_text`` is the bgpd configuration body (``router bgp ...``); `render_bgp` builds
    one from a template. Every path is private to ``workdir``: vty sockets (``--vty_socket``),
    the zserv socket (``-z``), pid files (``-i``), logs; so instances in several namespaces
    coexist and never touch /var/run/frr. Daemons run in the foreground as user frr (the workdir is
    chowned to frr).
    """

    def __init__(
        self,
        host: Host,
        workdir: os.PathLike | str,
        config_text: str,
        *,
        bfd: bool = False,
        debug: bool = False,
        start: bool = True,
        zebra_config: str = "",
    ) -> None:
        super().__init__(host, workdir)
        self.config_text = config_text
        self.zebra_config = zebra_config
        self.bfd = bfd
        self.debug = debug
        self.zserv = self.workdir / "zserv.api"
        _check_traversable(self.workdir)
        uid, gid = _frr_ids()
        os.chown(self.workdir, uid, gid)
        if start:
            self.start()

    # -- configuration ----------------------------------------------------------------------
    @staticmethod
    def render_bgp(
        asn: int,
        router_id: str,
        neighbors: Sequence[Mapping] = (),
        networks: Mapping[str, Iterable[str]] | None = None,
        cluster_id: str | None = None,
        extra: Sequence[str] = (),
    ) -> str:
        """``router bgp`` block from templates/bgpd.conf.j2.

        neighbors: dicts with ``address``, ``remote_as`` and optional ``afis`` (["ipv4",
        "ipv6"], default ipv4), ``timers`` (keepalive, hold), ``connect_retry``, ``passive``,
        ``update_source``, ``rr_client``, ``extra`` (lines after "neighbor X "), ``af_extra``
        ({"ipv4": [lines]}). networks: {"ipv4": [...], "ipv6": [...]}. eBGP policy and
        network import-check are off.
        """
        full = []
        for n in neighbors:
            d = {
                "timers": None, "connect_retry": None, "passive": False, "update_source": None,
                "rr_client": False, "extra": [], "afis": ["ipv4"], "af_extra": {},
            }
            d.update(n)
            full.append(d)
        return render(
            "bgpd.conf.j2",
            asn=asn,
            router_id=router_id,
            neighbors=full,
            networks={k: list(v) for k, v in (networks or {}).items()},
            cluster_id=cluster_id,
            extra=list(extra),
        )

    def _write_conf(self, daemon: str, body: str) -> str:
        path = self.workdir / f"{daemon}.conf"
        path.write_text(
            render(
                "frr_daemon.conf.j2",
                daemon=daemon,
                hostname=self.host.name,
                workdir=str(self.workdir),
                body=body,
                debug=self.debug and daemon == "bgpd",
            )
        )
        os.chown(path, *_frr_ids())
        return str(path)

    # -- lifecycle --------------------------------------------------------------------------
    def _daemon_cmd(self, daemon: str, conf: str) -> list[str]:
        return [
            f"{FRR_DIR}/{daemon}",
            "-u", FRR_USER, "-g", FRR_USER,
            "-f", conf,
            "-i", str(self.workdir / f"{daemon}.pid"),
            "--vty_socket", str(self.workdir),
            "-z", str(self.zserv),
            "--log", f"file:{self.workdir}/{daemon}.log",
        ]

    def start(self) -> None:
        zconf = self._write_conf("zebra", self.zebra_config)
        self._spawn("zebra", self._daemon_cmd("zebra", zconf))
        wait_until(self.zserv.exists, 15, 0.05, message=f"{self.host.name} zebra zserv socket")
        if self.bfd:
            bconf = self._write_conf("bfdd", "")
            cmd = self._daemon_cmd("bfdd", bconf) + ["--bfdctl", str(self.workdir / "bfdd.sock")]
            self._spawn("bfdd", cmd)
        bconf = self._write_conf("bgpd", self.config_text)
        self._spawn("bgpd", self._daemon_cmd("bgpd", bconf))
        try:
            wait_until(
                lambda: self.running("bgpd") and self._vtysh_ok(),
                15, 0.1, message=f"{self.host.name} bgpd vty",
            )
        except AssertionError as exc:
            raise FrrError(f"{exc}\n--- bgpd.out\n{self.tail('bgpd.out')}") from exc

    def _vtysh_ok(self) -> bool:
        return self.vtysh("show version", check=False).returncode == 0

    @property
    def bgpd_pid(self) -> int:
        return self.pid("bgpd")

    # -- vtysh ------------------------------------------------------------------------------
    def vtysh(
        self, *cmds: str, daemon: str = "bgpd", check: bool = True, timeout: float = 15.0
    ) -> subprocess.CompletedProcess:
        argv = ["vtysh", "--vty_socket", str(self.workdir), "-d", daemon]
        for c in cmds:
            argv += ["-c", c]
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise FrrError(f"vtysh {cmds!r} failed ({res.returncode}): {res.stdout}{res.stderr}")
        return res

    def cmd(self, command: str) -> str:
        return self.vtysh(command).stdout

    def vtysh_json(self, command: str) -> dict:
        out = self.vtysh(command).stdout
        try:
            return json.loads(out) if out.strip() else {}
        except json.JSONDecodeError as exc:
            raise FrrError(f"not JSON from {command!r}: {out[:500]!r}") from exc

    def configure(self, *lines: str) -> str:
        """Run configuration lines, e.g. configure("router bgp 65002",
        "address-family ipv4 unicast", "no network 10.1.0.0/24")."""
        res = self.vtysh("configure terminal", *lines)
        if "%" in res.stdout:  # vtysh reports errors inline with "% ..."
            raise FrrError(f"configure {lines!r}: {res.stdout}")
        return res.stdout

    # -- state ------------------------------------------------------------------------------
    def summary(self, afi: str = "ipv4") -> dict:
        return self.vtysh_json(f"show bgp {afi} unicast summary json")

    def neighbor(self, address: str) -> dict:
        """``show bgp neighbor X json`` entry for X ({} when unknown)."""
        data = self.vtysh_json(f"show bgp neighbor {address} json")
        return data.get(address, {})

    def neighbor_state(self, address: str) -> str:
        return self.neighbor(address).get("bgpState", "")

    def wait_established(self, address: str, timeout: float = 30.0) -> dict:
        return wait_until(
            lambda: (n := self.neighbor(address)).get("bgpState") == "Established" and n,
            timeout, 0.25, message=f"{self.host.name}: {address} Established",
        )

    def routes(self, afi: str = "ipv4") -> dict:
        """{prefix: [path, ...]} from ``show bgp <afi> unicast json``."""
        return self.vtysh_json(f"show bgp {afi} unicast json").get("routes", {})

    def route(self, prefix: str, afi: str | None = None) -> dict:
        """``show bgp <afi> unicast <prefix> json`` ({} when absent)."""
        afi = afi or ("ipv6" if ":" in prefix else "ipv4")
        data = self.vtysh_json(f"show bgp {afi} unicast {prefix} json")
        return data if data.get("paths") else {}

    def best_path(self, prefix: str, afi: str | None = None) -> dict | None:
        for p in self.route(prefix, afi).get("paths", []):
            if p.get("bestpath", {}).get("overall"):
                return p
        return None
