"""Affinity with the real binary: cookie stickiness in TCP mode, Set-Cookie
insertion, non-HTTP passthrough, iphash per client address, agreement of
two instances, and the remap on scale-out 4 -> 5 (modulo, Maglev, stick)."""
import hashlib
import json
import os
import re
import socket
import time
import urllib.request

from harness import valgrind  # noqa: F401 (marker read by meson.build)
from harness import (Backend, Tether, banner, conf, connect, free_port, http_get, main, metric, read_all,
                     read_http, readline, wait_for)


def stats(mport):
    return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{mport}/stats", timeout=5).read())

COOKIE = 'cookie = { name = "TETHERID"; secret = "s3cret"; max_age = "30m"; };'
# The cookie values of servers a, b, c under secret "s3cret": a compatibility
# promise (cookie-affinity.md: stable across restarts, versions and
# instances).  The same literals as tests/unit/lb/test_golden.c.
GOLDEN = {"a": "bfd6436dcc6537d4", "b": "70b3a9c25d121f16", "c": "0afdd3d6d994af8e"}


def cookie_of(hdrs):
    for v in hdrs.get("set-cookie", []):
        m = re.match(r"TETHERID=([0-9a-f]{16}); Path=/; HttpOnly; Max-Age=1800$", v)
        if m:
            return m.group(1)
    return None


@valgrind
def test_cookie_sticky_50_connections():
    bs = [Backend(n, mode="http") for n in "abc"]
    text, port = conf([(b.name, b.addr) for b in bs], balance="cookie", backend_extra=COOKIE)
    t = Tether(text, port)
    st, hdrs, body, _ = http_get(port)
    assert st == 200
    value = cookie_of(hdrs)
    assert value, hdrs
    first = body.split()[0]
    for _ in range(50):
        st, hdrs, body, _ = http_get(port, {"Cookie": "theme=dark; TETHERID=" + value})
        assert body.split()[0] == first, body
        assert "set-cookie" not in hdrs, hdrs     # already holds the right cookie
        assert "TETHERID=" + value in body         # the backend saw the cookie untouched
    t.stop()
    assert value == GOLDEN[first], (first, value)      # the fixed value, byte for byte


def test_cookie_value_golden_and_keyed_by_secret():
    """The Set-Cookie of each server is its golden value; another secret gives
    every server another value, so the value depends on the secret (the
    opacity promise), and two instances with the same secret agree."""
    bs = [Backend(n, mode="http") for n in "abc"]
    servers = [(b.name, b.addr) for b in bs]
    seen = {}
    for secret in ("s3cret", "other-secret"):
        extra = COOKIE.replace("s3cret", secret)
        for order in (servers, list(reversed(servers))):      # a second instance, listed otherwise
            t = Tether(*conf(order, balance="cookie", backend_extra=extra))
            for _ in range(3):                                 # roundrobin fallback: each server once
                st, hdrs, body, _ = http_get(t.port)
                name, value = body.split()[0], cookie_of(hdrs)
                assert st == 200 and value, hdrs
                assert seen.setdefault((secret, name), value) == value, (secret, name, value)
            t.stop()
    assert {n: seen[("s3cret", n)] for n in "abc"} == GOLDEN, seen
    for n in "abc":
        assert seen[("other-secret", n)] != GOLDEN[n], (n, seen)


@valgrind
def test_cookie_redispatch_when_server_dies():
    """The cookie's server is checked DOWN: the client goes elsewhere with a
    fresh cookie, counted as a redispatch of the dead server (and not as a
    failed connect: a DOWN server is not tried)."""
    bs = {n: Backend(n, mode="http") for n in "abc"}
    mport = free_port()
    hc = 'health = { type = "tcp"; interval = "100ms"; timeout = "100ms"; rise = 1; fall = 1; };'
    text, port = conf([(n, b.addr) for n, b in bs.items()], balance="cookie", backend_extra=COOKIE + hc,
                      global_extra='admin = "@DIR@/admin.sock"; metrics = "127.0.0.1:%d";' % mport)
    t = Tether(text, port)
    st, hdrs, body, _ = http_get(port)
    value, first = cookie_of(hdrs), body.split()[0]
    bs[first].stop()
    assert wait_for(lambda: t.state(first) == "DOWN", 5), t.admin("show servers")
    st, hdrs, body, _ = http_get(port, {"Cookie": "TETHERID=" + value})
    second = body.split()[0]
    fresh = cookie_of(hdrs)
    assert st == 200 and second != first, body
    assert fresh and fresh != value, hdrs          # a fresh cookie for the new server
    assert fresh == GOLDEN[second], (second, fresh)
    for _ in range(5):
        st, hdrs, body, _ = http_get(port, {"Cookie": "TETHERID=" + fresh})
        assert body.split()[0] == second
    srv = {s["name"]: s for s in stats(mport)["backends"][0]["servers"]}
    assert srv[first]["redispatches_total"] == 1, srv[first]
    assert srv[first]["connect_failures_total"] == 0, srv[first]   # not the retry path
    assert srv[second]["affinity_hits_total"] == 5, srv[second]
    t.stop()


@valgrind
def test_cookie_retry_gets_fresh_cookie():
    """No checks: the cookie's server refuses the connect; the retry goes to
    another server and the fresh cookie names the server it reached."""
    bs = {n: Backend(n, mode="http") for n in "abc"}
    text, port = conf([(n, b.addr) for n, b in bs.items()], balance="cookie", backend_extra=COOKIE + " retries = 2;")
    t = Tether(text, port)
    st, hdrs, body, _ = http_get(port)
    value, first = cookie_of(hdrs), body.split()[0]
    bs[first].stop()
    for _ in range(3):
        st, hdrs, body, _ = http_get(port, {"Cookie": "TETHERID=" + value})
        reached = body.split()[0]
        assert st == 200 and reached != first, body
        assert cookie_of(hdrs) == GOLDEN[reached], (reached, hdrs)
    t.stop()


@valgrind
def test_set_cookie_byte_by_byte_head():
    b = Backend("slow", mode="http", slow=True)
    text, port = conf([("slow", b.addr)], balance="cookie", backend_extra=COOKIE)
    t = Tether(text, port)
    s = connect(port)
    for i in range(3):                             # keep-alive: only the first response gets it
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        st, hdrs, body, head = read_http(s)
        assert st == 200 and body.startswith("slow"), body
        assert head.startswith(b"HTTP/1.1 200 OK\r\nSet-Cookie: TETHERID=") == (i == 0), head
        assert int(hdrs["content-length"][0]) == len(body.encode())
    s.close()
    t.stop()


@valgrind
def test_cookie_mode_head_with_large_body():
    # the head and a 4 MB body arrive together: the peek reads only the head's
    # share, and the rest must still be relayed (nothing lost, nothing stuck)
    d = Backend("d", mode="drain")
    text, port = conf([("d", d.addr)], balance="cookie", backend_extra=COOKIE)
    t = Tether(text, port)
    body = os.urandom(4 << 20)
    data = b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    s = connect(port, timeout=30)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    got = readline(s)
    s.close()
    t.stop()
    assert got == f"{len(data)} {hashlib.sha256(data).hexdigest()}", got


@valgrind
def test_cookie_mode_passes_non_http_untouched():
    e = Backend("e", mode="banner")
    text, port = conf([("e", e.addr)], balance="cookie",
                      backend_extra=COOKIE + ' timeouts = { http_request = "300ms"; };')
    t = Tether(text, port)
    s = connect(port)
    blob = bytes(range(256)) * 40 + b"\n"          # binary, not HTTP
    s.sendall(blob)
    assert readline(s) == "e"
    got = b""
    while len(got) < len(blob):
        got += s.recv(65536)
    assert got == blob
    s.close()
    t.stop()


@valgrind
def test_cookie_mode_request_timeout_408():
    """A request head not complete within http_request: 408 and a close, no
    server connection; a client that sent nothing: closed without an answer."""
    e = Backend("e", mode="http")
    mport = free_port()
    text, port = conf([("e", e.addr)], balance="cookie", global_extra=f'metrics = "127.0.0.1:{mport}";',
                      backend_extra=COOKIE + ' timeouts = { http_request = "400ms"; };')
    t = Tether(text, port)
    s = connect(port)
    s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ")      # and nothing more
    t0 = time.time()
    got = read_all(s)
    took = time.time() - t0
    s.close()
    assert got.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), got
    assert b"\r\nConnection: close\r\n" in got and got.endswith(b"\r\n\r\n"), got
    assert 0.3 < took < 5, took
    s = connect(port)
    t0 = time.time()
    assert read_all(s) == b""                   # a FIN, no answer, no reset
    assert 0.3 < time.time() - t0 < 5
    s.close()
    assert e.accepted == 0, "a server connection was opened for an incomplete head"
    code, _, body, _ = http_get(port)           # a complete head still goes through
    assert code == 200 and body.startswith("e "), (code, body)
    assert wait_for(lambda: t.logtext().count("end=request-timeout") == 2, 5), t.logtext()
    assert metric(mport, "tether_backend_request_timeouts_total", 'backend="be"') == 2
    t.stop()


def test_iphash_client_addresses_keep_servers():
    bs = [Backend(n) for n in "abcd"]
    text, port = conf([(b.name, b.addr) for b in bs], balance="iphash")
    t = Tether(text, port)
    seen = {}
    for rnd in range(3):
        for i in range(2, 60):
            name = banner(port, src=f"127.0.0.{i}")
            assert seen.setdefault(i, name) == name, (i, seen[i], name)
    t.stop()
    assert len(set(seen.values())) == 4, seen


def addresses(n):
    return [f"127.1.{i // 250}.{i % 250 + 1}" for i in range(n)]


def test_two_instances_agree():
    bs = [Backend(n) for n in "abcde"]
    servers = [(b.name, b.addr) for b in bs]
    t1 = Tether(*conf(servers, balance="iphash"))
    t2 = Tether(*conf(list(reversed(servers)), balance="iphash"))   # order must not matter
    differ = sum(banner(t1.port, a) != banner(t2.port, a) for a in addresses(1000))
    t1.stop()
    t2.stop()
    assert differ == 0, differ


def remap(method, stick=False):
    bs = [Backend(f"s{i}") for i in range(5)]
    extra = f'iphash = {{ method = "{method}"; }};' + (' stick = { timeout = "30m"; size = 10000; };' if stick else "")
    text, port = conf([(b.name, b.addr) for b in bs[:4]], balance="iphash", backend_extra=extra,
                      global_extra='admin = "@DIR@/admin.sock";')
    t = Tether(text, port)
    addrs = addresses(1000)
    before = [banner(port, a) for a in addrs]
    rc, out = t.admin(f"add server be s4 {bs[4].addr}")
    assert rc == 0, out
    after = [banner(port, a) for a in addrs]
    t.stop()
    moved = sum(x != y for x, y in zip(before, after)) / len(addrs)
    print(f"{method}{' + stick' if stick else ''}: {moved:.1%} of 1000 known clients moved on 4 -> 5")
    return moved, after


def test_scale_out_remap_modulo():
    moved, _ = remap("modulo")
    assert 0.75 <= moved <= 0.85, moved


def test_scale_out_remap_maglev():
    moved, _ = remap("maglev")
    assert 0.15 <= moved <= 0.30, moved


def test_scale_out_remap_maglev_stick():
    moved, after = remap("maglev", stick=True)
    assert moved == 0, moved


if __name__ == "__main__":
    main(globals())
