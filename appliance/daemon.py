"""fcrd: the FCR routing engine daemon.

    fcrd --config /etc/fcr/fcrd.json [--control /run/fcr/fcrd.sock]

Exit codes: 0 after a clean shutdown (SIGTERM/SIGINT: every BGP peer gets CEASE /
Administrative Shutdown with an RFC 8203 message first, BFD sessions go AdminDown and
the BFD worker process exits; the kernel routes stay, DESIGN.md invariant 5), 2 for a
bad configuration (nothing is started), 1 for a failure to start (e.g. the BGP port is
taken; whatever had started is stopped again).

The BFD worker is a child process that exits when its pipe to fcrd closes, so it
never outlives fcrd, even when fcrd is killed — unless a socket holder keeps the sessions
across a crash (``--nsr-holder PATH``, appliance/nsr/crash.py): the holder then keeps the
worker's pipe too, and ``--recover`` (implied when the holder has orphaned sessions)
continues the sessions and re-attaches the worker.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import signal
import socket
import sys
from typing import Any

from . import __version__
from .config.native import ConfigError, EngineConfig, SystemConfig, load_file
from .engine.control import ControlServer
from .engine.engine import Engine, config_digest
from .log import log_event, setup_logging
from .loopwatch import GcPauseLog, LoopWatch

log = logging.getLogger("fcr.daemon")

SHUTDOWN_MESSAGE = "FCR shutting down"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="fcrd", description="FCR routing engine")
    ap.add_argument("--config", help="startup configuration (RFC 7951 JSON); without it the engine "
                    "starts empty and waits for the management plane's config.apply")
    ap.add_argument("--control", default="/run/fcr/fcrd.sock", help="control socket path (engine API)")
    ap.add_argument("--nsr-store", help="checkpoint store for non-stop routing (an embedded store "
                    "file path, or a mongodb:// URI); without it NSR is off")
    ap.add_argument("--engine-id", help="this engine's id in the checkpoint store (default: "
                    "the host name and process id)")
    ap.add_argument("--nsr-lease-ttl", type=float, default=10.0, help="seconds an engine that stops "
                    "renewing keeps the ownership of its sessions")
    ap.add_argument("--standby", action="store_true", help="start as the NSR standby: own nothing "
                    "until the active engine hands its sessions over (nsr.adopt)")
    ap.add_argument("--control-after-adopt", help="standby: take this control socket path over "
                    "once the sessions are adopted (the active engine's well-known path)")
    ap.add_argument("--nsr-holder", help="socket holder (Unix socket path) that keeps the sessions "
                    "across a crash of this engine (appliance/nsr/crash.py); started detached when "
                    "nobody serves the path")
    ap.add_argument("--recover", action="store_true", help="continue the sessions the holder keeps "
                    "for a crashed engine (implied when it has any; needs --nsr-holder)")
    ap.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    ap.add_argument("--version", action="version", version=f"fcrd {__version__}")
    return ap.parse_args(argv)


async def _run(engine: Engine, control_path: str, takeover_path: str | None = None,
               guard: Any = None, recover: bool = False) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reason: list[str] = []

    def _on_signal(signame: str) -> None:
        reason.append(signame)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, sig.name)

    control = ControlServer(engine, control_path)
    if engine.nsr is not None and takeover_path:
        engine.nsr.on_adopted = lambda: control.move_to(takeover_path)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(control_path)), exist_ok=True)
        await control.start()
        if guard is not None:
            await guard.start()
        await engine.start()
        if recover and guard is not None:
            await guard.recover()
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
    # short-lived containers that reference counting frees anyway. A generation-1 pass
    # every 5 young ones stays short (about 300,000 objects: 0.1-0.15 s while a table
    # loads, 0.4-0.6 s at every 50th); full passes stay as rare (5,000 young ones).
    gc.freeze()
    gc.set_threshold(50_000, 5, 1000)
    gc_log = GcPauseLog()
    gc.callbacks.append(gc_log)
    watch = LoopWatch()  # scheduler slips: loop.slip in the log
    watch.start()
    log_event(log, "daemon.ready", control=control_path, pid=os.getpid())
    await stop.wait()
    await watch.stop()
    gc.callbacks.remove(gc_log)
    log_event(log, "daemon.stopping", signal=reason[0] if reason else "")
    if guard is not None:
        await guard.stop()  # first: the sessions closed next get their FIN
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
    recover = False
    if args.nsr_holder and not args.standby:
        from .nsr.holder import query

        held = query(args.nsr_holder) or {}
        orphans = [s["key"] for s in held.get("sessions", []) if s.get("orphan")]
        recover = bool(orphans) or any(b.get("orphan") for b in held.get("bfd") or [])
        if args.recover and not recover:
            log_event(log, "daemon.nothing-to-recover", holder=args.nsr_holder)
    elif args.recover:
        print("fcrd: --recover needs --nsr-holder (and not --standby)", file=sys.stderr)
        return 2
    engine = Engine(config, kernel=True, standby=args.standby or recover)
    if args.config:
        with open(args.config, encoding="utf-8") as f:
            engine.config_digest = config_digest(json.load(f))
    if args.nsr_store:
        from .nsr.agent import NsrAgent

        engine.nsr = NsrAgent(engine, args.nsr_store, args.engine_id or f"{socket.gethostname()}-{os.getpid()}",
                              standby=args.standby, lease_ttl=args.nsr_lease_ttl)
    elif args.standby:
        print("fcrd: --standby needs --nsr-store", file=sys.stderr)
        return 2
    guard = None
    if args.nsr_holder:
        from .nsr.crash import CrashGuard

        guard = CrashGuard(engine, args.nsr_holder, args.engine_id or f"{socket.gethostname()}-{os.getpid()}",
                           holder_log=os.path.join(os.path.dirname(os.path.abspath(args.nsr_holder)),
                                                   "holder.log"))
        engine.nsr_hooks = guard
    profile_to = os.environ.get("FCRD_PROFILE")
    if profile_to:
        # Developer aid: profile the whole run, written on clean exit (SIGTERM).
        import cProfile

        prof = cProfile.Profile()
        try:
            return prof.runcall(asyncio.run, _run(engine, args.control, args.control_after_adopt,
                                                  guard, recover))
        finally:
            prof.dump_stats(profile_to)
    return asyncio.run(_run(engine, args.control, args.control_after_adopt, guard, recover))


if __name__ == "__main__":
    sys.exit(main())
