#!/usr/bin/env python3
"""The lab's benchmark (not a test; docs/lab.md "Benchmark"): pattern C end to
end - tether-load (kept-alive users) -> tether -> tether-pods -> redis-server -
at a fixed offered rate of session-writing requests; prints what was served,
the latency from each request's due time (p50, p99), and Redis's own
operations per second.

  scripts/lab-bench.sh [--rate 20000] [--duration 30s] [--pods 3] [--workers 2]
                       [--new-conn] [--persistence aof-everysec|none] [--json FILE]
"""
import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lab import (LabError, Procs, ROOT, dur, fmt_dur, free_port, http, note, redis_info,  # noqa: E402
                 redis_ping, wait_for)


def cpu_seconds(pid):
    """utime + stime of a live process, seconds (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            v = f.read().rsplit(")", 1)[1].split()
        return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def main(argv):
    ap = argparse.ArgumentParser(prog="scripts/lab-bench.sh")
    ap.add_argument("--rate", type=float, default=20000, help="offered requests/s (default 20000)")
    ap.add_argument("--duration", default="30s")
    ap.add_argument("--pods", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2, help="tether's global.workers")
    ap.add_argument("--pages", type=int, default=100, help="page views per visit (mean)")
    ap.add_argument("--think", default="20ms", help="mean think time between a user's pages")
    ap.add_argument("--new-conn", action="store_true", help="a connection per request (default keep-alive)")
    ap.add_argument("--persistence", default="aof-everysec", choices=["aof-everysec", "none"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    build = os.environ.get("TETHER_BUILD", os.path.join(ROOT, "build-rel"))
    exe = {k: os.path.join(build, v) for k, v in (("tether", "src/tether"), ("pod", "src/pod/tether-pod"),
                                                   ("load", "src/load/tether-load"))}
    for b in exe.values():
        if not os.access(b, os.X_OK):
            note(f"{b} missing: meson setup build-rel --buildtype=release && ninja -C build-rel "
                 "(or TETHER_BUILD=DIR)")
            return 1
    if not shutil.which("redis-server"):
        note("redis-server is missing: scripts/install-deps.sh lab")
        return 1
    def on_signal(sig, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    d = tempfile.mkdtemp(prefix="tether-lab-bench-")
    procs = Procs(d)
    try:
        rport = free_port()
        raddr = f"127.0.0.1:{rport}"
        with open(os.path.join(d, "redis.conf"), "w") as f:
            f.write(f'port {rport}\nbind 127.0.0.1\ndir "{d}"\nsave ""\nlogfile ""\n'
                    + ("appendonly yes\nappendfsync everysec\n" if a.persistence == "aof-everysec"
                       else "appendonly no\n"))
        procs.start("redis", ["redis-server", os.path.join(d, "redis.conf")])
        if not wait_for(lambda: redis_ping(raddr), 10):
            raise LabError("redis-server did not start")
        pods = []
        for i in range(a.pods):
            addr = f"127.0.0.1:{free_port()}"
            procs.start(f"pod{i + 1}", [exe["pod"], "--name", f"pod{i + 1}", "--listen", addr,
                                        "--store", "redis", "--redis", raddr])
            pods.append(addr)
        for addr in pods:
            ok = lambda: (h := http(addr, "/health", 1)) is not None and h[1].get("x-redis") == "up"
            if not wait_for(ok, 10):
                raise LabError(f"pod {addr} did not become ready")
        port = free_port()
        servers = ", ".join(f'{{ name = "pod{i + 1}"; address = "{p}"; }}' for i, p in enumerate(pods))
        conf = os.path.join(d, "tether.conf")
        with open(conf, "w") as f:
            f.write(f'global = {{ log = "off"; workers = {a.workers}; maxconn = 100000; drain_timeout = "1s"; }};\n'
                    f'frontends = ( {{ name = "web"; bind = [ "127.0.0.1:{port}" ]; backend = "pods"; }} );\n'
                    f'backends = ( {{ name = "pods"; balance = "roundrobin"; servers = ( {servers} ); }} );\n')
        t = procs.start("tether", [exe["tether"], "-c", conf])
        if not wait_for(lambda: http(f"127.0.0.1:{port}", "/", 1) is not None or t.poll() is not None, 10) \
                or t.poll() is not None:
            raise LabError(f"tether did not start: {procs.log('tether')[-400:]}")
        users = a.rate / a.pages
        out = os.path.join(d, "load.json")
        csvp = os.path.join(d, "load.csv")
        cmd = [exe["load"], "--target", f"127.0.0.1:{port}", "--quiet", "--json", out, "--csv", csvp, "--seed", str(a.seed),
               "--duration", fmt_dur(dur(a.duration)), "--set", "pods.store=redis",
               "--set", f"clients.users_per_second={users:.6g}", "--set", f"clients.pages={a.pages}",
               "--set", f"clients.think={a.think}", "--set", "sim.report_interval=1s", "--timeout", "5s"]
        if a.new_conn:
            cmd.append("--new-conn")
        c0 = redis_info(raddr, "total_commands_processed")
        cpu0 = os.times()
        load = procs.start("tether-load", cmd)
        inst = []
        cpu = {n: cpu_seconds(p.pid) for n, p in procs.all}
        load_cpu = [0.0]

        def sample():                       # instantaneous_ops_per_sec, once a second; tether-load's CPU
            while load.poll() is None:
                time.sleep(0.2)
                c = cpu_seconds(load.pid)
                if c is not None:
                    load_cpu[0] = c
                if len(inst) < (time.time() - t0):
                    v = redis_info(raddr, "instantaneous_ops_per_sec")
                    if v is not None:
                        inst.append(v)
        t0 = time.time()
        th = threading.Thread(target=sample, daemon=True)
        th.start()
        load.wait()
        wall = time.time() - t0
        c1 = redis_info(raddr, "total_commands_processed")
        used = {}
        for n, p in procs.all:
            c = cpu_seconds(p.pid)
            if n != "tether-load" and c is not None and cpu.get(n) is not None:
                used[n] = c - cpu[n]
        th.join()
        used["tether-load"] = load_cpu[0]
        if load.returncode != 0:
            raise LabError(f"tether-load failed: {procs.log('tether-load')[-400:]}")
        j = json.load(open(out))
        sent = 0                            # commands the pods sent (one EVALSHA per page)
        for addr in pods:
            h = http(addr, "/stats", 2)
            sent += json.loads(h[2])["redis_commands"] if h and h[0] == 200 else 0
        writes = j["sessions_created"] + j["redis_hits"] + j["carts"]
        # the steady state: the rows after five mean visit lengths (the users
        # in the system, and so the rate, grow as 1 - exp(-t / visit) before)
        import csv
        ramp = 5 * a.pages * dur(a.think)
        rows = [r for r in csv.DictReader(open(csvp)) if float(r["time_s"]) > ramp]
        steady = sum(int(r["requests"]) for r in rows) / (len(rows) or 1)
        half = inst[len(inst) // 4:len(inst) * 3 // 4] or inst
        res = {"offered_per_s": a.rate, "duration_s": j["duration_s"], "pods": a.pods, "workers": a.workers,
               "keep_alive": not a.new_conn, "http_requests": j["http_requests"],
               "session_writes": writes, "session_writes_per_s": writes / j["duration_s"],
               "steady_requests_per_s": steady,
               "failed_requests": j["failed_requests"], "unavailable": j["unavailable"],
               "latency_p50_ms": j["latency_p50_ms"], "latency_p99_ms": j["latency_p99_ms"],
               "send_lag_p99_ms": j["send_lag_p99_ms"],
               "pod_redis_commands_per_s": sent / j["duration_s"],
               "redis_commands_per_s": (c1 - c0) / wall if c0 is not None and c1 is not None else None,
               "redis_instantaneous_ops_per_sec": sorted(half)[len(half) // 2] if half else None,
               "loadavg": os.getloadavg(), "cpu_seconds": {k: round(v, 2) for k, v in used.items()},
               "wall_seconds": round(wall, 2)}
        print(f"pattern C end to end: tether-load -> tether ({a.workers} worker) -> {a.pods} tether-pods -> "
              f"redis-server ({a.persistence}), {'keep-alive' if not a.new_conn else 'a connection per request'}")
        print(f"  offered            {a.rate:10.0f} requests/s for {j['duration_s']:.0f} s")
        print(f"  session writes     {res['session_writes_per_s']:10.0f} /s   ({writes} logins and pages, "
              f"every one a Redis write)")
        print(f"  steady state       {steady:10.0f} requests/s (each second after the first {ramp:.0f} s: "
              "users still arriving before)")
        print(f"  failed             {j['failed_requests']:10d}      (503 from a pod: {j['unavailable']})")
        print(f"  latency p50 / p99  {j['latency_p50_ms']:7.2f} / {j['latency_p99_ms']:.2f} ms (from each "
              f"request's due time)   send lag p99 {j['send_lag_p99_ms']:.2f} ms")
        if res["redis_commands_per_s"] is not None:
            print(f"  Redis              {res['redis_commands_per_s']:10.0f} commands/s (total_commands_processed; "
                  f"a page's EVALSHA counts its script's commands too), instantaneous_ops_per_sec median "
                  f"{res['redis_instantaneous_ops_per_sec']}; the pods sent {sent / j['duration_s']:.0f} commands/s")
        print("  CPU seconds        " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(used.items()))
              + f"  (of {wall:.0f} s x {os.cpu_count()} CPUs)")
        print(f"  load average       {res['loadavg'][0]:.2f} {res['loadavg'][1]:.2f} {res['loadavg'][2]:.2f} "
              f"({os.cpu_count()} CPUs)")
        if a.json:
            with open(a.json, "w") as f:
                json.dump(res, f, indent=1)
        return 0
    except LabError as e:
        note(str(e))
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        procs.stop_all()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
