#!/bin/sh
# Installs what is missing, builds tether with AddressSanitizer and
# UndefinedBehaviorSanitizer, and runs every test: unit (cmocka), integration
# (the real binaries on loopback), simulator validation, lab; then the daemon's
# unit and integration tests again with ThreadSanitizer and global.workers = 2;
# then a bounded fuzz run and the valgrind suite under valgrind; last, a
# 2-minute soak (scripts/soak.sh).  The last line printed is "N passed,
# N failed" for the whole suite.  Exit status 0 only when nothing failed.
#
#   scripts/test.sh            everything
#   QUICK=1 scripts/test.sh    skip the valgrind and fuzz passes (the TSan pass and the soak stay)
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1

scripts/install-deps.sh test lab plot || { echo "0 passed, 1 failed"; exit 1; }

asan=${BUILDDIR:-build-test}
logs="$asan/suite-logs"
rm -rf "$logs"; mkdir -p "$logs"
status=0

run_meson_tests() { # name builddir [meson test args...]
	name=$1; dir=$2; shift 2
	meson test -C "$dir" --print-errorlogs --num-processes 2 "$@"
	rc=$?
	cp "$dir/meson-logs/testlog.json" "$logs/$name.json" 2>/dev/null || true
	[ $rc -eq 0 ] || status=1
}

if [ ! -f "$asan/build.ninja" ]; then
	meson setup "$asan" -Db_sanitize=address,undefined -Db_lundef=false -Dwerror=true \
		--buildtype=debugoptimized || { echo "0 passed, 1 failed"; exit 1; }
fi
if ! ninja -C "$asan"; then echo "0 passed, 1 failed"; exit 1; fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
run_meson_tests asan "$asan"

# ThreadSanitizer, two workers: every integration test, and the daemon's unit tests
tsan=${TSANBUILDDIR:-build-tsan}
if [ ! -f "$tsan/build.ninja" ]; then
	meson setup "$tsan" -Db_sanitize=thread -Db_lundef=false -Dwerror=true --buildtype=debugoptimized >/dev/null ||
		status=1
fi
if ninja -C "$tsan" >/dev/null; then
	export TETHER_TEST_WORKERS=2 TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:exitcode=66}"
	run_meson_tests tsan "$tsan" --suite integration --suite daemon
	unset TETHER_TEST_WORKERS
else
	status=1
fi

if [ -z "${QUICK:-}" ]; then
	# valgrind needs a build without ASan: a plain debug build of the same tree.
	vg=${VGBUILDDIR:-build-valgrind}
	if [ ! -f "$vg/build.ninja" ]; then
		meson setup "$vg" -Dwerror=true --buildtype=debug >/dev/null || status=1
	fi
	if ninja -C "$vg" >/dev/null; then
		TETHER_VALGRIND=1 run_meson_tests valgrind "$vg" --suite valgrind
	else
		status=1
	fi
	if [ -x scripts/fuzz.sh ]; then
		if scripts/fuzz.sh "${FUZZ_SECONDS:-60}"; then r=OK; else r=FAIL; status=1; fi
		printf '{"name": "fuzz", "result": "%s"}\n' "$r" > "$logs/fuzz.json"
	fi
fi

# A 2-minute soak (pod kills, reloads, runtime-API changes under load) on a
# build without sanitizers, so that RSS means something: the valgrind pass's
# plain debug build, or (QUICK=1) scripts/soak.sh's own release build.
vg=${VGBUILDDIR:-build-valgrind}
if [ -z "${QUICK:-}" ] && [ -x "$vg/src/tether" ] && [ -x "$vg/src/pod/tether-pod" ]; then
	export TETHER="$vg/src/tether" TETHER_POD="$vg/src/pod/tether-pod"
fi
if scripts/soak.sh --minutes 2; then r=OK; else r=FAIL; status=1; fi
unset TETHER TETHER_POD
printf '{"name": "soak", "result": "%s"}\n' "$r" > "$logs/soak.json"

python3 - "$logs" <<'PY'
import json, os, sys
passed = failed = skipped = 0
for f in sorted(os.listdir(sys.argv[1])):
    for line in open(os.path.join(sys.argv[1], f)):
        line = line.strip()
        if not line:
            continue
        r = json.loads(line).get("result")
        if r in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif r == "SKIP":
            skipped += 1
        else:
            failed += 1
print(f"suite logs: {sys.argv[1]}")
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
sys.exit(1 if failed else 0)
PY
[ $? -eq 0 ] || status=1
exit $status
