"""fcrd: the FCR routing engine daemon.

    fcrd --config /etc/fcr/fcrd.json [--control /run/fcr/fcrd.sock]

Exit codes: 0 after a clean shutdown (SIGTERM/SIGINT: every BGP peer gets CEASE /
Administrative Shutdown with an RFC 8203 message first, BFD sessions go AdminDown and
the BFD worker process exits; the kernel routes stay, DESIGN.md invariant 5), 2 for a
bad configuration (nothing is started), 1 for a failure to start (e.g. the BGP port is
taken; whatever had started is stopped again).

The BFD worker is a child process that exits when its pipe to fcrd closes, so it
never outlives fcrd, even when fcrd is killed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys

from . import __version__
from .config.native import ConfigError, EngineConfig, SystemConfig, load_file
from .engine.control import ControlServer
from .engine.engine import Engine
from .log import log_event, setup_logging

log = logging.getLogger("fcr.daemon")

SHUTDOWN_MESSAGE = "FCR shutting down"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="fcrd", description="FCR routing engine")
    ap.add_argument("--config", help="startup configuration (RFC 7951 JSON); without it the engine "
                    "starts empty and waits for the management plane's config.apply")
    ap.add_argument("--control", default="/run/fcr/fcrd.sock", help="control socket path (engine API)")
    ap.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    ap.add_argument("--version", action="version", version=f"fcrd {__version__}")
    return ap.parse_args(argv)


async def _run(engine: Engine, control_path: str) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reason: list[str] = []

    def _on_signal(signame: str) -> None:
        reason.append(signame)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, sig.name)

    control = ControlServer(engine, control_path)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(control_path)), exist_ok=True)
        await control.start()
        await engine.start()
    except OSError as exc:
        log_event(log, "daemon.start-failed", level=logging.ERROR, error=str(exc))
        print(f"fcrd: cannot start: {exc}", file=sys.stderr)
        await engine.stop("start failed")
        await control.close()
        return 1
    if engine.bgp is not None:
        g = engine.bgp.config.global_
        where = ", ".join(f"[{a}]:{g.listen_port}" if ":" in a else f"{a}:{g.listen_port}" for a in g.listen_addresses)
        print(f"fcrd {__version__}: BGP AS {g.asn} router-id {g.router_id} listening on {where or 'nothing (no listen address)'}; "
              f"control socket {control_path}", file=sys.stderr, flush=True)
    # Start-up objects are permanent: keep them out of every future GC pass, and
    # collect the young generation less often - a full table allocates millions of
    # short-lived containers that reference counting frees anyway.
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    log_event(log, "daemon.ready", control=control_path, pid=os.getpid())
    await stop.wait()
    log_event(log, "daemon.stopping", signal=reason[0] if reason else "")
    await engine.stop(SHUTDOWN_MESSAGE)
    await control.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    setup_logging(args.log_level)
    try:
        config = load_file(args.config) if args.config else EngineConfig(SystemConfig(), None)
    except ConfigError as exc:
        # Nothing is started for a bad file: message names the JSON path, exit 2.
        print(f"fcrd: invalid configuration {args.config}: {exc.path}: {exc.message}", file=sys.stderr)
        return 2
    engine = Engine(config, kernel=True)
    profile_to = os.environ.get("FCRD_PROFILE")
    if profile_to:
        # Developer aid: profile the whole run, written on clean exit (SIGTERM).
        import cProfile

        prof = cProfile.Profile()
        try:
            return prof.runcall(asyncio.run, _run(engine, args.control))
        finally:
            prof.dump_stats(profile_to)
    return asyncio.run(_run(engine, args.control))


if __name__ == "__main__":
    sys.exit(main())
