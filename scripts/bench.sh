#!/bin/sh
# Benchmark: tether against HAProxy (mode tcp, nbthread 1) and nginx stream
# (1 worker), all in front of the same two tether-pod backends, measured in
# one run on this machine.  Prints a table with ratios against HAProxy and
# keeps raw wrk output in bench/results/.
#
#   scripts/bench.sh [--quick] [--runs N] [--only tether,haproxy,nginx,direct]
#
# Fairness: every proxy runs one worker thread with logging off and is
# pinned to CPU 1; wrk and the two backends share CPU 0.  The proxies take
# turns, round after round (N rounds, default 5); each figure is the median
# over the rounds.  Idle memory is the proxy's
# RSS growth over 2000 idle proxied connections, per connection.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
runs=5 dur=8 only="direct,tether,haproxy,nginx" idle=2000
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) runs=1 dur=3 ;;
	--runs) runs=$2; shift ;;
	--only) only=$2; shift ;;
	*) echo "usage: scripts/bench.sh [--quick] [--runs N] [--only LIST]" >&2; exit 2 ;;
	esac
	shift
done

scripts/install-deps.sh build bench
build=build-release
[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release -Dtests=false >/dev/null
ninja -C "$build" src/tether src/pod/tether-pod >/dev/null

work=$(mktemp -d)
results=bench/results/$(date +%Y%m%d-%H%M%S)
mkdir -p "$results"
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM
ulimit -n 65536 2>/dev/null || true

P1=19101 P2=19102 PT=19080 PH=19081 PN=19082
taskset -c 0 "$build/src/pod/tether-pod" --name b1 --listen 127.0.0.1:$P1 & pids="$pids $!"
taskset -c 0 "$build/src/pod/tether-pod" --name b2 --listen 127.0.0.1:$P2 & pids="$pids $!"

cat > "$work/tether.conf" <<EOF
global = { maxconn = 8000; log = "$work/tether.log"; };
frontends = ( { name = "bench"; bind = [ "127.0.0.1:$PT" ]; backend = "pods"; } );
backends = ( { name = "pods"; balance = "roundrobin";
  servers = ( { name = "b1"; address = "127.0.0.1:$P1"; }, { name = "b2"; address = "127.0.0.1:$P2"; } ); } );
EOF
cat > "$work/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 8000
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend bench
    bind 127.0.0.1:$PH
    default_backend pods
backend pods
    balance roundrobin
    server b1 127.0.0.1:$P1
    server b2 127.0.0.1:$P2
EOF
cat > "$work/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 8000; }
stream {
    upstream pods { server 127.0.0.1:$P1; server 127.0.0.1:$P2; }
    server { listen 127.0.0.1:$PN; proxy_pass pods; }
}
EOF

# Note: the tether log is a file; one line per connection is part of what is measured.
taskset -c 1 "$build/src/tether" -c "$work/tether.conf" & pids="$pids $!"; tpid=$!
taskset -c 1 haproxy -f "$work/haproxy.cfg" -db & pids="$pids $!"; hpid=$!
taskset -c 1 nginx -c "$work/nginx.conf" -p "$work" & pids="$pids $!"; npid=$!
sleep 1

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
to_us() { # wrk latency "1.23ms" / "456.00us" / "1.2s" -> microseconds
	awk '{v=$1; if (v ~ /us$/) {sub(/us/,"",v); print v} else if (v ~ /ms$/) {sub(/ms/,"",v); print v*1000}
	      else if (v ~ /s$/) {sub(/s/,"",v); print v*1000000} else print v}'
}

cpu_ticks() { # PID -> user + system clock ticks used so far
	awk '{print $14 + $15}' "/proc/$1/stat"
}

# one_run NAME PORT MODE R: one wrk run, raw output kept; for a proxy also
# the CPU time it used, in clock ticks
one_run() {
	name=$1 port=$2 mode=$3 r=$4
	pid=$(pid_of "$name")
	[ -n "$pid" ] && c0=$(cpu_ticks "$pid")
	set --
	[ "$mode" = close ] && set -- -H "Connection: close"
	taskset -c 0 wrk -t1 -c50 -d${dur}s --latency "$@" "http://127.0.0.1:$port/" \
		> "$results/$name-$mode-$r.txt" 2>&1 || true
	[ -n "$pid" ] && echo $(( $(cpu_ticks "$pid") - c0 )) > "$results/$name-$mode-$r.cpu"
	return 0
}

# cpu_per_req NAME MODE -> µs of proxy CPU per request, median over the runs
cpu_per_req() {
	hz=$(getconf CLK_TCK)
	for f in "$results/$1-$2-"*.cpu; do
		[ -f "$f" ] || { echo "-"; return; }
		req=$(awk '/requests in/ {print $1}' "${f%.cpu}.txt")
		awk -v t="$(cat "$f")" -v n="${req:-0}" -v hz="$hz" 'BEGIN { if (n > 0) printf "%.2f\n", t * 1e6 / hz / n }'
	done | median
}

# summary NAME MODE -> "rps p50 p99", medians over the runs
summary() {
	rps=$(cat "$results/$1-$2-"*.txt | awk '/^Requests\/sec/ {print $2}' | median)
	p50=$(cat "$results/$1-$2-"*.txt | awk '$1=="50%" {print $2}' | to_us | median)
	p99=$(cat "$results/$1-$2-"*.txt | awk '$1=="99%" {print $2}' | to_us | median)
	echo "${rps:-0} ${p50:-0} ${p99:-0}"
}

idle_mem() { # PID PORT -> bytes per idle proxied connection
	python3 bench/bench-idle.py "$1" "$2" "$idle"
}

port_of() {
	case $1 in direct) echo $P1 ;; tether) echo $PT ;; haproxy) echo $PH ;; nginx) echo $PN ;; esac
}
pid_of() {
	case $1 in
	direct) echo "" ;;
	tether) echo $tpid ;;
	haproxy) echo $hpid ;;
	nginx) p=$(cat "$work/nginx.pid" 2>/dev/null || echo $npid)
	       pgrep -P "$p" | head -1 || echo "$p" ;;     # the worker is the child of the master
	esac
}

who_list=""
for who in direct tether haproxy nginx; do
	case ",$only," in *",$who,"*) who_list="$who_list $who" ;; esac
done
# The machine's speed drifts over minutes: run the proxies in turn, round
# after round, so drift hits them alike; medians over the rounds.
for r in $(seq "$runs"); do
	for who in $who_list; do
		one_run $who "$(port_of $who)" keepalive $r
		one_run $who "$(port_of $who)" close $r
	done
	echo "round $r of $runs done" >&2
done

printf '%-8s %12s %9s %9s %12s %9s %9s %10s %10s %10s\n' proxy "keepalive/s" "p50_us" "p99_us" "newconn/s" "p50_us" "p99_us" \
	"idle_B/conn" "cpu_us/ka" "cpu_us/new" | tee "$results/table.txt"
for who in $who_list; do
	set -- $(summary $who keepalive); ka=$1 ka50=$2 ka99=$3
	set -- $(summary $who close); nc=$1 nc50=$2 nc99=$3
	mem="-"
	pid=$(pid_of $who)
	[ -n "$pid" ] && mem=$(idle_mem "$pid" "$(port_of $who)")
	cka="-" cnc="-"
	[ -n "$pid" ] && cka=$(cpu_per_req $who keepalive) && cnc=$(cpu_per_req $who close)
	printf '%-8s %12.0f %9.0f %9.0f %12.0f %9.0f %9.0f %10s %10s %10s\n' $who "$ka" "$ka50" "$ka99" "$nc" "$nc50" "$nc99" \
		"$mem" "$cka" "$cnc" | tee -a "$results/table.txt"
done

echo
awk 'NR>1 {ka[$1]=$2; k99[$1]=$4; nc[$1]=$5; n99[$1]=$7; mem[$1]=$8; cka[$1]=$9; cnc[$1]=$10}
     END { if (!("haproxy" in ka) || ka["haproxy"] == 0) exit;
       printf "ratios against HAProxy (higher is better for rates, lower for latency and memory):\n";
       for (p in ka) if (p != "haproxy" && p != "direct")
         printf "  %-7s keepalive %.2fx  newconn %.2fx  p99(ka) %.2fx  p99(new) %.2fx  idle memory %s  cpu/req ka %s new %s\n", p,
           ka[p]/ka["haproxy"], nc[p]/nc["haproxy"], k99[p]/k99["haproxy"], n99[p]/n99["haproxy"],
           ratio(mem[p], mem["haproxy"]), ratio(cka[p], cka["haproxy"]), ratio(cnc[p], cnc["haproxy"]) }
     function ratio(a, b) { return (a == "-" || b == "-" || b == 0) ? "-" : sprintf("%.2fx", a / b) }' \
	"$results/table.txt" | tee "$results/ratios.txt"
echo "raw results: $results"
