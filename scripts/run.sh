#!/bin/bash
# `make run`: fcrd (the routing engine, started empty) and fcr-mgmtd (the management plane:
# datastores + NETCONF) in the foreground; Ctrl-C stops both (fcrd sends CEASE to its peers).
#
#   STATE_DIR   management state: startup.json, history/, NETCONF host key  (default ./run/mgmt)
#   CONFIG      first-start configuration, copied to STATE_DIR/startup.json when that is missing
#               (default docs/examples/fcrd.json), with a user admin added
#   ADMIN_KEYS  authorized_keys file for admin (optional); without it a random admin password
#               is made at first start and printed once
#   CONTROL     fcrd control socket (default /run/fcr/fcrd.sock)
#   NETCONF_HOST / NETCONF_PORT   (default :: / 830)
#   NSR_STORE   checkpoint store of the engine (default run/nsr.db): the fcr-nsr:switchover RPC
#               then upgrades the engine in service (a new fcrd takes the sessions over)
set -u
cd "$(dirname "$0")/.."

PY=.venv/bin/python
STATE_DIR=${STATE_DIR:-run/mgmt}
CONFIG=${CONFIG:-docs/examples/fcrd.json}
CONTROL=${CONTROL:-/run/fcr/fcrd.sock}
NETCONF_HOST=${NETCONF_HOST:-::}
NETCONF_PORT=${NETCONF_PORT:-830}
ADMIN_KEYS=${ADMIN_KEYS:-}
LOG_DIR=${LOG_DIR:-run/log}
NSR_STORE=${NSR_STORE:-run/nsr.db}

mkdir -p "$(dirname "$CONTROL")" "$STATE_DIR" "$LOG_DIR"
for f in fcrd fcr-mgmtd; do   # the previous run's logs become *.log.1
    [ -e "$LOG_DIR/$f.log" ] && mv -f "$LOG_DIR/$f.log" "$LOG_DIR/$f.log.1"
done
chmod 700 "$STATE_DIR"
first_start=0
[ -e "$STATE_DIR/startup.json" ] || first_start=1

fcrd_pid=""
mgmtd_pid=""
# the engine serving $CONTROL now (after an in-service upgrade it is not $fcrd_pid)
engine_pid() {
    "$PY" -c 'import sys; from appliance.engine.client import ControlClient
try:
    print(ControlClient(sys.argv[1], timeout=2).call("engine.ping")["pid"])
except Exception:
    pass' "$CONTROL" 2>/dev/null
}
stop() {
    trap - INT TERM
    cur=$(engine_pid)
    [ -n "$cur" ] && [ "$cur" != "$fcrd_pid" ] && fcrd_pid="$fcrd_pid $cur"
    echo
    echo "run: stopping fcr-mgmtd ($mgmtd_pid) and fcrd ($fcrd_pid)"
    [ -n "$mgmtd_pid" ] && kill -TERM "$mgmtd_pid" 2>/dev/null
    for pid in $fcrd_pid; do kill -TERM "$pid" 2>/dev/null; done
    for pid in $mgmtd_pid $fcrd_pid; do
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    exit 0
}
trap stop INT TERM

# the engine starts empty; the management plane gives it the running configuration
"$PY" -m appliance.daemon --control "$CONTROL" --nsr-store "$NSR_STORE" --engine-id "fcrd-$$" \
    2>>"$LOG_DIR/fcrd.log" &
fcrd_pid=$!

set -- --state-dir "$STATE_DIR" --engine-socket "$CONTROL" \
       --engine-command "$PY -m appliance.daemon --nsr-store $NSR_STORE" --engine-log "$LOG_DIR/fcrd.log" \
       --netconf-host "$NETCONF_HOST" --netconf-port "$NETCONF_PORT" --initial-config "$CONFIG"
if [ -n "$ADMIN_KEYS" ]; then
    set -- "$@" --admin-authorized-keys "$ADMIN_KEYS"
fi
# stdout (the first-start password) on the console, the log to a file
"$PY" -m appliance.mgmt.daemon "$@" 2>>"$LOG_DIR/fcr-mgmtd.log" &
mgmtd_pid=$!

# wait (bounded) until NETCONF answers
ready=0
for _ in $(seq 1 100); do
    if ! kill -0 "$mgmtd_pid" 2>/dev/null || ! kill -0 "$fcrd_pid" 2>/dev/null; then break; fi
    if grep -q "event=mgmtd.ready" "$LOG_DIR/fcr-mgmtd.log" 2>/dev/null; then ready=1; break; fi
    sleep 0.2
done
if [ "$ready" != 1 ]; then
    echo "run: fcrd or fcr-mgmtd did not come up; last lines of the logs:"
    tail -n 20 "$LOG_DIR/fcrd.log" "$LOG_DIR/fcr-mgmtd.log"
    stop
fi

"$PY" - "$STATE_DIR/startup.json" "$NETCONF_HOST" "$NETCONF_PORT" "$CONTROL" "$first_start" "$ADMIN_KEYS" \
    "$LOG_DIR" <<'EOF'
import json, sys
startup, host, port, control, first, keys, logs = sys.argv[1:8]
cfg = json.load(open(startup))
g = cfg.get("fcr-bgp:bgp", {}).get("global", {})
listen = g.get("listen", {})
addrs = listen.get("address", ["0.0.0.0", "::"])
bgp_port = listen.get("port", 179)
where = ", ".join(f"[{a}]:{bgp_port}" if ":" in a else f"{a}:{bgp_port}" for a in addrs)
print(f"run: BGP      AS {g.get('as', '-')}, listening on {where}")
print(f"run: NETCONF  ssh on [{host}]:{port} (subsystem netconf), e.g. localhost:{port}")
if first == "1" and not keys:
    print("run: log in as admin with the password printed above (printed once; "
          "delete the state dir to start over)")
elif keys:
    print(f"run: log in as admin with a key from {keys}")
else:
    print("run: log in as a user of /fcr-system:system/users (the admin password was printed at first start)")
print(f"run: engine   control socket {control} (.venv/bin/fcrctl --socket {control} bgp.summary)")
print(f"run: logs in {logs}/ (fcrd.log, fcr-mgmtd.log); Ctrl-C stops both")
EOF

# run until Ctrl-C, or until one of the two exits
while kill -0 "$mgmtd_pid" 2>/dev/null && { kill -0 "$fcrd_pid" 2>/dev/null || [ -n "$(engine_pid)" ]; }; do
    sleep 1 &
    wait $!
done
echo "run: a daemon exited; see $LOG_DIR"
stop
