#!/bin/sh
# The whole suite, as CI runs it: lint, unit + property + bounded fuzz, then the
# interop tests with real FRR/BIRD/GoBGP peers in network namespaces.
set -eu
cd "$(dirname "$0")/.."
PY=.venv/bin/python

echo "== lint"
$PY -m ruff check appliance tests bench

echo "== tests"
# -p no:cacheprovider: CI runs from a clean clone; nothing to cache.
set +e
$PY -m pytest -p no:cacheprovider -q -ra --durations=15 tests
rc=$?
set -e
# Safety net: nothing a test started may outlive the run.
for ns in $(ip netns list 2>/dev/null | awk '/^fcrt-/{print $1}'); do ip netns delete "$ns" 2>/dev/null || true; done
if [ "$rc" -eq 5 ]; then
    echo "run-tests: pytest collected no tests" >&2
    exit 1
fi
exit "$rc"
