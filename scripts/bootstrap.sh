#!/bin/sh
# Idempotent: installs the Debian packages and the virtualenv FCR needs.
# Safe to run again; does nothing that is already done.
set -eu
cd "$(dirname "$0")/.."

DEB_PACKAGES="python3 python3-venv python3-dev gcc libyang2-dev pkg-config iproute2 nftables procps tcpdump tmux frr bird2 gobgpd exabgp"

missing=""
for p in $DEB_PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "bootstrap: installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q </dev/null
    apt-get install -y -q --no-install-recommends $missing </dev/null
fi

# The Debian packages start their daemons; tests and benchmarks run their own
# copies in namespaces, so the host-wide ones are stopped and kept from starting.
for svc in frr bird gobgpd exabgp; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
        systemctl stop "$svc" || true
        systemctl disable "$svc" >/dev/null 2>&1 || true
    fi
done

PY=/usr/bin/python3
STAMP=.venv/.fcr-stamp
want="$(cat pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -x .venv/bin/python ] || [ "$(cat $STAMP 2>/dev/null)" != "$want" ]; then
    echo "bootstrap: preparing .venv"
    [ -x .venv/bin/python ] || $PY -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip </dev/null
    .venv/bin/python -m pip install -q -e '.[test]' </dev/null
    echo "$want" > $STAMP
fi
echo "bootstrap: ready"
