"""Metric *values* (operations.md, Metrics): exact byte counters in the
documented direction, reload and reload-failure counters, health
transitions, retries, the /stats fields and `show info`.  Each one is read
once the connections it counts are closed (polled, never after a sleep)."""
import hashlib
import os
import re
import signal
import socket
import time

from harness import valgrind  # noqa: F401 (marker read by meson.build)
from harness import (Backend, Tether, banner, conf, connect, fetch, free_port, main, readline, server_stats,
                     wait_for)

ADMIN = 'admin = "@DIR@/admin.sock";'


def start(servers, mport, **kw):
    extra = kw.pop("global_extra", "")
    return Tether(*conf(servers, global_extra=ADMIN + f' metrics = "127.0.0.1:{mport}"; ' + extra, **kw))


def sample(text, name, labels=""):
    """The value of one series of /metrics text, or None."""
    m = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return float(m.group(1)) if m else None


def idle(t):
    return fetch_info(t)["active_connections"] == "0"


def fetch_info(t):
    rc, out = t.admin("show info")
    assert rc == 0, out
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line and not line.startswith("worker "))


@valgrind
def test_byte_counters_exact():
    """bytes_in = client -> server, bytes_out = server -> client, exactly, in
    /metrics, /stats and the log line (in=, out=)."""
    d = Backend("d", mode="drain")
    mport = free_port()
    t = start([("d", d.addr)], mport)
    payload = os.urandom(100000)
    answer = f"{len(payload)} {hashlib.sha256(payload).hexdigest()}\n".encode()   # 72 bytes back
    s = connect(t.port)
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
    assert readline(s) == answer.decode().strip()
    s.close()
    assert wait_for(lambda: idle(t), 5), fetch_info(t)
    srv = server_stats(mport)["d"]
    assert (srv["bytes_in_total"], srv["bytes_out_total"]) == (100000, len(answer)), srv
    text = fetch(mport, "/metrics")
    labels = '{backend="be",server="d"}'
    assert sample(text, "tether_server_bytes_in_total", labels) == 100000, text
    assert sample(text, "tether_server_bytes_out_total", labels) == len(answer), text
    assert wait_for(lambda: f" in=100000 out={len(answer)} " in t.logtext(), 5), t.logtext()
    t.stop()


def test_byte_counters_cookie_mode():
    """Cookie mode: the request head tether read first counts as bytes in; the
    Set-Cookie line tether inserted does not count as bytes out (the server
    did not send it)."""
    h = Backend("h", mode="http")
    mport = free_port()
    t = start([("h", h.addr)], mport, balance="cookie", backend_extra='cookie = { secret = "k"; };')
    req = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
    s = connect(t.port)
    s.sendall(req)
    got = b""
    while not got.endswith(b"h \n"):           # the body: the backend's name, no cookie
        d = s.recv(4096)
        assert d, got
        got += d
    s.close()
    inserted = re.search(rb"Set-Cookie: [^\r]*\r\n", got).group(0)
    assert wait_for(lambda: idle(t), 5)
    srv = server_stats(mport)["h"]
    assert (srv["bytes_in_total"], srv["bytes_out_total"]) == (len(req), len(got) - len(inserted)), (srv, got)
    t.stop()


@valgrind
def test_reload_counters():
    """Two good reloads and one refused: 2 and 1, in /metrics, /stats and show info."""
    a = Backend("a")
    mport = free_port()
    t = start([("a", a.addr)], mport)
    good = open(t.path).read()
    for i in range(2):
        t.signal(signal.SIGHUP)
        assert wait_for(lambda: t.logtext().count("reloaded") == i + 1, 10), t.logtext()
    t.write("backends = ( oops\n")
    t.signal(signal.SIGHUP)
    assert wait_for(lambda: "reload of" in t.logtext(), 10), t.logtext()
    text = fetch(mport, "/metrics")
    assert sample(text, "tether_reloads_total") == 2, text
    assert sample(text, "tether_reload_failures_total") == 1, text
    st = fetch(mport)
    assert (st["reloads_total"], st["reload_failures_total"]) == (2, 1), st
    info = fetch_info(t)
    assert (info["reloads"], info["reload_failures"]) == ("2", "1"), info
    t.write(good)                             # and a good one after the bad one counts again
    t.signal(signal.SIGHUP)
    assert wait_for(lambda: t.logtext().count("reloaded") == 3, 10), t.logtext()
    assert fetch(mport)["reloads_total"] == 3
    assert banner(t.port) == "a"
    t.stop()


@valgrind
def test_health_transitions_counted():
    """DOWN then UP again: two transitions; tether_server_up follows."""
    a, b = Backend("a"), Backend("b")
    mport = free_port()
    hc = 'health = { type = "tcp"; interval = "100ms"; timeout = "200ms"; rise = 1; fall = 1; };'
    t = start([("a", a.addr), ("b", b.addr)], mport, backend_extra=hc)
    assert wait_for(lambda: t.state("a") == "UP", 5)
    labels = '{backend="be",server="a"}'
    assert sample(fetch(mport, "/metrics"), "tether_server_health_transitions_total", labels) == 0
    port = a.port
    a.stop()
    assert wait_for(lambda: t.state("a") == "DOWN", 5)
    text = fetch(mport, "/metrics")
    assert sample(text, "tether_server_health_transitions_total", labels) == 1, text
    assert sample(text, "tether_server_up", labels) == 0, text
    assert server_stats(mport)["a"]["state"] == "DOWN"
    Backend("a", port=port)
    assert wait_for(lambda: t.state("a") == "UP", 5)
    text = fetch(mport, "/metrics")
    assert sample(text, "tether_server_health_transitions_total", labels) == 2, text
    assert sample(text, "tether_server_up", labels) == 1, text
    assert server_stats(mport)["b"]["health_transitions_total"] == 0
    t.stop()


@valgrind
def test_retries_counted():
    """A refusing server among good ones, no checks: every client is served;
    each failed connect is one connect failure of that server and one retry
    of the backend."""
    dead, good = Backend("dead"), Backend("good")
    mport = free_port()
    dead.stop()
    t = start([("dead", dead.addr), ("good", good.addr)], mport, backend_extra="retries = 2;")
    assert [banner(t.port) for _ in range(10)] == ["good"] * 10
    assert wait_for(lambda: idle(t), 5)
    st = fetch(mport)
    srv = {s["name"]: s for s in st["backends"][0]["servers"]}
    fails = srv["dead"]["connect_failures_total"]
    assert fails >= 3, srv                         # roundrobin tries it about every other time
    assert srv["dead"]["connections_total"] == fails, srv
    assert st["backends"][0]["retries_total"] == fails, st["backends"][0]
    assert srv["good"]["connections_total"] == 10 and srv["good"]["connect_failures_total"] == 0, srv
    text = fetch(mport, "/metrics")
    assert sample(text, "tether_retries_total", '{backend="be"}') == fails, text
    # retries = 0: the same failure is not retried; the client gets a clean close
    t.write(conf([("dead", dead.addr), ("good", good.addr)], port=t.port, backend_extra="retries = 0;",
                 global_extra=ADMIN + f' metrics = "127.0.0.1:{mport}";')[0])
    t.signal(signal.SIGHUP)
    assert wait_for(lambda: "reloaded" in t.logtext(), 10)
    got = [banner(t.port) for _ in range(4)]
    assert got.count("") >= 1 and got.count("good") >= 1, got
    assert wait_for(lambda: idle(t), 5)
    assert fetch(mport)["backends"][0]["retries_total"] == fails, "retries = 0 retried"
    t.stop()


@valgrind
def test_stats_and_show_info_fields():
    """/stats and `show info` carry what operations.md lists, with values."""
    a, b = Backend("a"), Backend("b")
    mport = free_port()
    t = start([("a", a.addr, "weight = 3;"), ("b", b.addr, "backup = true;")], mport, balance="leastconn",
              global_extra="maxconn = 777;")
    held = connect(t.port)
    assert readline(held) == "a"
    for _ in range(4):
        assert banner(t.port) == "a"
    assert wait_for(lambda: fetch_info(t)["active_connections"] == "1", 5), fetch_info(t)
    st = fetch(mport)
    assert st["pid"] == t.proc.pid and st["version"] and st["uptime_seconds"] >= 0, st
    assert st["active_connections"] == 1 and st["generations"] == 1, st
    assert [w["connections_total"] for w in st["workers"]] and sum(w["connections_total"] for w in st["workers"]) == 5
    fe = st["frontends"][0]
    assert (fe["name"], fe["backend"], fe["connections_total"], fe["active_connections"]) == ("fe", "be", 5, 1), fe
    be = st["backends"][0]
    assert (be["name"], be["balance"], be["retries_total"], be["no_server_total"]) == ("be", "leastconn", 0, 0), be
    srv = {s["name"]: s for s in be["servers"]}
    assert srv["a"]["address"] == a.addr and srv["a"]["state"] == "UP" and srv["a"]["weight"] == 3, srv
    assert srv["a"]["active_connections"] == 1 and srv["a"]["connections_total"] == 5, srv
    assert srv["a"]["backup"] is False and srv["b"]["backup"] is True and srv["b"]["connections_total"] == 0, srv
    assert srv["a"]["draining"] == 0 and srv["a"]["up"] == 1, srv
    hist = st["history"]
    assert len(hist["connections"]) == len(hist["failures"]) == len(hist["active"]), hist
    assert hist["step_seconds"] == 1
    # history: one sample a second; the 5 connections show up in it
    assert wait_for(lambda: sum(fetch(mport)["history"]["connections"]) == 5, 5), fetch(mport)["history"]
    text = fetch(mport, "/metrics")
    assert sample(text, "tether_maxconn") == 777 and sample(text, "tether_active_connections") == 1, text
    assert sample(text, "tether_build_info", '{version="%s"}' % st["version"]) == 1, text
    info = fetch_info(t)
    assert info["pid"] == str(t.proc.pid) and info["config"] == t.path, info
    assert (info["active_connections"], info["connections_total"], info["maxconn"]) == ("1", "5", "777"), info
    assert (info["reloads"], info["reload_failures"], info["generations"]) == ("0", "0", "1"), info
    assert info["version"] == st["version"] and int(info["workers"]) == len(st["workers"]), info
    rc, out = t.admin("show servers")
    assert re.search(r"^a %s UP 3 1 5 0$" % re.escape(a.addr), out, re.M), out
    assert re.search(r"^b %s UP 1 0 0 0 backup$" % re.escape(b.addr), out, re.M), out
    held.close()
    assert wait_for(lambda: fetch(mport)["active_connections"] == 0, 5)
    t.stop()


def test_uptime_counts_seconds():
    """tether_uptime_seconds and show info's uptime_seconds: seconds since start."""
    a = Backend("a")
    mport = free_port()
    t0 = time.time()
    t = start([("a", a.addr)], mport)
    assert wait_for(lambda: fetch(mport)["uptime_seconds"] >= 1.0, 5), fetch(mport)
    up = sample(fetch(mport, "/metrics"), "tether_uptime_seconds")
    assert 1.0 <= up <= time.time() - t0 + 0.5, (up, time.time() - t0)
    assert int(fetch_info(t)["uptime_seconds"]) >= 1
    t.stop()


if __name__ == "__main__":
    main(globals())
