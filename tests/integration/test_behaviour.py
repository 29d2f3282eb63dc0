"""Documented behaviours that had no test of their own (issue 15): idle
timeouts in both directions, frontend maxconn, the accept pause on EMFILE,
IPv6 binds and servers, SIGUSR1 log reopen, listeners added and removed by
a reload, iphash prefix24 and balance_factor, the stick table with
roundrobin and leastconn, a head over max_head passed through, the health
"(timeout)" reason.  docs/promises.md maps each to its documentation."""
import os
import re
import signal
import socket
import time

from harness import valgrind  # noqa: F401 (marker read by meson.build)
from harness import (WORKERS, Backend, Blackhole, Tether, banner, conf, connect, free_port, http_get, main, read_all,
                     readline, wait_for)

ADMIN = 'admin = "@DIR@/admin.sock";'


def start(servers, **kw):
    return Tether(*conf(servers, **kw))


# --- timeouts.client / timeouts.server: idle means no byte either way ---

def test_idle_timeout_reset_by_writes_to_the_client():
    """configuration.md: client timeout = no byte read from *or written to*
    the client.  A client that sends nothing but receives a tick every 0.1 s
    for 2 s is not cut at a 0.5 s client timeout; it gets all 20 ticks and
    the server's close."""
    st = Backend("st", mode="stream")
    t = start([("st", st.addr)], backend_extra='timeouts = { client = "500ms"; server = "30s"; };')
    s = connect(t.port, timeout=10)
    got = read_all(s)
    s.close()
    assert got == b"tick\n" * 20, got
    assert wait_for(lambda: "end=server-closed" in t.logtext(), 5), t.logtext()
    assert "client-timeout" not in t.logtext()
    t.stop()


def test_idle_timeout_reset_by_writes_to_the_server():
    """The other direction: a server that sends nothing while the client
    uploads a line every 0.1 s for 2 s is not cut at a 0.5 s server timeout;
    once the upload stops, the silent connection is cut (server-timeout)."""
    k = Backend("k", mode="sink")
    t = start([("k", k.addr)], backend_extra='timeouts = { client = "30s"; server = "500ms"; };')
    s = connect(t.port, timeout=10)
    t0 = time.time()
    for i in range(20):
        s.sendall(b"line %d\n" % i)
        time.sleep(0.1)                       # the upload's pace, not a wait for a result
        assert t.logtext().count("end=") == 0, "cut while uploading after %.1f s: %s" % (time.time() - t0,
                                                                                       t.logtext())
    assert s.recv(10) == b""                  # then silent both ways: cut
    s.close()
    assert wait_for(lambda: "end=server-timeout" in t.logtext(), 5), t.logtext()
    # cut after the upload (2 s) and its 0.5 s of silence, not during it
    took = int(re.search(r" duration=(\d+)ms .*end=server-timeout", t.logtext()).group(1))
    assert took >= 2400, t.logtext()
    t.stop()


# --- frontends.maxconn ---

def two_frontends(addr, port1, port2, fe1_extra="", global_extra=""):
    return (f'global = {{ log = "stderr"; drain_timeout = "5s"; {global_extra} }};\n'
            f'frontends = ( {{ name = "fe"; bind = [ "127.0.0.1:{port1}" ]; backend = "be"; {fe1_extra} }},\n'
            f'              {{ name = "fe2"; bind = [ "127.0.0.1:{port2}" ]; backend = "be"; }} );\n'
            f'backends = ( {{ name = "be"; servers = ( {{ name = "m"; address = "{addr}"; }} ); }} );\n')


@valgrind
def test_frontend_maxconn():
    """frontends.maxconn = 2: a third connection to that frontend waits
    (queued by the kernel) until one of the two closes; the limit is the
    frontend's: another frontend keeps serving meanwhile."""
    m = Backend("m")
    p1, p2 = free_port(), free_port()
    t = Tether(two_frontends(m.addr, p1, p2, "maxconn = 2;"), p1)
    held = [connect(p1) for _ in range(2)]
    for s in held:
        assert readline(s) == "m"
    extra = connect(p1, timeout=10)
    other = [connect(p2) for _ in range(3)]    # the other frontend is not limited...
    for s in other:
        assert readline(s) == "m"
    for s in other:
        s.close()
    extra.settimeout(0.3)                      # ...and by now tether has seen the third one
    try:
        served = extra.recv(10)
    except socket.timeout:
        served = None
    assert served is None, "third connection served above the frontend's maxconn"
    held[0].close()
    extra.settimeout(10)
    assert readline(extra) == "m"              # served once a slot freed
    for s in held[1:] + [extra]:
        s.close()
    t.stop()


# --- accept pause on EMFILE ---

def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_emfile_pauses_accepts_and_recovers():
    """Out of file descriptors (RLIMIT_NOFILE 48): tether logs the pause,
    backs off instead of spinning on the listener (little CPU while the
    queue waits), and serves every queued client once fds free up."""
    m = Backend("m", mode="banner")
    text, port = conf([("m", m.addr)], global_extra=ADMIN)
    t = Tether(text, port, nofile=48)
    t0 = time.time()
    clients = [connect(port, timeout=20) for _ in range(40)]   # 80 fds wanted: some wait
    assert wait_for(lambda: "pausing accepts" in t.logtext(), 10), t.logtext()[-2000:]
    served = []
    for s in clients:                          # those tether could accept answer at once
        s.settimeout(0.05 if served else 5)
        try:
            if readline(s) == "m":
                served.append(s)
        except socket.timeout:
            pass
    assert 5 <= len(served) < 40, len(served)
    c0 = cpu_seconds(t.proc.pid)
    w0 = time.time()
    time.sleep(1.0)                            # a measurement window, not a wait for a result
    used = cpu_seconds(t.proc.pid) - c0
    took = time.time() - w0
    # paused, it tries again every 100 ms: about 10 attempts (and log lines)
    # a second and no CPU to speak of; spinning, thousands of each
    assert used < 0.25 * took, "tether spun on the listener: %.2f s CPU in %.2f s" % (used, took)
    waiting = [s for s in clients if s not in served]
    for s in served:
        s.close()
    for s in waiting:                          # each served as fds free up (close as we go)
        s.settimeout(20)
        assert readline(s) == "m"
        s.close()
    assert banner(port) == "m"
    # about 10 pauses a second per worker (100 ms each); spinning logs thousands
    pauses, took = t.logtext().count("pausing accepts"), time.time() - t0
    assert pauses < 20 * int(WORKERS or 1) * took, "%d accept pauses in %.1f s: no back-off" % (pauses, took)
    t.stop()


# --- IPv6 ---

def have_ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


@valgrind
def test_ipv6_bind_and_server():
    """A frontend bound on [::1] relaying to a server on [::1]; the log shows
    the IPv6 client as [::1]:PORT; an IPv6 bind is v6-only, so [::]:P and
    127.0.0.1:P bind side by side."""
    if not have_ipv6_loopback():
        print("SKIP: no IPv6 loopback (::1) on this machine")
        return
    b6 = Backend("six", host="::1")
    p, p2 = free_port(), free_port()
    text = ('global = { log = "stderr"; drain_timeout = "5s"; };\n'
            f'frontends = ( {{ name = "fe"; bind = [ "[::1]:{p}" ]; backend = "be"; }},\n'
            f'              {{ name = "both"; bind = [ "[::]:{p2}", "127.0.0.1:{p2}" ]; backend = "be"; }} );\n'
            f'backends = ( {{ name = "be"; balance = "iphash"; servers = ( {{ name = "six"; address = "[::1]:{b6.port}"; }} ); }} );\n')
    t = Tether(text, p)
    s = socket.create_connection(("::1", p), timeout=5)
    s.sendall(b"over six\n")
    assert readline(s) == "six" and readline(s) == "over six"
    s.close()
    assert wait_for(lambda: re.search(r" \[::1\]:\d+ fe be/six ", t.logtext()), 5), t.logtext()
    for host in ("::1", "127.0.0.1"):
        s = socket.create_connection((host, p2), timeout=5)
        assert readline(s) == "six"
        s.close()
    t.stop()


# --- SIGUSR1 ---

@valgrind
def test_sigusr1_reopens_the_log_file():
    """logrotate: the file is renamed, SIGUSR1, and the next lines go to a
    new file of the configured name; the renamed one gets no more."""
    a = Backend("a")
    text, port = conf([("a", a.addr)], log='"@DIR@/tether.out"')
    t = Tether(text, port, log_file="@DIR@/tether.out")
    path = os.path.join(t.dir, "tether.out")
    assert banner(port) == "a"
    assert wait_for(lambda: "end=" in open(path).read(), 5)   # flushed within a second
    os.rename(path, path + ".1")
    t.signal(signal.SIGUSR1)
    assert wait_for(lambda: os.path.exists(path) and "log reopened" in open(path).read(), 5)
    before = open(path + ".1").read()
    assert banner(port) == "a"
    assert wait_for(lambda: "end=" in open(path).read(), 5), open(path).read()
    assert open(path + ".1").read() == before
    t.stop()


# --- listeners and reload ---

@valgrind
def test_reload_adds_and_removes_listeners():
    """A reload that adds a frontend opens its listener; one that removes it
    closes it; the unchanged listener serves throughout."""
    m = Backend("m")
    p1, p2 = free_port(), free_port()
    one = conf([("m", m.addr)], port=p1)[0]
    t = Tether(one, p1)

    def refused(port):
        try:
            connect(port, timeout=2).close()
            return False
        except OSError:
            return True
    assert refused(p2)
    t.write(two_frontends(m.addr, p1, p2))
    t.signal(signal.SIGHUP)
    assert wait_for(lambda: t.logtext().count("reloaded") == 1, 10), t.logtext()
    assert banner(p2) == "m" and banner(p1) == "m"
    t.write(one)
    t.signal(signal.SIGHUP)
    assert wait_for(lambda: t.logtext().count("reloaded") == 2, 10), t.logtext()
    assert wait_for(lambda: refused(p2), 5)
    assert banner(p1) == "m"
    t.stop()


# --- iphash key and bounded load ---

def test_iphash_prefix24():
    """key = "prefix24": every address of a /24 goes to one server; distinct
    /24s still spread over the servers."""
    bs = [Backend(n) for n in "abcd"]
    t = start([(b.name, b.addr) for b in bs], balance="iphash", backend_extra='iphash = { key = "prefix24"; };')
    per_net = {}
    for net in range(16):
        got = {banner(t.port, src=f"127.{net}.7.{h}") for h in (1, 2, 50, 99, 200, 254)}
        assert len(got) == 1, (net, got)
        per_net[net] = got.pop()
    t.stop()
    assert len(set(per_net.values())) >= 3, per_net


def test_iphash_balance_factor():
    """balance_factor = 125, every connection from one address: without the
    bound all would go to the address's server; with it no server holds more
    than ceil(1.25 x (total + 1) / N) while the connections are open."""
    bs = [Backend(n) for n in "abcd"]
    t = start([(b.name, b.addr) for b in bs], balance="iphash", backend_extra='iphash = { balance_factor = 125; };')
    held, counts = [], {}
    for i in range(40):
        s = connect(t.port)
        name = readline(s)
        held.append(s)
        counts[name] = counts.get(name, 0) + 1
        assert counts[name] <= -(-125 * (i + 1) // 400), (i, counts)
    assert len(counts) == 4, counts
    for s in held:
        s.close()
    t.stop()


# --- the stick table with roundrobin and leastconn ---

@valgrind
def test_stick_with_roundrobin():
    """roundrobin + stick: each client address keeps its first server,
    though roundrobin alone would rotate; when that server goes DOWN the
    entry is dropped and the client re-picks, and stays on the new one."""
    bs = {n: Backend(n) for n in "abc"}
    hc = 'health = { type = "tcp"; interval = "100ms"; timeout = "200ms"; rise = 1; fall = 1; };'
    t = start([(n, b.addr) for n, b in bs.items()], global_extra=ADMIN,
              backend_extra='stick = { timeout = "10m"; size = 100; }; ' + hc)
    first = {i: banner(t.port, src=f"127.0.0.{i}") for i in range(2, 9)}   # 7: roundrobin alone would rotate
    assert len(set(first.values())) == 3, first           # new clients still spread
    for _ in range(3):
        for i, name in first.items():
            assert banner(t.port, src=f"127.0.0.{i}") == name
    victim = first[2]
    port = bs[victim].port
    bs[victim].stop()
    assert wait_for(lambda: t.state(victim) == "DOWN", 5)
    moved = banner(t.port, src="127.0.0.2")
    assert moved != victim
    Backend(victim, port=port)
    assert wait_for(lambda: t.state(victim) == "UP", 5)
    assert [banner(t.port, src="127.0.0.2") for _ in range(4)] == [moved] * 4   # the new entry holds
    t.stop()


@valgrind
def test_stick_with_leastconn():
    """leastconn + stick: a known client returns to its server even when
    another server has fewer connections; a new client goes to the least
    loaded one."""
    bs = {n: Backend(n) for n in "ab"}
    t = start([(n, b.addr) for n, b in bs.items()], balance="leastconn",
              backend_extra='stick = { timeout = "10m"; };')
    home = banner(t.port, src="127.0.0.2")
    held = []
    for _ in range(3):                                    # load home with 3 open connections
        s = connect(t.port, src="127.0.0.2")
        assert readline(s) == home
        held.append(s)
    assert banner(t.port, src="127.0.0.2") == home        # sticks, though it is the busier one
    assert banner(t.port, src="127.0.0.3") != home        # a new client: least connections
    for s in held:
        s.close()
    t.stop()


# --- cookie: a head over max_head ---

@valgrind
def test_cookie_head_over_max_head_passes_through():
    """cookie-affinity.md: a head larger than max_head is routed by fallback
    and passed through untouched: the cookie in it is not followed, no
    Set-Cookie is inserted, the server gets the head unchanged."""
    bs = [Backend(n, mode="http") for n in "ab"]
    t = start([(b.name, b.addr) for b in bs], balance="cookie",
              backend_extra='cookie = { secret = "s3cret"; fallback = "roundrobin"; max_head = 512; };')
    st, hdrs, body, _ = http_get(t.port)
    value, home = re.match(r"TETHERID=(\w+);", hdrs["set-cookie"][0]).group(1), body.split()[0]
    small = {http_get(t.port, {"Cookie": "TETHERID=" + value})[2].split()[0] for _ in range(4)}
    assert small == {home}, small                          # a head within max_head: followed
    seen = set()
    for _ in range(4):
        st, hdrs, body, _ = http_get(t.port, {"Cookie": "TETHERID=" + value, "X-Pad": "p" * 600})
        assert st == 200 and "set-cookie" not in hdrs, hdrs
        assert body.split()[1] == "TETHERID=" + value, body  # the head reached the server unchanged
        seen.add(body.split()[0])
    assert seen == {"a", "b"}, seen                        # fallback (roundrobin), not the cookie
    t.stop()


# --- health: the "(timeout)" reason ---

@valgrind
def test_health_timeout_reason():
    """A server whose check never connects is marked DOWN with the reason
    "(timeout)" in the log and in /stats' last_check."""
    hole, good = Blackhole(), Backend("good")
    mport = free_port()
    hc = 'health = { type = "tcp"; interval = "200ms"; timeout = "150ms"; rise = 1; fall = 2; };'
    t = start([("hole", hole.addr), ("good", good.addr)], backend_extra=hc,
              global_extra=ADMIN + f' metrics = "127.0.0.1:{mport}";')
    assert wait_for(lambda: t.state("hole") == "DOWN", 5), t.admin("show servers")
    assert wait_for(lambda: "server be/hole is DOWN (timeout)" in t.logtext(), 5), t.logtext()
    from harness import server_stats
    assert server_stats(mport)["hole"]["last_check"] == "timeout", server_stats(mport)["hole"]
    t.stop()
    hole.close()


# --- more documented details ---

@valgrind
def test_reload_with_another_worker_count_refused():
    """configuration.md: a change of `workers` needs a restart; a reload
    with another count is refused (and counted) and the running
    configuration stays."""
    a = Backend("a")
    text, port = conf([("a", a.addr)], global_extra="workers = 1; " + ADMIN)
    t = Tether(text, port)
    t.write(text.replace("workers = 1;", "workers = 2;"))
    t.signal(signal.SIGHUP)
    assert wait_for(lambda: "a change needs a restart" in t.logtext(), 10), t.logtext()
    assert "reload of" in t.logtext() and "reloaded" not in t.logtext()
    rc, out = t.admin("show info")
    assert "reload_failures 1" in out and "workers 1" in out, out
    assert banner(port) == "a"
    t.stop()


def test_http_check_path_and_host():
    """health.path is the request path; health.host the Host header, by
    default the server's address."""
    a, b = Backend("a", mode="http"), Backend("b", mode="http")
    hc = 'health = { type = "http"; path = "/hz"; interval = "100ms"; rise = 1; fall = 1; };'
    t = start([("a", a.addr), ("b", b.addr)], backend_extra=hc)
    assert wait_for(lambda: a.heads and b.heads, 5)
    assert a.heads[0].startswith(b"GET /hz HTTP/1.0\r\n"), a.heads[0]
    assert b"\r\nHost: %s\r\n" % a.addr.encode() in a.heads[0], a.heads[0]
    t.stop()
    c = Backend("c", mode="http")
    t = start([("c", c.addr)], backend_extra=hc.replace('path = "/hz";', 'path = "/hz"; host = "app.example";'))
    assert wait_for(lambda: c.heads, 5)
    assert b"\r\nHost: app.example\r\n" in c.heads[0], c.heads[0]
    t.stop()


@valgrind
def test_weight_zero_takes_only_affinity_traffic():
    """configuration.md: weight 0 takes only affinity traffic: no new client
    is placed on it, a client holding its cookie still gets there."""
    from test_affinity import COOKIE, GOLDEN
    bs = [Backend(n, mode="http") for n in "ab"]
    t = start([("a", bs[0].addr, "weight = 0;"), ("b", bs[1].addr)], balance="cookie", backend_extra=COOKIE)
    assert {http_get(t.port)[2].split()[0] for _ in range(10)} == {"b"}
    for _ in range(3):
        st, hdrs, body, _ = http_get(t.port, {"Cookie": "TETHERID=" + GOLDEN["a"]})
        assert body.split()[0] == "a" and "set-cookie" not in hdrs, (body, hdrs)
    t.stop()


LINGER0 = b"\x01\x00\x00\x00\x00\x00\x00\x00"    # SO_LINGER on, 0 s: close() sends an RST


@valgrind
def test_reset_end_reasons():
    """The log's `end`: a server that resets is server-reset, a client that
    resets is client-reset."""
    a = Backend("a", mode="echo")
    t = start([("a", a.addr)])
    s = connect(t.port)
    s.sendall(b"x\n")
    assert readline(s) == "x"
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
    s.close()                                  # linger 0: an RST
    assert wait_for(lambda: "end=client-reset" in t.logtext(), 5), t.logtext()
    t.stop()
    lsn = socket.socket()                      # a server of our own, to reset from
    lsn.bind(("127.0.0.1", 0))
    lsn.listen(1)
    lsn.settimeout(5)
    t = start([("r", "127.0.0.1:%d" % lsn.getsockname()[1])])
    s = connect(t.port)
    conn, _ = lsn.accept()
    s.sendall(b"up")
    conn.settimeout(5)
    assert conn.recv(2) == b"up"               # the relay is up
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
    conn.close()                               # an RST to tether
    try:
        s.recv(10)
    except OSError:
        pass
    s.close()
    lsn.close()
    assert wait_for(lambda: "end=server-reset" in t.logtext(), 5), t.logtext()
    t.stop()


def test_cpu_affinity_pins_workers():
    """cpu_affinity = true: worker i runs on CPU i (modulo the CPUs)."""
    ncpu = os.cpu_count() or 1
    if ncpu < 2 or len(os.sched_getaffinity(0)) < 2:
        print("SKIP: fewer than 2 CPUs available")
        return
    a = Backend("a")
    t = start([("a", a.addr)], global_extra="workers = 2; cpu_affinity = true;")

    def pinned():
        cpus = []
        for task in os.listdir(f"/proc/{t.proc.pid}/task"):
            with open(f"/proc/{t.proc.pid}/task/{task}/status") as f:
                m = re.search(r"^Cpus_allowed_list:\s*(\S+)$", f.read(), re.M)
            if m and re.fullmatch(r"\d+", m.group(1)):
                cpus.append(int(m.group(1)))
        return sorted(cpus)
    assert wait_for(lambda: pinned() == [0, 1], 5), pinned()
    assert banner(t.port) == "a"
    t.stop()
    t = start([("a", a.addr)], global_extra="workers = 2;")                 # off by default
    assert pinned() == [], pinned()
    t.stop()


def test_first_checks_spread_over_one_interval():
    """operations.md: the first check of each server is spread over one
    interval (not all at start-up, which would hit every pod at once)."""
    import threading
    n, interval = 8, 3.0
    firsts, socks = {}, []

    def listen(i):
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", 0))
        ls.listen(16)
        socks.append(ls)

        def run():
            while True:
                try:
                    c, _ = ls.accept()
                except OSError:
                    return
                firsts.setdefault(i, time.monotonic())
                c.close()
        threading.Thread(target=run, daemon=True).start()
        return "127.0.0.1:%d" % ls.getsockname()[1]

    servers = [("s%d" % i, listen(i)) for i in range(n)]
    hc = 'health = { type = "tcp"; interval = "%dms"; timeout = "1s"; rise = 1; fall = 3; };' % (interval * 1000)
    text, port = conf(servers, backend_extra=hc)
    start = time.monotonic()
    t = Tether(text, port)
    assert wait_for(lambda: len(firsts) == n, interval + 3), firsts
    t.stop()
    for ls in socks:
        ls.close()
    times = sorted(firsts.values())
    # uniform over 3 s: 8 first checks all within 0.75 s of each other has
    # a probability of about 5e-4; all at once (no spread) is 0 s apart
    assert times[-1] - times[0] >= 0.75, [round(x - start, 3) for x in times]
    assert times[-1] - start <= interval + 2, [round(x - start, 3) for x in times]


if __name__ == "__main__":
    main(globals())
