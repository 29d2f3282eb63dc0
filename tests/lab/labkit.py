"""Lab test kit: real redis-server, redis-sentinel and tether-pod processes
on loopback, each on a free port, all in one temporary directory.

    with Lab() as lab:
        r = lab.redis()
        pod = lab.pod("p1", "--store", "redis", "--redis", r.addr)
        st, hdrs, body = pod.get("/login?user=ann")

Lab.__exit__ stops every process it started (SIGTERM, then SIGKILL), on
success and on failure alike, checks that each pod exited cleanly (ASan,
UBSan, or valgrind with TETHER_VALGRIND=1), prints the logs of a failed test
and removes the directory.  An atexit hook kills anything left if the
interpreter dies another way.  Python 3 standard library only.
"""
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import free_port, main as harness_main, read_http, wait_for  # noqa: E402

POD = os.environ.get("TETHER_POD", "build/src/pod/tether-pod")
VALGRIND = os.environ.get("TETHER_VALGRIND") == "1"
SKIP = 77                       # meson: the test was skipped

_live = set()                   # every process started and not yet reaped


@atexit.register
def _kill_all():
    for p in list(_live):
        if p.poll() is None:
            p.kill()
            p.wait()


def _spawn(cmd, log_path):
    log = open(log_path, "ab")
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    log.close()
    _live.add(proc)
    return proc


def _end(proc, timeout=20):
    """SIGTERM, then SIGKILL after `timeout` s; returns the exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    _live.discard(proc)
    return proc.returncode


class RespError(Exception):
    pass


def redis_cmd(port, *args, timeout=5):
    """One command on a new connection to 127.0.0.1:port; the decoded reply
    (str, int, None, list), RespError for an error reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        s.sendall(b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))
        f = s.makefile("rb")
        return _read_reply(f)


def _read_reply(f):
    line = f.readline()
    if not line:
        raise ConnectionError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RespError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2].decode()
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(f) for _ in range(n)]
    raise ConnectionError("bad RESP line %r" % line)


def redis_ok(port):
    try:
        return redis_cmd(port, "PING", timeout=1) == "PONG"
    except (OSError, RespError):
        return False


class Redis:
    """A redis-server (or a sentinel with sentinel=True) on a free port."""

    def __init__(self, lab, name, args=(), conf_lines=(), sentinel=False):
        self.lab, self.name, self.sentinel = lab, name, sentinel
        self.port = free_port()
        self.dir = os.path.join(lab.dir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "redis.conf")
        lines = [f"port {self.port}", "bind 127.0.0.1", "protected-mode no", f"dir {self.dir}"]
        if not sentinel:
            lines.append('save ""')         # no RDB unless a test asks for persistence
        with open(self.conf, "w") as f:       # sentinel rewrites its file: it must be its own
            f.write("\n".join(lines + list(conf_lines)) + "\n")
        self.args = list(args)
        self.proc = None
        self.start()

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        prog = "redis-sentinel" if self.sentinel else "redis-server"
        self.proc = _spawn([prog, self.conf] + self.args, os.path.join(self.lab.dir, self.name + ".log"))
        if not wait_for(lambda: redis_ok(self.port) or self.proc.poll() is not None, 10) or \
                self.proc.poll() is not None:
            raise AssertionError(f"{self.name} did not start on {self.port}")

    def __call__(self, *args):
        return redis_cmd(self.port, *args)

    def kill(self):
        """kill -9: a crash."""
        self.proc.kill()
        self.proc.wait()
        _live.discard(self.proc)

    def stop(self):
        _end(self.proc)


class Pod:
    """A real tether-pod on a free port; `args` after --name/--listen."""

    def __init__(self, lab, name, *args, wait_redis=False):
        self.lab, self.name = lab, name
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.log = os.path.join(lab.dir, name + ".log")
        self.vlog = os.path.join(lab.dir, name + ".valgrind")
        cmd = [POD, "--name", name, "--listen", self.addr, *args]
        if VALGRIND:
            cmd = ["valgrind", "--quiet", "--leak-check=full", "--show-leak-kinds=definite,indirect",
                   "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99",
                   "--log-file=" + self.vlog] + cmd
        self.proc = _spawn(cmd, self.log)
        if not wait_for(self._listening, 30 if VALGRIND else 10):
            raise AssertionError(f"tether-pod {name} did not listen on {self.addr}")
        if wait_redis and not wait_for(lambda: self.stats()["redis_up"], 20):
            raise AssertionError(f"tether-pod {name} never reached Redis: {self.logtext()}")

    def _listening(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"tether-pod {self.name} exited: {self.logtext()}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def logtext(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def request(self, method, path, sid=None, body=None, timeout=10):
        """One request on a new connection: (status, headers, body); header
        names are lower case, values lists."""
        hdrs = f"{method} {path} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n"
        if sid:
            hdrs += f"Cookie: SID={sid}\r\n"
        data = (body or "").encode()
        if body is not None:
            hdrs += f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(data)}\r\n"
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(hdrs.encode() + b"\r\n" + data)
            st, h, text, _ = read_http(s)
        return st, h, text

    def get(self, path, sid=None):
        return self.request("GET", path, sid)

    def login(self, user):
        """Logs in; returns (sid, X-Session)."""
        st, h, body = self.request("POST", f"/login?user={user}")
        assert st == 200, (st, body)
        cookie = h["set-cookie"][0]
        assert cookie.startswith("SID=") and "Path=/" in cookie, cookie
        return cookie[4:cookie.index(";")], h["x-session"][0]

    def stats(self):
        st, h, body = self.get("/stats")
        assert st == 200 and h["content-type"] == ["application/json"], (st, h)
        return json.loads(body)

    def stop(self):
        rc = _end(self.proc, 60 if VALGRIND else 20)
        if VALGRIND:
            text = open(self.vlog).read() if os.path.exists(self.vlog) else ""
            assert rc != 99, "valgrind found errors:\n" + text
        assert rc == 0, f"tether-pod {self.name} exited {rc}:\n{self.logtext()[-3000:]}"


class Lab:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="tether-lab-")
        self.procs = []                 # Redis and Pod objects, in start order

    def __enter__(self):
        return self

    def redis(self, *args, conf_lines=(), name=None):
        r = Redis(self, name or f"redis{len(self.procs)}", args, conf_lines)
        self.procs.append(r)
        return r

    def sentinel(self, conf_lines, name=None):
        r = Redis(self, name or f"sentinel{len(self.procs)}", (), conf_lines, sentinel=True)
        self.procs.append(r)
        return r

    def pod(self, name, *args, wait_redis=False):
        p = Pod(self, name, *args, wait_redis=wait_redis)
        self.procs.append(p)
        return p

    def _dump_logs(self):
        for f in sorted(os.listdir(self.dir)):
            path = os.path.join(self.dir, f)
            if os.path.isfile(path):
                with open(path, errors="replace") as fh:
                    print(f"--- {f} ---\n{fh.read()[-4000:]}", file=sys.stderr)

    def __exit__(self, kind, exc, tb):
        errors = []
        for p in reversed(self.procs):  # pods first: they must survive Redis going
            try:
                p.stop()
            except AssertionError as e:
                errors.append(str(e))
        if kind or errors:
            self._dump_logs()
        shutil.rmtree(self.dir, ignore_errors=True)
        if errors and not kind:
            raise AssertionError("\n".join(errors))
        return False


def main(tests):
    """harness.main, but a missing redis-server skips the test."""
    if not shutil.which("redis-server") or not shutil.which("redis-sentinel"):
        print("redis-server or redis-sentinel missing (scripts/install-deps.sh lab): skipped")
        sys.exit(SKIP)
    harness_main(tests)


def measure(fn, timeout, step=0.02):
    """Calls fn() until it returns a true value; (value, seconds) or (None, timeout)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = fn()
        if v:
            return v, time.time() - t0
        time.sleep(step)
    return None, timeout
