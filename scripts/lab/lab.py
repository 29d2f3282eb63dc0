#!/usr/bin/env python3
"""The live lab (docs/lab.md): runs a tether-sim scenario for real - redis-server
(and a replica and three redis-sentinels), tether-pods, tether, tether-load -
performs its failures on schedule, then runs tether-sim on the same scenario
and seed and prints live vs predicted.  Python 3 standard library only.

Every process it starts is in a list, dies with it (PR_SET_PDEATHSIG) and is
stopped on exit, on error, on SIGINT and on SIGTERM.
"""
import argparse
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIVE_LIMIT_S = 1800          # longest live run without --time-compression
RATE_LIMIT = 3000            # requests/s a lab run (a connection per request) may ask of this machine
PATTERN_DEFAULT_S = 75       # --pattern: default duration


class LabError(Exception):
    """Bad input or a failed start: a message and exit status 1 (2 for usage)."""
    def __init__(self, msg, status=1):
        super().__init__(msg)
        self.status = status


def say(*a):
    print(*a, flush=True)


def note(msg):
    print(f"lab: {msg}", file=sys.stderr, flush=True)


# --- the processes ---------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent():
    _libc.prctl(1, signal.SIGKILL)          # PR_SET_PDEATHSIG: the lab killed -9 takes its children along


class Procs:
    def __init__(self, run_dir):
        self.run_dir = run_dir
        self.all = []                       # (name, Popen)
        self.env = dict(os.environ, TETHER_LAB_RUN=run_dir)

    def start(self, name, cmd, **kw):
        log = open(os.path.join(self.run_dir, f"{name}.log"), "ab")
        try:
            p = subprocess.Popen(cmd, stdout=kw.pop("stdout", log), stderr=log, stdin=subprocess.DEVNULL,
                                 env=self.env, preexec_fn=_die_with_parent, **kw)
        except OSError as e:
            raise LabError(f"cannot start {cmd[0]}: {e}")
        finally:
            log.close()
        self.all.append((name, p))
        return p

    def log(self, name):
        try:
            with open(os.path.join(self.run_dir, f"{name}.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop_all(self):
        alive = [(n, p) for n, p in self.all if p.poll() is None]
        for _, p in alive:
            try:
                p.terminate()
            except OSError:
                pass
        end = time.time() + 5
        for _, p in alive:
            try:
                p.wait(max(0.1, end - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


# --- small clients ---------------------------------------------------------

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def port_free(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _reply(f):
    line = f.readline()
    if not line:
        raise ConnectionError("closed")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        return RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode(errors="replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_reply(f) for _ in range(n)]
    raise ConnectionError(f"bad reply {line!r}")


def redis_pipeline(addr, cmds, timeout=3):
    """Sends the commands in one write, returns the replies (errors as RuntimeError values)."""
    host, port = addr.rsplit(":", 1)
    out = bytearray()
    for c in cmds:
        out += b"*%d\r\n" % len(c)
        for a in c:
            a = str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(out)
        f = s.makefile("rb")
        return [_reply(f) for _ in cmds]


def redis_cmd(addr, *args, timeout=3):
    r = redis_pipeline(addr, [args], timeout)[0]
    if isinstance(r, RuntimeError):
        raise r
    return r


def redis_ping(addr):
    try:
        return redis_cmd(addr, "PING", timeout=1) == "PONG"
    except (OSError, ConnectionError, RuntimeError, ValueError):
        return False


def redis_info(addr, key):
    try:
        for line in redis_cmd(addr, "INFO", "stats", timeout=1).splitlines():
            if line.startswith(key + ":"):
                return int(line.split(":", 1)[1])
    except (OSError, ConnectionError, RuntimeError, ValueError, AttributeError):
        pass
    return None


def http(addr, path, timeout=2):
    """GET path; (status, headers dict lower-case, body) or None."""
    host, port = addr.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                data += b
    except OSError:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return None
    hdr = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        hdr[k.strip().lower()] = v.strip()
    return status, hdr, body.decode(errors="replace")


def wait_for(pred, timeout, step=0.05):
    end = time.time() + timeout
    while True:
        if pred():
            return True
        if time.time() >= end:
            return False
        time.sleep(step)


def dur(s):
    """'30s', '2m', '500ms', '1h', or seconds -> seconds."""
    s = str(s).strip()
    for suf, k in (("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)):
        if s.endswith(suf) and s[:-len(suf)].replace(".", "", 1).isdigit():
            return float(s[:-len(suf)]) * k
    try:
        return float(s)
    except ValueError:
        raise LabError(f"bad duration '{s}' (want 30s, 2m, 500ms)", 2)


def fmt_dur(sec):
    """seconds -> a duration string tether-sim and tether-pod read (ms resolution)."""
    ms = max(1, int(round(sec * 1000)))
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


# --- the scenario ----------------------------------------------------------

# settings that are times (divided by the compression) and rates (multiplied)
TIME_KEYS = ["sim.duration", "sim.report_interval", "clients.think", "clients.ramp_over", "clients.stop_at",
             "pods.cache_ttl", "pods.startup", "pods.replace_after", "redis.session_ttl", "redis.cart_ttl",
             "redis.crash_at", "redis.down_for", "redis.down_after", "redis.failover", "redis.replication_lag",
             "failures.crash_at", "failures.scale_at"]
RATE_KEYS = ["clients.users_per_second", "clients.ramp_to"]


def strip_comments(text):
    out, i, n, q = [], 0, len(text), False
    while i < n:
        c = text[i]
        if q:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 1
            elif c == '"':
                q = False
        elif c == '"':
            q = True
            out.append(c)
        elif c == "#" or text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
            continue
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _match(text, i):
    """text[i] is an opening bracket: the index of its match (strings skipped)."""
    pairs = {"(": ")", "{": "}", "[": "]"}
    stack, q = [], False
    while i < len(text):
        c = text[i]
        if q:
            if c == "\\":
                i += 1
            elif c == '"':
                q = False
        elif c == '"':
            q = True
        elif c in pairs:
            stack.append(pairs[c])
        elif stack and c == stack[-1]:
            stack.pop()
            if not stack:
                return i
        i += 1
    raise LabError("scenario: unbalanced brackets in the backends section")


def _section(text, name):
    """(start, end) of `name = ( ... )` or `name = { ... }` at any depth, the brackets included."""
    import re
    m = re.search(r'(?<![A-Za-z0-9_])' + name + r'\s*[=:]\s*([({\[])', text)
    if not m:
        return None
    start = m.start(1)
    return start, _match(text, start) + 1


def backend_text(path, servers):
    """The scenario's first backend with its servers replaced by `servers` [(name, addr)]."""
    text = strip_comments(open(path).read()) if path else ""
    sec = _section(text, "backends")
    if not sec:
        return None
    body = text[sec[0]:sec[1]]
    first = body.find("{")
    be = body[first:_match(body, first) + 1]
    srv = _section(be, "servers")
    lst = ", ".join(f'{{ name = "{n}"; address = "{a}"; }}' for n, a in servers)
    return be[:srv[0]] + "( " + lst + " )" + be[srv[1]:]


# --- the run ---------------------------------------------------------------

class Lab:
    def __init__(self, a):
        self.a = a
        self.build = os.environ.get("TETHER_BUILD", os.path.join(ROOT, "build"))
        self.bin = {k: os.path.join(self.build, v) for k, v in
                    (("tether", "src/tether"), ("sim", "sim/tether-sim"), ("pod", "src/pod/tether-pod"),
                     ("load", "src/load/tether-load"))}
        for k, b in self.bin.items():
            if not os.access(b, os.X_OK):
                raise LabError(f"{b} missing: build first (meson setup build && ninja -C build), "
                               "or point TETHER_BUILD at a build directory")
        self.dir = a.dir or tempfile.mkdtemp(prefix="tether-lab-")
        os.makedirs(self.dir, exist_ok=True)
        self.procs = Procs(self.dir)
        self.pods = {}                      # name -> dict(addr, proc, last stats, alive)
        self.events = []                    # (t, text)
        self.samples = []                   # per-second live samples
        self.redis_addr = None
        self.redis_proc = None
        self.sentinels = []
        self.replica = None
        self.lost = 0                       # sessions of visiting users destroyed by the failures
        self.crashes = []                   # (t, what, lost, had)
        self.failover_s = None
        self.outage_s = None

    # scenario ---------------------------------------------------------------

    def scenario_args(self, extra_sets=()):
        a = self.a
        args = ["-c", self.scenario]
        for s in list(self.sets) + list(extra_sets):
            args += ["--set", s]
        if a.seed is not None:
            args += ["--seed", str(a.seed)]
        return args

    def params(self, extra_sets=()):
        r = subprocess.run([self.bin["sim"], "--params", *self.scenario_args(extra_sets)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise LabError(r.stderr.strip() or "tether-sim --params failed", 2)
        return json.loads(r.stdout)

    def prepare(self):
        a = self.a
        sets = list(a.set or [])
        if a.pattern:
            if a.pattern not in "ABCD" or len(a.pattern) != 1:
                raise LabError(f"--pattern {a.pattern}: want A, B, C or D", 2)
            self.scenario = os.path.join(ROOT, "sim", "scenarios", f"pattern-{a.pattern.lower()}.conf")
            if not a.duration:
                a.duration = f"{PATTERN_DEFAULT_S}s"
            if not any(x.startswith("sim.report_interval=") for x in sets):
                sets.append("sim.report_interval=2s")   # the demo's plot: a point every 2 s
        else:
            self.scenario = a.config
            if not os.path.isfile(self.scenario):
                raise LabError(f"{self.scenario}: no such scenario file", 2)
        if a.duration:
            sets.append(f"sim.duration={fmt_dur(dur(a.duration))}")
        if a.crash:
            pod, _, t = a.crash.partition("@")
            if not pod or not t:
                raise LabError(f"--crash {a.crash}: want POD@TIME, e.g. pod2@30s", 2)
            sets += [f"failures.crash_at={fmt_dur(dur(t))}", f"failures.crash_pod={pod}"]
        if a.redis_crash:
            sets.append(f"redis.crash_at={fmt_dur(dur(a.redis_crash))}")
        if a.sentinel:
            # a live failover takes down-after plus about a second (vote, promotion)
            # and the replica is behind by well under a millisecond on loopback (the
            # simulator's default, 1 s, stands for a replica in another zone)
            sets += ["redis.sentinel=true", f"redis.down_after={fmt_dur(dur(a.down_after))}", "redis.failover=1s",
                     "redis.replication_lag=10ms"]
        if a.scale:
            n, _, t = a.scale.partition("@")
            if not n.isdigit() or not t:
                raise LabError(f"--scale {a.scale}: want N@TIME, e.g. 5@45s", 2)
            sets += [f"failures.scale_at={fmt_dur(dur(t))}", f"failures.scale_to={n}", "pods.startup=1s"]
        self.sets = sets
        p = self.params()
        f = a.time_compression
        if f is not None:
            if f < 1:
                raise LabError(f"--time-compression {f}: want a factor >= 1", 2)
            if p["clients.daily"]:
                raise LabError("clients.daily: the 24 h curve cannot be compressed; this scenario cannot run live", 1)
            comp = []
            for k in TIME_KEYS:
                if p[k] > 0:
                    comp.append(f"{k}={fmt_dur(p[k] / f)}")
            for k in RATE_KEYS:
                if p[k] > 0:
                    comp.append(f"{k}={p[k] * f:.6g}")
            self.sets = sets + comp
            p = self.params()
        self.p = p
        self.check_runnable()

    def check_runnable(self):
        p, a = self.p, self.a
        d = p["sim.duration"]
        comp = " with this --time-compression" if a.time_compression else ""
        if d > LIVE_LIMIT_S:
            raise LabError(f"{p['name']}: {d:.0f} s{comp} is too long to run live (at most {LIVE_LIMIT_S} s): "
                           "give --time-compression F (every time / F, every rate x F; docs/lab.md) "
                           "or --duration T", 1)
        rate = max(p["clients.users_per_second"], p["clients.ramp_to"]) * (1.8 if p["clients.daily"] else 1)
        req = rate * p["clients.pages"]
        if req > RATE_LIMIT:
            raise LabError(f"{p['name']}: about {req:.0f} requests/s{comp}, more than this lab runs "
                           f"({RATE_LIMIT}/s, a connection per request): this scenario cannot run live", 1)
        if p["hpa.enabled"]:
            raise LabError(f"{p['name']}: hpa.enabled: the lab runs no autoscaler; "
                           "give --set hpa.enabled=false to run it with fixed pods", 1)
        if p["failures.mtbf"] > 0:
            raise LabError(f"{p['name']}: failures.mtbf: random crashes are not performed live", 1)
        if p["failures.crash_at"] >= 0 and p["failures.crash_pod"] and \
                p["failures.crash_pod"] not in self.server_names():
            raise LabError(f"crash_pod {p['failures.crash_pod']}: no such pod", 2)
        if (p["redis.crash_at"] >= 0) and (a.redis or a.redis_sentinel):
            raise LabError("redis.crash_at: the lab kills only a Redis it started itself "
                           "(leave out --redis/--redis-sentinel)", 1)

    def server_names(self):
        names = self.p["backend.servers"]
        return names if names else [f"pod{i + 1}" for i in range(self.p["pods.count"])]

    # processes ------------------------------------------------------------

    def uses_redis(self):
        return self.p["pods.store"] != "memory"

    def redis_conf(self, name, port, extra=()):
        d = os.path.join(self.dir, name)
        os.makedirs(d, exist_ok=True)
        pers = self.p["redis.persistence"]
        lines = [f"port {port}", "bind 127.0.0.1", f'dir "{d}"', "daemonize no", "protected-mode no",
                 'logfile ""', "appendfilename appendonly.aof", "dbfilename dump.rdb"]
        if pers.startswith("aof"):
            lines += ["appendonly yes", f"appendfsync {'always' if pers == 'aof-always' else 'everysec'}", 'save ""']
        elif pers == "rdb":
            lines += ["appendonly no", f'save "{self.p["redis.save"]}"']
        else:
            lines += ["appendonly no", 'save ""']
        lines += list(extra)
        path = os.path.join(d, "redis.conf")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def start_redis_server(self, name, port, extra=()):
        conf = self.redis_conf(name, port, extra)
        p = self.procs.start(name, ["redis-server", conf])
        addr = f"127.0.0.1:{port}"
        if not wait_for(lambda: redis_ping(addr) or p.poll() is not None, 10) or p.poll() is not None:
            raise LabError(f"redis-server did not start on {addr}: {self.procs.log(name)[-400:]}")
        return p, addr

    def start_redis(self):
        a = self.a
        if a.redis:
            if not redis_ping(a.redis):
                raise LabError(f"Redis at {a.redis} is unreachable (no PONG to PING)")
            self.redis_addr = a.redis
            return
        if a.redis_sentinel:
            self.redis_addr = self.ask_sentinels(a.redis_sentinel.split(","), a.redis_master)
            return
        if not shutil.which("redis-server"):
            raise LabError("redis-server is missing: scripts/install-deps.sh lab")
        self.redis_port = free_port()
        self.redis_proc, self.redis_addr = self.start_redis_server("redis", self.redis_port)
        if self.p["redis.sentinel"]:
            if not shutil.which("redis-sentinel"):
                raise LabError("redis-sentinel is missing: scripts/install-deps.sh lab")
            rport = free_port()
            self.replica, raddr = self.start_redis_server("replica", rport,
                                                          [f"replicaof 127.0.0.1 {self.redis_port}"])
            self.replica_addr = raddr
            if not wait_for(lambda: "master_link_status:up" in str(redis_cmd(raddr, "INFO", "replication")), 10):
                raise LabError("the replica did not sync with the master")
            down_ms = int(self.p["redis.down_after"] * 1000)
            for i in range(3):
                sp = free_port()
                d = os.path.join(self.dir, f"sentinel{i + 1}")
                os.makedirs(d, exist_ok=True)
                conf = os.path.join(d, "sentinel.conf")
                with open(conf, "w") as f:
                    f.write(f"port {sp}\nbind 127.0.0.1\ndaemonize no\nprotected-mode no\nlogfile \"\"\n"
                            f'dir "{d}"\n'
                            f"sentinel monitor mymaster 127.0.0.1 {self.redis_port} 2\n"
                            f"sentinel down-after-milliseconds mymaster {down_ms}\n"
                            f"sentinel failover-timeout mymaster 10000\n"
                            f"sentinel parallel-syncs mymaster 1\n")
                self.procs.start(f"sentinel{i + 1}", ["redis-sentinel", conf])
                self.sentinels.append(f"127.0.0.1:{sp}")
            for s in self.sentinels:
                if not wait_for(lambda s=s: self._sentinel_ready(s), 15):
                    raise LabError(f"redis-sentinel {s} did not see the replica and its peers")

    def _sentinel_ready(self, s):
        try:
            m = redis_cmd(s, "SENTINEL", "master", "mymaster", timeout=1)
            d = dict(zip(m[::2], m[1::2]))
            return int(d.get("num-slaves", 0)) >= 1 and int(d.get("num-other-sentinels", 0)) >= 2
        except (OSError, ConnectionError, RuntimeError, ValueError, TypeError):
            return False

    def ask_sentinels(self, sentinels, name):
        if not name:
            raise LabError("--redis-sentinel needs --redis-master NAME", 2)
        why = []
        for s in sentinels:
            try:
                r = redis_cmd(s, "SENTINEL", "get-master-addr-by-name", name, timeout=2)
            except (OSError, ConnectionError, RuntimeError, ValueError) as e:
                why.append(f"{s}: {e or 'no answer'}")
                continue
            if r is None:
                why.append(f"{s}: does not know master \"{name}\"")
                continue
            addr = f"{r[0]}:{r[1]}"
            if not redis_ping(addr):
                raise LabError(f"the sentinels' master \"{name}\" at {addr} is unreachable")
            return addr
        raise LabError(f"no sentinel gave master \"{name}\": " + "; ".join(why))

    def pod_args(self):
        p, a = self.p, self.a
        args = ["--store", p["pods.store"], "--session-ttl", fmt_dur(p["redis.session_ttl"]),
                "--cache-ttl", fmt_dur(p["pods.cache_ttl"])]
        if self.uses_redis():
            if self.sentinels:
                args += ["--redis-sentinel", ",".join(self.sentinels), "--redis-master", "mymaster"]
            elif a.redis_sentinel:
                args += ["--redis-sentinel", a.redis_sentinel, "--redis-master", a.redis_master]
            else:
                args += ["--redis", self.redis_addr]
        return args

    def start_pod(self, name):
        port = free_port()
        addr = f"127.0.0.1:{port}"
        proc = self.procs.start(name, [self.bin["pod"], "--name", name, "--listen", addr, *self.pod_args()])
        self.pods[name] = {"addr": addr, "proc": proc, "stats": {}, "alive": True}
        return name

    def wait_pod(self, name):
        pod = self.pods[name]

        def ready():
            if pod["proc"].poll() is not None:
                return True
            h = http(pod["addr"], "/health", 1)
            return h is not None and h[0] == 200 and (not self.uses_redis() or h[1].get("x-redis") == "up")
        if not wait_for(ready, 15) or pod["proc"].poll() is not None:
            raise LabError(f"tether-pod {name} did not become ready: {self.procs.log(name)[-400:]}")

    def start_tether(self):
        a = self.a
        if a.port:
            if not port_free(a.port):
                raise LabError(f"port {a.port} is in use: choose another --port (or leave it out)")
            self.port = a.port
        else:
            self.port = free_port()
        self.sock = os.path.join(self.dir, "admin.sock")
        be = backend_text(self.scenario, [(n, self.pods[n]["addr"]) for n in self.server_names()])
        if be is None:
            servers = ", ".join(f'{{ name = "{n}"; address = "{self.pods[n]["addr"]}"; }}'
                                for n in self.server_names())
            be = f'{{ name = "{self.p["backend.name"] or "pods"}"; balance = "{self.p["backend.balance"]}"; ' \
                 f"servers = ( {servers} ); }}"
        self.backend = self.p["backend.name"] or "pods"
        conf = (f'global = {{ log = "{os.path.join(self.dir, "tether.access.log")}"; admin = "{self.sock}"; '
                f'drain_timeout = "1s"; }};\n'
                f'frontends = ( {{ name = "lab"; bind = [ "127.0.0.1:{self.port}" ]; backend = "{self.backend}"; }} );\n'
                f"backends = ( {be} );\n")
        path = os.path.join(self.dir, "tether.conf")
        with open(path, "w") as f:
            f.write(conf)
        t = subprocess.run([self.bin["tether"], "-t", "-c", path], capture_output=True, text=True)
        if t.returncode != 0:
            raise LabError(f"tether refuses the configuration made from {self.scenario}:\n"
                           f"{t.stdout}{t.stderr}")
        self.tether = self.procs.start("tether", [self.bin["tether"], "-c", path])
        up = lambda: self.tether.poll() is not None or http(f"127.0.0.1:{self.port}", "/", 1) is not None
        if not wait_for(up, 10) or self.tether.poll() is not None:
            raise LabError(f"tether did not start: {self.procs.log('tether')[-600:]}")

    def admin(self, cmd):
        r = subprocess.run([self.bin["tether"], "-x", self.sock, cmd], capture_output=True, text=True, timeout=10)
        return r.returncode == 0 and "ERR" not in r.stdout, r.stdout.strip()

    def start_load(self):
        a = self.a
        self.load_json = os.path.join(self.dir, "live.json")
        self.load_csv = os.path.join(self.dir, "live.csv")
        self.visiting = os.path.join(self.dir, "visiting.txt")
        cmd = [self.bin["load"], "--target", f"127.0.0.1:{self.port}", *self.scenario_args(),
               "--quiet", "--json", self.load_json, "--csv", self.load_csv, "--visiting", self.visiting]
        if not a.keep_alive:
            cmd.append("--new-conn")
        if self.p["backend.balance"] == "iphash" or self.p["clients.users_per_address"] > 1:
            cmd += ["--addresses", "2000"]
        self.load = self.procs.start("tether-load", cmd)
        self.t0 = time.time()

    # during the run -----------------------------------------------------------

    def now(self):
        return time.time() - self.t0

    def event(self, text):
        t = self.now()
        self.events.append((round(t, 1), text))
        say(f"  --- {t:6.1f}s  {text}")

    def visiting_sessions(self):
        """Asks tether-load which sessions its visiting users hold: [(sid, pod)]."""
        try:
            os.unlink(self.visiting)
        except FileNotFoundError:
            pass
        if self.load.poll() is not None:
            return []
        self.load.send_signal(signal.SIGUSR1)
        if not wait_for(lambda: os.path.exists(self.visiting), 5, 0.01):
            note("tether-load did not list its visiting users")
            return []
        with open(self.visiting) as f:
            return [tuple(l.split()) for l in f if l.strip()]

    def poll_stats(self):
        for name, pod in self.pods.items():
            if not pod["alive"]:
                continue
            h = http(pod["addr"], "/stats", 1)
            if h and h[0] == 200:
                try:
                    pod["stats"] = json.loads(h[2])
                except ValueError:
                    pass

    def totals(self):
        t = {k: 0 for k in ("requests", "misses", "hits_local", "hits_cache", "hits_redis", "unavailable",
                            "sessions_created")}
        for pod in self.pods.values():
            for k in t:
                t[k] += pod["stats"].get(k, 0)
        return t

    def sample(self, prev, at=None):
        """A look at the pods and Redis; `at` is the report time it stands
        for (the loop takes it just after, once that time's events ran)."""
        self.poll_stats()
        tot = self.totals()
        ops = redis_info(self.redis_addr, "total_commands_processed") if self.redis_addr else None
        redis_up = redis_ping(self.redis_addr) if self.redis_addr else None
        up = sum(1 for p in self.pods.values() if p["alive"] and p["proc"].poll() is None)
        t = self.now()
        s = {"t": round(t, 2), "at": round(t if at is None else at, 2), "tot": tot, "redis_cmds": ops,
             "pods_up": up, "redis_up": redis_up}
        if prev:
            dt = max(1e-3, t - prev["t"])
            d = {k: tot[k] - prev["tot"][k] for k in tot}
            pages = d["misses"] + d["hits_local"] + d["hits_cache"] + d["hits_redis"]
            s["req_s"] = d["requests"] / dt
            s["unavailable_s"] = d["unavailable"] / dt
            s["miss"] = d["misses"] / pages if pages else 0.0
            s["local"] = (d["hits_local"] + d["hits_cache"]) / pages if pages else 0.0
            s["redis"] = d["hits_redis"] / pages if pages else 0.0
            s["redis_ops_s"] = (ops - prev["redis_cmds"]) / dt if ops is not None and prev["redis_cmds"] is not None \
                and ops >= prev["redis_cmds"] else None
            if not self.a.quiet:
                r = "-" if redis_up is None else ("up" if redis_up else "DOWN")
                ro = "" if s["redis_ops_s"] is None else f"  redis cmds/s {s['redis_ops_s']:6.0f}"
                un = f"  503/s {s['unavailable_s']:4.0f}" if self.uses_redis() else ""
                say(f"{t:6.0f}s  req/s {s['req_s']:6.0f}  miss {100 * s['miss']:5.1f}%  "
                    f"local {100 * s['local']:5.1f}%  redis {100 * s['redis']:5.1f}%{un}  "
                    f"pods up {up}  redis {r}{ro}")
            self.samples.append(s)
        return s

    def schedule(self):
        p = self.p
        ev = []
        if p["failures.crash_at"] >= 0:
            ev.append((p["failures.crash_at"], self.crash_pod))
        if p["redis.crash_at"] >= 0 and self.uses_redis():
            ev.append((p["redis.crash_at"], self.crash_redis))
        if p["failures.scale_at"] >= 0 and p["failures.scale_to"] > len(self.server_names()):
            ev.append((p["failures.scale_at"] + p["pods.startup"], self.scale_out))
        return sorted(ev, key=lambda e: e[0])

    def next_name(self):
        i = len(self.pods) + 1
        while f"pod{i}" in self.pods:
            i += 1
        return f"pod{i}"

    def add_pod(self):
        name = self.start_pod(self.next_name())
        self.wait_pod(name)
        ok, out = self.admin(f"add server {self.backend} {name} {self.pods[name]['addr']}")
        if not ok:
            raise LabError(f"tether refused `add server {name}`: {out}")
        return name

    def crash_pod(self):
        p = self.p
        name = p["failures.crash_pod"] or self.server_names()[0]
        pod = self.pods[name]
        pod["proc"].kill()
        pod["proc"].wait()
        pod["alive"] = False
        vis = self.visiting_sessions()
        lost = sum(1 for _, owner in vis if owner == name) if p["pods.store"] == "memory" else 0
        self.lost += lost
        self.crashes.append((self.now(), f"{name} crash", lost, len(vis)))
        self.event(f"kill -9 {name}: {lost} of {len(vis)} visiting users' sessions were on it")
        if p["pods.replace_after"] > 0:
            self.pending.append((self.now() + p["pods.replace_after"] + p["pods.startup"], self.replace_pod))

    def replace_pod(self):
        name = self.add_pod()
        self.event(f"replacement {name} started and added (add server)")

    def scale_out(self):
        while len([n for n, x in self.pods.items() if x["alive"]]) < self.p["failures.scale_to"]:
            name = self.add_pod()
            self.event(f"scale out: {name} started and added (add server)")

    def crash_redis(self):
        self.redis_proc.kill()
        self.redis_proc.wait()
        t_dead = time.time()
        vis = self.visiting_sessions()
        self.crashes.append((self.now(), "Redis master killed", None, len(vis)))
        self.event(f"kill -9 redis-server (master): {len(vis)} visiting users hold a session")
        if self.sentinels:
            self.pending.append((self.now(), lambda: self.await_failover(t_dead, vis)))
        else:
            self.pending.append((self.now() + self.p["redis.down_for"], lambda: self.restart_redis(t_dead, vis)))

    def count_lost(self, addr, vis):
        sids = [sid for sid, _ in vis]
        lost = 0
        for i in range(0, len(sids), 1000):
            r = redis_pipeline(addr, [("EXISTS", f"sess:{s}") for s in sids[i:i + 1000]], 10)
            lost += sum(1 for x in r if x == 0)
        return lost

    def restart_redis(self, t_dead, vis):
        self.redis_proc, _ = self.start_redis_server("redis", self.redis_port)
        self.pending.append((self.now(), lambda: self.await_serving(t_dead)))
        lost = self.count_lost(self.redis_addr, vis)
        self.lost += lost
        self.crashes.append((self.now(), "Redis back", lost, len(vis)))
        self.event(f"redis-server restarted ({self.p['redis.persistence']}): {lost} of {len(vis)} "
                   "visiting users' sessions lost")

    def pods_serve(self):
        for name, pod in self.pods.items():
            if not pod["alive"]:
                continue
            h = http(pod["addr"], "/login?user=labprobe", 1)
            if not h or h[0] != 200:
                return False
        return True

    def await_serving(self, t_dead):
        """After a restart: when every pod serves again (its link re-made,
        after its reconnect backoff), the live outage the pods saw."""
        if not self.pods_serve():
            if time.time() - t_dead > 120:
                raise LabError("the pods did not serve again within 120 s of Redis's restart")
            self.pending.append((self.now() + 0.1, lambda: self.await_serving(t_dead)))
            return
        self.outage_s = time.time() - t_dead
        self.event(f"pods serve again {self.outage_s:.1f} s after the kill "
                   f"(tether-sim: Redis down for redis.down_for = {self.p['redis.down_for']:g} s)")

    def await_failover(self, t_dead, vis):
        """Polled every 0.1 s (the per-second lines go on): done when every
        pod logs a user in again, a Redis write on the new master."""
        if not self.pods_serve():
            if time.time() - t_dead > 120:
                raise LabError("the pods did not serve again within 120 s of the master's death")
            self.pending.append((self.now() + 0.1, lambda: self.await_failover(t_dead, vis)))
            return
        self.failover_s = time.time() - t_dead
        addr = self.ask_sentinels(self.sentinels, "mymaster")
        self.redis_addr = addr
        lost = self.count_lost(addr, vis)
        self.lost += lost
        self.crashes.append((self.now(), "Redis failover", lost, len(vis)))
        self.event(f"Sentinel failover: new master {addr}; pods serve again {self.failover_s:.1f} s after "
                   f"the master's death (down-after-milliseconds {int(self.p['redis.down_after'] * 1000)}); "
                   f"{lost} of {len(vis)} visiting users' sessions lost")

    def run(self):
        self.prepare()
        p = self.p
        if self.a.plot:
            if not self.a.plot.endswith(".png"):
                raise LabError(f"--plot {self.a.plot}: want a .png file", 2)
            if not shutil.which("gnuplot"):
                raise LabError("--plot needs gnuplot: scripts/install-deps.sh plot")
        say(f"lab: {p['name']}: store {p['pods.store']}, balance {p['backend.balance']}, "
            f"{len(self.server_names())} pods, {p['sim.duration']:.0f} s, seed {p['sim.seed']}"
            + (f", time compressed {self.a.time_compression}x" if self.a.time_compression else "")
            + f"  (logs: {self.dir})")
        if self.uses_redis():
            self.start_redis()
        for n in self.server_names():
            self.start_pod(n)
        for n in self.server_names():
            self.wait_pod(n)
        self.start_tether()
        self.start_load()
        self.pending = self.schedule()
        prev = self.sample(None)
        nxt = 1.0
        while self.load.poll() is None:
            now = self.now()
            due = [e for e in self.pending if e[0] <= now]
            if due:
                self.pending = [e for e in self.pending if e[0] > now]
                for _, fn in sorted(due, key=lambda e: e[0]):
                    fn()
                continue
            if now >= nxt:
                prev = self.sample(prev, nxt)
                nxt = max(nxt + 1.0, now + 0.5)
                continue
            time.sleep(min(0.05, max(0.0, nxt - now)))
        if self.load.returncode != 0:
            raise LabError(f"tether-load failed (status {self.load.returncode}): "
                           f"{self.procs.log('tether-load')[-600:]}")
        self.poll_stats()
        return self.finish()

    # the comparison -------------------------------------------------------------

    def run_sim(self):
        self.sim_json = os.path.join(self.dir, "sim.json")
        self.sim_csv = os.path.join(self.dir, "sim.csv")
        r = subprocess.run([self.bin["sim"], *self.scenario_args(), "--quiet", "--json", self.sim_json,
                            "--csv", self.sim_csv], capture_output=True, text=True)
        if r.returncode != 0:
            raise LabError(f"tether-sim failed: {r.stderr.strip()}")
        with open(self.sim_json) as f:
            return json.load(f)

    def finish(self):
        with open(self.load_json) as f:
            live = json.load(f)
        sim = self.run_sim()
        live["sessions_lost_observed"] = live["sessions_lost"]
        live["sessions_lost"] = self.lost
        if self.redis_addr is not None and self.uses_redis():
            live["redis_commands"] = sum(x["stats"].get("redis_commands", 0) for x in self.pods.values())
        live["pods_created"] = len(self.pods)
        if self.failover_s is not None:
            live["failover_seconds"] = round(self.failover_s, 2)
        if self.outage_s is not None:
            live["redis_outage_seconds"] = round(self.outage_s, 2)
        self.table(live, sim)
        out = {"scenario": self.p["name"], "seed": self.p["sim.seed"], "duration_s": self.p["sim.duration"],
               "time_compression": self.a.time_compression, "live": live, "sim": sim,
               "events": self.events, "samples": self.samples}
        if self.a.json:
            with open(self.a.json, "w") as f:
                json.dump(out, f, indent=1)
        rows = self.merge_csv()
        if self.a.csv:
            self.write_csv(rows, self.a.csv)
        if self.a.plot:
            self.plot(rows)
        return out

    METRICS = [("requests", "requests", 1, 0), ("sessions_created", "sessions created", 1, 0),
               ("session_miss_rate", "miss rate %", 100, 2), ("local_hit_rate", "local hit %", 100, 2),
               ("redis_hit_rate", "Redis hit %", 100, 2), ("redis_ops_per_sec", "Redis ops/s", 1, 1),
               ("sessions_lost", "sessions lost", 1, 0), ("failed_requests", "failed requests", 1, 0),
               ("logins_failed", "logins failed", 1, 0), ("load_max_over_mean", "load max/mean", 1, 3),
               ("pods_final", "pods at the end", 1, 0), ("mean_response_ms", "mean response ms", 1, 2)]

    def table(self, live, sim):
        say("")
        say(f"{'metric':<20} {'live':>12} {'tether-sim':>12} {'live - sim':>12}")
        for key, label, k, dec in self.METRICS:
            lv, sv = live.get(key), sim.get(key)
            if lv is None or sv is None:
                continue
            say(f"{label:<20} {lv * k:>12.{dec}f} {sv * k:>12.{dec}f} {(lv - sv) * k:>+12.{dec}f}")
        if "redis_outage_seconds" in live:
            say(f"{'Redis outage (pods serve again)':<28} {live['redis_outage_seconds']:.1f} s after the kill "
                f"(tether-sim: {self.p['redis.down_for']:g} s)")
        if "failover_seconds" in live:
            say(f"{'failover (pods serve again)':<28} {live['failover_seconds']:.1f} s after the master's death")
        if "redis_commands" in live:
            say(f"real Redis commands sent by the pods: {live['redis_commands']} "
                f"({live['redis_commands'] / max(1, self.p['sim.duration']):.1f}/s; "
                "Redis ops/s above count as tether-sim does)")

    def read_csv(self, path):
        import csv
        try:
            with open(path) as f:
                return list(csv.DictReader(f))
        except OSError:
            return []

    def merge_csv(self):
        live = {round(float(r["time_s"]), 3): r for r in self.read_csv(self.load_csv)}
        sim = {round(float(r["time_s"]), 3): r for r in self.read_csv(self.sim_csv)}
        iv = self.p["sim.report_interval"]
        rows = []
        for t in sorted(set(live) | set(sim)):
            L, S = live.get(t, {}), sim.get(t, {})
            # the samples of this interval, by the report time each stands for: the
            # one at its end was taken after that time's crash, as tether-sim counts it
            secs = [x for x in self.samples if t - iv < x["at"] <= t + 1e-6]
            cmds = [x["redis_ops_s"] for x in secs if x.get("redis_ops_s") is not None]
            g = lambda r, k: r.get(k, "")
            # pods serving at the interval's end: live, the lab's last look; tether-sim,
            # its ready pods (the lab adds a pod when tether-sim's would be ready)
            rows.append({"time_s": t, "live_pods_up": secs[-1]["pods_up"] if secs else "",
                         "sim_pods_ready": g(S, "pods_ready"),
                         "live_requests": g(L, "requests"), "sim_requests": g(S, "requests"),
                         "live_miss_rate": g(L, "miss_rate"), "sim_miss_rate": g(S, "miss_rate"),
                         "live_redis_ops": g(L, "redis_ops"), "sim_redis_ops": g(S, "redis_ops"),
                         "live_redis_commands_per_s": f"{sum(cmds) / len(cmds):.1f}" if cmds else "",
                         "live_failed": g(L, "failed"), "sim_failed": g(S, "failed")})
        return rows

    def write_csv(self, rows, path):
        import csv
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0].keys()) if rows else ["time_s"])
            w.writeheader()
            w.writerows(rows)

    def plot(self, rows):
        data = os.path.join(self.dir, "plot.csv")
        self.write_csv(rows, data)
        iv = self.p["sim.report_interval"]
        marks = "".join(f'set arrow from {t:.1f}, graph 0 to {t:.1f}, graph 1 nohead dt 2 lc rgb "red"\n'
                        f'set label "{w}{"" if lost is None else f": {lost} lost"}" at {t:.1f}, graph '
                        f'{0.95 - 0.08 * (i % 2):.2f} left offset 0.5,0 font ",8"\n'
                        for i, (t, w, lost, _) in enumerate(self.crashes))
        per_s = f"/{iv}"
        # a memory store has no Redis: no panel for it rather than an empty one
        redis_panel = ('set ylabel "Redis ops/s"\n'
                       f'plot "{data}" using 1:($8{per_s}) with linespoints title "live (sim\'s rule)", '
                       f'"" using 1:($9{per_s}) with lines lw 2 title "tether-sim", '
                       '"" using 1:10 with lines dt 3 title "live: real commands/s (INFO)"\n'
                       if self.uses_redis() else "")
        panels = 3 if redis_panel else 2
        parts = "tether, pods, Redis" if redis_panel else "tether, pods"
        script = f"""set terminal pngcairo size 1000,{300 * panels} font ",10"
set output "{self.a.plot}"
set datafile separator ","
set key autotitle columnhead
set multiplot layout {panels},1 title "{self.p['name']}: live ({parts}) vs tether-sim, seed {self.p['sim.seed']}"
set grid
set xlabel "time (s)"
{marks}set ylabel "miss rate %"
plot "{data}" using 1:($6*100) with linespoints title "live", "" using 1:($7*100) with lines lw 2 title "tether-sim"
{redis_panel}set ylabel "pods up (sim: ready)"
set yrange [0:*]
plot "{data}" using 1:2 with steps title "live", "" using 1:3 with steps lw 2 title "tether-sim"
unset multiplot
"""
        r = subprocess.run(["gnuplot"], input=script, capture_output=True, text=True)
        if r.returncode != 0:
            note(f"gnuplot failed: {r.stderr.strip()[:400]}")
        else:
            say(f"lab: plot written to {self.a.plot}")


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="scripts/lab.sh",
        description="Runs a tether-sim scenario for real (redis-server, tether-pods, tether, tether-load), "
                    "then tether-sim on the same scenario and seed; prints live vs predicted. docs/lab.md.")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("-c", dest="config", metavar="SCENARIO.conf", help="a tether-sim scenario file")
    src.add_argument("--pattern", help="A|B|C|D: the teaching demo (sim/scenarios/pattern-X.conf, 75 s)")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--duration", help="override sim.duration (e.g. 60s)")
    ap.add_argument("--set", action="append", metavar="group.key=value", help="as tether-sim --set (both sides)")
    ap.add_argument("--crash", metavar="POD@T", help="kill -9 POD at T (failures.crash_at, crash_pod)")
    ap.add_argument("--redis-crash", metavar="T", help="kill -9 the Redis master at T (redis.crash_at)")
    ap.add_argument("--sentinel", action="store_true", help="a replica and three sentinels (redis.sentinel)")
    ap.add_argument("--down-after", default="5s", help="with --sentinel: down-after-milliseconds (default 5s)")
    ap.add_argument("--scale", metavar="N@T", help="scale out to N pods at T (failures.scale_at, scale_to)")
    ap.add_argument("--time-compression", type=float, metavar="F",
                    help="run every time / F and every rate x F (both sides)")
    ap.add_argument("--json", help="write {live, sim, events, samples}")
    ap.add_argument("--csv", help="live and predicted per report interval")
    ap.add_argument("--plot", metavar="FILE.png", help="miss rate, Redis ops, pods over time (gnuplot)")
    ap.add_argument("--redis", metavar="HOST:PORT", help="use this Redis instead of starting one")
    ap.add_argument("--redis-sentinel", metavar="H:P,H:P,...", help="use these sentinels' master")
    ap.add_argument("--redis-master", metavar="NAME", help="the master's name at --redis-sentinel")
    ap.add_argument("--port", type=int, help="tether's frontend port (default: a free one)")
    ap.add_argument("--keep-alive", action="store_true",
                    help="users keep their connection (tether balances connections; default: one per request)")
    ap.add_argument("--dir", help="the run's directory: configurations, logs, Redis data (default: a new one in /tmp)")
    ap.add_argument("--quiet", action="store_true", help="no line per second")
    a = ap.parse_args(argv)
    if a.redis_sentinel and not a.redis_master:
        ap.error("--redis-sentinel needs --redis-master NAME")
    return a


def main(argv):
    a = parse_args(argv)
    lab = None
    ok = False

    def on_signal(sig, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        lab = Lab(a)
        lab.run()
        ok = True
        return 0
    except LabError as e:
        note(str(e))
        return e.status
    except KeyboardInterrupt:
        note("interrupted: stopping everything it started")
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if lab:
            lab.procs.stop_all()
            if ok and not a.dir and not os.environ.get("TETHER_LAB_KEEP"):
                shutil.rmtree(lab.dir, ignore_errors=True)
            elif not a.dir and not lab.procs.all:          # nothing ran: no logs to keep
                shutil.rmtree(lab.dir, ignore_errors=True)
            elif not ok and os.path.isdir(lab.dir):
                note(f"logs kept in {lab.dir}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
