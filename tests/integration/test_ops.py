"""Operations with the real binary: health checks (active and passive), the
runtime API under load, strict /metrics, reloads under load, all down."""
import json
import re
import signal
import threading
import time
import urllib.request

from harness import valgrind  # noqa: F401 (marker read by meson.build)
from harness import (Backend, Pod, Tether, banner, conf, connect, free_port, main, readline,
                     wait_for)

ADMIN = 'admin = "@DIR@/admin.sock";'


def state(t, server):
    return t.state(server)


@valgrind
def test_health_down_then_up():
    a, b = Backend("a"), Backend("b")
    hc = 'health = { type = "tcp"; interval = "300ms"; timeout = "200ms"; rise = 2; fall = 2; };'
    t = Tether(*conf([("a", a.addr), ("b", b.addr)], backend_extra=hc, global_extra=ADMIN))
    assert wait_for(lambda: state(t, "a") == "UP", 2)
    port = a.port
    t0 = time.time()
    a.stop()
    assert wait_for(lambda: state(t, "a") == "DOWN", 5, step=0.02)
    took = time.time() - t0
    # interval x fall + interval, with the +-10% check jitter and polling slack
    assert took <= 0.3 * 3 * 1.1 + 0.2, took
    assert "server be/a is DOWN (Connection refused)" in t.logtext(), t.logtext()
    assert all(banner(t.port) == "b" for _ in range(6))
    Backend("a", port=port)
    t1 = time.time()
    assert wait_for(lambda: state(t, "a") == "UP", 5, step=0.02)
    assert time.time() - t1 <= 0.3 * 3 * 1.1 + 0.2
    t.stop()


@valgrind
def test_passive_observe_ejects_fast():
    a, b = Backend("a"), Backend("b")
    hc = 'health = { type = "tcp"; interval = "30s"; rise = 2; fall = 3; observe = true; }; retries = 2;'
    t = Tether(*conf([("a", a.addr), ("b", b.addr)], backend_extra=hc, global_extra=ADMIN))
    a.stop()
    names = [banner(t.port) for _ in range(8)]     # roundrobin sends every other one to a
    assert names == ["b"] * 8, names               # retried on b: no client sees the failure
    assert state(t, "a") == "DOWN", t.admin("show servers")
    t.stop()


def test_http_check_503_marks_down():
    pods = [Pod("sick", "--health-status", "503"), Pod("well")]
    try:
        hc = 'health = { type = "http"; path = "/health"; expect = "2xx"; interval = "200ms"; rise = 1; fall = 2; };'
        t = Tether(*conf([("sick", pods[0].addr), ("well", pods[1].addr)], backend_extra=hc,
                         global_extra=ADMIN + ' metrics = "127.0.0.1:%d";' % free_port()))
        assert wait_for(lambda: state(t, "sick") == "DOWN", 5)
        assert state(t, "well") == "UP"
        assert "server be/sick is DOWN (HTTP 503)" in t.logtext(), t.logtext()
        t.stop()
    finally:
        for p in pods:
            p.stop()


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
                    r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*)?\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf)$')


def parse_metrics(text):
    """Strict text-format 0.0.4 parser: every line is HELP, TYPE or a sample
    of a metric whose TYPE came first; no duplicate series."""
    types, seen = {}, set()
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            assert re.match(r"^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* \S.*$", line), line
        elif line.startswith("# TYPE "):
            m = re.match(r"^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$", line)
            assert m, line
            assert m.group(1) not in types, "TYPE twice: " + line
            types[m.group(1)] = m.group(2)
        else:
            m = SAMPLE.match(line)
            assert m, "bad sample line: %r" % line
            assert m.group(1) in types, "sample before TYPE: " + line
            if types[m.group(1)] == "counter":
                assert m.group(1).endswith("_total"), line
            key = (m.group(1), m.group(2))
            assert key not in seen, "duplicate series: " + line
            seen.add(key)
            float(m.group(3))
    return types, seen


@valgrind
def test_metrics_parse_strictly():
    a = Backend("a")
    mport = free_port()
    t = Tether(*conf([("a", a.addr)], balance="cookie", global_extra=f'metrics = "127.0.0.1:{mport}";'))
    for _ in range(3):
        s = connect(t.port)
        s.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert readline(s) == "a"
        s.close()
    text = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read().decode()
    types, seen = parse_metrics(text)
    for name in ["tether_frontend_connections_total", "tether_frontend_active_connections", "tether_server_up",
                 "tether_server_active_connections", "tether_server_connections_total",
                 "tether_server_connect_failures_total", "tether_server_bytes_in_total",
                 "tether_server_bytes_out_total", "tether_server_health_transitions_total", "tether_retries_total",
                 "tether_server_affinity_hits_total", "tether_server_affinity_misses_total",
                 "tether_server_redispatches_total"]:
        assert name in types, name
    assert ('tether_server_connections_total', '{backend="be",server="a"}') in seen
    assert re.search(r'^tether_frontend_connections_total\{frontend="fe"\} ([3-9]|\d\d+)$', text, re.M), text
    stats = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{mport}/stats", timeout=5).read())
    assert stats["backends"][0]["servers"][0]["connections_total"] >= 3
    assert stats["backends"][0]["servers"][0]["affinity_misses_total"] >= 3
    t.stop()


class Load:
    """Connects continuously (banner per connection); counts failures."""

    def __init__(self, port, clients=4):
        self.port, self.stop_flag = port, False
        self.ok, self.failed, self.names = 0, 0, []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run) for _ in range(clients)]
        for th in self.threads:
            th.start()

    def run(self):
        while not self.stop_flag:
            try:
                name = banner(self.port)
                assert name
                with self.lock:
                    self.ok += 1
                    self.names.append(name)
            except Exception:
                with self.lock:
                    self.failed += 1

    def mark(self):
        with self.lock:
            return len(self.names)

    def since(self, mark):
        with self.lock:
            return self.names[mark:]

    def stop(self):
        self.stop_flag = True
        for th in self.threads:
            th.join()


def test_runtime_add_drain_del_under_load():
    bs = {n: Backend(n) for n in "abcd"}
    hc = 'health = { type = "tcp"; interval = "200ms"; rise = 1; fall = 2; };'
    t = Tether(*conf([(n, bs[n].addr) for n in "abc"], backend_extra=hc, global_extra=ADMIN))
    load = Load(t.port)
    assert wait_for(lambda: load.ok >= 20, 10), (load.ok, load.failed)
    rc, out = t.admin(f"add server be d {bs['d'].addr} weight 1")
    assert rc == 0 and out.strip() == "OK", out
    assert wait_for(lambda: "d" in load.since(0), 5), "no traffic reached the added server"
    held = connect(t.port)
    while readline(held) != "d":              # hold one connection on d
        held.close()
        held = connect(t.port)
    rc, out = t.admin("del server be d")
    assert rc == 1 and out.startswith("ERR ") and "drain" in out, out
    assert t.admin("drain server be d")[0] == 0
    m = load.mark()                     # the 4 clients' connections in flight may still be d's
    assert wait_for(lambda: len(load.since(m)) >= 40, 10)
    m = load.mark()                     # every one from here started after the drain
    assert wait_for(lambda: len(load.since(m)) >= 100, 20)
    assert "d" not in load.since(m), "drained server got new connections"
    assert re.search(r"^d \S+ DRAIN 1 1 ", t.admin("show servers")[1], re.M), t.admin("show servers")[1]
    held.close()
    assert wait_for(lambda: re.search(r"^d \S+ DRAIN 1 0 ", t.admin("show servers")[1], re.M), 3)
    rc, out = t.admin("del server be d")
    assert rc == 0, out
    assert " d " not in " " + t.admin("show servers")[1].replace("\n", " ")
    rc, out = t.admin("set weight be a 3")
    assert rc == 0, out
    assert re.search(r"^a \S+ UP 3 ", t.admin("show servers")[1], re.M), t.admin("show servers")[1]
    m = load.mark()                     # a now takes 3 of every 5 (weights 3, 1, 1)
    assert wait_for(lambda: len(load.since(m)) >= 300, 20)
    share = load.since(m)[20:320].count("a") / 300
    assert 0.5 <= share <= 0.7, share
    assert t.admin("bogus")[1].startswith("ERR")
    load.stop()
    t.stop()
    assert load.failed == 0 and load.ok > 100, (load.ok, load.failed)


def test_twenty_reloads_under_load():
    bs = [Backend(n) for n in "ab"]
    text, port = conf([(b.name, b.addr) for b in bs], global_extra=ADMIN)
    t = Tether(text, port)
    load = Load(port)
    for i in range(20):
        m = load.mark()                 # some traffic between two reloads
        assert wait_for(lambda: len(load.since(m)) >= 20, 10), (load.ok, load.failed)
        weight = 1 + i % 3
        t.write(conf([("a", bs[0].addr, f"weight = {weight};"), ("b", bs[1].addr)], port=port,
                     global_extra=ADMIN)[0])
        t.signal(signal.SIGHUP)
        assert wait_for(lambda: t.logtext().count("reloaded") == i + 1, 10), t.logtext().count("reloaded")
    m = load.mark()
    assert wait_for(lambda: len(load.since(m)) >= 20, 10)
    load.stop()
    assert load.failed == 0 and load.ok > 200, (load.ok, load.failed)
    # the file's last weights (a 2, b 1) are the ones in force: the shares show it
    got = [banner(port) for _ in range(300)]
    assert 185 <= got.count("a") <= 215, got.count("a")
    assert re.search(r"^a \S+ UP 2 ", t.admin("show servers")[1], re.M), t.admin("show servers")[1]
    t.stop()


@valgrind
def test_all_servers_down_clean_refusal():
    a = Backend("a")
    mport = free_port()
    # the readiness probe's connection may be left half-closed by the
    # stopped backend: short idle timeouts keep the final drain short
    hc = ('health = { type = "tcp"; interval = "200ms"; rise = 1; fall = 1; }; retries = 0;'
          ' timeouts = { client = "2s"; server = "2s"; };')
    t = Tether(*conf([("a", a.addr)], backend_extra=hc, global_extra=ADMIN + f' metrics = "127.0.0.1:{mport}";'))
    a.stop()
    assert wait_for(lambda: state(t, "a") == "DOWN", 3)
    for _ in range(5):
        s = connect(t.port)
        assert s.recv(10) == b""                 # a clean close (FIN), not a hang or a reset
        s.close()
    text = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read().decode()
    assert re.search(r'^tether_backend_no_server_total\{backend="be"\} ([5-9]|\d\d+)$', text, re.M), text
    assert wait_for(lambda: "end=no-server" in t.logtext(), 3)
    t.stop()


@valgrind
def test_on_down_close_and_backup():
    a, b, spare = Backend("a", mode="echo"), Backend("b"), Backend("spare")
    hc = ('health = { type = "tcp"; interval = "200ms"; rise = 1; fall = 1; on_down = "close"; };'
          ' timeouts = { client = "5s"; server = "5s"; };')
    t = Tether(*conf([("a", a.addr), ("spare", spare.addr, "backup = true;")], backend_extra=hc,
                     global_extra=ADMIN))
    s = connect(t.port)
    s.sendall(b"x\n")
    assert readline(s) == "x"                  # established on a (the only primary)
    a.stop_listening()                         # checks fail; this connection itself is fine
    t0 = time.time()
    try:                                       # on_down = "close": tether resets it
        gone = s.recv(10) == b""
    except ConnectionResetError:
        gone = True
    assert gone and time.time() - t0 < 3
    assert wait_for(lambda: "end=server-down" in t.logtext(), 3)
    assert wait_for(lambda: state(t, "a") == "DOWN", 3)
    assert banner(t.port) == "spare"           # every primary down: the backup serves
    rc, out = t.admin(f"add server be b {b.addr}")
    assert rc == 0, out
    # checked before it gets traffic (the log says what state it was added in:
    # asking "show servers" would race the first check, due within 200 ms)
    assert wait_for(lambda: f"added server be/b {b.addr} weight 1 (DOWN until checked)" in t.logtext(), 3)
    assert wait_for(lambda: state(t, "b") == "UP", 3)
    assert all(banner(t.port) == "b" for _ in range(4))   # a primary again: backup idle
    t.stop()


if __name__ == "__main__":
    main(globals())
