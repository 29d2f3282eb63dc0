#!/bin/sh
# Benchmark: tether against HAProxy (mode tcp, nbthread 1) and nginx stream
# (1 worker), all in front of the same two tether-pod backends, measured in
# one run on this machine.  Prints a table per setup with ratios against
# HAProxy and keeps raw wrk output in bench/results/.
#
#   scripts/bench.sh [--quick] [--runs N] [--setup pinned|shared|both]
#                    [--only tether,nolog,haproxy,nginx,direct] [--baseline REV]
#                    [--workers N]
#
# nolog is tether with log = "off": tether's ratios against it are what
# logging one text line per connection to a file costs (printed per setup).
#
# --workers N runs every proxy with N threads or processes (tether
# global.workers, HAProxy nbthread, nginx worker_processes), and tether with
# one worker beside them as "tether1", to show what the workers cost per
# request, and HAProxy with one thread as "haproxy1", to show what a second
# thread costs HAProxy on the same machine.  The pinned setup needs N CPUs
# for the proxies and one more for wrk and the backends; on a machine
# without them it is skipped, and the script says so.
#
# --baseline REV also builds tether as it was at git revision REV (in a
# temporary worktree) and runs it as proxy "base" beside the others, then
# prints tether's ratios against it: a change's cost, measured in one run.
#
# Two setups, same processes (moved between CPUs with taskset):
#   pinned  every proxy on CPU 1, wrk and both backends on CPU 0;
#   shared  nothing pinned: all processes share both CPUs, as on a busy node,
#           so what a proxy costs per request is CPU the others do not get.
# Every proxy runs one worker thread with logging off (tether writes its log
# file).  The proxies take turns, round after round (N rounds, default 5, the
# order rotating each round), so the machine's drift hits them alike; each
# figure is the median over the rounds, each ratio the median of the
# per-round ratios (a proxy against HAProxy in the same round).  Idle memory
# is the proxy's RSS growth over 2000 idle proxied connections, per
# connection.  Last, when perf works, the system calls each proxy makes per
# request (kernel tracepoints, one keep-alive and one close run, pinned).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
runs=5 dur=8 only="direct,tether,nolog,haproxy,nginx" idle=2000 setups="pinned shared" baseline="" nw=1
usage="usage: scripts/bench.sh [--quick] [--runs N] [--setup pinned|shared|both] [--only LIST] [--baseline REV] [--workers N]"
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) runs=1 dur=3 ;;
	--runs) runs=$2; shift ;;
	--only) only=$2; shift ;;
	--baseline) baseline=$2; shift ;;
	--workers) nw=$2; shift ;;
	--setup) case $2 in pinned|shared) setups=$2 ;; both) setups="pinned shared" ;;
	         *) echo "$usage" >&2; exit 2 ;; esac; shift ;;
	*) echo "$usage" >&2; exit 2 ;;
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
	[ -n "$baseline" ] && git worktree remove --force "$work/base" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT INT TERM
ulimit -n 65536 2>/dev/null || true

P1=19101 P2=19102 PT=19080 PH=19081 PN=19082 PB=19083 P1W=19084 PO=19085 PH1=19086
if [ -n "$baseline" ]; then
	git worktree add --detach "$work/base" "$baseline" >/dev/null 2>&1 ||
		{ echo "bench: cannot check out $baseline" >&2; exit 2; }
	(cd "$work/base" && meson setup build --buildtype=release -Dtests=false >/dev/null && ninja -C build src/tether >/dev/null) ||
		{ echo "bench: cannot build $baseline" >&2; exit 2; }
	only="$only,base"
fi
[ "$nw" -gt 1 ] && only="$only,tether1,haproxy1"
"$build/src/pod/tether-pod" --name b1 --listen 127.0.0.1:$P1 & pids="$pids $!"; b1pid=$!
"$build/src/pod/tether-pod" --name b2 --listen 127.0.0.1:$P2 & pids="$pids $!"; b2pid=$!

cat > "$work/tether.conf" <<EOF
global = { maxconn = 8000; log = "$work/tether.log"; workers = $nw; };
frontends = ( { name = "bench"; bind = [ "127.0.0.1:$PT" ]; backend = "pods"; } );
backends = ( { name = "pods"; balance = "roundrobin";
  servers = ( { name = "b1"; address = "127.0.0.1:$P1"; }, { name = "b2"; address = "127.0.0.1:$P2"; } ); } );
EOF
cat > "$work/haproxy.cfg" <<EOF
global
    nbthread $nw
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
worker_processes $nw;
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
"$build/src/tether" -c "$work/tether.conf" & pids="$pids $!"; tpid=$!
bpid="" t1pid=""
if [ "$nw" -gt 1 ]; then
	sed "s/127.0.0.1:$PT/127.0.0.1:$P1W/; s|$work/tether.log|$work/tether1.log|; s/workers = $nw;/workers = 1;/" \
		"$work/tether.conf" > "$work/tether1.conf"
	"$build/src/tether" -c "$work/tether1.conf" & pids="$pids $!"; t1pid=$!
fi
if [ -n "$baseline" ]; then
	sed "s/127.0.0.1:$PT/127.0.0.1:$PB/; s|$work/tether.log|$work/base.log|" "$work/tether.conf" > "$work/base.conf"
	"$work/base/build/src/tether" -c "$work/base.conf" & pids="$pids $!"; bpid=$!
fi
opid=""
case ",$only," in *,nolog,*)
	sed "s/127.0.0.1:$PT/127.0.0.1:$PO/; s|log = \"$work/tether.log\"|log = \"off\"|" "$work/tether.conf" > "$work/nolog.conf"
	"$build/src/tether" -c "$work/nolog.conf" & pids="$pids $!"; opid=$! ;;
esac
haproxy -f "$work/haproxy.cfg" -db & pids="$pids $!"; hpid=$!
h1pid=""
if [ "$nw" -gt 1 ]; then
	sed "s/nbthread $nw/nbthread 1/; s/127.0.0.1:$PH/127.0.0.1:$PH1/" "$work/haproxy.cfg" > "$work/haproxy1.cfg"
	haproxy -f "$work/haproxy1.cfg" -db & pids="$pids $!"; h1pid=$!
fi
nginx -c "$work/nginx.conf" -p "$work" & pids="$pids $!"; npid=$!
sleep 1

median() { sort -n | awk '{a[NR]=$1} END {if (NR) print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
to_us() { # wrk latency "1.23ms" / "456.00us" / "1.2s" -> microseconds
	awk '{v=$1; if (v ~ /us$/) {sub(/us/,"",v); print v} else if (v ~ /ms$/) {sub(/ms/,"",v); print v*1000}
	      else if (v ~ /s$/) {sub(/s/,"",v); print v*1000000} else print v}'
}

cpu_ticks() { # PID... -> user + system clock ticks they used so far (threads included)
	for p in "$@"; do cat "/proc/$p/stat"; done | awk '{t += $14 + $15} END {print t}'
}

ncpu=$(nproc)
if [ "$nw" -ge "$ncpu" ]; then
	case " $setups " in *" pinned "*)
		echo "bench: the pinned setup needs $((nw + 1)) CPUs ($nw for the proxies, 1 for wrk and the backends);" \
		     "this machine has $ncpu: only the shared setup runs" >&2 ;;
	esac
	setups=shared
fi
all_cpus=$(seq -s, 0 $((ncpu - 1)))
prox_cpus=$(seq -s, $((ncpu - nw)) $((ncpu - 1)))     # the last nw CPUs
load_cpus=$(seq -s, 0 $((ncpu - nw - 1)) 2>/dev/null || true)

# place SETUP: move the running backends and proxies (every thread) onto
# the CPUs of the setup; wrk is started on them by one_run
place() {
	if [ "$1" = pinned ]; then back=$load_cpus prox=$prox_cpus wrkcpu=$load_cpus
	else back=$all_cpus prox=$all_cpus wrkcpu=$all_cpus; fi
	for p in $b1pid $b2pid; do taskset -a -pc $back "$p" >/dev/null; done
	for p in $tpid $bpid $t1pid $opid $hpid $h1pid $npid $(pgrep -P $npid); do taskset -a -pc $prox "$p" >/dev/null; done
}

# one_run SETUP NAME MODE R: one wrk run, raw output kept; for a proxy also
# the CPU time it used, in clock ticks
one_run() {
	setup=$1 name=$2 mode=$3 r=$4
	out=$results/$setup/$name-$mode-$r
	pid=$(pid_of "$name")
	[ -n "$pid" ] && c0=$(cpu_ticks $pid)
	set --
	[ "$mode" = close ] && set -- -H "Connection: close"
	taskset -c $wrkcpu wrk -t1 -c50 -d${dur}s --latency "$@" "http://127.0.0.1:$(port_of $name)/" > "$out.txt" 2>&1 || true
	[ -n "$pid" ] && echo $(( $(cpu_ticks $pid) - c0 )) > "$out.cpu"
	return 0
}

# rps / p50 / p99 / cpu FILE-STEM -> that figure of one run (µs for the
# latencies, µs of proxy CPU per request for cpu; nothing when unknown)
rps() { awk '/^Requests\/sec/ {print $2}' "$1.txt"; }
p50() { awk '$1=="50%" {print $2}' "$1.txt" | to_us; }
p99() { awk '$1=="99%" {print $2}' "$1.txt" | to_us; }
cpu() {
	[ -f "$1.cpu" ] || return 0
	awk -v t="$(cat "$1.cpu")" -v n="$(awk '/requests in/ {print $1}' "$1.txt")" -v hz="$(getconf CLK_TCK)" \
		'BEGIN { if (n > 0) printf "%.2f\n", t * 1e6 / hz / n }'
}

# figure SETUP NAME MODE WHAT -> median of WHAT over the rounds, or "-"
figure() {
	v=$(for r in $(seq "$runs"); do $4 "$results/$1/$2-$3-$r"; done | median)
	echo "${v:--}"
}

# paired SETUP NAME MODE WHAT [REF] -> median over the rounds of NAME's WHAT
# divided by REF's (default HAProxy) in the same round, "-" when unknown
paired() {
	v=$(for r in $(seq "$runs"); do
		a=$($4 "$results/$1/$2-$3-$r") b=$($4 "$results/$1/${5:-haproxy}-$3-$r")
		[ -n "$a" ] && [ -n "$b" ] && awk -v a="$a" -v b="$b" 'BEGIN { if (b > 0) print a / b }'
	done | median)
	[ -n "$v" ] && printf '%.2fx' "$v" || echo "-"
}

idle_mem() { # PID PORT -> bytes per idle proxied connection
	python3 bench/bench-idle.py "$1" "$2" "$idle"
}

port_of() {
	case $1 in direct) echo $P1 ;; tether) echo $PT ;; haproxy) echo $PH ;; nginx) echo $PN ;; base) echo $PB ;;
	tether1) echo $P1W ;; nolog) echo $PO ;; haproxy1) echo $PH1 ;; esac
}
pid_of() {
	case $1 in
	direct) echo "" ;;
	tether) echo $tpid ;;
	base) echo $bpid ;;
	tether1) echo $t1pid ;;
	nolog) echo $opid ;;
	haproxy) echo $hpid ;;
	haproxy1) echo $h1pid ;;
	nginx) p=$(cat "$work/nginx.pid" 2>/dev/null || echo $npid)
	       echo $(pgrep -P "$p" || echo "$p") ;;       # the workers are the master's children
	esac
}

who_list=""
for who in direct tether tether1 nolog base haproxy haproxy1 nginx; do
	case ",$only," in *",$who,"*) who_list="${who_list:+$who_list }$who" ;; esac
done
# The machine's speed drifts over minutes: run the proxies in turn, round
# after round, the order rotating, so drift hits them alike.
for setup in $setups; do
	mkdir -p "$results/$setup"
	place $setup
	order=$who_list
	for r in $(seq "$runs"); do
		for who in $order; do
			one_run $setup $who keepalive $r
			one_run $setup $who close $r
		done
		order="${order#* } ${order%% *}"
		echo "$setup: round $r of $runs done" >&2
	done
done

# System calls per request, counted by the kernel's tracepoints (perf) on
# the proxy during one keep-alive and one close run of the pinned setup.
syscalls_run() { # NAME MODE -> "all epoll_wait epoll_ctl" per request, or "- - -"
	out=$results/syscalls/$1-$2
	set -- "$1" "$2" "$(pid_of "$1" | tr ' ' ',')"
	win=$((dur > 3 ? dur - 2 : 1))      # counted: from 1 s into the wrk run to 1 s before its end
	hdr=""
	[ "$2" = close ] && hdr="Connection: close"
	taskset -c 0 wrk -t1 -c50 -d${dur}s ${hdr:+-H "$hdr"} "http://127.0.0.1:$(port_of "$1")/" > "$out.txt" 2>&1 &
	wrkpid=$!
	sleep 1
	perf stat -x, -o "$out.perf" -p "$3" \
		-e raw_syscalls:sys_enter,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_ctl \
		-- sleep "$win" >/dev/null 2>&1 || true
	wait $wrkpid || true
	awk -F, -v r="$(rps "$out")" -v w="$win" '$3 ~ /sys_enter/ { c[$3] = $1 }
		END { n = r * w; if (n > 0 && c["raw_syscalls:sys_enter"] > 0)
		          printf "%.2f %.2f %.2f\n", c["raw_syscalls:sys_enter"] / n,
		                 c["syscalls:sys_enter_epoll_wait"] / n, c["syscalls:sys_enter_epoll_ctl"] / n
		      else print "- - -" }' "$out.perf" 2>/dev/null || echo "- - -"
}
if command -v perf >/dev/null 2>&1; then
	mkdir -p "$results/syscalls"
	place pinned
	for who in $who_list; do
		[ $who = direct ] && continue
		eval "sys_ka_$who=\"\$(syscalls_run $who keepalive)\" sys_new_$who=\"\$(syscalls_run $who close)\""
	done
fi

for who in $who_list; do
	pid=$(pid_of $who)
	mem=-
	[ -n "$pid" ] && mem=$(idle_mem "$(echo $pid | tr ' ' ',')" "$(port_of $who)")
	eval "mem_$who=\$mem"
done

for setup in $setups; do
	echo
	echo "== $setup: $( [ $setup = pinned ] && echo "proxy on CPU 1, wrk and backends on CPU 0" ||
		echo "nothing pinned, all processes share both CPUs")" | tee "$results/$setup/table.txt"
	printf '%-8s %12s %9s %9s %12s %9s %9s %11s %10s %10s\n' proxy "keepalive/s" "p50_us" "p99_us" "newconn/s" \
		"p50_us" "p99_us" "idle_B/conn" "cpu_us/ka" "cpu_us/new" | tee -a "$results/$setup/table.txt"
	for who in $who_list; do
		eval "mem=\$mem_$who"
		printf '%-8s %12.0f %9.0f %9.0f %12.0f %9.0f %9.0f %11s %10s %10s\n' $who \
			"$(figure $setup $who keepalive rps)" "$(figure $setup $who keepalive p50)" \
			"$(figure $setup $who keepalive p99)" "$(figure $setup $who close rps)" \
			"$(figure $setup $who close p50)" "$(figure $setup $who close p99)" "$mem" \
			"$(figure $setup $who keepalive cpu)" "$(figure $setup $who close cpu)" | tee -a "$results/$setup/table.txt"
	done
	case " $who_list " in *" nolog "*)
		printf '  tether (text log to a file) against nolog (log = "off"): keepalive %s  newconn %s  p99(ka) %s  p99(new) %s  cpu/req ka %s new %s\n' \
			"$(paired $setup tether keepalive rps nolog)" "$(paired $setup tether close rps nolog)" \
			"$(paired $setup tether keepalive p99 nolog)" "$(paired $setup tether close p99 nolog)" \
			"$(paired $setup tether keepalive cpu nolog)" "$(paired $setup tether close cpu nolog)" |
			tee -a "$results/$setup/ratios.txt" ;;
	esac
	case " $who_list " in *" haproxy "*) ;; *) continue ;; esac
	echo "ratios against HAProxy, median of the per-round ratios (higher is better for rates, lower for the rest):" |
		tee -a "$results/$setup/ratios.txt"
	for who in $who_list; do
		[ $who = haproxy ] || [ $who = direct ] && continue
		eval "mem=\$mem_$who"
		printf '  %-7s keepalive %s  newconn %s  p99(ka) %s  p99(new) %s  idle memory %s  cpu/req ka %s new %s\n' $who \
			"$(paired $setup $who keepalive rps)" "$(paired $setup $who close rps)" \
			"$(paired $setup $who keepalive p99)" "$(paired $setup $who close p99)" \
			"$(awk -v a="$mem" -v b="$mem_haproxy" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2fx", a / b; else print "-" }')" \
			"$(paired $setup $who keepalive cpu)" "$(paired $setup $who close cpu)" | tee -a "$results/$setup/ratios.txt"
	done
	if [ "$nw" -gt 1 ]; then
		printf '  tether (%s workers) against tether1 (1 worker): keepalive %s  newconn %s  cpu/req ka %s new %s\n' \
			"$nw" "$(paired $setup tether keepalive rps tether1)" "$(paired $setup tether close rps tether1)" \
			"$(paired $setup tether keepalive cpu tether1)" "$(paired $setup tether close cpu tether1)" |
			tee -a "$results/$setup/ratios.txt"
		printf '  haproxy (%s threads) against haproxy1 (1 thread): keepalive %s  newconn %s  cpu/req ka %s new %s\n' \
			"$nw" "$(paired $setup haproxy keepalive rps haproxy1)" "$(paired $setup haproxy close rps haproxy1)" \
			"$(paired $setup haproxy keepalive cpu haproxy1)" "$(paired $setup haproxy close cpu haproxy1)" |
			tee -a "$results/$setup/ratios.txt"
	fi
	[ -n "$baseline" ] || continue
	printf '  tether against base (%s): keepalive %s  newconn %s  p99(ka) %s  p99(new) %s  cpu/req ka %s new %s\n' \
		"$baseline" "$(paired $setup tether keepalive rps base)" "$(paired $setup tether close rps base)" \
		"$(paired $setup tether keepalive p99 base)" "$(paired $setup tether close p99 base)" \
		"$(paired $setup tether keepalive cpu base)" "$(paired $setup tether close cpu base)" |
		tee -a "$results/$setup/ratios.txt"
done
if [ -d "$results/syscalls" ]; then
	echo
	echo "== system calls per request (pinned, one run each, perf tracepoints on the proxy)" |
		tee "$results/syscalls/table.txt"
	printf '%-8s %8s %11s %10s %8s %11s %10s\n' proxy "ka:all" "epoll_wait" "epoll_ctl" "new:all" \
		"epoll_wait" "epoll_ctl" | tee -a "$results/syscalls/table.txt"
	for who in $who_list; do
		[ $who = direct ] && continue
		eval "ka=\$sys_ka_$who new=\$sys_new_$who"
		# shellcheck disable=SC2086 # three fields each
		printf '%-8s %8s %11s %10s %8s %11s %10s\n' $who $ka $new | tee -a "$results/syscalls/table.txt"
	done
fi
echo "raw results: $results"
