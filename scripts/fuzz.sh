#!/bin/sh
# Builds the libFuzzer targets with clang and runs each for a bounded time.
#   scripts/fuzz.sh [SECONDS]     (default 60)
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
ninja -C "$dir" tests/fuzz/fuzz_http >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp tests/fuzz/corpus/* "$work/"
"$dir/tests/fuzz/fuzz_http" -max_total_time="$secs" -max_len=4096 -print_final_stats=1 "$work" 2>&1 |
	grep -E 'stat::number_of_executed_units|ERROR|SUMMARY|Done' || true
# libFuzzer's exit status is lost in the pipe: a crash leaves a crash- file.
if ls crash-* leak-* timeout-* >/dev/null 2>&1; then
	echo "fuzz_http: crash found (crash-* files in $(pwd))"
	exit 1
fi
echo "fuzz_http: no crash in ${secs}s"
