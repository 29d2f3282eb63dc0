"""Local resource shortages with the real binary: tether run out of file
descriptors (a low RLIMIT_NOFILE, silent cookie-mode clients holding one
each) must not take it out on the servers: health checks that cannot get a
socket are counted and logged once, not failed, and the servers stay UP."""
import socket

from harness import WORKERS, Backend, Tether, conf, connect, free_port, http_get, main, metric, wait_for

ADMIN = 'admin = "@DIR@/admin.sock";'
NOFILE = 40     # tether's own descriptors (log, epoll, listeners, admin, metrics...) take about a dozen


def test_out_of_fds_keeps_servers_up():
    e = Backend("e", mode="http")
    mport = free_port()
    hc = 'health = { type = "tcp"; interval = "100ms"; timeout = "1s"; rise = 1; fall = 2; };'
    text, port = conf([("e", e.addr)], balance="cookie", global_extra=f'metrics = "127.0.0.1:{mport}"; {ADMIN}',
                      backend_extra='cookie = { secret = "s"; }; timeouts = { http_request = "60s"; }; ' + hc)
    t = Tether(text, port, nofile=NOFILE)
    assert wait_for(lambda: t.state("e") == "UP", 5)
    # each silent client holds a descriptor while tether waits for its
    # request head; those beyond the limit wait in the kernel's backlog
    held = [connect(port) for _ in range(NOFILE + 20)]
    # checks keep being tried every 100ms meanwhile: before, fall = 2 of
    # them took the server DOWN (and with on_down = "close", its connections)
    assert wait_for(lambda: "local resource shortage" in t.logtext() or " is DOWN" in t.logtext(), 10), t.logtext()
    went_down = wait_for(lambda: " is DOWN" in t.logtext(), 2)
    for s in held:
        s.close()
    assert not went_down, t.logtext()
    assert "local resource shortage: health check of be/e: Too many open files" in t.logtext(), t.logtext()
    assert wait_for(lambda: "local resource shortage over" in t.logtext(), 10), t.logtext()
    assert t.logtext().count("local resource shortage:") == 1, t.logtext()    # once per shortage
    assert " is DOWN" not in t.logtext()
    assert t.state("e") == "UP"
    assert metric(mport, "tether_local_errors_total") >= 3                     # checks ran during it
    code, _, body, _ = http_get(port)
    assert code == 200 and body.startswith("e "), (code, body)
    t.stop()


def test_connect_out_of_fds_ends_error():
    """A connection whose request is complete but for whose server tether
    cannot get a socket (out of descriptors) ends with end=error, counted
    and logged as a local shortage; the server is not blamed (no passive
    failure) and serves again once descriptors are back.  Each worker holds
    one spare socket for this: the first such request still reaches its
    server, the next of the same worker gets end=error."""
    e = Backend("e", mode="http")
    mport = free_port()
    text, port = conf([("e", e.addr)], balance="cookie", global_extra=f'metrics = "127.0.0.1:{mport}"; {ADMIN}',
                      backend_extra='cookie = { secret = "s"; }; timeouts = { http_request = "60s"; };')
    t = Tether(text, port, nofile=NOFILE)
    # silent cookie-mode clients hold one descriptor each until none is left
    # (accepts pause; the rest wait in the kernel's backlog)
    held = [connect(port) for _ in range(NOFILE + 20)]
    assert wait_for(lambda: "pausing accepts" in t.logtext(), 10), t.logtext()
    answers = []
    for s in held[:int(WORKERS or 1) + 1]:      # one more request than there are spares
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            answers.append(s.recv(4096))
        except (ConnectionResetError, socket.timeout):
            answers.append(b"")
    assert any(b"200" in a for a in answers), answers          # a spare served it
    assert not all(b"200" in a for a in answers), answers
    assert wait_for(lambda: "end=error" in t.logtext(), 10), t.logtext()
    assert "local resource shortage: socket() for a connection: Too many open files" in t.logtext(), t.logtext()
    for s in held:
        s.close()
    assert metric(mport, "tether_local_errors_total") >= 1
    assert metric(mport, "tether_server_connect_failures_total", 'backend="be",server="e"') == 0
    assert wait_for(lambda: http_get(port)[0] == 200, 10)
    assert " is DOWN" not in t.logtext(), t.logtext()
    t.stop()


if __name__ == "__main__":
    main(globals())
