"""Guards of what docs/configuration.md and docs/operations.md promise, written
against scripts/mutants.py's survivors and meant to hold against any small
bug of the same kind: idle timeouts in both directions, the FIN after a
large download, exact byte counters and metric values (also in cookie mode),
frontend maxconn, the accept pause on EMFILE, `set weight` shares,
drain/disable/enable, reloads carrying them and health, health check
timeouts.

Every wait for a state polls an observable condition with a deadline.  The
few fixed intervals are a measured window (EMFILE retries per second) or
"not served within 0.8 s" checks, which cannot fail when tether is right."""
import asyncio
import hashlib
import json
import os
import re
import resource
import signal
import socket
import time
import urllib.request

from harness import valgrind  # noqa: F401 (marker read by meson.build)
from harness import (Backend, Blackhole, Loop, Tether, banner, conf, connect, free_port, main, read_all, read_http,
                     readline, wait_for)

ADMIN = 'admin = "@DIR@/admin.sock";'


BLAST = hashlib.sha256(b"blast").digest() * (8 << 15)     # 8 MiB


class Trickle(Backend):
    """`trickle`: sends 20 chunks of 500 bytes, one every 0.1 s, then closes.
    `sinkclose`: reads everything; closes when the client does."""

    async def _trickle(self, reader, writer):
        for i in range(20):
            writer.write(bytes([65 + i % 26]) * 500)
            await writer.drain()
            await asyncio.sleep(0.1)

    async def _blast(self, reader, writer):
        """`blast`: 8 MiB at once, then the close (FIN)."""
        writer.write(BLAST)
        await writer.drain()

    async def _slowhttp(self, reader, writer):
        """`slowhttp`: answers each request 250 ms late."""
        while True:
            await reader.readuntil(b"\r\n\r\n")
            await asyncio.sleep(0.25)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
            await writer.drain()

    async def _sinkclose(self, reader, writer):
        n = 0
        while True:
            d = await reader.read(65536)
            if not d:
                break
            n += len(d)
        writer.write(b"%d\n" % n)
        await writer.drain()


class SmallWindow(Backend):
    """A backend whose sockets have a small receive buffer: a large write
    to it is taken in parts, so tether has to buffer and flush."""

    def start(self):
        self.stopped = False

        async def go():
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)     # inherited by accepted sockets
            sock.bind((self.host, self.port))
            sock.listen(64)
            sock.setblocking(False)
            self.server = await asyncio.start_server(self._client, sock=sock)
        Loop.get().call(go())


def metrics(mport):
    return urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read().decode()


def stats(mport):
    return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{mport}/stats", timeout=5).read())


def sample(text, name, labels=""):
    """The value of one exact series (labels as printed), or None."""
    m = re.search(r"^" + re.escape(name + labels) + r" (\S+)$", text, re.M)
    return m.group(1) if m else None


def value(mport, name, labels=""):
    v = sample(metrics(mport), name, labels)
    return None if v is None else float(v)


def server_value(mport, name, server):
    return value(mport, name, f'{{backend="be",server="{server}"}}')


def log_end(t, reason, count=1):
    return wait_for(lambda: t.logtext().count("end=" + reason) >= count, 10)


# --- idle timeouts: "no byte read from or written to it", both sides ---

def idle_case(client_ms, server_ms, direction):
    """A 2 s transfer in one direction while the other side stays silent,
    under a 1 s timeout on one side: activity in either direction keeps
    a side alive, so it must complete; once it stops, the timeout fires."""
    b = Trickle("b", mode="trickle" if direction == "down" else "sinkclose")
    text, port = conf([("b", b.addr)],
                      backend_extra=f'timeouts = {{ client = "{client_ms}ms"; server = "{server_ms}ms"; }};')
    t = Tether(text, port)
    s = connect(port, timeout=10)
    if direction == "down":
        got = read_all(s)               # the client never writes
        s.close()
        assert got == b"".join(bytes([65 + i % 26]) * 500 for i in range(20)), len(got)
        assert log_end(t, "server-closed"), t.logtext()
    else:
        for _ in range(20):             # the server never answers until the end
            s.sendall(b"x" * 300)
            time.sleep(0.1)
        s.shutdown(socket.SHUT_WR)
        assert readline(s) == "6000", "the upload was cut: " + t.logtext()[-500:]
        assert log_end(t, "client-closed"), t.logtext()
    s.close()
    if direction == "up":               # once silent, the short timeout closes it
        s = connect(port, timeout=10)
        s.sendall(b"y")
        t0 = time.time()
        assert s.recv(10) == b""
        took = time.time() - t0
        s.close()
        assert 0.3 < took < 5, took
        assert log_end(t, "client-timeout" if client_ms < server_ms else "server-timeout"), t.logtext()
    t.stop()


def test_guard_idle_download_silent_client():
    idle_case(1000, 30000, "down")      # writes to the client keep its side alive
    idle_case(30000, 1000, "down")      # reads from the server keep its side alive


def test_guard_idle_upload_silent_server():
    idle_case(1000, 30000, "up")        # reads from the client keep its side alive
    idle_case(30000, 1000, "up")        # writes to the server keep its side alive


def test_guard_large_download_ends_with_fin():
    """A client slower than its server: the relay buffers and stops reading
    the server (backpressure); the server's FIN arrives while bytes are still
    buffered, and must reach the client after the last of them."""
    b = Trickle("b", mode="blast")
    text, port = conf([("b", b.addr)])
    t = Tether(text, port)
    for _ in range(2):
        s = connect(port, timeout=15)
        time.sleep(0.3)                 # not an assertion: lets the buffers fill first
        got = bytearray()
        while True:                     # ends only with the FIN
            d = s.recv(1 << 20)
            if not d:
                break
            got += d
        s.close()
        assert len(got) == len(BLAST) and got == BLAST, len(got)
    assert log_end(t, "server-closed", 2), t.logtext()
    t.stop()


# --- byte counters and metric values ---

@valgrind
def test_guard_exact_byte_counters():
    b = Backend("d", mode="drain")
    mport = free_port()
    text, port = conf([("d", b.addr)], global_extra=f'metrics = "127.0.0.1:{mport}"; ' + ADMIN)
    t = Tether(text, port)
    up = os.urandom(12345)
    s = connect(port)
    s.sendall(up)
    s.shutdown(socket.SHUT_WR)
    answer = read_all(s)
    s.close()
    assert answer == f"12345 {hashlib.sha256(up).hexdigest()}\n".encode(), answer
    down = len(answer)
    assert log_end(t, "client-closed"), t.logtext()
    assert re.search(rf" in=12345 out={down} end=client-closed", t.logtext()), t.logtext()
    labels = '{backend="be",server="d"}'
    assert wait_for(lambda: value(mport, "tether_server_bytes_in_total", labels) == 12345, 5), metrics(mport)
    text = metrics(mport)
    assert sample(text, "tether_server_bytes_in_total", labels) == "12345", text
    assert sample(text, "tether_server_bytes_out_total", labels) == str(down), text
    assert sample(text, "tether_server_connections_total", labels) == "1", text
    assert sample(text, "tether_frontend_connections_total", '{frontend="fe"}') == "1", text
    assert sample(text, "tether_active_connections") == "0", text
    assert sample(text, "tether_maxconn") == "20000", text
    assert sample(text, "tether_reloads_total") == "0", text
    st = stats(mport)["backends"][0]["servers"][0]
    assert (st["bytes_in_total"], st["bytes_out_total"], st["connections_total"]) == (12345, down, 1), st
    # a reload carries them over, exactly
    t.signal(signal.SIGHUP)
    assert wait_for(lambda: value(mport, "tether_reloads_total") == 1, 10), t.logtext()
    text = metrics(mport)
    assert sample(text, "tether_server_bytes_in_total", labels) == "12345", text
    assert sample(text, "tether_server_bytes_out_total", labels) == str(down), text
    assert sample(text, "tether_server_connections_total", labels) == "1", text
    assert sample(text, "tether_frontend_connections_total", '{frontend="fe"}') == "1", text
    t.stop()


@valgrind
@valgrind
def test_guard_cookie_mode_bytes_and_set_cookie():
    """Cookie mode: the peeked request head counts in bytes_in like any
    byte; bytes_out counts what the server sent (not the Set-Cookie tether
    adds); Max-Age is max_age in seconds; a valid cookie gets no new one."""
    b = Backend("h", mode="http")
    mport = free_port()
    text, port = conf([("h", b.addr)], balance="cookie", backend_extra='cookie = { max_age = "1h"; };',
                      global_extra=f'metrics = "127.0.0.1:{mport}";')
    t = Tether(text, port)
    req = b"GET /x HTTP/1.1\r\nHost: t\r\nX-Pad: " + b"p" * 1000 + b"\r\n\r\n"
    s = connect(port)
    s.sendall(req)
    status, hdrs, body, head = read_http(s)
    s.close()
    assert status == 200
    cookie = hdrs["set-cookie"]
    assert len(cookie) == 1 and re.fullmatch(r"TETHERID=[0-9a-f]{16}; Path=/; HttpOnly; Max-Age=3600", cookie[0]), cookie
    added = len("Set-Cookie: ") + len(cookie[0]) + 2
    received = len(head) + 4 + len(body.encode())
    labels = '{backend="be",server="h"}'
    assert wait_for(lambda: value(mport, "tether_server_bytes_in_total", labels) == len(req), 5), metrics(mport)
    assert value(mport, "tether_server_bytes_out_total", labels) == received - added, metrics(mport)
    # the cookie names this server: no Set-Cookie, same server
    value_ = cookie[0].split(";")[0].split("=", 1)[1]
    s = connect(port)
    s.sendall(f"GET / HTTP/1.1\r\nHost: t\r\nCookie: TETHERID={value_}\r\n\r\n".encode())
    status, hdrs, body, head = read_http(s)
    s.close()
    assert "set-cookie" not in hdrs, hdrs
    assert body.startswith("h "), body
    assert wait_for(lambda: value(mport, "tether_server_affinity_hits_total", labels) == 1, 5), metrics(mport)
    assert value(mport, "tether_server_affinity_misses_total", labels) == 1
    t.stop()


def test_guard_cookie_mode_partial_head_then_fin():
    """Cookie mode, a client that sends 60 kB of an unfinished head and its
    FIN: routed by fallback and passed through untouched - bytes, then the
    FIN, even though the server takes the bytes in small parts."""
    b = SmallWindow("d", mode="drain")
    text, port = conf([("d", b.addr)], balance="cookie", backend_extra="cookie = { max_head = 65536; };")
    t = Tether(text, port)
    for _ in range(2):
        part = b"GET / HTTP/1.1\r\nX-Pad: " + os.urandom(30000).hex().encode()
        s = connect(port, timeout=10)
        s.sendall(part)
        s.shutdown(socket.SHUT_WR)
        assert readline(s) == f"{len(part)} {hashlib.sha256(part).hexdigest()}", t.logtext()[-500:]
        s.close()
    t.stop()


@valgrind
def test_guard_metric_values_after_failures():
    good = Backend("good")
    dead_port = free_port()             # nothing listens: refused at once
    mport = free_port()
    text, port = conf([("dead", f"127.0.0.1:{dead_port}"), ("good", good.addr)],
                      global_extra=f'metrics = "127.0.0.1:{mport}"; ' + ADMIN)
    t = Tether(text, port)
    # round-robin starts with "dead": refused, retried on "good"
    assert banner(port) == "good"
    text = metrics(mport)
    assert sample(text, "tether_retries_total", '{backend="be"}') == "1", text
    assert sample(text, "tether_server_connect_failures_total", '{backend="be",server="dead"}') == "1", text
    assert sample(text, "tether_server_connections_total", '{backend="be",server="dead"}') == "1", text
    assert sample(text, "tether_server_connections_total", '{backend="be",server="good"}') == "1", text
    assert sample(text, "tether_backend_no_server_total", '{backend="be"}') == "0", text
    # nothing usable: refused and counted
    assert t.admin("disable server be good")[1].strip() == "OK"
    assert t.admin("disable server be dead")[1].strip() == "OK"
    s = connect(port)
    assert s.recv(10) == b""
    s.close()
    assert wait_for(lambda: value(mport, "tether_backend_no_server_total", '{backend="be"}') == 1, 5), metrics(mport)
    assert sample(metrics(mport), "tether_retries_total", '{backend="be"}') == "1"
    # a broken file: refused, counted, the previous configuration kept
    with open(t.path, "w") as f:
        f.write("this is not a configuration")
    t.signal(signal.SIGHUP)
    assert wait_for(lambda: value(mport, "tether_reload_failures_total") == 1, 10), t.logtext()
    info = t.admin("show info")[1]
    assert re.search(r"^reload_failures 1$", info, re.M), info
    assert re.search(r"^reloads 0$", info, re.M), info
    assert re.search(r"^maxconn 20000$", info, re.M), info
    assert re.search(r"^connections_total 2$", info, re.M), info
    assert sample(metrics(mport), "tether_reloads_total") == "0"
    t.stop()


# --- maxconn and EMFILE ---

def test_guard_frontend_maxconn():
    b = Backend("m")
    mport = free_port()
    text, port = conf([("m", b.addr)], frontend_extra="maxconn = 3;", global_extra=f'metrics = "127.0.0.1:{mport}";')
    t = Tether(text, port)
    for rnd in range(2):
        held = [connect(port) for _ in range(3)]
        for s in held:
            assert readline(s) == "m"
        assert value(mport, "tether_frontend_active_connections", '{frontend="fe"}') == 3
        extra = connect(port, timeout=0.8)      # queued by the kernel, not served
        try:
            served = extra.recv(10) != b""
        except socket.timeout:
            served = False
        assert not served, "a 4th connection was served above the frontend's maxconn = 3"
        held[rnd].close()
        extra.settimeout(10)
        assert readline(extra) == "m"           # served once a slot freed
        for s in held + [extra]:
            s.close()
        assert wait_for(lambda: value(mport, "tether_frontend_active_connections", '{frontend="fe"}') == 0, 10)
    t.stop()


def test_guard_emfile_pause_and_recovery():
    """Out of descriptors, accept() fails with EMFILE while the connection
    stays queued: the listener must pause (ACCEPT_PAUSE, 100 ms) rather than
    spin on a readable listener, and come back by itself once descriptors
    free up - with no new connection to wake it."""
    b = Backend("e")
    text, port = conf([("e", b.addr)])
    t = Tether(text, port)
    pid = t.proc.pid
    nfd = len(os.listdir(f"/proc/{pid}/fd"))
    # room for two proxied connections (client + server socket each)
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (nfd + 4, hard))
    held = [connect(port) for _ in range(2)]
    for s in held:
        assert readline(s) == "e"
    pending = connect(port, timeout=0.8)        # accept() fails with EMFILE
    try:
        served = pending.recv(10) != b""
    except socket.timeout:
        served = False
    assert not served
    assert wait_for(lambda: "pausing accepts" in t.logtext(), 5), t.logtext()
    # Out of descriptors for a measured window: paused, tether retries about
    # ten times a second (per worker); spinning would log thousands of times.
    t0 = time.time()
    time.sleep(1.0)     # the window measured, not a wait for a condition
    window = time.time() - t0 + 0.8
    for s in held:
        s.close()
    pending.settimeout(10)
    assert readline(pending) == "e", t.logtext()
    pending.close()
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
    assert banner(port) == "e"
    t.stop()
    retries = t.logtext().count("pausing accepts")
    assert retries <= 5 + 40 * window, f"{retries} EMFILE retries in {window:.1f} s: accept is spinning"


# --- the runtime API's effects ---

def shares(port, n):
    got = {}
    for _ in range(n):
        name = banner(port)
        got[name] = got.get(name, 0) + 1
    return got


@valgrind
def test_guard_set_weight_changes_shares():
    a, b = Backend("a"), Backend("b")
    mport = free_port()
    text, port = conf([("a", a.addr), ("b", b.addr)], global_extra=f'metrics = "127.0.0.1:{mport}"; ' + ADMIN)
    t = Tether(text, port)
    assert shares(port, 10) == {"a": 5, "b": 5}
    assert t.admin("set weight be a 3")[1].strip() == "OK"
    assert server_value(mport, "tether_server_weight", "a") == 3
    assert shares(port, 40) == {"a": 30, "b": 10}
    assert t.admin("set weight be b 0")[1].strip() == "OK"
    assert shares(port, 10) == {"a": 10}
    line = [l for l in t.admin("show servers")[1].splitlines() if l.split()[:1] == ["b"]][0]
    assert line.split()[3] == "0", line
    assert t.admin("set weight be b 257")[1].startswith("ERR")
    assert t.admin("set weight be b 256")[1].strip() == "OK"
    assert server_value(mport, "tether_server_weight", "b") == 256
    assert t.admin("set weight be b x")[1].startswith("ERR")
    assert t.admin("set weight be a 1")[1].strip() == "OK"
    assert t.admin("set weight be b 1")[1].strip() == "OK"
    assert shares(port, 10) == {"a": 5, "b": 5}
    t.stop()


@valgrind
def test_guard_drain_disable_enable():
    a, b = Backend("a", mode="echo"), Backend("b", mode="echo")
    mport = free_port()
    text, port = conf([("a", a.addr), ("b", b.addr)], global_extra=f'metrics = "127.0.0.1:{mport}"; ' + ADMIN)
    t = Tether(text, port)
    # one connection to each
    conns = [connect(port), connect(port)]
    for c in conns:
        c.sendall(b"ping\n")
        assert readline(c) == "ping"
    assert t.admin("drain server be a")[1].strip() == "OK"
    assert t.state("a") == "DRAIN"
    assert server_value(mport, "tether_server_draining", "a") == 1
    assert server_value(mport, "tether_server_up", "a") == 1
    assert server_value(mport, "tether_server_active_connections", "a") == 1
    assert server_value(mport, "tether_server_active_connections", "b") == 1
    for c in conns:                     # connections in progress go on
        c.sendall(b"still\n")
        assert readline(c) == "still"
    for _ in range(4):
        s = connect(port)
        s.sendall(b"x\n")
        assert readline(s) == "x"
        s.close()
    assert wait_for(lambda: server_value(mport, "tether_server_connections_total", "b") == 5, 5)
    assert server_value(mport, "tether_server_connections_total", "a") == 1
    # a reload keeps what the operator did
    t.signal(signal.SIGHUP)
    assert wait_for(lambda: t.logtext().count("reloaded") >= 1, 10)
    assert t.state("a") == "DRAIN"
    assert t.admin("disable server be a")[1].strip() == "OK"
    assert t.state("a") == "MAINT"
    assert server_value(mport, "tether_server_draining", "a") == 0
    t.signal(signal.SIGHUP)
    assert wait_for(lambda: t.logtext().count("reloaded") >= 2, 10)
    assert t.state("a") == "MAINT"
    assert t.admin("enable server be a")[1].strip() == "OK"
    assert t.state("a") == "UP"
    for _ in range(4):                  # enabled: round-robin again
        s = connect(port)
        s.sendall(b"z\n")
        assert readline(s) == "z"
        s.close()
    assert wait_for(lambda: server_value(mport, "tether_server_connections_total", "a") == 3, 5), metrics(mport)
    for c in conns:
        c.close()
    t.stop()


@valgrind
def test_guard_reload_keeps_down_server_down():
    a, b = Backend("a"), Backend("b")
    health = 'health = { type = "tcp"; interval = "%s"; rise = 1; fall = 1; };'
    text, port = conf([("a", a.addr), ("b", b.addr)], backend_extra=health % "200ms", global_extra=ADMIN)
    t = Tether(text, port)
    a.stop()
    assert wait_for(lambda: t.state("a") == "DOWN", 10), t.logtext()
    # a reload with slow checks: nothing may bring "a" back before a check does
    t.write(text.replace('"200ms"', '"20s"'))
    t.signal(signal.SIGHUP)
    assert wait_for(lambda: "reloaded" in t.logtext(), 10)
    assert t.state("a") == "DOWN", t.admin("show servers")[1]
    for _ in range(6):
        assert banner(port) == "b"
    assert t.state("a") == "DOWN"
    t.stop()


def test_guard_health_check_timeout():
    """`health.timeout` bounds a whole check: a server that never completes
    the handshake and one that answers 250 ms late both fail a 100 ms check
    by timeout ("(timeout)" in the log, `last_check` in /stats), go DOWN
    after `fall` failures and take no traffic; the prompt one stays UP."""
    bh, slow, b = Blackhole(), Trickle("slow", mode="slowhttp"), Backend("b", mode="http")
    mport = free_port()
    health = 'health = { type = "http"; interval = "400ms"; timeout = "100ms"; rise = 1; fall = 2; };'
    text, port = conf([("bh", bh.addr), ("slow", slow.addr), ("b", b.addr)], backend_extra=health,
                      global_extra=f'metrics = "127.0.0.1:{mport}"; ' + ADMIN)
    t = Tether(text, port)
    for name in ("bh", "slow"):
        assert wait_for(lambda: f"server be/{name} is DOWN (timeout)" in t.logtext(), 10), t.logtext()
        assert t.state(name) == "DOWN"
    assert t.state("b") == "UP"
    st = {x["name"]: x for x in stats(mport)["backends"][0]["servers"]}
    for name in ("bh", "slow"):
        assert st[name]["last_check"] == "timeout", st[name]
        assert st[name]["health_transitions_total"] == 1, st[name]
    assert st["b"]["health_transitions_total"] == 0, st["b"]
    for _ in range(4):
        s = connect(port)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert readline(s) == "HTTP/1.1 200 OK"
        s.close()
    assert "is UP" not in t.logtext() and "server be/b is DOWN" not in t.logtext(), t.logtext()
    t.stop()
    bh.close()


if __name__ == "__main__":
    main(globals())
