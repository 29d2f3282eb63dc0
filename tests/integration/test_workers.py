"""global.workers = 2: what must hold whatever worker a connection lands on.

Connections are spread by the kernel (SO_REUSEPORT) over the workers'
listening sockets; pools, health and counters are shared.  Each test runs
tether with two workers, whatever TETHER_TEST_WORKERS says; the ones that
reuse a test of another file run it with two workers.
"""
import signal
import threading

import harness
from harness import (Backend, Tether, banner, conf, connect, http_get, main, readline, valgrind, wait_for)
import test_core
import test_ops

W2 = "workers = 2;"


def info(t):
    rc, out = t.admin("show info")
    assert rc == 0, out
    return out


def two_workers(fn):
    """Runs another file's test with global.workers = 2."""
    saved = harness.WORKERS
    harness.WORKERS = "2"
    try:
        fn()
    finally:
        harness.WORKERS = saved


@valgrind
def test_workers_both_accept_and_are_listed():
    a = Backend("a")
    t = Tether(*conf([("a", a.addr)], global_extra=W2 + ' admin = "@DIR@/admin.sock";'))
    socks = [connect(t.port) for _ in range(64)]     # 64 source ports: the kernel hashes them over 2 sockets
    for s in socks:
        assert readline(s) == "a"
    out = info(t)
    assert "workers 2\n" in out, out
    per = [int(l.split()[3]) for l in out.splitlines() if l.startswith("worker ")]
    assert len(per) == 2 and sum(per) == 64 and min(per) > 0, out
    for s in socks:
        s.close()
    assert wait_for(lambda: "active_connections 0\n" in info(t), 5)
    t.stop()


def test_workers_shared_accept_queue():
    """accept = "shared": one socket per address, EPOLLEXCLUSIVE; served, reloaded, drained."""
    a = Backend("a")
    t = Tether(*conf([("a", a.addr)], global_extra=W2 + ' accept = "shared"; admin = "@DIR@/admin.sock";'))
    socks = [connect(t.port) for _ in range(64)]
    for s in socks:
        assert readline(s) == "a"
    per = [int(l.split()[3]) for l in info(t).splitlines() if l.startswith("worker ")]
    assert sum(per) == 64, per
    n = t.logtext().count("reloaded ")
    t.signal(signal.SIGHUP)
    assert wait_for(lambda: t.logtext().count("reloaded ") == n + 1, 5)
    assert all(banner(t.port) == "a" for _ in range(20))
    with open(t.path) as f:
        t.write(f.read().replace('accept = "shared";', 'accept = "reuseport";'))
    t.signal(signal.SIGHUP)
    assert wait_for(lambda: "global.accept: a change needs a restart" in t.logtext(), 5)
    for s in socks:
        s.close()
    assert t.stop() == 0


def test_workers_leastconn_spreads_evenly():
    """Global active counts: 30 long-lived connections over 3 servers, 10 each (+-1)."""
    bs = [Backend(n) for n in "abc"]
    t = Tether(*conf([(b.name, b.addr) for b in bs], balance="leastconn", global_extra=W2))
    held = []
    for _ in range(30):
        s = connect(t.port)
        held.append((readline(s), s))
    counts = {n: sum(1 for m, _ in held if m == n) for n in "abc"}
    assert all(9 <= c <= 11 for c in counts.values()), counts
    for _, s in held:
        s.close()
    t.stop()


def test_workers_iphash_stick_keeps_a_client():
    """One client address, 1000 connections over both workers: one server."""
    bs = [Backend(n) for n in "abcd"]
    t = Tether(*conf([(b.name, b.addr) for b in bs], balance="iphash",
                     backend_extra='stick = { timeout = "10m"; };', global_extra=W2))
    seen = {banner(t.port, src="127.0.0.77") for _ in range(1000)}
    assert len(seen) == 1, seen
    t.stop()


def test_workers_cookie_sticks():
    bs = [Backend(n, mode="http") for n in "abc"]
    t = Tether(*conf([(b.name, b.addr) for b in bs], balance="cookie",
                     backend_extra='cookie = { secret = "w"; };', global_extra=W2))
    status, hdrs, body, _ = http_get(t.port)
    cookie = hdrs["set-cookie"][0].split(";")[0]
    first = body.split()[0]
    for _ in range(50):
        status, hdrs, body, _ = http_get(t.port, {"Cookie": cookie})
        assert status == 200 and body.split()[0] == first, body
        assert "set-cookie" not in hdrs
    t.stop()


def test_workers_reloads_under_load():
    two_workers(test_ops.test_twenty_reloads_under_load)


def test_workers_runtime_api_under_load():
    two_workers(test_ops.test_runtime_add_drain_del_under_load)


def test_workers_backend_killed():
    two_workers(test_core.test_backend_killed_no_failed_connections)


def test_workers_drain_loses_nothing():
    """SIGTERM with connections open on both workers: every one finishes."""
    a = Backend("a")
    t = Tether(*conf([("a", a.addr)], global_extra=W2 + ' admin = "@DIR@/admin.sock";'))
    socks = [connect(t.port) for _ in range(40)]
    for s in socks:
        assert readline(s) == "a"
    per = [int(l.split()[3]) for l in info(t).splitlines() if l.startswith("worker ")]
    assert min(per) > 0, per                 # both workers hold some
    t.signal(signal.SIGTERM)
    assert wait_for(lambda: "stopped accepting" in t.logtext(), 5)
    done = []

    def talk(s):
        s.sendall(b"still here\n")
        done.append(readline(s) == "still here")
        s.close()
    threads = [threading.Thread(target=talk, args=(s,)) for s in socks]
    for th in threads:
        th.start()
    for th in threads:
        th.join(10)
    assert done.count(True) == 40, done
    assert t.stop() == 0


if __name__ == "__main__":
    main(globals())
