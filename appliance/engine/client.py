"""fcrctl: ask the running engine over its control socket.

    fcrctl bgp.summary
    fcrctl bgp.rib '{"family": "ipv4-unicast", "prefix": "10.0.0.0/24"}'
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from typing import Any

DEFAULT_SOCKET = "/run/fcr/fcrd.sock"


class ControlError(Exception):
    pass


class ControlClient:
    """Blocking client; one request at a time."""

    def __init__(self, path: str = DEFAULT_SOCKET, timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.file = self.sock.makefile("rb")
        self._id = 0

    def call(self, method: str, **params: Any) -> Any:
        self._id += 1
        self.sock.sendall(json.dumps({"id": self._id, "method": method, "params": params}).encode() + b"\n")
        line = self.file.readline()
        if not line:
            raise ControlError("engine closed the control connection")
        resp = json.loads(line)
        if "error" in resp:
            raise ControlError(resp["error"]["message"])
        return resp["result"]

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="fcrctl", description="Query the FCR routing engine")
    ap.add_argument("--socket", default=DEFAULT_SOCKET)
    ap.add_argument("method", help="e.g. bgp.summary, bgp.neighbors, bgp.rib, bgp.adj-rib, bgp.clear")
    ap.add_argument("params", nargs="?", default="{}", help="JSON object of parameters")
    args = ap.parse_args(argv)
    try:
        params = json.loads(args.params)
        with ControlClient(args.socket) as c:
            print(json.dumps(c.call(args.method, **params), indent=2, sort_keys=True))
    except (OSError, ControlError, json.JSONDecodeError) as exc:
        print(f"fcrctl: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
