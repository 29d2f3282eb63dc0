#!/usr/bin/env python3
"""The soak (scripts/soak.sh runs it): mixed HTTP load through tether to
tether-pods for N minutes while a chaos task kills and restarts pods,
reloads tether with a changed file and changes servers through the runtime
API.  Prints one line per minute and a verdict; exit status 0 when the
verdict holds.

Load: W keep-alive users (1..50 requests on a connection, then a new one)
and W users opening a connection per request (`Connection: close`), each
thinking THINK seconds between requests.

Per minute, the load pauses (every client connection closed, tether's
tether_active_connections 0) and tether's descriptors and RSS are read at
rest (the least of 10 samples 50 ms apart, so a health check in flight is
not counted); then the load resumes.

A failed request (connect error, reset, a close before the whole answer, no
answer in 5 s, a status other than 200) is matched with tether's log line
for the same client port (within 3 s): it is "by design" when that line
names a pod the chaos task killed at most 10 s earlier and ends with
server-closed, server-reset, server-down or connect-failed (the in-flight
and kept-alive connections of a killed pod); every other failure is
"other".

Verdict: after the first minute (warm-up), descriptors and RSS at rest stay
within +-5 % of the first minute's (descriptors: or +-1), zero "other"
failures, every runtime-API command answered OK, and tether's accepted
connection count equals the connections the clients opened.
"""
import argparse
import asyncio
import datetime
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
from harness import metrics  # noqa: E402 (the test harness's /metrics reader)

DESIGN_ENDS = {"server-closed", "server-reset", "server-down", "connect-failed"}
LOG_LINE = re.compile(r"^(\S+Z) 127\.0\.0\.1:(\d+) fe be/(\S+) .* end=(\S+)$")


def low_port():
    """A free port below the ephemeral range: a killed pod's port cannot be
    taken meanwhile by one of tether's outgoing connections."""
    while True:
        port = random.randint(20000, 32000)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()


class Pod:
    def __init__(self, exe, name):
        self.exe, self.name, self.port = exe, name, low_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen([self.exe, "--name", self.name, "--listen", self.addr, "--store", "none"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def alive(self):
        return self.proc.poll() is None


class Tether:
    def __init__(self, exe, pods):
        self.exe, self.pods = exe, pods
        self.dir = tempfile.mkdtemp(prefix="soak-")
        self.conf = os.path.join(self.dir, "tether.conf")
        self.log = os.path.join(self.dir, "tether.log")
        self.sock = os.path.join(self.dir, "admin.sock")
        self.port, self.mport = low_port(), low_port()
        self.write("roundrobin", {p.name: 1 for p in pods})
        self.err = open(os.path.join(self.dir, "stderr"), "w")
        self.proc = subprocess.Popen([exe, "-c", self.conf], stdout=self.err, stderr=self.err)
        end = time.time() + 20
        while time.time() < end:
            if self.proc.poll() is not None:
                sys.exit("soak: tether exited: " + open(os.path.join(self.dir, "stderr")).read())
            try:
                socket.create_connection(("127.0.0.1", self.mport), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        sys.exit("soak: tether did not start")

    def write(self, balance, weights):
        servers = ", ".join(f'{{ name = "{p.name}"; address = "{p.addr}"; weight = {weights[p.name]}; }}'
                            for p in self.pods)
        text = (f'global = {{ log = "{self.log}"; admin = "{self.sock}"; metrics = "127.0.0.1:{self.mport}";\n'
                f'  drain_timeout = "5s"; }};\n'
                f'frontends = ( {{ name = "fe"; bind = "127.0.0.1:{self.port}"; backend = "be"; }} );\n'
                f'backends = ( {{ name = "be"; balance = "{balance}"; retries = 3;\n'
                f'  timeouts = {{ connect = "1s"; client = "20s"; server = "20s"; }};\n'
                f'  health = {{ type = "http"; path = "/health"; interval = "500ms"; timeout = "300ms";'
                f' rise = 2; fall = 2; observe = true; }};\n'
                f'  servers = ( {servers} ); }} );\n')
        tmp = self.conf + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.conf)

    def admin(self, cmd):
        out = subprocess.run([self.exe, "-x", self.sock, cmd], capture_output=True, text=True, timeout=10)
        return out.returncode == 0 and out.stdout.rstrip().endswith("OK"), out.stdout.strip()

    def metrics(self):
        return metrics(self.mport)

    def fds(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0


class Load:
    def __init__(self, port, workers, think):
        self.port, self.workers, self.think = port, workers, think
        self.done = 0
        self.opened = 0                 # connections the clients opened (connect succeeded)
        self.failures = []              # (time, client port or 0, kind)
        self.pausing = False
        self.parked = 0
        self.resume_ev = asyncio.Event()
        self.stop = False

    async def park(self):
        self.parked += 1
        self.resume_ev.clear()
        while self.pausing and not self.stop:
            await self.resume_ev.wait()
        self.parked -= 1

    async def request(self, state, close):
        """One request; state is [reader, writer, port] or [None, None, 0]."""
        t = time.time()
        try:
            if state[0] is None:
                await self.open(state)
            r, w, _ = state
            w.write(b"GET /item/%d HTTP/1.1\r\nHost: soak\r\n%s\r\n"
                    % (random.randint(1, 1000), b"Connection: close\r\n" if close else b""))
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
            status = int(head.split(b" ", 2)[1])
            n = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head).group(1))
            await asyncio.wait_for(r.readexactly(n), 5)
            if status != 200:
                raise ValueError("status %d" % status)
            self.done += 1
            return True
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError,
                ValueError, AttributeError) as e:
            kind = type(e).__name__ if not isinstance(e, ValueError) else str(e)
            self.failures.append((t, state[2], kind))
            self.close(state)
            return False

    async def open(self, state):
        """Connects; the client port is known (state[2]) even when the
        connect fails, so that the failure can be matched with tether's log."""
        sock = socket.socket()
        try:
            sock.setblocking(False)
            sock.bind(("127.0.0.1", 0))
            state[2] = sock.getsockname()[1]
            try:
                await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.port)), 5)
            except ConnectionResetError:
                self.opened += 1        # the handshake was done: tether accepted it, then reset it
                raise
            self.opened += 1
            state[:2] = await asyncio.open_connection(sock=sock)
        except BaseException:
            if state[0] is None:
                sock.close()
            raise

    @staticmethod
    def close(state):
        if state[1] is not None and state[1].transport:
            state[1].transport.abort()
        state[:] = [None, None, 0]

    async def keepalive_user(self):
        state = [None, None, 0]
        while not self.stop:
            left = random.randint(1, 50)
            while left > 0 and not self.stop and not self.pausing:
                if not await self.request(state, False):
                    break
                left -= 1
                await asyncio.sleep(random.expovariate(1 / self.think))
            await self.quit(state)
            if self.pausing:
                await self.park()

    async def newconn_user(self):
        while not self.stop:
            state = [None, None, 0]
            if await self.request(state, True):
                await self.quit(state)
            if self.pausing:
                await self.park()
            await asyncio.sleep(random.expovariate(1 / self.think))

    @staticmethod
    async def quit(state):
        if state[1] is not None:
            state[1].close()
            try:
                await state[1].wait_closed()
            except OSError:
                pass
        state[:] = [None, None, 0]

    def tasks(self):
        return ([asyncio.ensure_future(self.keepalive_user()) for _ in range(self.workers)]
                + [asyncio.ensure_future(self.newconn_user()) for _ in range(self.workers)])


class Chaos:
    """One action every 3..8 s: kill a pod (restarted 2..6 s later), reload
    with new weights and balance, or a runtime-API change.  At most one of
    p1..p4 is dead and one drained at a time, so two always serve."""

    def __init__(self, tether, pods, spare):
        self.t, self.pods, self.spare = tether, pods, spare
        self.kills = {}                 # pod name -> [kill times]
        self.dead = None
        self.drained = None
        self.spare_in = False
        self.counts = {"kills": 0, "reloads": 0, "admin": 0}
        self.admin_errors = []
        self.stop = False

    def admin(self, cmd):
        ok, out = self.t.admin(cmd)
        self.counts["admin"] += 1
        if not ok:
            self.admin_errors.append((cmd, out))

    async def run(self):
        loop = asyncio.get_running_loop()
        while not self.stop:
            await asyncio.sleep(random.uniform(3, 8))
            if self.stop:
                break
            acts = ["reload", "weight"]
            if self.dead is None:
                acts.append("kill")
            acts.append("enable" if self.drained else "drain")
            acts.append("del" if self.spare_in else "add")
            act = random.choice(acts)
            if act == "kill":
                p = random.choice(self.pods)
                self.dead = p
                self.kills.setdefault(p.name, []).append(time.time())
                p.kill()
                self.counts["kills"] += 1
                loop.call_later(random.uniform(2, 6), self.restart, p)
            elif act == "reload":
                weights = {p.name: random.randint(1, 4) for p in self.pods}
                await loop.run_in_executor(None, self.t.write, random.choice(["roundrobin", "leastconn"]), weights)
                n = (await loop.run_in_executor(None, self.t.metrics))["tether_reloads_total"]
                self.t.proc.send_signal(signal.SIGHUP)
                self.counts["reloads"] += 1
                self.spare_in = False   # the file decides which servers exist
                end = time.time() + 10  # done before the next runtime-API change
                while (await loop.run_in_executor(None, self.t.metrics))["tether_reloads_total"] != n + 1:
                    if time.time() > end:
                        self.admin_errors.append(("SIGHUP", "no reload within 10 s"))
                        break
                    await asyncio.sleep(0.05)
            elif act == "weight":
                p = random.choice(self.pods + ([self.spare] if self.spare_in else []))
                await loop.run_in_executor(None, self.admin, f"set weight be {p.name} {random.randint(1, 5)}")
            elif act == "drain":
                self.drained = random.choice(self.pods)
                await loop.run_in_executor(None, self.admin, f"drain server be {self.drained.name}")
            elif act == "enable":
                await loop.run_in_executor(None, self.admin, f"enable server be {self.drained.name}")
                self.drained = None
            elif act == "add":
                await loop.run_in_executor(None, self.admin, f"add server be {self.spare.name} {self.spare.addr}")
                self.spare_in = True
            elif act == "del":
                await loop.run_in_executor(None, self.admin, f"drain server be {self.spare.name}")
                await loop.run_in_executor(None, self.admin, f"del server be {self.spare.name}")
                self.spare_in = False

    def restart(self, p):
        p.start()
        if self.dead is p:
            self.dead = None


class Attributor:
    """Matches failures with tether's log lines by client port."""

    def __init__(self, path, kills):
        self.path, self.kills, self.off = path, kills, 0
        self.by_port = {}

    def read(self):
        try:
            with open(self.path) as f:
                f.seek(self.off)
                data = f.read()
        except OSError:
            return
        cut = data.rfind("\n") + 1
        self.off += len(data[:cut].encode())
        for line in data[:cut].splitlines():
            m = LOG_LINE.match(line)
            if m:
                ts = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ")
                ts = ts.replace(tzinfo=datetime.timezone.utc).timestamp()
                self.by_port.setdefault(int(m.group(2)), []).append((ts, m.group(3), m.group(4)))

    def prune(self, before):
        """Forgets lines older than `before` (their failures are classified)."""
        for port in list(self.by_port):
            keep = [e for e in self.by_port[port] if e[0] >= before]
            if keep:
                self.by_port[port] = keep
            else:
                del self.by_port[port]

    def lines_near(self, t, port):
        return [e for e in self.by_port.get(port, ()) if abs(e[0] - t) < 3]

    def by_design(self, t, port):
        for ts, server, end in self.by_port.get(port, ()):
            if abs(ts - t) > 3 or end not in DESIGN_ENDS:
                continue
            if any(k - 1 <= t <= k + 10 for k in self.kills.get(server, ())):
                return True
        return False


async def at_rest(t, load):
    """Pauses the load, reads fds and RSS at rest, resumes."""
    load.pausing = True
    end = time.time() + 15
    while load.parked < 2 * load.workers and time.time() < end:
        await asyncio.sleep(0.02)
    loop = asyncio.get_running_loop()
    while time.time() < end:
        m = await loop.run_in_executor(None, t.metrics)
        if m.get("tether_active_connections", 1) == 0:
            break
        await asyncio.sleep(0.05)
    fds, rss = [], []
    for _ in range(10):
        fds.append(t.fds())
        rss.append(t.rss_kb())
        await asyncio.sleep(0.05)
    live = await loop.run_in_executor(None, t.metrics)
    load.pausing = False
    load.resume_ev.set()
    return min(fds), min(rss), live


async def soak(args):
    pods = [Pod(args.pod, f"p{i}") for i in range(1, 5)]
    spare = Pod(args.pod, "p5")
    t = Tether(args.tether, pods)
    load = Load(t.port, args.workers, args.think)
    chaos = Chaos(t, pods, spare)
    attr = Attributor(t.log, chaos.kills)
    tasks = load.tasks()
    chaos_task = asyncio.ensure_future(chaos.run())
    t0 = time.time()
    rows = []
    print(f"soak: {args.minutes} min, tether pid {t.proc.pid}, 4 pods + 1 spare, {args.workers} keep-alive + "
          f"{args.workers} new-connection users, think {args.think * 1000:.0f} ms; logs in {t.dir}", flush=True)
    print("min  fds  rss_kB  fds_live  requests  fail_design  fail_other  kills  reloads  admin", flush=True)
    prev_done, prev = 0, dict(chaos.counts)
    others = []                             # (failure, its log lines): not caused by a fault
    for minute in range(1, args.minutes + 1):
        await asyncio.sleep(max(0, t0 + args.minute_s * minute - time.time()))
        live_fds = t.fds()
        fds, rss, _ = await at_rest(t, load)
        lo, hi = t0 + args.minute_s * (minute - 1), t0 + args.minute_s * minute
        await asyncio.sleep(3)              # tether writes its log every second
        attr.read()
        fails = [f for f in load.failures if lo <= f[0] < hi]
        design = sum(1 for f in fails if attr.by_design(f[0], f[1]))
        others += [(f, attr.lines_near(f[0], f[1])) for f in fails if not attr.by_design(f[0], f[1])]
        attr.prune(hi - 30)
        c = dict(chaos.counts)
        row = {"minute": minute, "fds": fds, "rss_kb": rss, "fds_live": live_fds,
               "requests": load.done - prev_done, "fail_design": design, "fail_other": len(fails) - design,
               "kills": c["kills"] - prev["kills"], "reloads": c["reloads"] - prev["reloads"],
               "admin": c["admin"] - prev["admin"]}
        rows.append(row)
        prev_done, prev = load.done, c
        print("{minute:3d} {fds:4d} {rss_kb:7d} {fds_live:9d} {requests:9d} {fail_design:12d} {fail_other:11d} "
              "{kills:6d} {reloads:8d} {admin:6d}".format(**row), flush=True)
    chaos.stop = load.stop = True
    load.resume_ev.set()
    chaos_task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for p in pods + [spare]:
        if not p.alive():
            p.start()
    final = t.metrics()
    t.proc.send_signal(signal.SIGTERM)
    rc = t.proc.wait(30)
    for p in pods + [spare]:
        p.kill()

    # verdict
    problems = []
    base = rows[0]
    for r in rows[1:]:
        if abs(r["fds"] - base["fds"]) > max(1, 0.05 * base["fds"]):
            problems.append(f"minute {r['minute']}: {r['fds']} fds at rest against {base['fds']} after minute 1")
        if abs(r["rss_kb"] - base["rss_kb"]) > 0.05 * base["rss_kb"]:
            problems.append(f"minute {r['minute']}: RSS {r['rss_kb']} kB against {base['rss_kb']} after minute 1")
    if others:
        problems.append(f"{len(others)} failures not caused by a fault: "
                        + "; ".join(f"{time.strftime('%H:%M:%S', time.gmtime(f[0]))} port {f[1]} {f[2]} {near}"
                                    for f, near in others[:10]))
    if chaos.admin_errors:
        problems.append(f"{len(chaos.admin_errors)} runtime-API commands failed: {chaos.admin_errors[:5]}")
    accepted = int(final.get('tether_frontend_connections_total{frontend="fe"}', -1))
    if accepted != load.opened:
        problems.append(f"tether accepted {accepted} connections, the clients opened {load.opened}")
    if rc != 0:
        problems.append(f"tether exited {rc} on SIGTERM")
    summary = {"minutes": args.minutes, "requests": load.done, "connections": load.opened,
               "fail_design": sum(r["fail_design"] for r in rows), "fail_other": len(others),
               "kills": chaos.counts["kills"], "reloads": chaos.counts["reloads"], "admin": chaos.counts["admin"],
               "rows": rows, "problems": problems, "ok": not problems}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f)
    print(f"total: {load.done} requests on {load.opened} connections, {summary['fail_design']} failures by design "
          f"(in-flight or kept-alive on a killed pod), {len(others)} other; {chaos.counts['kills']} kills, "
          f"{chaos.counts['reloads']} reloads, {chaos.counts['admin']} runtime-API commands")
    if not problems and not args.keep:
        shutil.rmtree(t.dir, ignore_errors=True)
    if problems:
        print(f"verdict: FAIL (tether's log and configuration: {t.dir})")
        for p in problems:
            print("  " + p)
        return 1
    print("verdict: OK (fds and RSS at rest flat within 5 % after minute 1, no failure other than by design)")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=int, default=30)
    ap.add_argument("--tether", required=True)
    ap.add_argument("--pod", required=True)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--think", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--keep", action="store_true", help="keep tether's log and configuration after a good run")
    ap.add_argument("--minute-seconds", dest="minute_s", type=float, default=60,
                    help="length of a 'minute' (shorter to try the script out)")
    args = ap.parse_args()
    if args.minutes < 2:
        ap.error("--minutes: at least 2 (the first is the warm-up)")
    random.seed(args.seed)
    sys.exit(asyncio.run(soak(args)))


if __name__ == "__main__":
    main()
