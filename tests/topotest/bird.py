"""BIRD 2 in a namespace: foreground daemon, private control socket, `birdc` helpers."""

from __future__ import annotations

import os
import re
import subprocess

from . import wait_until
from .netns import Host
from .router import Router


class BirdError(RuntimeError):
    pass


class BirdRouter(Router):
    """One BIRD instance; ``config_text`` is a complete bird.conf body.

    The helper prepends a ``log`` line to a file in ``workdir``. Started with
    ``bird -f -c bird.conf -s bird.ctl -P bird.pid`` (foreground, so the pid is ours).
    """

    def __init__(
        self, host: Host, workdir: os.PathLike | str, config_text: str, *, start: bool = True
    ) -> None:
        super().__init__(host, workdir)
        self.config_text = config_text
        self.ctl = self.workdir / "bird.ctl"
        self.conf = self.workdir / "bird.conf"
        if start:
            self.start()

    def start(self) -> None:
        self.conf.write_text(f'log "{self.workdir}/bird.log" all;\n' + self.config_text)
        check = self.host.run(["bird", "-p", "-c", str(self.conf)], check=False)
        if check.returncode != 0:
            raise BirdError(f"bird.conf rejected: {check.stderr}{check.stdout}")
        self._spawn(
            "bird",
            ["bird", "-f", "-c", str(self.conf), "-s", str(self.ctl),
             "-P", str(self.workdir / "bird.pid")],
        )
        try:
            wait_until(
                lambda: self.running("bird") and "ready" in self._birdc_raw("show status").lower(),
                15, 0.1, message=f"{self.host.name} bird control socket",
            )
        except AssertionError as exc:
            raise BirdError(f"{exc}\n--- bird.out\n{self.tail('bird.out')}") from exc

    @property
    def bird_pid(self) -> int:
        return self.pid("bird")

    def _birdc_raw(self, cmd: str) -> str:
        res = subprocess.run(
            ["birdc", "-s", str(self.ctl), *cmd.split()],
            capture_output=True, text=True, timeout=15,
        )
        return res.stdout + res.stderr

    def birdc(self, cmd: str) -> str:
        """Output of a birdc command, without the "BIRD x.y ready." banner."""
        out = self._birdc_raw(cmd)
        lines = out.splitlines()
        if lines and lines[0].startswith("BIRD ") and lines[0].rstrip().endswith("ready."):
            lines = lines[1:]
        text = "\n".join(lines)
        if text.startswith("Unable to connect"):
            raise BirdError(text)
        return text

    # -- protocols --------------------------------------------------------------------------
    def protocol(self, name: str) -> dict:
        """Parse ``show protocols all NAME``.

        Returns {"name", "proto", "state" (up/start/down), "info" (e.g. "Established"),
        "bgp-state", "neighbor-as", "last-error", "channels": {"ipv4": {"state",
        "imported", "exported", "preferred", "filtered"}}, "raw"}.
        """
        out = self.birdc(f"show protocols all {name}")
        res: dict = {"name": name, "channels": {}, "raw": out}
        channel = None
        for line in out.splitlines():
            if not line.strip():
                continue
            if line.startswith("Name"):
                continue
            if not line.startswith(" ") and line.split()[0] == name:
                parts = line.split(None, 5)
                res["proto"] = parts[1] if len(parts) > 1 else ""
                res["state"] = parts[3] if len(parts) > 3 else ""
                rest = parts[5] if len(parts) > 5 else ""
                # "Since" can be "12:00:00.000" or a date + time; Info is the last word(s)
                res["info"] = rest.split()[-1] if rest.split() else ""
                continue
            s = line.strip()
            m = re.match(r"Channel (\S+)", s)
            if m:
                channel = res["channels"].setdefault(m.group(1), {})
                continue
            if ":" not in s:
                continue
            key, _, val = s.partition(":")
            key, val = key.strip(), val.strip()
            if channel is not None and key == "State":
                channel["state"] = val
            elif channel is not None and key == "Routes":
                for num, what in re.findall(r"(\d+) (\w+)", val):
                    channel[what] = int(num)
            elif key == "BGP state":
                res["bgp-state"] = val
                channel = None
            elif key == "Neighbor AS":
                res["neighbor-as"] = int(val)
            elif key == "Last error":
                res["last-error"] = val
            elif key == "Neighbor address":
                res["neighbor-address"] = val
        return res

    def bgp_state(self, name: str) -> str:
        return self.protocol(name).get("bgp-state", "")

    def wait_established(self, name: str, timeout: float = 30.0) -> dict:
        return wait_until(
            lambda: (p := self.protocol(name)).get("bgp-state") == "Established" and p,
            timeout, 0.25, message=f"{self.host.name}: protocol {name} Established",
        )

    # -- routes -----------------------------------------------------------------------------
    def route_count(self, args: str = "") -> int:
        """``show route [args] count`` -> number of routes."""
        out = self.birdc(f"show route {args} count".replace("  ", " "))
        m = re.search(r"(\d+) of (\d+) routes", out)
        if m:
            return int(m.group(1))
        m = re.search(r"(\d+) routes", out)
        if m:
            return int(m.group(1))
        raise BirdError(f"no count in {out!r}")

    def routes(self, table: str = "master4", protocol: str | None = None) -> dict:
        """Parse ``show route all table T [protocol P]`` -> {prefix: [route, ...]}.

        A route: {"type" (unicast/blackhole/...), "protocol", "primary" (bool), "via",
        "attrs": {"BGP.as_path": "...", "BGP.local_pref": "100", ...}}.
        """
        cmd = f"show route all table {table}"
        if protocol:
            cmd += f" protocol {protocol}"
        return parse_routes(self.birdc(cmd))


_ROUTE_RE = re.compile(r"^(?P<prefix>\S+)?\s+(?P<type>\w+) \[(?P<proto>\S+) [^\]]*\](?P<rest>.*)$")


def parse_routes(out: str) -> dict:
    routes: dict[str, list[dict]] = {}
    prefix = None
    cur: dict | None = None
    for line in out.splitlines():
        if not line.strip() or line.startswith("Table "):
            continue
        m = _ROUTE_RE.match(line)
        if m and not line.startswith("\t"):
            if m.group("prefix"):
                prefix = m.group("prefix")
            if prefix is None:
                continue
            cur = {
                "type": m.group("type"),
                "protocol": m.group("proto"),
                "primary": " * " in f"{m.group('rest')} ",
                "via": None,
                "attrs": {},
            }
            routes.setdefault(prefix, []).append(cur)
            continue
        if cur is None:
            continue
        s = line.strip()
        if s.startswith("via "):
            cur["via"] = s.split()[1]
        elif ":" in s:
            key, _, val = s.partition(":")
            cur["attrs"][key.strip()] = val.strip()
    return routes
