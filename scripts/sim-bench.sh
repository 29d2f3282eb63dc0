#!/bin/sh
# Simulator benchmark.
#  1. The retailer day (sim/scenarios/retail-day.conf: 5 M users, ~285 M
#     requests, Redis and pod capacity models on) N times (default 3) on one
#     core (taskset -c 1): simulated requests per second of wall time and per
#     CPU second for each run, their medians, and the memory per live session
#     (peak RSS over peak live sessions, an upper bound).  This machine is
#     shared and its speed drifts by tens of percent over minutes: quote the
#     medians; requests per CPU second suffer least from other load.
#  2. --runs 8 replications of 30 minutes of the retail peak
#     (sim/scenarios/retail-peak.conf) on 1 thread and on 2: the speed-up of
#     wall time, and the CPU time each took (what two free cores would give).
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
sim=$build/sim/tether-sim
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for r in $(seq "$runs"); do
	start=$(date +%s.%N)
	/usr/bin/time -f "%M %U %S" -o "$out/rss.$r" taskset -c 1 "$sim" -c sim/scenarios/retail-day.conf \
		--quiet --json "$out/run.$r.json"
	end=$(date +%s.%N)
	echo "$start $end" > "$out/wall.$r"
done
for t in 1 2; do
	uptime > "$out/load.$t"
	/usr/bin/time -f "%U %S" -o "$out/cpu.$t" "$sim" -c sim/scenarios/retail-peak.conf --duration 30m --runs 8 \
		--threads $t --quiet --json "$out/runs.$t.json"
done
python3 - "$out" "$runs" <<'PY'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
rates, cpu_rates = [], []
for r in range(1, runs + 1):
    d = json.load(open(f"{out}/run.{r}.json"))
    start, end = map(float, open(f"{out}/wall.{r}").read().split())
    rss_kb, user, sys_ = open(f"{out}/rss.{r}").read().split()[-3:]
    rss, cpu, wall = int(rss_kb) * 1024, float(user) + float(sys_), end - start
    rates.append(d['requests'] / wall / 1e6)
    cpu_rates.append(d['requests'] / cpu / 1e6)
    print(f"run {r}: {d['requests']:,} requests in {wall:.1f} s wall ({cpu:.1f} s CPU) = "
          f"{rates[-1]:.2f} M simulated requests/s ({cpu_rates[-1]:.2f} M per CPU second)")
print(f"retail day: median {statistics.median(rates):.2f} M simulated requests/s of wall time, "
      f"{statistics.median(cpu_rates):.2f} M per CPU second, over {runs} runs (one core)")
print(f"peak live sessions {d['live_sessions_peak']:,}, peak RSS {rss / 1e6:.1f} MB = "
      f"{rss / max(1, d['live_sessions_peak']):.0f} bytes per live session (upper bound: includes the binary and heap)")
one, two = (json.load(open(f"{out}/runs.{t}.json")) for t in (1, 2))
cpu = [sum(map(float, open(f"{out}/cpu.{t}").read().split()[-2:])) for t in (1, 2)]
load = [open(f"{out}/load.{t}").read().split("load average:")[-1].split(",")[0].strip() for t in (1, 2)]
print(f"--runs 8 (retail peak, 30 min each): {one['wall_seconds']:.2f} s on 1 thread, {two['wall_seconds']:.2f} s "
      f"on 2 threads: speed-up {one['wall_seconds'] / two['wall_seconds']:.2f}x of wall time")
print(f"  CPU time {cpu[0]:.2f} s on 1 thread, {cpu[1]:.2f} s on 2: the work a thread does costs "
      f"{cpu[1] / cpu[0]:.2f}x when two run at once, so two free cores give at most "
      f"{2 * cpu[0] / cpu[1]:.2f}x (load average before each: {load[0]}, {load[1]}; "
      f"with other processes on the cores the wall speed-up falls short of that)")
PY
