#!/bin/sh
# Builds the libFuzzer targets with clang and runs each for a bounded time.
#   scripts/fuzz.sh [SECONDS]     (default 60, per target)
# Exits non-zero when a target crashes.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
secs=${1:-60}
dir=${FUZZBUILDDIR:-build-fuzz}
scripts/install-deps.sh test
if [ ! -f "$dir/build.ninja" ]; then
	CC=clang meson setup "$dir" -Dfuzz=true -Dtests=true --buildtype=debugoptimized >/dev/null
fi
status=0
# target:corpus folder
for t in fuzz_http:corpus fuzz_proxy:corpus-proxy; do
	name=${t%%:*}; corpus=tests/fuzz/${t#*:}
	ninja -C "$dir" "tests/fuzz/$name" >/dev/null
	work=$(mktemp -d)
	cp "$corpus"/* "$work/"
	out=$(mktemp -d)
	(cd "$out" && "$top/$dir/tests/fuzz/$name" -max_total_time="$secs" -max_len=4096 -print_final_stats=1 "$work" 2>&1) |
		grep -E 'stat::number_of_executed_units|ERROR|SUMMARY|Done' || true
	# libFuzzer's exit status is lost in the pipe: a crash leaves a crash- file.
	# (one `ls` of three globs fails when any one of them matches nothing)
	found=$(find "$out" -maxdepth 1 \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \) | head -n 1)
	if [ -n "$found" ]; then
		mkdir -p fuzz-crashes
		cp "$out"/crash-* "$out"/leak-* "$out"/timeout-* fuzz-crashes/ 2>/dev/null || true
		echo "$name: crash found (inputs in $top/fuzz-crashes)"
		status=1
	else
		echo "$name: no crash in ${secs}s"
	fi
	rm -rf "$work" "$out"
done
exit $status
