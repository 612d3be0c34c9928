"""Run BFD sessions from fcr-bfd JSON and print every state change as a JSON line.

    python -m appliance.bfd.standalone --config bfd.json [--state-file s.json] [--duration 600]

A test and bench driver until the engine runs BFD itself: stdout gets one line per state
change ({"event": "transition", "peer", "old", "new", "diag", "time"}); with
``--state-file`` the session dicts are rewritten there (atomically) every 100 ms.
SIGTERM/SIGINT stop it (sessions go silent, as a crash would look to the peer; with
``--admin-down-on-exit`` they send AdminDown first).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time

from .config import from_json
from .session import BfdManager


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--state-file")
    ap.add_argument("--duration", type=float, default=3600.0, help="exit after this (s)")
    ap.add_argument("--admin-down-on-exit", action="store_true")
    args = ap.parse_args(argv)
    with open(args.config) as f:
        configs = from_json(json.load(f))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def on_change(peer: str, old: str, new: str, diag: str) -> None:
        line = {"event": "transition", "peer": peer, "old": old, "new": new, "diag": diag,
                "time": time.time(), "monotonic": time.monotonic()}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()

    mgr = BfdManager()
    mgr.add_listener(on_change)
    mgr.start()
    try:
        for c in configs:
            mgr.add_session(c)
        print(json.dumps({"event": "started", "sessions": len(configs)}), flush=True)
        deadline = time.monotonic() + args.duration
        while not stop.is_set() and time.monotonic() < deadline:
            if args.state_file:
                tmp = args.state_file + ".tmp"
                with open(tmp, "w") as f:
                    json.dump({"sessions": mgr.sessions(), "stats": mgr.stats}, f)
                os.replace(tmp, args.state_file)
            stop.wait(0.1)
    finally:
        mgr.stop(admin_down=args.admin_down_on_exit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
