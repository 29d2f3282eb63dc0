"""The PROXY protocol with the real binaries: tether writing it to
tether-pods (v1 and v2, health checks included), tether reading it behind
another tether (iphash by the original client address), and malformed,
cut or late headers closed and counted."""
import re
import socket
import time
import urllib.request

from harness import valgrind  # noqa: F401 (marker read by meson.build)
from harness import (Backend, Pod, Tether, banner, conf, connect, free_port, main, read_http, readline,
                     wait_for)

ADMIN = 'admin = "@DIR@/admin.sock";'
V2_LOCAL = b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"


def metric(mport, name, labels):
    text = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read().decode()
    m = re.search(r"^%s\{%s\} (\d+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return int(m.group(1)) if m else None


def get(port, src):
    s = connect(port, src)
    try:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        return read_http(s)
    finally:
        s.close()


def closed(s):
    """The peer closed: a FIN, or a reset (unread bytes make close() send one)."""
    try:
        return s.recv(100) == b""
    except ConnectionResetError:
        return True


@valgrind
def test_send_proxy_pod_sees_client_address():
    for version in ("v1", "v2"):
        pods = [Pod(n, "--proxy-protocol", "--log-connections", capture=True) for n in ("p1", "p2")]
        try:
            # http checks carry the header too: a strict pod would refuse them otherwise
            hc = 'health = { type = "http"; path = "/health"; interval = "200ms"; rise = 1; fall = 1; };'
            t = Tether(*conf([(n, p.addr) for n, p in zip(("p1", "p2"), pods)],
                             backend_extra=f'send_proxy = "{version}"; ' + hc, global_extra=ADMIN))
            assert wait_for(lambda: t.state("p1") == "UP" and t.state("p2") == "UP", 5), t.admin("show servers")
            srcs = [f"127.0.0.{i}" for i in range(10, 16)]
            for src in srcs:
                status, hdrs, body, _ = get(t.port, src)
                assert status == 200, (status, body)
            # each pod logged the real clients, not tether's 127.0.0.1 ...
            for src in srcs:
                assert any(re.search(r"connection from %s:\d+ \(PROXY %s via 127\.0\.0\.1:" % (re.escape(src), version),
                                     p.logtext()) for p in pods), (src, [p.logtext()[-2000:] for p in pods])
            # ... its checks came with a header too (v2 LOCAL; v1 naming the check's own address) ...
            check = r"connection from 127\.0\.0\.1:\d+ \(PROXY v2 LOCAL via" if version == "v2" else \
                r"connection from 127\.0\.0\.1:\d+ \(PROXY v1 via"
            assert wait_for(lambda: all(re.search(check, p.logtext()) for p in pods), 5), \
                [p.logtext()[-2000:] for p in pods]
            # ... and counts as client_addresses exactly the addresses it logged (LOCAL is not a client)
            for p in pods:
                logged = set(re.findall(r"connection from ([0-9.]+):\d+ \(PROXY v\d via", p.logtext()))
                assert p.stats(proxy=True)["client_addresses"] == len(logged), (p.stats(proxy=True), logged)
            # a connection without the header is refused by the pod (the spec: never guess)
            s = connect(pods[0].port)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert closed(s)
            s.close()
            assert wait_for(lambda: pods[0].stats(proxy=True)["proxy_errors"] == 1, 3)
            t.stop()
        finally:
            for p in pods:
                p.stop()


def test_accept_proxy_iphash_behind_tether():
    """front (send_proxy) -> back (accept_proxy, iphash): the back tether
    balances by the original client address, exactly as it does for the same
    client connecting to it directly."""
    bs = [Backend(n) for n in "abcde"]
    back_direct, back_pp, mport = free_port(), free_port(), free_port()
    servers = ", ".join(f'{{ name = "{b.name}"; address = "{b.addr}"; }}' for b in bs)
    back_text = (f'global = {{ log = "stderr"; drain_timeout = "5s"; metrics = "127.0.0.1:{mport}"; }};\n'
                 f'frontends = ( {{ name = "direct"; bind = "127.0.0.1:{back_direct}"; backend = "be"; }},\n'
                 f'  {{ name = "pp"; bind = "127.0.0.1:{back_pp}"; backend = "be"; accept_proxy = true; }} );\n'
                 f'backends = ( {{ name = "be"; balance = "iphash"; servers = ( {servers} ); }} );\n')
    back = Tether(back_text, back_direct)
    for version in ("v1", "v2"):
        front = Tether(*conf([("back", f"127.0.0.1:{back_pp}")], backend_extra=f'send_proxy = "{version}";'))
        spread = set()
        for i in range(2, 40):
            src = f"127.0.{i % 3}.{i}"
            via_front, direct = banner(front.port, src), banner(back_direct, src)
            assert via_front == direct, (src, via_front, direct)
            spread.add(direct)
        assert len(spread) >= 3, spread         # not all on one server, as 127.0.0.1 alone would be
        front.stop()
    # the back tether's log names the original clients on the accept_proxy frontend
    assert wait_for(lambda: re.search(r" 127\.0\.1\.4:\d+ pp be/", back.logtext()), 5), back.logtext()[-2000:]
    assert metric(mport, "tether_frontend_proxy_errors_total", 'frontend="pp"') == 0
    back.stop()


@valgrind
def test_accept_proxy_malformed_cut_late():
    a = Backend("a")
    mport = free_port()
    t = Tether(*conf([("a", a.addr)], global_extra=f'metrics = "127.0.0.1:{mport}";',
                     frontend_extra='accept_proxy = true; proxy_timeout = "300ms";'))
    errors = lambda: metric(mport, "tether_frontend_proxy_errors_total", 'frontend="fe"')  # noqa: E731
    assert errors() == 0
    # no header at all: closed, counted, nothing reached the server
    s = connect(t.port)
    s.sendall(b"GET / HTTP/1.1\r\n\r\n")
    assert closed(s)
    s.close()
    assert wait_for(lambda: errors() == 1, 3)
    # a malformed v1 line (heading zero)
    s = connect(t.port)
    s.sendall(b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\nhello")
    assert closed(s)
    s.close()
    assert wait_for(lambda: errors() == 2, 3)
    # a header cut short by the client's FIN
    s = connect(t.port)
    s.sendall(b"PROXY TCP4 1.2.3")
    s.shutdown(socket.SHUT_WR)
    assert closed(s)
    s.close()
    assert wait_for(lambda: errors() == 3, 3)
    # a header that never completes: closed at proxy_timeout
    s = connect(t.port)
    s.sendall(b"PROXY TCP4 ")
    t0 = time.time()
    assert closed(s)
    assert 0.25 < time.time() - t0 < 2, time.time() - t0
    s.close()
    assert wait_for(lambda: errors() == 4, 3)
    # a connect and close without a byte (a TCP check of the balancer in front): not an error
    connect(t.port).close()
    # a header in two pieces, then data: relayed, with the client address from the header
    s = connect(t.port)
    s.sendall(b"PROXY TCP4 192.0.2.7 ")
    time.sleep(0.05)            # the stimulus: a second segment
    s.sendall(b"198.51.100.1 4000 80\r\n")
    assert readline(s) == "a"
    s.sendall(b"ping\n")
    assert readline(s) == "ping"
    s.close()
    # v2 LOCAL keeps the real address
    s = connect(t.port)
    s.sendall(V2_LOCAL)
    assert readline(s) == "a"
    s.close()
    assert wait_for(lambda: " 192.0.2.7:4000 fe be/a " in t.logtext(), 3), t.logtext()[-2000:]
    assert "end=proxy-timeout" in t.logtext() and "end=proxy-invalid" in t.logtext()
    assert errors() == 4
    assert a.accepted == 2, a.accepted
    t.stop()


def test_accept_proxy_cookie_mode_same_segment():
    """The PROXY header and the request head in one segment: the head is
    read at once (no new edge comes for it) and routed by its cookie."""
    a = Backend("a", mode="http")
    t = Tether(*conf([("a", a.addr)], balance="cookie", frontend_extra="accept_proxy = true;"))
    s = connect(t.port)
    s.sendall(b"PROXY TCP6 2001:db8::5 2001:db8::1 5555 80\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n")
    status, hdrs, body, _ = read_http(s)
    s.close()
    assert status == 200 and body.startswith("a"), body
    assert "set-cookie" in hdrs, hdrs
    assert wait_for(lambda: " [2001:db8::5]:5555 fe be/a " in t.logtext(), 3), t.logtext()[-2000:]
    t.stop()


if __name__ == "__main__":
    main(globals())
