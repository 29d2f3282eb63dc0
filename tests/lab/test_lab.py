#!/usr/bin/env python3
"""Tests of the lab runner, scripts/lab.sh (docs/lab.md): short live runs of
each pattern against real redis-server, tether-pods, tether and
tether-load, each checked for its signature and against tether-sim; the
processes it starts are all gone after a run, after Ctrl-C and after bad
input.

Run one: python3 tests/lab/test_lab.py NAME (TETHER_BUILD: the build
directory, default build/).  Every `def test_NAME(` is a test (meson reads
this file).
"""
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import labkit  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB = os.path.join(ROOT, "scripts", "lab.sh")
# users every second, pages of half a second: enough page views in 15 s
FAST = ["--set", "clients.think=500ms", "--set", "clients.users_per_second=10"]


def left_running(run_dir):
    """Processes started by the lab run whose directory is run_dir: the lab
    puts TETHER_LAB_RUN=run_dir in every child's environment, and runs Redis
    and the sentinels in directories under run_dir (redis-server writes its
    process title over its environment, so the mark alone misses them)."""
    mark = f"TETHER_LAB_RUN={run_dir}".encode()
    root = os.path.realpath(run_dir)
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().split(b"\0")
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if cwd.endswith(" (deleted)"):
            cwd = cwd[:-len(" (deleted)")]
        inside = cwd == root or cwd.startswith(root + os.sep)
        if (mark in env or inside) and state != "Z":
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                found.append(f.read().replace(b"\0", b" ").decode(errors="replace"))
    return found


def lab(*args, timeout=150):
    """Runs the lab in its own directory; (exit status, output, JSON or
    None), the JSON with the rows of its --csv as "csv"."""
    d = tempfile.mkdtemp(prefix="test-lab-")
    out, csv_path = os.path.join(d, "out.json"), os.path.join(d, "out.csv")
    r = subprocess.run([LAB, "--dir", os.path.join(d, "run"), "--json", out, "--csv", csv_path, *args],
                       capture_output=True, text=True, timeout=timeout)
    left = left_running(os.path.join(d, "run"))
    assert not left, f"left running: {left}"
    j = json.load(open(out)) if os.path.exists(out) else None
    if j is not None and os.path.exists(csv_path):
        with open(csv_path) as f:
            j["csv"] = list(csv.DictReader(f))
    subprocess.run(["rm", "-rf", d])
    return r.returncode, r.stdout + r.stderr, j


def pattern(x, *extra):
    rc, out, j = lab("--pattern", x, "--duration", "15s", "--seed", "3", "--quiet", *FAST, *extra)
    assert rc == 0, out
    live, sim = j["live"], j["sim"]
    assert live["failed_requests"] == 0, live
    assert live["requests_logged_in"] > 300, live
    # the table: live, tether-sim and the difference, per metric
    assert "miss rate %" in out and "tether-sim" in out, out
    return live, sim


def test_pattern_a_two_thirds_miss():
    """A (pod memory, round-robin over 3 pods): about 2 of 3 page views
    miss, live as predicted."""
    live, sim = pattern("A")
    assert 0.58 < live["session_miss_rate"] < 0.75, live
    assert abs(live["session_miss_rate"] - sim["session_miss_rate"]) < 0.05, (live, sim)


def test_pattern_b_no_miss():
    """B (pod memory, cookie affinity): no miss while the pods live."""
    live, sim = pattern("B")
    assert live["misses"] == 0 and live["local_hit_rate"] == 1.0, live
    assert sim["session_miss_rate"] == 0, sim


def test_pattern_c_d_redis_reads():
    """C (Redis, round-robin) and D (Redis + cache, affinity): no miss; every
    page of C reads Redis, D reads it at least 5x less."""
    c, _ = pattern("C")
    d, _ = pattern("D")
    assert c["misses"] == 0 and d["misses"] == 0, (c, d)
    assert c["redis_hit_rate"] == 1.0 and c["redis_commands"] > 0, c
    assert d["local_hit_rate"] > 0.9, d
    assert d["redis_reads"] * 5 <= c["redis_reads"], (d["redis_reads"], c["redis_reads"])


def test_pod_crash_loses_its_sessions():
    """B with pod2 killed -9 half-way and replaced: the sessions of visiting
    users on pod2 are lost (counted at the kill), the replacement is added
    through tether's runtime API, and tether-sim predicts a loss too."""
    rc, out, j = lab("--pattern", "B", "--duration", "16s", "--seed", "3", "--quiet", *FAST,
                     "--crash", "pod2@6s", "--set", "pods.replace_after=2s", "--set", "pods.startup=1s")
    assert rc == 0, out
    live, sim = j["live"], j["sim"]
    assert live["sessions_lost"] > 5 and sim["sessions_lost"] > 5, (live, sim)
    assert any("kill -9 pod2" in e for _, e in j["events"]), j["events"]
    assert any("pod4 started and added" in e for _, e in j["events"]), j["events"]
    assert live["pods_final"] == 3, live
    assert "pod4" in live["pod_answers"], live["pod_answers"]
    # pods serving at each interval's end, live and predicted: the kill at 6 s
    # is in the row of 6 s on both sides (the live line does not lag)
    up = {float(r["time_s"]): (r["live_pods_up"], r["sim_pods_ready"]) for r in j["csv"]}
    assert 6.0 in up and min(up) < 6, up
    for t, pair in up.items():
        if t < 6:
            assert pair == ("3", "3"), up
        elif t < 9:                             # pod4 is added at 6 + 2 + 1 s
            assert pair == ("2", "2"), up


def test_redis_crash_none_loses_all():
    """C with Redis killed -9 and restarted without persistence: every
    visiting user's session is lost, as tether-sim predicts."""
    rc, out, j = lab("--pattern", "C", "--duration", "16s", "--seed", "3", "--quiet", *FAST,
                     "--redis-crash", "6s", "--set", "redis.down_for=2s", "--set", "redis.persistence=none")
    assert rc == 0, out
    live, sim = j["live"], j["sim"]
    ev = [e for _, e in j["events"] if "restarted" in e]
    assert ev, j["events"]
    assert live["sessions_lost"] > 10, live
    assert abs(live["sessions_lost"] - sim["sessions_lost"]) <= max(10, 0.3 * sim["sessions_lost"]), (live, sim)


def test_sentinel_failover_within_10s():
    """D with a replica and three sentinels (down-after-milliseconds 5000):
    the master is killed; the lab measures when every pod serves again
    (a login, a write on the new master) and prints it: within 10 s."""
    rc, out, j = lab("--pattern", "D", "--duration", "20s", "--seed", "3", *FAST,
                     "--sentinel", "--redis-crash", "5s")
    assert rc == 0, out
    live = j["live"]
    assert 5 <= live["failover_seconds"] <= 10, live["failover_seconds"]
    assert "pods serve again" in out, out
    assert live["failed_requests"] == 0, live


def test_no_process_left_after_a_run():
    """A run with Redis: once it is over nothing it started runs (lab()
    checks every run; this one checks the line per second too)."""
    rc, out, _ = lab("--pattern", "C", "--duration", "4s", *FAST)
    assert rc == 0, out
    assert "pods up 3  redis up" in out, out


def interrupt(sig, group):
    """Starts a run with Redis and Sentinel, sends sig once it runs (to the
    lab alone, or to its process group as a terminal's Ctrl-C does); the lab
    must stop every process it started and exit nonzero."""
    d = tempfile.mkdtemp(prefix="test-lab-")
    run = os.path.join(d, "run")
    p = subprocess.Popen([LAB, "--dir", run, "--pattern", "D", "--duration", "60s", "--sentinel", *FAST],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        lines = []
        for line in p.stdout:               # the first line per second: everything runs
            lines.append(line)
            if "req/s" in line:
                break
        assert left_running(run), "".join(lines)
        if group:
            os.killpg(p.pid, sig)
        else:
            os.kill(p.pid, sig)
        rest = p.communicate(timeout=30)[0]
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode != 0, rest
    assert "interrupted" in rest, rest
    assert labkit.wait_for(lambda: not left_running(run), 5), left_running(run)
    subprocess.run(["rm", "-rf", d])


def test_sigint_stops_everything():
    """Ctrl-C: SIGINT to the lab alone (its children do not get it: the lab
    must stop them), then to the whole process group as a terminal sends it;
    SIGTERM to the lab alone."""
    interrupt(signal.SIGINT, group=False)
    interrupt(signal.SIGINT, group=True)
    interrupt(signal.SIGTERM, group=False)


def bad(*args, status=None):
    rc, out, j = lab(*args, timeout=60)
    assert rc != 0 and j is None, (rc, out)
    if status is not None:
        assert rc == status, (rc, out)
    return out


def test_bad_input():
    """Bad input: a message, a nonzero exit, nothing left running (lab()
    checks)."""
    out = bad("-c", "/nonexistent.conf", status=2)
    assert "no such scenario file" in out, out
    out = bad("-c", os.path.join(ROOT, "sim", "scenarios", "retail-peak.conf"), status=1)
    assert "too long to run live" in out and "--time-compression" in out, out
    out = bad("-c", os.path.join(ROOT, "sim", "scenarios", "retail-peak.conf"), "--time-compression", "4")
    assert "cannot run live" in out, out
    out = bad("-c", os.path.join(ROOT, "sim", "scenarios", "retail-day.conf"), "--time-compression", "60")
    assert "cannot run live" in out, out
    out = bad("--pattern", "C", "--redis", f"127.0.0.1:{labkit.free_port()}", status=1)
    assert "unreachable" in out, out
    out = bad("--pattern", "E", status=2)
    assert "want A, B, C or D" in out, out
    out = bad("--pattern", "B", "--crash", "pod9@2s", status=2)
    assert "pod9" in out, out
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        out = bad("--pattern", "B", "--duration", "3s", "--port", str(s.getsockname()[1]), status=1)
        assert "in use" in out, out
    finally:
        s.close()


def test_wrong_sentinel_master_name():
    """Sentinels that do not know the master name given: a message naming
    it, a nonzero exit, nothing left running."""
    with labkit.Lab() as kit:
        r = kit.redis()
        sen = kit.sentinel([f"sentinel monitor mymaster 127.0.0.1 {r.port} 1"])
        out = bad("--pattern", "C", "--redis-sentinel", sen.addr, "--redis-master", "nosuch", status=1)
        assert 'no sentinel gave master "nosuch"' in out, out
        # the right name works
        rc, out, j = lab("--pattern", "C", "--duration", "3s", "--redis-sentinel", sen.addr,
                         "--redis-master", "mymaster", *FAST)
        assert rc == 0 and j["live"]["redis_hits"] > 0, out


if __name__ == "__main__":
    labkit.main(globals())
