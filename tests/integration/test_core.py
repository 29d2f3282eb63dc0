"""Balancer core, with the real binary: order, shares, least-conn, retries,
half-close, large transfers, concurrency, timeouts, maxconn, config errors,
drain and reload."""
import hashlib
import os
import re
import signal
import socket
import subprocess
import threading
import time

from harness import valgrind  # noqa: F401 (marker read by meson.build)
from harness import (TETHER, Backend, Blackhole, Pod, Tether, banner, conf, connect, main, read_all,
                     readline, wait_for)


def start(servers, **kw):
    text, port = conf(servers, **kw)
    return Tether(text, port), port


@valgrind
def test_roundrobin_order():
    bs = [Backend(n) for n in "abc"]
    t, port = start([(b.name, b.addr) for b in bs])
    got = [banner(port) for _ in range(9)]
    t.stop()
    # one smooth round-robin order, wherever it starts: any rotation of a b c
    assert sorted(got[:3]) == ["a", "b", "c"] and got[3:] == got[:6], got


def test_weighted_shares():
    a, b = Backend("a"), Backend("b")
    t, port = start([("a", a.addr, "weight = 3;"), ("b", b.addr, "weight = 1;")])
    got = [banner(port) for _ in range(400)]
    t.stop()
    assert got.count("a") == 300 and got.count("b") == 100, (got.count("a"), got.count("b"))
    assert got[:4].count("a") == 3, got[:8]     # smooth: interleaved, not a burst


@valgrind
def test_leastconn_long_lived():
    bs = [Backend(n) for n in "abc"]
    t, port = start([(b.name, b.addr) for b in bs], balance="leastconn")
    held = []
    for _ in range(6):                       # two long-lived connections each
        s = connect(port)
        held.append((readline(s), s))
    names = sorted(n for n, _ in held)
    assert names == sorted("aabbcc"), names
    for n, s in held:                        # close both of b's
        if n == "b":
            s.close()
    # tether has seen both close once it logged them (written within a second)
    assert wait_for(lambda: len(re.findall(r" be/b .* end=client-closed", t.logtext())) == 2, 5), t.logtext()
    nxt = [banner(port) for _ in range(2)]
    assert nxt == ["b", "b"], nxt             # b is now the least loaded
    for n, s in held:
        s.close()
    t.stop()


def test_backend_killed_no_failed_connections():
    bs = [Backend(n) for n in "abc"]
    t, port = start([(b.name, b.addr) for b in bs], backend_extra="retries = 2;")
    failures, names = 0, []
    for i in range(1000):
        if i == 300:
            bs[1].stop()                      # kill b mid-run
        try:
            names.append(banner(port))
        except OSError:
            failures += 1
    t.stop()
    assert failures == 0, failures
    assert names.count("") == 0, "empty answers: %d" % names.count("")
    assert "b" not in names[400:], "b still chosen after it died"


@valgrind
def test_never_accepting_server_retry():
    hole, good = Blackhole(), Backend("good")
    t, port = start([("hole", hole.addr), ("good", good.addr)],
                    backend_extra='retries = 1; timeouts = { connect = "400ms"; };')
    took = []
    for _ in range(2):                        # one of the two turns tries the hole first
        t0 = time.time()
        assert banner(port) == "good"
        took.append(time.time() - t0)
    t.stop()
    hole.close()
    assert 0.35 < max(took) < 2.0, took       # retried shortly after the connect timeout


@valgrind
def test_half_close():
    d = Backend("d", mode="drain")
    t, port = start([("d", d.addr)])
    s = connect(port)
    payload = os.urandom(300000)
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)                # our FIN; the answer must still come
    answer = readline(s)
    s.close()
    # the log names the side that closed first: the client's FIN came first
    assert wait_for(lambda: "end=client-closed" in t.logtext(), 3), t.logtext()
    t.stop()
    assert answer == f"{len(payload)} {hashlib.sha256(payload).hexdigest()}", answer


@valgrind
def test_data_and_fin_in_one_segment():
    # the last bytes and the FIN arrive together (TCP_CORK merges them into
    # one segment): one readiness event must deliver both, the bytes and the end
    d = Backend("d", mode="drain")
    t, port = start([("d", d.addr)])
    answers = []
    for i in range(5):
        s = connect(port)
        assert wait_for(lambda: d.accepted == i + 1, 5)   # the relay is up and waiting for us
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        s.send(b"last words")
        s.shutdown(socket.SHUT_WR)            # FIN rides on the corked segment
        answers.append(readline(s))
        s.close()
    t.stop()
    want = f"10 {hashlib.sha256(b'last words').hexdigest()}"
    assert answers == [want] * 5, answers


@valgrind
def test_pipelined_requests_then_fin():
    # 300 requests in one write, then the client's FIN: through tether to a
    # real tether-pod, every one is answered before the connection ends
    pod = Pod("p1")
    try:
        t, port = start([("p1", pod.addr)])
        s = connect(port, timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n" * 300)
        s.shutdown(socket.SHUT_WR)
        got = read_all(s)
        s.close()
        t.stop()
    finally:
        pod.stop()
    assert got.count(b"HTTP/1.1 200 OK\r\n") == 300, got[-200:]
    assert got.endswith(b"p1\n"), got[-200:]


def test_large_transfer_both_ways():
    e = Backend("e", mode="echo")
    t, port = start([("e", e.addr)])
    s = connect(port, timeout=60)
    total = 100 * 1024 * 1024
    chunk = os.urandom(1 << 20)
    sent_hash, recv_hash = hashlib.sha256(), hashlib.sha256()
    got = [0]

    fin = [False]

    def reader():
        while True:
            d = s.recv(1 << 20)
            if not d:
                fin[0] = True                # the echo server's FIN, passed on by tether
                break
            recv_hash.update(d)
            got[0] += len(d)
    th = threading.Thread(target=reader)
    th.start()
    for i in range(total // len(chunk)):
        block = bytes([i & 0xff]) + chunk[1:]
        sent_hash.update(block)
        s.sendall(block)
    s.shutdown(socket.SHUT_WR)
    th.join(120)
    s.close()
    t.stop()
    assert got[0] == total, got[0]
    assert fin[0], "no FIN after the last byte"
    assert sent_hash.digest() == recv_hash.digest()


def test_2000_concurrent():
    e = Backend("e", mode="echo")
    t, port = start([("e", e.addr)])
    socks = []
    for i in range(2000):
        socks.append(connect(port, timeout=20))
    for i, s in enumerate(socks):
        s.sendall(b"%d\n" % i)
    for i, s in enumerate(socks):
        assert readline(s) == str(i)
    for s in socks:
        s.close()
    t.stop()


@valgrind
def test_client_idle_timeout():
    e = Backend("e", mode="echo")
    t, port = start([("e", e.addr)], backend_extra='timeouts = { client = "500ms"; server = "30s"; };')
    s = connect(port)
    t0 = time.time()
    assert s.recv(10) == b""                  # closed by tether
    took = time.time() - t0
    s.close()
    assert wait_for(lambda: "end=client-timeout" in t.logtext(), 3)
    t.stop()
    assert 0.4 < took < 2.5, took


@valgrind
def test_server_idle_timeout():
    k = Backend("k", mode="sink")
    t, port = start([("k", k.addr)], backend_extra='timeouts = { client = "30s"; server = "500ms"; };')
    s = connect(port)
    s.sendall(b"hello")
    t0 = time.time()
    assert s.recv(10) == b""
    took = time.time() - t0
    s.close()
    assert wait_for(lambda: "end=server-timeout" in t.logtext(), 3)
    t.stop()
    assert 0.4 < took < 2.5, took


@valgrind
def test_maxconn():
    bs = [Backend("m")]
    t, port = start([("m", bs[0].addr)], global_extra="maxconn = 5;")
    held = [connect(port) for _ in range(5)]
    for s in held:
        assert readline(s) == "m"
    extra = connect(port, timeout=0.7)       # queued by the kernel, not served
    try:
        extra.recv(10)
        served = True
    except socket.timeout:
        served = False
    assert not served, "6th connection was served above maxconn"
    held[0].close()
    extra.settimeout(5)
    assert readline(extra) == "m"            # served once a slot freed
    for s in held[1:] + [extra]:
        s.close()
    t.stop()


def test_config_errors_rejected():
    import tempfile
    d = tempfile.mkdtemp()
    bad = os.path.join(d, "bad.conf")
    with open(bad, "w") as f:
        f.write('frontends = ( { name = "web"; bind = [ "127.0.0.1:1" ]; backend = "pods"; } );\n'
                'backends = ( { name = "pods"; retires = 2;\n'
                '  servers = ( { name = "a"; address = "127.0.0.1:99999"; } ); } );\n')
    r = subprocess.run([TETHER, "-t", "-c", bad], capture_output=True, text=True)
    assert r.returncode == 1, r
    assert f'{bad}:2: backends.[0].retires: unknown setting "retires" (did you mean "retries"?)' in r.stderr, r.stderr
    assert f'{bad}:3: backends.[0].servers.[0].address: "127.0.0.1:99999" is not an address' in r.stderr, r.stderr
    good = os.path.join(os.environ.get("TETHER_SRCDIR", "."), "conf", "tether.conf")
    r = subprocess.run([TETHER, "-t", "-c", good], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "configuration OK", r


@valgrind
def test_sigterm_drains():
    e = Backend("e", mode="echo")
    t, port = start([("e", e.addr)], global_extra='drain_timeout = "10s";')
    s = connect(port)
    s.sendall(b"before\n")
    assert readline(s) == "before"
    t.signal(signal.SIGTERM)

    def refused():
        try:
            connect(port, timeout=1).close()
            return False
        except OSError:
            return True
    assert wait_for(refused, 5), "still accepting after SIGTERM"
    s.sendall(b"during\n")                    # the established one still works
    assert readline(s) == "during"
    assert t.proc.poll() is None
    s.close()
    assert t.stop(timeout=5) == 0


@valgrind
def test_reload_keeps_connections():
    a, b = Backend("a"), Backend("b")
    text, port = conf([("a", a.addr)])
    t = Tether(text, port)
    s = connect(port)
    assert readline(s) == "a"
    t.write(conf([("b", b.addr)], port=port)[0])
    t.signal(signal.SIGHUP)
    assert wait_for(lambda: "reloaded" in t.logtext(), 5), t.logtext()
    s.sendall(b"still\n")                     # established connection survives
    assert readline(s) == "still"
    assert [banner(port) for _ in range(3)] == ["b", "b", "b"]
    s.close()
    t.stop()


@valgrind
def test_reload_broken_file_keeps_serving():
    a = Backend("a")
    text, port = conf([("a", a.addr)])
    t = Tether(text, port)
    t.write("backends = ( oops\n")
    t.signal(signal.SIGHUP)
    assert wait_for(lambda: "reload of" in t.logtext(), 5)
    assert "syntax error" in t.logtext()
    assert banner(port) == "a"
    t.stop()


if __name__ == "__main__":
    main(globals())
