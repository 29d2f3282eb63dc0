#!/usr/bin/env python3
"""Live vs tether-sim for the done-when scenarios (docs/lab.md, "Live vs
simulated"): runs scripts/lab.sh -c SCENARIO --seed N --json for each, JPAR
at a time, and prints the table (markdown).

  python3 scripts/lab/compare.py [--seed 1] [--jobs 4] [--out DIR] [SCENARIO.conf ...]
  python3 scripts/lab/compare.py --table DIR      # the table of runs already made
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT = ["pattern-a", "pattern-b", "pattern-c", "pattern-d", "pod-crash",
           "redis-crash-none", "redis-crash-aof-everysec", "redis-crash-aof-always"]


def verdict(l, s):
    miss_ok = abs(l["session_miss_rate"] - s["session_miss_rate"]) * 100 <= 2
    dl = l["sessions_lost"] - s["sessions_lost"]
    lost_ok = abs(dl) <= max(20, 0.10 * s["sessions_lost"])
    return miss_ok, lost_ok


def table(out):
    rows = []
    for f in sorted(os.listdir(out)):
        if not f.endswith(".json"):
            continue
        j = json.load(open(os.path.join(out, f)))
        l, s = j["live"], j["sim"]
        mo, lo = verdict(l, s)
        rows.append(f"| {j['scenario']} | {j['duration_s']:.0f} | {l['requests']} / {s['requests']} | "
                    f"{100 * l['session_miss_rate']:.2f} / {100 * s['session_miss_rate']:.2f} "
                    f"({100 * (l['session_miss_rate'] - s['session_miss_rate']):+.2f} pp) {'ok' if mo else 'NO'} | "
                    f"{l['sessions_lost']} / {s['sessions_lost']} ({l['sessions_lost'] - s['sessions_lost']:+d}) "
                    f"{'ok' if lo else 'NO'} | {l['redis_ops_per_sec']:.1f} / {s['redis_ops_per_sec']:.1f} | "
                    f"{l['logins_failed']} / {s['logins_failed']} | {l['failed_requests']} / {s['failed_requests']} |")
    print("| scenario | s | requests live / sim | miss rate % live / sim | sessions lost live / sim | "
          "Redis ops/s live / sim | logins failed live / sim | failed requests live / sim |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--out", default="lab-compare")
    ap.add_argument("--table", metavar="DIR")
    ap.add_argument("scenarios", nargs="*")
    a = ap.parse_args()
    if a.table:
        table(a.table)
        return 0
    os.makedirs(a.out, exist_ok=True)
    todo = [s if s.endswith(".conf") else os.path.join(ROOT, "sim", "scenarios", s + ".conf")
            for s in (a.scenarios or DEFAULT)]
    running = []
    while todo or running:
        while todo and len(running) < a.jobs:
            sc = todo.pop(0)
            name = os.path.basename(sc)[:-5]
            log = open(os.path.join(a.out, name + ".log"), "w")
            p = subprocess.Popen([os.path.join(ROOT, "scripts", "lab.sh"), "-c", sc, "--seed", str(a.seed),
                                  "--json", os.path.join(a.out, name + ".json"),
                                  "--plot", os.path.join(a.out, name + ".png")], stdout=log, stderr=log)
            running.append((name, p, log))
        time.sleep(1)
        for r in list(running):
            if r[1].poll() is not None:
                r[2].close()
                print(f"{r[0]}: exit {r[1].returncode}", file=sys.stderr)
                running.remove(r)
    table(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
