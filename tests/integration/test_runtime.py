"""Runtime API *effects* (operations.md, Runtime API): `set weight` changes
the shares, `disable`/`enable`/`drain` change who gets new connections (and
what show servers and the metrics say), and `del` of a drained server with
a connection: refused never, freed when that connection ends."""
import re

from harness import valgrind  # noqa: F401 (marker read by meson.build)
from harness import (Backend, Tether, banner, conf, connect, fetch, free_port, main, readline, server_stats,
                     wait_for)

ADMIN = 'admin = "@DIR@/admin.sock";'


def start(servers, mport=None, **kw):
    extra = ADMIN + (f' metrics = "127.0.0.1:{mport}";' if mport else "")
    return Tether(*conf(servers, global_extra=extra, **kw))


def ok(t, cmd):
    rc, out = t.admin(cmd)
    assert rc == 0 and out.strip().endswith("OK"), (cmd, out)
    return out


def shares(port, n):
    got = [banner(port) for _ in range(n)]
    return {name: got.count(name) for name in set(got)}


def near(got, want, n, tol=0.05):
    return abs(got - want) <= tol * n


def test_set_weight_changes_shares():
    """a:b from 1:1 to 3:1 over 300 connections (within 5 %), then 0:1;
    the new weight shows in show servers and tether_server_weight; an
    out-of-range weight is refused and changes nothing."""
    a, b = Backend("a"), Backend("b")
    mport = free_port()
    t = start([("a", a.addr), ("b", b.addr)], mport)
    got = shares(t.port, 300)
    assert near(got.get("a", 0), 150, 300), got
    ok(t, "set weight be a 3")
    assert re.search(r"^a \S+ UP 3 ", t.admin("show servers")[1], re.M), t.admin("show servers")
    assert server_stats(mport)["a"]["weight"] == 3
    assert re.search(r'^tether_server_weight\{backend="be",server="a"\} 3$', fetch(mport, "/metrics"), re.M)
    got = shares(t.port, 300)
    assert near(got.get("a", 0), 225, 300) and near(got.get("b", 0), 75, 300), got
    rc, out = t.admin("set weight be a 257")
    assert rc != 0 and out.startswith("ERR"), out
    assert server_stats(mport)["a"]["weight"] == 3
    ok(t, "set weight be a 0")
    got = shares(t.port, 100)
    assert got == {"b": 100}, got
    t.stop()


@valgrind
def test_disable_enable_drain_effects():
    """disable: MAINT, no new connections, an open one keeps working; enable:
    UP and a share again; drain: DRAIN and tether_server_draining 1."""
    a, b = Backend("a", mode="banner"), Backend("b")
    mport = free_port()
    t = start([("a", a.addr), ("b", b.addr)], mport)
    held = connect(t.port)
    first = readline(held)
    if first != "a":                          # hold a connection on a
        held.close()
        held = connect(t.port)
        assert readline(held) == "a"
    ok(t, "disable server be a")
    assert t.state("a") == "MAINT"
    assert server_stats(mport)["a"]["state"] == "MAINT"
    assert shares(t.port, 20) == {"b": 20}
    held.sendall(b"still\n")
    assert readline(held) == "still"          # maintenance does not cut open connections
    ok(t, "enable server be a")
    assert t.state("a") == "UP"
    got = shares(t.port, 20)
    assert near(got.get("a", 0), 10, 20, 0.1), got
    ok(t, "drain server be a")
    assert t.state("a") == "DRAIN"
    assert re.search(r'^tether_server_draining\{backend="be",server="a"\} 1$', fetch(mport, "/metrics"), re.M)
    assert shares(t.port, 20) == {"b": 20}
    held.sendall(b"drained\n")
    assert readline(held) == "drained"
    ok(t, "enable server be a")
    assert server_stats(mport)["a"]["draining"] == 0
    held.close()
    rc, out = t.admin("disable server be nosuch")
    assert rc != 0 and out.startswith("ERR"), out
    t.stop()


@valgrind
def test_del_drained_server_freed_at_last_connection():
    """operations.md: a drained server with connections may be deleted; it
    leaves the pool at once (not listed, no new connections) and is freed
    when its last connection ends, after which its name can be added again."""
    a, d = Backend("a"), Backend("d", mode="banner")
    t = start([("a", a.addr)])
    ok(t, f"add server be d {d.addr}")
    held = None
    for _ in range(4):                         # roundrobin: one of the next two is d
        s = connect(t.port)
        if readline(s) == "d":
            held = s
            break
        s.close()
    assert held, "no connection reached d"
    rc, out = t.admin("del server be d")
    assert rc != 0 and "drain it first" in out, out
    ok(t, "drain server be d")
    ok(t, "del server be d")
    assert not re.search(r"^d ", t.admin("show servers")[1], re.M), t.admin("show servers")
    assert shares(t.port, 10) == {"a": 10}
    held.sendall(b"alive\n")
    assert readline(held) == "alive"           # its connection is served to the end
    assert "runtime: server be/d removed" not in t.logtext()
    held.close()
    assert wait_for(lambda: "runtime: server be/d removed" in t.logtext(), 5), t.logtext()[-2000:]
    ok(t, f"add server be d {d.addr}")           # the name is free again
    assert "d" in shares(t.port, 4)
    t.stop()


@valgrind
def test_reload_keeps_api_state_health_and_counters():
    """operations.md: a reload applies the file (servers added through the
    API go, `set weight` gives way to the file's weight), while servers in
    both keep their health, counters, and a drain or disable done through
    the API."""
    bs = {n: Backend(n) for n in "abcd"}
    mport = free_port()
    hc = 'health = { type = "tcp"; interval = "100ms"; timeout = "200ms"; rise = 1; fall = 1; };'

    def text():
        return conf([(n, bs[n].addr) for n in "abc"], port=t_port, backend_extra=hc,
                    global_extra=ADMIN + f' metrics = "127.0.0.1:{mport}";')[0]
    t_port = free_port()
    t = Tether(text(), t_port)
    assert wait_for(lambda: all(t.state(n) == "UP" for n in "abc"), 5)
    for _ in range(6):
        banner(t.port)
    ok(t, "drain server be a")
    ok(t, "disable server be b")
    ok(t, "set weight be c 7")
    ok(t, f"add server be d {bs['d'].addr}")
    c_port = bs["c"].port
    bs["c"].stop()
    assert wait_for(lambda: t.state("c") == "DOWN", 5)
    before = server_stats(mport)
    t.signal(__import__("signal").SIGHUP)
    assert wait_for(lambda: "reloaded" in t.logtext(), 10), t.logtext()
    after = server_stats(mport)
    assert sorted(after) == ["a", "b", "c"], after                 # d was not in the file
    assert (after["a"]["state"], after["b"]["state"], after["c"]["state"]) == ("DRAIN", "MAINT", "DOWN"), after
    assert after["c"]["weight"] == 1, after["c"]                  # the file's weight
    for n in "abc":                                                # counters carried
        assert after[n]["connections_total"] == before[n]["connections_total"] > 0, (n, before[n], after[n])
        assert after[n]["health_transitions_total"] == before[n]["health_transitions_total"], n
    Backend("c", port=c_port)
    assert wait_for(lambda: t.state("c") == "UP", 5)
    assert shares(t.port, 6) == {"c": 6}                           # a drained, b disabled: still out
    ok(t, "enable server be a")
    assert "a" in shares(t.port, 6)
    t.stop()


if __name__ == "__main__":
    main(globals())
