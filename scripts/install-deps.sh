#!/bin/sh
# Installs the Debian packages tether needs, only those missing.
#   scripts/install-deps.sh [build] [test] [lab] [bench] [plot]   (default: build)
# Needs root (apt-get) when something is missing; does nothing otherwise.
set -eu

pkgs_build="gcc libc6-dev meson ninja-build pkg-config libev-dev libxxhash-dev libconfig-dev libhiredis-dev libc-ares-dev"
pkgs_test="libcmocka-dev python3 valgrind clang libclang-rt-14-dev redis-server curl procps chromium"
pkgs_lab="redis-server redis-sentinel"
pkgs_bench="haproxy nginx libnginx-mod-stream wrk linux-perf"
pkgs_plot="gnuplot-nox"

want=""
[ $# -eq 0 ] && set -- build
for group in "$@"; do
	case "$group" in
	build) want="$want $pkgs_build" ;;
	test) want="$want $pkgs_build $pkgs_test" ;;
	lab) want="$want $pkgs_build $pkgs_lab" ;;
	bench) want="$want $pkgs_build $pkgs_bench" ;;
	plot) want="$want $pkgs_plot" ;;
	*) echo "install-deps: unknown group '$group' (build test lab bench plot)" >&2; exit 2 ;;
	esac
done

missing=""
for p in $want; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		case " $missing " in *" $p "*) ;; *) missing="$missing $p" ;; esac
	fi
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing" >&2
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
		echo "install-deps: run as root to install:$missing" >&2; exit 1
	fi
else
	SUDO=""
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
