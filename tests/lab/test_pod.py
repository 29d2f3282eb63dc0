"""tether-pod's session stores against a real redis-server (and
redis-sentinel): what lands in Redis, the X-Session headers, the cache TTL,
misses, Redis dying and coming back, and a Sentinel failover.

Every test function is a meson test (tests/lab/meson.build reads them from
this file); a "# valgrind" comment on its def line runs it under valgrind
too.  Run one by hand:  TETHER_POD=build/src/pod/tether-pod \\
    python3 tests/lab/test_pod.py redis_layout_hash_and_ttl
"""
import re
import select
import signal
import socket
import subprocess
import time

from labkit import POD, Lab, main, measure, read_http, wait_for

SOURCES = {"memory": "local", "redis": "redis", "redis+cache": "cache"}


def store_args(store, r):
    return ["--store", store] + (["--redis", r.addr] if r else [])


def test_store_headers_memory():  # valgrind
    headers_for("memory")


def test_store_headers_redis():
    headers_for("redis")


def test_store_headers_redis_cache():
    headers_for("redis+cache")


def headers_for(store):
    with Lab() as lab:
        r = lab.redis() if store != "memory" else None
        pod = lab.pod("p1", *store_args(store, r), wait_redis=r is not None)
        st, h, body = pod.get("/")
        assert (st, body, h["x-pod"]) == (200, "p1\n", ["p1"]) and "x-session" not in h, (st, h, body)
        sid, src = pod.login("ann")
        assert src == "new"
        want = SOURCES[store]
        for path, method in (("/item/1", "GET"), ("/item/2", "GET"), ("/cart/add?item=7", "POST")):
            st, h, body = pod.request(method, path, sid)
            assert st == 200 and h["x-session"] == [want] and h["x-pod"] == ["p1"], (path, st, h, body)
        assert body == "p1 cart ann item 7\n", body
        st, h, body = pod.get("/item/3", "0123456789abcdef")      # a SID nobody issued
        assert (st, h["x-session"]) == (401, ["miss"]), (st, h)
        st, h, body = pod.get("/item/3")                          # no cookie at all
        assert (st, h["x-session"], h["x-pod"]) == (401, ["miss"], ["p1"]), (st, h)
        st, h, body = pod.request("POST", "/login", body="user=bob")  # the name in a form body
        assert (st, h["x-session"], body) == (200, ["new"], "p1 logged in bob\n"), (st, h, body)
        st, h, body = pod.get("/health")
        assert (st, body) == (200, "ok\n") and (h.get("x-redis") == ["up"]) == (r is not None), h
        s = pod.stats()
        hits = {"local": 0, "cache": 0, "redis": 0}
        hits[want] = 3
        assert s["store"] == store and s["pod"] == "p1", s
        assert (s["requests"], s["sessions_created"], s["misses"], s["carts"]) == (8, 2, 2, 1), s
        assert (s["hits_local"], s["hits_cache"], s["hits_redis"]) == (hits["local"], hits["cache"],
                                                                       hits["redis"]), s
        assert (s["unavailable"], s["redis_errors"], s["client_addresses"]) == (0, 0, 1), s
        assert s["redis_up"] == (r is not None), s


def test_memory_session_ttl_slides():
    with Lab() as lab:
        pod = lab.pod("p1", "--store", "memory", "--session-ttl", "1s")
        sid, _ = pod.login("ann")
        t0 = time.time()
        while time.time() - t0 < 2.5:           # 2.5 s of use keeps a 1 s session alive
            st, h, _ = pod.get("/item/1", sid)
            assert (st, h["x-session"]) == (200, ["local"]), (st, h, time.time() - t0)
            time.sleep(0.3)
        assert wait_for(lambda: pod.stats()["sessions_local"] == 0, 5)
        st, h, _ = pod.get("/item/1", sid)
        assert (st, h["x-session"]) == (401, ["miss"]), (st, h)


def test_redis_layout_hash_and_ttl():  # valgrind
    with Lab() as lab:
        r = lab.redis()
        pod = lab.pod("p1", "--store", "redis", "--redis", r.addr, wait_redis=True)
        now = int(time.time())
        sid, _ = pod.login("ann")
        key = "sess:" + sid
        assert r("TYPE", key) == "hash"
        h = dict(zip(*[iter(r("HGETALL", key))] * 2))
        assert set(h) == {"user", "created", "last_seen", "views", "pod"}, h
        assert (h["user"], h["views"], h["pod"]) == ("ann", "0", "p1"), h
        assert abs(int(h["created"]) - now) <= 5 and h["last_seen"] == h["created"], h
        assert 3590 <= r("TTL", key) <= 3600
        r("EXPIRE", key, 100)                   # the next read slides it back to an hour
        st, hd, body = pod.get("/item/5", sid)
        assert (st, hd["x-session"], body) == (200, ["redis"], "p1 item 5 for ann (views 1)\n"), (st, hd, body)
        assert 3590 <= r("TTL", key) <= 3600
        assert r("HGET", key, "views") == "1"
        for _ in range(2):
            st, hd, _ = pod.request("POST", "/cart/add?item=42", sid)
            assert (st, hd["x-session"]) == (200, ["redis"]), (st, hd)
        assert r("TYPE", "cart:ann") == "hash"
        assert r("HGETALL", "cart:ann") == ["42", "2"]
        assert 86390 <= r("TTL", "cart:ann") <= 86400
        assert r("HGET", key, "views") == "3"


def test_redis_miss_when_key_gone():
    with Lab() as lab:
        r = lab.redis()
        pod = lab.pod("p1", "--store", "redis", "--redis", r.addr, wait_redis=True)
        sid, _ = pod.login("ann")
        assert pod.get("/item/1", sid)[0] == 200
        assert r("DEL", "sess:" + sid) == 1
        st, h, body = pod.get("/item/1", sid)
        assert (st, h["x-session"]) == (401, ["miss"]), (st, h, body)
        assert r("EXISTS", "sess:" + sid) == 0          # a read never re-creates it
        assert pod.stats()["misses"] == 1


def test_cache_miss_when_key_gone():
    # the cache serves a deleted session at most until the touch that
    # request sent comes back empty; then the next request misses
    with Lab() as lab:
        r = lab.redis()
        pod = lab.pod("p1", "--store", "redis+cache", "--redis", r.addr, "--cache-ttl", "1h", wait_redis=True)
        sid, _ = pod.login("ann")
        assert pod.stats()["sessions_local"] == 1
        assert r("DEL", "sess:" + sid) == 1
        st, h, _ = pod.get("/item/1", sid)
        assert (st, h["x-session"]) == (200, ["cache"]), (st, h)
        assert wait_for(lambda: pod.stats()["sessions_local"] == 0, 5)
        st, h, _ = pod.get("/item/1", sid)
        assert (st, h["x-session"]) == (401, ["miss"]), (st, h)
        assert r("EXISTS", "sess:" + sid) == 0


def test_cache_ttl_honoured():
    with Lab() as lab:
        r = lab.redis()
        pod = lab.pod("p1", "--store", "redis+cache", "--redis", r.addr, "--cache-ttl", "1s", wait_redis=True)
        t0 = time.time()
        sid, _ = pod.login("ann")
        seen = []                               # (sent, answered, X-Session), seconds after t0
        while not any(s == "redis" for _, _, s in seen) and time.time() - t0 < 10:
            sent = time.time() - t0
            st, h, _ = pod.get("/item/1", sid)
            assert st == 200, st
            seen.append((sent, time.time() - t0, h["x-session"][0]))
            time.sleep(0.05)
        srcs = [s for _, _, s in seen]
        assert srcs[-1] == "redis" and set(srcs[:-1]) == {"cache"}, seen
        assert seen[-1][1] >= 1.0, seen         # not reloaded before the TTL
        assert seen[-1][0] <= 2.5, seen         # but soon after it
        st, h, _ = pod.get("/item/1", sid)      # cached again, fresh
        assert h["x-session"] == ["cache"], h
        n = len(seen) + 1
        # every view, cached or not, reached Redis: the touches are async
        assert wait_for(lambda: r("HGET", "sess:" + sid, "views") == str(n), 5), (r("HGET", "sess:" + sid,
                                                                                      "views"), n)
        s = pod.stats()
        assert (s["hits_cache"], s["hits_redis"]) == (n - 1, 1), s


def test_redis_down_then_recovery():  # valgrind
    with Lab() as lab:
        r = lab.redis(conf_lines=["appendonly yes", "appendfsync always"])
        pod = lab.pod("p1", "--store", "redis", "--redis", r.addr, wait_redis=True)
        sid, _ = pod.login("ann")
        r.kill()
        st, h, body = pod.get("/item/1", sid)
        assert st == 503 and h["x-pod"] == ["p1"] and "retry-after" in h, (st, h, body)
        assert body.startswith("p1: redis unavailable: ") and r.addr in body, body
        st, h, body = pod.request("POST", "/login?user=bob")
        assert st == 503, (st, body)
        assert pod.get("/")[0] == 200            # the pod itself is fine
        assert wait_for(lambda: pod.get("/health")[1].get("x-redis") == ["down"], 5)
        assert not pod.stats()["redis_up"]
        r.start()                               # same port, the AOF brings the session back
        got, secs = measure(lambda: pod.get("/item/1", sid)[0] == 200, 15)
        assert got, pod.logtext()
        st, h, _ = pod.get("/item/2", sid)
        assert (st, h["x-session"]) == (200, ["redis"]), (st, h)
        s = pod.stats()
        assert s["redis_up"] and s["redis_connects"] == 2, s
        assert s["unavailable"] >= 2 and s["redis_errors"] >= 2, s
        assert "lost 127.0.0.1" in pod.logtext() or "refused" in pod.logtext(), pod.logtext()
        print(f"recovered {secs:.2f}s after redis-server restarted")


def test_cache_serves_while_redis_down():
    with Lab() as lab:
        r = lab.redis()
        pod = lab.pod("p1", "--store", "redis+cache", "--redis", r.addr, "--cache-ttl", "1h", wait_redis=True)
        sid, _ = pod.login("ann")
        r.kill()
        assert wait_for(lambda: not pod.stats()["redis_up"], 5)
        st, h, _ = pod.get("/item/1", sid)              # cached: still served
        assert (st, h["x-session"]) == (200, ["cache"]), (st, h)
        st, _, body = pod.get("/item/1", "%016x" % 0xfeed)   # not cached: Redis would have to say
        assert st == 503 and "redis unavailable" in body, (st, body)
        assert pod.request("POST", "/cart/add?item=1", sid)[0] == 503   # a cart needs Redis
        assert pod.request("POST", "/login?user=bob")[0] == 503
        s = pod.stats()
        assert (s["hits_cache"], s["unavailable"], s["misses"]) == (2, 3, 0), s
        assert s["redis_errors"] == 5, s                # 3 refused + 2 touches not sent


def test_redis_demoted_master_refused():
    # the server turns replica under the pod: READONLY drops the link, ROLE
    # keeps it down, and it comes back once the server is a master again
    with Lab() as lab:
        other = lab.redis(name="other")
        r = lab.redis(name="r")
        pod = lab.pod("p1", "--store", "redis", "--redis", r.addr, wait_redis=True)
        pod.login("ann")
        assert r("REPLICAOF", "127.0.0.1", other.port) == "OK"
        st, _, body = pod.request("POST", "/login?user=bob")
        assert st == 503 and ("READONLY" in body or "not a master" in body), (st, body)
        assert wait_for(lambda: f"{r.addr} is not a master" in pod.request("POST", "/login?user=bob")[2], 5), \
            pod.logtext()
        assert r("REPLICAOF", "NO", "ONE") == "OK"
        assert wait_for(lambda: pod.request("POST", "/login?user=bob")[0] == 200, 5), pod.logtext()
        assert pod.stats()["redis_connects"] == 2


def raw_request(port, path, sid):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: lab\r\nCookie: SID={sid}\r\n\r\n".encode())
    return s


def test_redis_slow_503_loop_not_blocked():
    with Lab() as lab:
        r = lab.redis()
        pod = lab.pod("p1", "--store", "redis", "--redis", r.addr, "--redis-timeout", "2s", wait_redis=True)
        sid, _ = pod.login("ann")
        r.proc.send_signal(signal.SIGSTOP)      # Redis stops answering, its sockets stay open
        try:
            waiting = raw_request(pod.port, "/item/1", sid)
            gone = raw_request(pod.port, "/item/2", sid)
            assert wait_for(lambda: pod.stats()["redis_commands"] == 4, 5)  # login 2 (HSET, EXPIRE), reads 2
            gone.close()                        # leaves while its op is in flight
            assert pod.get("/")[0] == 200        # the loop is not blocked ...
            assert pod.get("/health")[0] == 200
            assert not select.select([waiting], [], [], 0)[0]   # ... while the read still waits
            st, h, body, _ = read_http(waiting)
            waiting.close()
            assert st == 503 and "no reply from " + r.addr in body, (st, body)
        finally:
            r.proc.send_signal(signal.SIGCONT)
        assert wait_for(lambda: pod.get("/item/3", sid)[0] == 200, 15), pod.logtext()
        assert pod.stats()["redis_up"]


def test_pipelined_redis_requests_in_order():
    # keep-alive and pipelining over requests that wait for Redis: answers
    # come in request order, then the FIN closes once all are answered
    with Lab() as lab:
        r = lab.redis()
        pod = lab.pod("p1", "--store", "redis", "--redis", r.addr, wait_redis=True)
        sid, _ = pod.login("ann")
        other = "%016x" % 0xfeed
        reqs, want = b"", []
        for i in range(60):
            if i % 3 == 0:
                reqs += b"GET / HTTP/1.1\r\nHost: lab\r\n\r\n"
                want.append((200, "p1\n"))
            elif i % 3 == 1:
                reqs += f"GET /item/{i} HTTP/1.1\r\nHost: lab\r\nCookie: SID={sid}\r\n\r\n".encode()
                want.append((200, f"p1 item {i} for ann"))
            else:
                reqs += f"GET /item/{i} HTTP/1.1\r\nHost: lab\r\nCookie: SID={other}\r\n\r\n".encode()
                want.append((401, "p1: login required"))
        s = socket.create_connection(("127.0.0.1", pod.port), timeout=10)
        s.sendall(reqs)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while True:                             # until the pod closes
            d = s.recv(65536)
            if not d:
                break
            data += d
        s.close()
        for st, start in want:
            head, data = data.split(b"\r\n\r\n", 1)
            n = int(re.search(rb"Content-Length: (\d+)", head).group(1))
            body, data = data[:n].decode(), data[n:]
            assert int(head.split()[1]) == st and body.startswith(start), (head, body, st, start)
        assert data == b"", data


def sentinel_conf(master_port, down_after_ms):
    return [f"sentinel monitor mymaster 127.0.0.1 {master_port} 2",
            f"sentinel down-after-milliseconds mymaster {down_after_ms}",
            "sentinel failover-timeout mymaster 5000",
            "sentinel parallel-syncs mymaster 1"]


def sentinel_ready(sen):
    try:
        m = sen("SENTINEL", "master", "mymaster")
    except Exception:
        return False
    m = dict(zip(m[::2], m[1::2]))
    return m.get("num-slaves") == "1" and m.get("num-other-sentinels") == "2"


def test_sentinel_failover_followed():
    with Lab() as lab:
        master = lab.redis(name="master")
        replica = lab.redis("--replicaof", "127.0.0.1", str(master.port), name="replica")
        assert wait_for(lambda: "master_link_status:up" in replica("INFO", "replication"), 10)
        sentinels = [lab.sentinel(sentinel_conf(master.port, 1000), name=f"sentinel{i}") for i in range(3)]
        assert wait_for(lambda: all(sentinel_ready(s) for s in sentinels), 30), "sentinels never met"
        pod = lab.pod("p1", "--store", "redis", "--redis-sentinel", ",".join(s.addr for s in sentinels),
                      "--redis-master", "mymaster", "--redis-timeout", "500ms", wait_redis=True)
        sid, _ = pod.login("ann")
        assert pod.get("/item/1", sid)[0] == 200
        assert wait_for(lambda: replica("HGET", "sess:" + sid, "views") == "1", 5)   # replicated
        master.kill()
        t0 = time.time()
        got, secs = measure(lambda: pod.get("/item/2", sid)[0] == 200, 40)
        assert got, pod.logtext()
        assert sentinels[0]("SENTINEL", "get-master-addr-by-name", "mymaster") == ["127.0.0.1",
                                                                                   str(replica.port)]
        st, h, body = pod.get("/item/3", sid)
        assert (st, h["x-session"], body) == (200, ["redis"], "p1 item 3 for ann (views 3)\n"), (st, h, body)
        sid2, _ = pod.login("bob")              # writes go to the new master
        assert replica("HGET", "sess:" + sid2, "user") == "bob"
        log = pod.logtext()
        assert f"up: master 127.0.0.1:{replica.port}" in log, log
        s = pod.stats()
        assert s["redis_up"] and s["redis_connects"] == 2, s
        print(f"pod served again {secs:.2f}s after the master died (down-after 1000 ms); "
              f"+switch-master heard: {'+switch-master' in log}; {time.time() - t0:.1f}s in all")


def test_sentinel_unknown_master_503():
    with Lab() as lab:
        master = lab.redis(name="master")
        sen = lab.sentinel(sentinel_conf(master.port, 5000), name="sentinel")
        pod = lab.pod("p1", "--store", "redis", "--redis-sentinel", sen.addr, "--redis-master", "nosuch")
        assert wait_for(lambda: "does not know master" in pod.logtext(), 5), pod.logtext()
        st, h, body = pod.request("POST", "/login?user=ann")
        assert st == 503 and 'does not know master "nosuch"' in body, (st, body)
        assert not pod.stats()["redis_up"]


def test_bad_options_rejected():
    for args, msg in ((["--store", "disk"], "bad option or value: --store disk"),
                      (["--store", "redis", "--redis-master", "m"], "--redis-master goes with --redis-sentinel"),
                      (["--store", "redis", "--redis-sentinel", "127.0.0.1:1"], "needs --redis-master"),
                      (["--store", "memory", "--redis", "127.0.0.1:1"], "need --store redis"),
                      (["--redis", "nohost"], "bad option or value"),
                      (["--cache-ttl", "soon"], "bad option or value")):
        out = subprocess.run([POD, "--name", "p", "--listen", "127.0.0.1:1"] + args,
                             capture_output=True, text=True, timeout=10)
        assert out.returncode == 2 and msg in out.stderr, (args, out.returncode, out.stderr)


if __name__ == "__main__":
    main(globals())
