#!/bin/sh
# Simulator benchmark: runs the retailer day (sim/scenarios/retail-day.conf)
# and prints simulated requests per second of wall time on one core and
# the memory per live session (peak RSS over peak live sessions).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
scripts/install-deps.sh build
build=build-release
[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release -Dtests=false >/dev/null
ninja -C "$build" sim/tether-sim >/dev/null
out=$(mktemp)
trap 'rm -f "$out"' EXIT
start=$(date +%s.%N)
/usr/bin/time -f "%M" -o "$out.rss" taskset -c 1 "$build/sim/tether-sim" -c sim/scenarios/retail-day.conf \
	--quiet --json "$out"
end=$(date +%s.%N)
python3 - "$out" "$out.rss" "$start" "$end" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
rss = int(open(sys.argv[2]).read().split()[-1]) * 1024
wall = float(sys.argv[4]) - float(sys.argv[3])
print(f"retail day: {d['requests']:,} requests in {wall:.1f} s wall = {d['requests'] / wall / 1e6:.2f} M simulated requests/s")
print(f"peak live sessions {d['live_sessions_peak']:,}, peak RSS {rss / 1e6:.1f} MB = "
      f"{rss / max(1, d['live_sessions_peak']):.0f} bytes per live session (upper bound: includes the binary and heap)")
PY
rm -f "$out.rss"
