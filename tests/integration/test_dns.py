"""DNS service discovery with the real binary against a DNS server the test
runs on loopback (dnsserver.py): an answer growing from 3 to 5 addresses
and back under load, failures that keep the last good set, SRV, and a
reload that keeps the servers found."""
import re
import signal
import time
import urllib.request

from dnsserver import DnsServer
from harness import valgrind  # noqa: F401 (marker read by meson.build)
from harness import Backend, Tether, banner, conf, free_port, main, wait_for
from test_ops import Load

ADMIN = 'admin = "@DIR@/admin.sock";'


def servers(t):
    """{name: state} of `show servers`."""
    out = t.admin("show servers")[1]
    return {f[0]: f[2] for f in (l.split() for l in out.splitlines()) if len(f) > 2 and not f[0].startswith("#")}


def metric(mport, name, labels):
    text = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read().decode()
    m = re.search(r"^%s\{%s\} (\d+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return int(m.group(1)) if m else None


def start(dns, entry, extra_global="", hc=True):
    mport = free_port()
    health = 'health = { type = "tcp"; interval = "200ms"; timeout = "200ms"; rise = 1; fall = 2; };' if hc else ""
    text, port = conf([], backend_extra=health, global_extra=f'{ADMIN} metrics = "127.0.0.1:{mport}"; '
                      f'resolvers = [ "{dns.addr}" ]; {extra_global}')
    text = text.replace("servers = (  )", f"servers = ( {entry} )")
    return Tether(text, port), mport


def test_dns_grow_and_shrink_under_load():
    dns = DnsServer()
    port = free_port()
    ips = [f"127.0.0.{i}" for i in range(11, 16)]
    backends = [Backend(ip, host=ip, port=port) for ip in ips]      # each answers with its address
    dns.set("pods.test", "A", ips[:3])
    t, mport = start(dns, f'{{ name = "pods"; address = "pods.test:{port}"; resolve = "A"; interval = "500ms"; }}',
                     extra_global="workers = 2;")   # servers change under two workers' traffic
    names = [f"pods-{ip}-{port}" for ip in ips]
    assert wait_for(lambda: servers(t) == {n: "UP" for n in names[:3]}, 5), servers(t)
    load = Load(t.port)
    assert wait_for(lambda: set(load.since(0)) == set(ips[:3]), 5), set(load.since(0))
    dns.set("pods.test", "A", ips)                  # 3 -> 5
    t0 = time.time()
    assert wait_for(lambda: set(servers(t)) == set(names), 3, step=0.02), servers(t)
    assert time.time() - t0 <= 0.5 + 0.3, time.time() - t0      # within one interval (and a poll)
    assert wait_for(lambda: all(s == "UP" for s in servers(t).values()), 3), servers(t)
    mark = load.mark()
    assert wait_for(lambda: set(load.since(mark)) == set(ips), 5), set(load.since(mark))
    dns.set("pods.test", "A", ips[:3])              # 5 -> 3: the two others drain, then go
    assert wait_for(lambda: set(servers(t)) == set(names[:3]), 5, step=0.02), servers(t)
    mark = load.mark()
    assert wait_for(lambda: len(load.since(mark)) >= 200, 20)    # traffic after the change
    assert set(load.since(mark)) == set(ips[:3]), set(load.since(mark))
    load.stop()
    assert load.failed == 0 and load.ok > 100, (load.ok, load.failed)
    assert metric(mport, "tether_dns_servers", 'backend="be",entry="pods"') == 3
    assert metric(mport, "tether_dns_failures_total", 'backend="be",entry="pods"') == 0
    log = t.logtext()
    assert re.search(r"runtime: drain server be/pods-127\.0\.0\.14-%d" % port, log), log[-3000:]
    assert re.search(r"runtime: server be/pods-127\.0\.0\.15-%d removed" % port, log), log[-3000:]
    t.stop()
    dns.stop()


@valgrind
def test_dns_failure_keeps_last_good_set():
    dns = DnsServer()
    a = Backend("a")
    b = Backend("b", host="127.0.0.2", port=a.port)
    dns.set("pods.test", "A", ["127.0.0.1", "127.0.0.2"])
    t, mport = start(dns, f'{{ name = "pods"; address = "pods.test:{a.port}"; resolve = "A"; interval = "200ms"; }}',
                     hc=False)
    want = {f"pods-127.0.0.1-{a.port}", f"pods-127.0.0.2-{a.port}"}
    assert wait_for(lambda: set(servers(t)) == want, 5), servers(t)
    failures = lambda: metric(mport, "tether_dns_failures_total", 'backend="be",entry="pods"')  # noqa: E731
    for mode in ("servfail", "drop", "nxdomain", "empty"):
        before = failures()
        if mode == "nxdomain":
            dns.mode = "answer"
            with dns.lock:
                dns.records.clear()
        elif mode == "empty":
            dns.set("pods.test", "A", [])
        else:
            dns.mode = mode
        assert wait_for(lambda: failures() > before, 8), (mode, failures())
        assert set(servers(t)) == want, (mode, servers(t))
        assert sorted(banner(t.port) for _ in range(4)) == ["a", "a", "b", "b"]
    assert "keeping the last 2 servers" in t.logtext(), t.logtext()[-2000:]
    dns.mode = "answer"
    dns.set("pods.test", "A", ["127.0.0.1"])
    assert wait_for(lambda: set(servers(t)) == {f"pods-127.0.0.1-{a.port}"}, 5), servers(t)
    assert wait_for(lambda: "resolves again" in t.logtext(), 3), t.logtext()[-2000:]
    t.stop()
    dns.stop()


def test_dns_srv_targets_and_ports():
    dns = DnsServer()
    a, b = Backend("a"), Backend("b")
    dns.set("_app._tcp.pods.test", "SRV", [(10, 5, a.port, "one.pods.test"), (10, 5, b.port, "two.pods.test")])
    dns.set("one.pods.test", "A", ["127.0.0.1"])
    dns.set("two.pods.test", "A", ["127.0.0.1"])      # no AAAA: "no data" for the other family is fine
    t, _ = start(dns, '{ name = "pods"; address = "_app._tcp.pods.test"; resolve = "SRV"; interval = "300ms"; }')
    want = {f"pods-127.0.0.1-{a.port}": "UP", f"pods-127.0.0.1-{b.port}": "UP"}
    assert wait_for(lambda: servers(t) == want, 5), servers(t)
    assert sorted(banner(t.port) for _ in range(4)) == ["a", "a", "b", "b"]
    t.stop()
    dns.stop()


def test_dns_reload_keeps_servers():
    dns = DnsServer()
    a = Backend("a")
    b = Backend("b", host="127.0.0.2", port=a.port)
    dns.set("pods.test", "A", ["127.0.0.1", "127.0.0.2"])
    entry = f'{{ name = "pods"; address = "pods.test:{a.port}"; resolve = "A"; interval = "30s"; }}'
    t, mport = start(dns, entry)
    want = {f"pods-127.0.0.1-{a.port}": "UP", f"pods-127.0.0.2-{a.port}": "UP"}
    assert wait_for(lambda: servers(t) == want, 5), servers(t)
    dns.mode = "drop"           # the next resolution would not come for 30 s anyway
    load = Load(t.port)
    for i in range(3):
        t.signal(signal.SIGHUP)
        assert wait_for(lambda: t.logtext().count("reloaded") == i + 1, 5)
        assert servers(t) == want, servers(t)         # carried, with their health
    mark = load.mark()
    assert wait_for(lambda: set(load.since(mark)) == {"a", "b"}, 10), set(load.since(mark))
    load.stop()
    assert load.failed == 0 and load.ok > 20, (load.ok, load.failed)
    assert set(load.names) == {"a", "b"}
    t.stop()
    dns.stop()


if __name__ == "__main__":
    main(globals())
