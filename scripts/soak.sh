#!/bin/sh
# Soak (a benchmark, not a test): mixed keep-alive and new-connection HTTP
# load through tether to four tether-pods for N minutes (default 30), with
# random pod kills and restarts, reloads with a changed file (weights,
# balance) and runtime-API changes (drain, enable, set weight, add and del
# a server).  Prints, per minute, tether's descriptors and RSS at rest, the
# requests done and the failed ones split into "by design" (in flight or
# kept alive on a killed pod) and "other"; then a verdict: descriptors and
# RSS flat within 5 % after the first minute, no "other" failure.  Exit
# status 0 when the verdict holds.  scripts/soak.py has the details.
#
#   scripts/soak.sh [--minutes N] [--json FILE] [--seed N] [--workers N] [--think SECONDS] [--keep]
#
# Binaries: $TETHER and $TETHER_POD when set (scripts/test.sh passes its
# plain debug build); otherwise a release build in build-release, as
# scripts/bench.sh makes.  No sanitizer: RSS must mean something.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
if [ -z "${TETHER:-}" ] || [ -z "${TETHER_POD:-}" ]; then
	scripts/install-deps.sh build
	build=build-release
	[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release -Dtests=false >/dev/null
	ninja -C "$build" src/tether src/pod/tether-pod >/dev/null
	TETHER=$build/src/tether TETHER_POD=$build/src/pod/tether-pod
fi
exec python3 scripts/soak.py --tether "$TETHER" --pod "$TETHER_POD" "$@"
