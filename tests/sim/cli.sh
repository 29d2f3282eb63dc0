#!/bin/sh
# tether-sim command line: what it refuses, and stdout holding only JSON with
# `--json -` (issue 14, item 10).  $1: the tether-sim binary.
set -u
sim=$1
fails=0
check() {       # check NAME EXPECTED-STATUS COMMAND...
	name=$1 want=$2
	shift 2
	"$@" >/tmp/cli.$$.out 2>/tmp/cli.$$.err
	got=$?
	if [ "$got" != "$want" ]; then
		echo "FAIL $name: status $got, want $want"; cat /tmp/cli.$$.err; fails=$((fails + 1))
	else
		echo "ok   $name"
	fi
}
check "--seed -1 refused" 2 "$sim" --seed -1
check "--seed 1e3 refused" 2 "$sim" --seed 1e3
check "--plot out.pdf refused before running" 2 "$sim" --plot /tmp/out.pdf
grep -q "png or .svg" /tmp/cli.$$.err || { echo "FAIL --plot message"; fails=$((fails + 1)); }
check "--duration 0s refused" 2 "$sim" --duration 0s
check "--set error names the option" 2 "$sim" --set sim.report_interval=0s
grep -q "^--set sim.report_interval=0s: " /tmp/cli.$$.err || { echo "FAIL --set message"; fails=$((fails + 1)); }
check "--json - prints only JSON" 0 "$sim" --pattern C --duration 60s --json -
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["requests"] > 0' /tmp/cli.$$.out \
	|| { echo "FAIL stdout is not the JSON alone"; fails=$((fails + 1)); }
check "--runs 3 --json -" 0 "$sim" --pattern A --duration 60s --runs 3 --json -
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["runs"] == 3 and "ci95" in d["session_miss_rate"]' \
	/tmp/cli.$$.out || { echo "FAIL --runs JSON"; fails=$((fails + 1)); }
check "--compare-patterns honours --set and --duration" 0 "$sim" --compare-patterns --set pods.count=4 --duration 120s
grep -q "4 pods, 120 s simulated" /tmp/cli.$$.out || { echo "FAIL compare header"; cat /tmp/cli.$$.out; fails=$((fails + 1)); }
check "--params: the scenario as read, not run" 0 "$sim" -c "$(dirname "$0")/../../sim/scenarios/pod-crash.conf" \
	--params --set redis.down_for=3s --seed 9 --duration 2m
python3 -c 'import json, sys; d = json.load(open(sys.argv[1]))
assert d["failures.crash_at"] == 300 and d["failures.crash_pod"] == "pod2" and d["pods.replace_after"] == 60, d
assert d["redis.down_for"] == 3 and d["sim.seed"] == 9 and d["sim.duration"] == 120 and d["redis.crash_at"] == -1, d
assert d["backend.balance"] == "cookie" and d["backend.servers"] == ["pod1", "pod2", "pod3"], d
assert d["pods.store"] == "memory" and d["redis.save"] == "3600 1 300 100 60 10000", d' /tmp/cli.$$.out \
	|| { echo "FAIL --params JSON"; cat /tmp/cli.$$.out; fails=$((fails + 1)); }
check "--params with a bad scenario" 2 "$sim" --params --set failures.crash_pod=pod9 --set failures.crash_at=1s
rm -f /tmp/cli.$$.out /tmp/cli.$$.err
[ "$fails" = 0 ]
