"""Queueing with the real binary: a connection that finds every server at
its maxconn waits in the backend's queue and is served once a slot frees (a
connection ends, a server is added); queue.timeout and queue.max close it
(503 in cookie mode), each with its end reason and counter; backups take the
overflow of full primaries before anything waits."""
import signal
import threading
import time

from harness import valgrind  # noqa: F401 (marker read by meson.build)
from harness import (Backend, Tether, conf, connect, free_port, main, metric, read_all, read_http, readline,
                     wait_for)

ADMIN = 'admin = "@DIR@/admin.sock";'


def start(servers, queue, balance="roundrobin", extra=""):
    mport = free_port()
    text, port = conf(servers, balance=balance, backend_extra=f"queue = {{ {queue} }}; {extra}",
                      global_extra=f'metrics = "127.0.0.1:{mport}"; {ADMIN}')
    return Tether(text, port), mport


def be_metric(mport, name):
    return metric(mport, "tether_backend_" + name, 'backend="be"')


def one_served_one_queued(t, mport, timeout=5):
    """A client served by the one-slot server m, and one waiting in the queue."""
    a = connect(t.port)
    assert readline(a) == "m"
    b = connect(t.port, timeout=timeout)
    assert wait_for(lambda: be_metric(mport, "queue_length") == 1, 10), t.logtext()
    assert_queued(t, 1)
    return a, b


def assert_queued(t, n):
    """The runtime API shows n waiting: in show servers' backend line and in
    show info (every generation's)."""
    rc, out = t.admin("show servers be")
    assert rc == 0 and out.startswith("# backend be (roundrobin) queue %d/" % n), out
    rc, out = t.admin("show info")
    assert rc == 0 and "\nqueued_connections %d\n" % n in out, out


@valgrind
def test_queue_waits_for_a_slot():
    m = Backend("m")
    t, mport = start([("m", m.addr, "maxconn = 1;")], 'max = 10; timeout = "20s";')
    a, b = one_served_one_queued(t, mport, timeout=20)
    assert m.accepted == 1                      # the queued one has no server connection
    t0 = time.time()
    a.close()                                   # its slot goes to the waiting one
    assert readline(b) == "m"
    assert time.time() - t0 < 5
    b.close()
    assert wait_for(lambda: be_metric(mport, "queue_length") == 0, 5)
    assert_queued(t, 0)
    assert be_metric(mport, "queued_total") == 1 and be_metric(mport, "queue_dispatched_total") == 1
    assert be_metric(mport, "queue_wait_seconds_total") > 0
    assert "end=no-server" not in t.logtext()
    t.stop()


def test_queue_dispatch_on_server_added():
    """A slot that appears without any connection ending: a server added
    through the runtime API (the control thread) serves the waiting one."""
    m, n = Backend("m"), Backend("n")
    t, mport = start([("m", m.addr, "maxconn = 1;")], 'max = 10; timeout = "20s";')
    a, b = one_served_one_queued(t, mport, timeout=20)
    rc, out = t.admin(f"add server be n {n.addr}")
    assert rc == 0, out
    assert readline(b) == "n"
    a.close()
    b.close()
    t.stop()


def test_queue_survives_reload():
    """A connection queued before a reload waits in its generation's
    backend, and gets the slot its generation's connection frees."""
    m = Backend("m")
    t, mport = start([("m", m.addr, "maxconn = 1;")], 'max = 10; timeout = "20s";')
    a, b = one_served_one_queued(t, mport, timeout=20)
    t.signal(signal.SIGHUP)
    assert wait_for(lambda: "reloaded" in t.logtext(), 10), t.logtext()
    rc, out = t.admin("show info")              # b waits in the retired generation
    assert "\nqueued_connections 1\n" in out and "\ngenerations 2\n" in out, out
    a.close()
    assert readline(b) == "m"
    b.close()
    assert wait_for(lambda: t.admin("show info")[1].count("generations 1") == 1, 10)
    t.stop()


@valgrind
def test_queue_timeout_and_full():
    m = Backend("m")
    t, mport = start([("m", m.addr, "maxconn = 1;")], 'max = 1; timeout = "2s";')
    t0 = time.time()
    a, b = one_served_one_queued(t, mport)
    c = connect(t.port)
    assert read_all(c) == b""                   # the queue is full: closed at once, b still waits
    assert be_metric(mport, "queue_length") == 1
    assert read_all(b) == b""                   # closed at queue.timeout
    assert 1.9 < time.time() - t0 < 10
    assert wait_for(lambda: "end=queue-timeout" in t.logtext() and "end=queue-full" in t.logtext(), 5), t.logtext()
    assert be_metric(mport, "queue_timeouts_total") == 1 and be_metric(mport, "queue_full_total") == 1
    assert be_metric(mport, "queue_length") == 0
    assert m.accepted == 1
    for s in (a, b, c):
        s.close()
    t.stop()


@valgrind
def test_queue_cookie_mode_503():
    """Cookie mode: a queued request that times out gets a 503."""
    h = Backend("h", mode="http")
    cookie = 'cookie = { name = "TETHERID"; secret = "s"; };'
    t, mport = start([("h", h.addr, "maxconn = 1;")], 'max = 5; timeout = "400ms";', balance="cookie",
                     extra=cookie)
    a = connect(t.port)                         # holds the one slot (keep-alive)
    a.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert read_http(a)[0] == 200
    b = connect(t.port)
    b.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    got = read_all(b)
    assert got.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), got
    assert b"\r\nConnection: close\r\n" in got
    assert wait_for(lambda: "end=queue-timeout" in t.logtext(), 5)
    a.close()
    b.close()
    t.stop()


@valgrind
def test_backup_takes_overflow_of_full_primaries():
    p, b = Backend("p"), Backend("b")
    t, mport = start([("p", p.addr, "maxconn = 1;"), ("b", b.addr, "backup = true;")], "max = 10;")
    x = connect(t.port)
    assert readline(x) == "p"
    y = connect(t.port)
    assert readline(y) == "b"                   # not queued, not refused
    x.close()
    assert wait_for(lambda: metric(mport, "tether_server_active_connections", 'backend="be",server="p"') == 0, 5)
    z = connect(t.port)
    assert readline(z) == "p"                   # the primary again once it has room
    assert be_metric(mport, "queued_total") == 0
    for s in (y, z):
        s.close()
    t.stop()


def test_queue_fifo_under_load():
    """Many clients through 2 slots: every one is served, none waits
    forever, none is refused, whatever worker holds it and whatever worker
    frees the slot."""
    m = Backend("m", mode="echo")
    t, mport = start([("m", m.addr, "maxconn = 2;")], 'max = 100; timeout = "30s";')
    results = []

    def client(i):
        try:
            s = connect(t.port, timeout=30)
            msg = b"hello %d\n" % i
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                d = s.recv(100)
                if not d:
                    break
                got += d
            s.close()
            results.append(got == msg)
        except OSError as e:
            results.append(e)
    threads = [threading.Thread(target=client, args=(i,)) for i in range(40)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert results.count(True) == 40, results
    assert be_metric(mport, "queued_total") > 0
    assert be_metric(mport, "queue_dispatched_total") == be_metric(mport, "queued_total")
    assert wait_for(lambda: be_metric(mport, "queue_length") == 0, 5)
    t.stop()


if __name__ == "__main__":
    main(globals())
