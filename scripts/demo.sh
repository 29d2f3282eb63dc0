#!/bin/sh
# The main job on an embedded default: installs what is missing, builds,
# starts three demo pods (tether-pod) on 127.0.0.1:9001..9003 and tether with
# conf/tether.conf in front of them on 127.0.0.1:8080, prints what to try,
# and stops everything it started on Ctrl-C.
#
#   scripts/demo.sh [CONFIG]        (default conf/tether.conf)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
conf=${1:-conf/tether.conf}
build=${BUILDDIR:-build}

scripts/install-deps.sh build
[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release -Dtests=false >/dev/null
ninja -C "$build" >/dev/null

pids=""
cleanup() {
	trap - INT TERM EXIT
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	echo "demo: stopped"
}
trap cleanup INT TERM EXIT

for i in 1 2 3; do
	"$build/src/pod/tether-pod" --name "pod$i" --listen "127.0.0.1:900$i" &
	pids="$pids $!"
done
"$build/src/tether" -t -c "$conf"
"$build/src/tether" -c "$conf" &
pids="$pids $!"
sleep 0.5

cat <<MSG

tether is balancing 127.0.0.1:8080 over pod1..pod3 (config: $conf).
Try, in another terminal:
  curl -s http://127.0.0.1:8080/               # answers pod1, pod2, pod3 in turn
  for i in 1 2 3 4 5 6; do curl -s http://127.0.0.1:8080/; done
  $build/src/tether -x /tmp/tether.sock "show servers"
  curl -s http://127.0.0.1:9100/metrics | head
Press Ctrl-C to stop everything this script started.
MSG
wait
