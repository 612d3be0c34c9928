"""fcr-mgmtd: the management plane process (owns the datastores, outlives fcrd).

    fcr-mgmtd --state-dir /var/lib/fcr/mgmt --engine-socket /run/fcr/fcrd.sock

It loads startup.json, pushes running to the engine, keeps watching the engine (a restarted
engine gets running again) and serves the front ends (NETCONF, CLI) that attach to the
ManagementPlane object in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from ..engine.client import DEFAULT_SOCKET
from ..log import log_event
from .engine_link import EngineLink
from .plane import ManagementPlane

log = logging.getLogger("fcr.mgmt")

DEFAULT_STATE_DIR = "/var/lib/fcr/mgmt"


async def run(state_dir: str, engine_socket: str | None, poll_interval: float = 1.0) -> None:
    engine = EngineLink(engine_socket, poll_interval=poll_interval) if engine_socket else None
    plane = ManagementPlane(state_dir, engine)
    await plane.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    log_event(log, "mgmtd.ready", state_dir=state_dir, engine=engine_socket or "")
    try:
        await stop.wait()
    finally:
        await plane.stop()
        log_event(log, "mgmtd.stop")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="fcr-mgmtd", description="FCR management plane")
    ap.add_argument("--state-dir", default=DEFAULT_STATE_DIR)
    ap.add_argument("--engine-socket", default=DEFAULT_SOCKET, help="fcrd control socket ('' for none)")
    ap.add_argument("--poll-interval", type=float, default=1.0)
    ap.add_argument("--log-level", default="info")
    args = ap.parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level.upper(), logging.INFO), stream=sys.stderr)
    try:
        asyncio.run(run(args.state_dir, args.engine_socket or None, args.poll_interval))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
