#!/bin/sh
# Builds the libFuzzer targets with clang and runs each for a bounded time.
#   scripts/fuzz.sh [SECONDS]     (default 60, per target)
# Exits non-zero when a target crashes, leaks or times out in this run.
# This run's inputs that did are kept in $FUZZBUILDDIR/fuzz-artifacts/RUN/
# (only this run's: an old crash file anywhere does not fail a later run).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
secs=${1:-60}
dir=${FUZZBUILDDIR:-build-fuzz}
scripts/install-deps.sh test
if [ ! -f "$dir/build.ninja" ]; then
	CC=clang meson setup "$dir" -Dfuzz=true -Dtests=true --buildtype=debugoptimized >/dev/null
fi
# leaks inside libraries we do not own, each explained there
LSAN_OPTIONS=suppressions=$top/tests/fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}
export LSAN_OPTIONS
run=$(date -u +%Y%m%dT%H%M%SZ)-$$
arts="$top/$dir/fuzz-artifacts/$run"
status=0
# target:corpus folder
for t in fuzz_http:corpus fuzz_proxy:corpus-proxy fuzz_config:corpus-config fuzz_admin:corpus-admin; do
	name=${t%%:*}; corpus=tests/fuzz/${t#*:}
	ninja -C "$dir" "tests/fuzz/$name" >/dev/null
	work=$(mktemp -d)
	cp "$corpus"/* "$work/"
	mkdir -p "$arts/$name"
	log="$arts/$name/fuzz.log"
	rc=0
	(cd "$arts/$name" && "$top/$dir/tests/fuzz/$name" -max_total_time="$secs" -max_len=4096 -print_final_stats=1 \
		-artifact_prefix="$arts/$name/" "$work" >"$log" 2>&1) || rc=$?
	grep -E 'stat::number_of_executed_units|ERROR|SUMMARY|Done' "$log" || true
	found=$(find "$arts/$name" -maxdepth 1 \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | head -n 1)
	if [ "$rc" -ne 0 ] || [ -n "$found" ]; then
		echo "$name: failed (exit $rc; inputs and log in $arts/$name)"
		status=1
	else
		echo "$name: no crash in ${secs}s"
	fi
	rm -rf "$work"
done
exit $status
