#!/bin/sh
# Simulator benchmark: runs the retailer day (sim/scenarios/retail-day.conf)
# N times (default 3) and prints simulated requests per second of wall time
# on one core for each run and their median, and the memory per live session
# (peak RSS over peak live sessions).  This machine's speed drifts by tens
# of percent over minutes: quote the median.
#
#   scripts/sim-bench.sh [--runs N]
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
runs=3
if [ "${1:-}" = "--runs" ] && [ -n "${2:-}" ]; then runs=$2; fi
scripts/install-deps.sh build
build=build-release
[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release -Dtests=false >/dev/null
ninja -C "$build" sim/tether-sim >/dev/null
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for r in $(seq "$runs"); do
	start=$(date +%s.%N)
	/usr/bin/time -f "%M" -o "$out/rss.$r" taskset -c 1 "$build/sim/tether-sim" -c sim/scenarios/retail-day.conf \
		--quiet --json "$out/run.$r.json"
	end=$(date +%s.%N)
	echo "$start $end" > "$out/wall.$r"
done
python3 - "$out" "$runs" <<'PY'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
rates = []
for r in range(1, runs + 1):
    d = json.load(open(f"{out}/run.{r}.json"))
    start, end = map(float, open(f"{out}/wall.{r}").read().split())
    rss = int(open(f"{out}/rss.{r}").read().split()[-1]) * 1024
    wall = end - start
    rates.append(d['requests'] / wall / 1e6)
    print(f"run {r}: {d['requests']:,} requests in {wall:.1f} s wall = {rates[-1]:.2f} M simulated requests/s")
print(f"retail day: median {statistics.median(rates):.2f} M simulated requests/s over {runs} runs (one core)")
print(f"peak live sessions {d['live_sessions_peak']:,}, peak RSS {rss / 1e6:.1f} MB = "
      f"{rss / max(1, d['live_sessions_peak']):.0f} bytes per live session (upper bound: includes the binary and heap)")
PY
