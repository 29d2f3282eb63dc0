"""Integration-test harness: runs the real tether against loopback backends.

Backends run in one asyncio loop on a background thread, so thousands of
connections cost no threads.  Modes:
  banner  sends NAME\\n on connect, then echoes; closes when the client does
  echo    echoes everything; a FIN from the client is passed on (shutdown)
  http    HTTP/1.1 keep-alive; answers NAME (and the Cookie it got); `slow`
          writes the response head one byte at a time
  sink    reads and discards, never answers
  drain   reads until EOF, then answers "<bytes> <sha256>\\n" and closes
  stream  never reads; writes "tick\\n" every 0.1 s for 2 s, then closes
"""
import asyncio
import atexit
import hashlib
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

TETHER = os.environ.get("TETHER", "build/src/tether")
POD = os.environ.get("TETHER_POD", "build/src/pod/tether-pod")
VALGRIND = os.environ.get("TETHER_VALGRIND") == "1"


def _sanitized(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
            return b"__asan_init" in data or b"__tsan_init" in data
    except OSError:
        return False


SANITIZED = _sanitized(TETHER)      # built with a sanitizer: RSS is not meaningful
# TETHER_TEST_WORKERS=N runs every test's tether with global.workers = N
# (the test command runs the suite again with 2 workers under ThreadSanitizer).
WORKERS = os.environ.get("TETHER_TEST_WORKERS")


def with_workers(text):
    """The configuration text with global.workers = WORKERS, unless it sets workers."""
    if not WORKERS or "workers" in text:
        return text
    if "global = {" in text:
        return text.replace("global = {", "global = { workers = %s;" % WORKERS, 1)
    return "global = { workers = %s; };\n" % WORKERS + text


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


raise_nofile()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Loop:
    """One asyncio loop on a daemon thread, shared by every backend."""
    _inst = None

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    @classmethod
    def get(cls):
        if cls._inst is None:
            cls._inst = Loop()
        return cls._inst

    def call(self, coro, timeout=10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


class Backend:
    def __init__(self, name, mode="banner", port=None, slow=False, host="127.0.0.1"):
        self.name, self.mode, self.slow, self.host = name, mode, slow, host
        self.port = port or free_port()
        self.server = None
        self.stopped = False
        self.accepted = 0
        self.heads = []                     # http mode: every request head received
        self.writers = set()
        self.start()

    @property
    def addr(self):
        return f"{self.host}:{self.port}"

    def start(self):
        self.stopped = False

        async def go():
            self.server = await asyncio.start_server(self._client, self.host, self.port,
                                                     reuse_address=True, backlog=4096)
        Loop.get().call(go())

    def stop_listening(self):
        """Closes the listener only: health checks fail, open connections live on."""
        async def go():
            self.server.close()
        Loop.get().call(go())

    def stop(self):
        """Stops listening and resets every open connection (a crash)."""
        async def go():
            self.stopped = True
            self.server.close()
            for w in list(self.writers):
                w.transport.abort()         # RST, at once
            await self.server.wait_closed()
        Loop.get().call(go())

    async def _client(self, reader, writer):
        if self.stopped:                    # accepted while stopping: a crash resets it too
            writer.transport.abort()
            return
        self.accepted += 1
        self.writers.add(writer)
        try:
            await getattr(self, "_" + self.mode)(reader, writer)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.writers.discard(writer)
            try:
                writer.close()
            except Exception:
                pass

    async def _banner(self, reader, writer):
        writer.write(self.name.encode() + b"\n")
        await writer.drain()
        await self._echo(reader, writer)

    async def _echo(self, reader, writer):
        while True:
            data = await reader.read(65536)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                await writer.drain()
                # keep the socket until the peer is done reading
                await asyncio.sleep(0.5)
                return
            writer.write(data)
            await writer.drain()

    async def _stream(self, reader, writer):
        for _ in range(20):
            writer.write(b"tick\n")
            await writer.drain()
            await asyncio.sleep(0.1)

    async def _sink(self, reader, writer):
        while await reader.read(65536):
            pass

    async def _drain(self, reader, writer):
        h, n = hashlib.sha256(), 0
        while True:
            data = await reader.read(65536)
            if not data:
                break
            h.update(data)
            n += len(data)
        writer.write(f"{n} {h.hexdigest()}\n".encode())
        await writer.drain()

    async def _http(self, reader, writer):
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            self.heads.append(head)
            cookie = b""
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"cookie:"):
                    cookie = line[7:].strip()
            body = self.name.encode() + b" " + cookie + b"\n"
            resp = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
                    + str(len(body)).encode() + b"\r\n\r\n")
            if self.slow:
                for i in range(len(resp)):
                    writer.write(resp[i:i + 1])
                    await writer.drain()
                    await asyncio.sleep(0.001)
                writer.write(body)
            else:
                writer.write(resp + body)
            await writer.drain()


class Blackhole:
    """A port that never completes a handshake: a full accept queue of a
    listener that never accepts, so further SYNs are dropped."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fillers = []
        for _ in range(4):
            c = socket.socket()
            c.setblocking(False)
            try:
                c.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            self.fillers.append(c)
        # the queue is full once a filler's handshake completed (it is writable)
        import select
        end = time.time() + 5
        while not select.select([], self.fillers, [], 0.05)[1] and time.time() < end:
            pass

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def close(self):
        for c in self.fillers:
            c.close()
        self.sock.close()


def conf(servers, balance="roundrobin", backend_extra="", global_extra="", port=None, frontend_extra="",
         log='"stderr"'):
    """servers: list of (name, addr) or (name, addr, extra); log: the value of global.log."""
    port = port or free_port()
    lines = []
    for s in servers:
        extra = s[2] if len(s) > 2 else ""
        lines.append(f'{{ name = "{s[0]}"; address = "{s[1]}"; {extra} }}')
    if "drain_timeout" not in global_extra:
        global_extra += ' drain_timeout = "5s";'     # bounds stop() in every test
    text = (f"global = {{ log = {log}; {global_extra} }};\n"
            f"frontends = ( {{ name = \"fe\"; bind = [ \"127.0.0.1:{port}\" ]; backend = \"be\"; {frontend_extra} }} );\n"
            f"backends = ( {{ name = \"be\"; balance = \"{balance}\"; {backend_extra}\n"
            f"  servers = ( {', '.join(lines)} ); }} );\n")
    return text, port


class Tether:
    def __init__(self, text, port, check_exit=True, nofile=None, log_file=None):
        """nofile: tether's RLIMIT_NOFILE (soft and hard); log_file: the file
        the configuration logs to (@DIR@ allowed), watched for "started"."""
        self.dir = tempfile.mkdtemp(prefix="tit-")
        self.path = os.path.join(self.dir, "tether.conf")
        self.port = port
        self.check_exit = check_exit
        self.write(text)
        self.log_path = os.path.join(self.dir, "tether.log")
        self.log = open(self.log_path, "w")
        self.log_file = log_file.replace("@DIR@", self.dir) if log_file else None
        cmd = [TETHER, "-c", self.path]
        if VALGRIND:
            cmd = ["valgrind", "--quiet", "--leak-check=full", "--show-leak-kinds=definite,indirect",
                   "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99",
                   "--track-fds=yes", "--log-file=" + os.path.join(self.dir, "valgrind.log")] + cmd
        def limits():
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
            else:
                raise_nofile()
        self.proc = subprocess.Popen(cmd, stderr=self.log, stdout=self.log, preexec_fn=limits)
        atexit.register(self._kill)         # a failed assertion must not leave it running
        self.wait_port(port)

    def _kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def write(self, text):
        """Writes the config; @DIR@ stands for this instance's directory."""
        with open(self.path, "w") as f:
            f.write(with_workers(text.replace("@DIR@", self.dir)))

    def wait_port(self, port, timeout=20):
        """Waits until tether is serving: its "started" line, written once
        every listener accepts (no probe connection, which would take a
        balancing turn - and, with several workers, at a moment of its own).
        Falls back to a probe when the log goes elsewhere than stderr."""
        end = time.time() + timeout
        probe_after = time.time() + 3
        while time.time() < end:
            if self.proc.poll() is not None:
                raise AssertionError("tether exited: " + self.logtext())
            if " started: " in self.logtext():
                return
            if self.log_file and os.path.exists(self.log_file) and " started: " in open(self.log_file).read():
                return
            if time.time() > probe_after:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    return
                except OSError:
                    pass
            time.sleep(0.02)
        raise AssertionError("tether did not listen on %d: %s" % (port, self.logtext()))

    def logtext(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("tether did not stop on SIGTERM")
        if VALGRIND:
            vlog = os.path.join(self.dir, "valgrind.log")
            text = open(vlog).read() if os.path.exists(vlog) else ""
            # --track-fds lists inherited std fds too; only flag sockets left open
            leaked = [l for l in text.splitlines() if "Open AF_INET" in l or "Open AF_UNIX" in l]
            assert not leaked, "fds left open at exit:\n" + text
            assert rc != 99, "valgrind found errors:\n" + text
        if self.check_exit:
            assert rc == 0, "tether exited %s: %s" % (rc, self.logtext()[-3000:])
        return rc

    def admin(self, cmd):
        sock = os.path.join(self.dir, "admin.sock")
        out = subprocess.run([TETHER, "-x", sock, cmd], capture_output=True, text=True, timeout=10)
        return out.returncode, out.stdout

    def state(self, server):
        """The state (UP, DOWN, DRAIN, MAINT) `show servers` gives server, or None."""
        for line in self.admin("show servers")[1].splitlines():
            f = line.split()
            if f and f[0] == server:
                return f[2]
        return None


def metric(mport, name, labels=None):
    """The value of one sample of /metrics on mport (labels: 'backend="be"'), or None."""
    import re
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read().decode()
    sel = re.escape(name) + (r"\{%s\}" % re.escape(labels) if labels else "")
    m = re.search(r"^%s ([0-9.e+-]+)$" % sel, text, re.M)
    return float(m.group(1)) if m else None


def connect(port, src=None, timeout=5):
    s = socket.socket()
    s.settimeout(timeout)
    if src:
        s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s


def read_all(s):
    """Everything the peer sends until it closes."""
    buf = b""
    while True:
        d = s.recv(65536)
        if not d:
            return buf
        buf += d


def readline(s):
    buf = b""
    while not buf.endswith(b"\n"):
        d = s.recv(1)
        if not d:
            break
        buf += d
    return buf.decode().strip()


def banner(port, src=None):
    """Connects, returns the name of the backend that answered."""
    s = connect(port, src)
    try:
        return readline(s)
    finally:
        s.close()


def http_get(port, headers=None, src=None):
    s = connect(port, src)
    try:
        req = "GET / HTTP/1.1\r\nHost: t\r\n" + "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items()) + "\r\n"
        s.sendall(req.encode())
        return read_http(s)
    finally:
        s.close()


def read_http(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        if not d:
            raise AssertionError("connection closed inside a response head: %r" % buf)
        buf += d
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    hdrs = {}
    for l in lines[1:]:
        k, v = l.split(":", 1)
        hdrs.setdefault(k.strip().lower(), []).append(v.strip())
    n = int(hdrs["content-length"][0])
    while len(body) < n:
        d = s.recv(4096)
        if not d:
            break
        body += d
    return int(lines[0].split()[1]), hdrs, body[:n].decode(), head


class Pod:
    """A real tether-pod on a free loopback port, listening once constructed."""

    def __init__(self, name, *args, capture=False):
        """capture: stderr goes to a file, read with logtext()."""
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="pod-", suffix=".log") if capture else None
        self.proc = subprocess.Popen([POD, "--name", name, "--listen", self.addr, *args],
                                     stderr=self.log.fileno() if capture else None)
        if not wait_for(self._listening, 5):
            self.stop()
            raise AssertionError(f"tether-pod {name} did not listen on {self.addr}")

    def _listening(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def logtext(self):
        with open(self.log.name) as f:
            return f.read()

    def stats(self, proxy=False):
        """GET /stats; proxy: after a PROXY v2 LOCAL header (--proxy-protocol)."""
        import json
        s = connect(self.port)
        try:
            pre = b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00" if proxy else b""
            s.sendall(pre + b"GET /stats HTTP/1.1\r\nHost: pod\r\n\r\n")
            return json.loads(read_http(s)[2])
        finally:
            s.close()

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def metrics(port):
    """GET /metrics on the metrics port: {"name{labels}": value}."""
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def valgrind(fn):
    """Marks a test that also runs under valgrind.  tests/integration/
    meson.build finds every `def test_*` of every test_*.py file and reads
    this marker on the line above it: a test cannot be forgotten."""
    fn.valgrind = True
    return fn


def fetch(mport, path="/stats"):
    """GET path from the metrics port: the text of /metrics, the JSON of /stats."""
    import json
    import urllib.request
    body = urllib.request.urlopen(f"http://127.0.0.1:{mport}{path}", timeout=10).read().decode()
    return json.loads(body) if path == "/stats" else body


def server_stats(mport, backend=0):
    """{server name: its /stats object} of a backend (by position)."""
    return {s["name"]: s for s in fetch(mport)["backends"][backend]["servers"]}


def wait_for(pred, timeout, step=0.05):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def main(tests):
    name = sys.argv[1]
    fn = tests.get("test_" + name)
    if not fn:
        print("unknown test", name, "; have:", ", ".join(sorted(tests)))
        sys.exit(2)
    t0 = time.time()
    fn()
    print(f"{name}: ok ({time.time() - t0:.1f}s)")
