"""The log with the real binary: "off", JSON lines with the text line's
fields, syslog datagrams, and a reload that changes the format."""
import json
import os
import re
import signal
import socket
import tempfile

from harness import valgrind  # noqa: F401 (marker read by meson.build)
from harness import Backend, Tether, banner, conf, main, wait_for

TEXT_LINE = re.compile(r"^\S+Z (?P<client>\S+) (?P<frontend>\S+) (?P<backend>[^/\s]+)/(?P<server>\S+) "
                       r"connect=(?P<connect_ms>-?[\d.]+)ms duration=(?P<duration_ms>\d+)ms "
                       r"in=(?P<bytes_in>\d+) out=(?P<bytes_out>\d+) end=(?P<end>\S+)$")
FIELDS = ["time", "client", "frontend", "backend", "server", "connect_ms", "duration_ms", "bytes_in", "bytes_out",
          "end"]


def conn_lines(text):
    return [m.groupdict() for m in map(TEXT_LINE.match, text.splitlines()) if m]


def read_file(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


@valgrind
def test_log_off():
    a = Backend("a")
    t = Tether(*conf([("a", a.addr)], log='"off"'))
    assert [banner(t.port) for _ in range(5)] == ["a"] * 5
    t.stop()
    assert t.logtext() == "", t.logtext()          # not a line: not even start and stop


@valgrind
def test_log_json_has_the_text_fields():
    a = Backend("a")
    # two workers: each writes its own lines, in the instance's format, and follows a reload's
    tt = Tether(*conf([("a", a.addr)], log='{ target = "@DIR@/t.log"; }', global_extra="workers = 2;"))
    tj = Tether(*conf([("a", a.addr)], log='{ target = "@DIR@/t.log"; format = "json"; }',
                      global_extra="workers = 2;"))
    for t in (tt, tj):
        for src in ("127.0.0.7", "127.0.0.8"):
            assert banner(t.port, src) == "a"
    tpath, jpath = os.path.join(tt.dir, "t.log"), os.path.join(tj.dir, "t.log")
    # lines are written within a second (the flush timer, per worker): wait
    # for both sources' (a count would also count the harness's start-up
    # probe from 127.0.0.1, made when the log is not on stderr)
    srcs = ("127.0.0.7", "127.0.0.8")
    assert wait_for(lambda: all(s + ":" in read_file(tpath) for s in srcs), 5), read_file(tpath)
    assert wait_for(lambda: all('"%s:' % s in read_file(jpath) for s in srcs), 5), read_file(jpath)
    text = {l["client"].split(":")[0]: l for l in conn_lines(read_file(tpath))}
    objs = [json.loads(l) for l in read_file(jpath).splitlines()]   # every line is one JSON object
    conns = [o for o in objs if "client" in o]
    assert all(list(o) == FIELDS for o in conns), conns
    assert all(set(o) == {"time", "msg"} for o in objs if "client" not in o), objs
    assert any("started" in o["msg"] for o in objs if "msg" in o), objs
    byip = {o["client"].split(":")[0]: o for o in conns}
    # the same connections, the same values (but the times, and how the race of two closes ended)
    for ip in srcs:
        tl, jo = text[ip], byip[ip]
        for k in ("frontend", "backend", "server"):
            assert tl[k] == jo[k], (k, tl, jo)
        assert int(tl["bytes_in"]) == jo["bytes_in"] and int(tl["bytes_out"]) == jo["bytes_out"] == 2, (tl, jo)
        assert float(tl["connect_ms"]) >= 0 and jo["connect_ms"] >= 0
        assert tl["end"].startswith("client-") and jo["end"].startswith("client-"), (tl, jo)
    # a reload switches the format of the running instance
    tt.write(conf([("a", a.addr)], port=tt.port, log='{ target = "@DIR@/t.log"; format = "json"; }',
                  global_extra="workers = 2;")[0])
    tt.signal(signal.SIGHUP)
    assert wait_for(lambda: '"msg":"reloaded' in read_file(tpath), 5), read_file(tpath)[-1000:]
    for i in range(20, 30):     # connections land on both workers
        assert banner(tt.port, f"127.0.0.{i}") == "a"
    assert wait_for(lambda: all(f'"client":"127.0.0.{i}:' in read_file(tpath) for i in range(20, 30)), 5), \
        read_file(tpath)[-2000:]
    assert not re.search(r"^\S+Z 127\.0\.0\.2\d:", read_file(tpath), re.M), "a worker still writes text"
    assert json.loads(read_file(tpath).splitlines()[-1])
    tt.stop()
    tj.stop()


def syslog_lines(fmt, client, until):
    """Tether logging to a syslog socket of ours in format fmt, one
    connection from client: (the datagrams up to the one containing
    `until`, the RFC 3164 header pattern for tether's pid)."""
    a = Backend("a")
    d = tempfile.mkdtemp(prefix="tsys-")
    path = os.path.join(d, "log.sock")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)
    rx.settimeout(5)
    t = Tether(*conf([("a", a.addr)],
                     log=f'{{ target = "syslog"; syslog_socket = "{path}"; facility = "local0"; format = "{fmt}"; }}'))
    try:
        assert banner(t.port, client) == "a"
        got = []
        while not any(until in g for g in got):
            got.append(rx.recv(4096).decode())  # one datagram per line; times out if none comes
        # RFC 3164: <PRI>Mmm dd hh:mm:ss TAG[PID]: MSG, local0.info = 16*8+6
        return got, re.compile(r"^<134>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d tether\[%d\]: " % t.proc.pid)
    finally:
        t.stop()
        rx.close()
        os.unlink(path)
        os.rmdir(d)


def test_log_syslog_datagrams():
    got, head = syslog_lines("json", "127.0.0.11", '"client":"127.0.0.11:')
    for g in got:
        m = head.match(g)
        assert m and g.endswith("}"), g
        json.loads(g[m.end():])
    assert any("started" in g for g in got), got


def test_log_syslog_text_without_a_second_stamp():
    """Text lines to syslog carry syslog's own header and time only: the
    line follows `tether[PID]: ` with no time of tether's before it."""
    got, head = syslog_lines("text", "127.0.0.12", "127.0.0.12:")
    for g in got:
        m = head.match(g)
        assert m, g
        assert not re.match(r"\d{4}-\d\d-\d\dT", g[m.end():]), g
    line = next(g for g in got if "127.0.0.12:" in g)
    assert line[head.match(line).end():].startswith("127.0.0.12:"), line


if __name__ == "__main__":
    main(globals())
