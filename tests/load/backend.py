"""A counting HTTP backend for tether-load's tests (python3 stdlib only).

It speaks tether-pod's session contract (DESIGN.md "The lab", issue 11):
  GET /login?user=U          200, Set-Cookie SID=..., X-Session: new
  GET /item/N                200 X-Session: local with a known SID, else 401 X-Session: miss
  POST /cart/add?item=N      the same
and every answer carries X-Pod: NAME.  It counts what it saw - requests,
logins, pages, 401s, the peers' addresses, each request's arrival time and
each user's sequence of events - so a test can hold tether-load's counts
against the server's own.

Knobs: `miss_every` answers every k-th page view with 401 and forgets the
session (a forced re-login); `delay` answers after that many seconds;
`tetherid` also sets a TETHERID cookie at login, as the balancer would, and
counts page views that do not send it back; `mode="sink"` never answers.

The integration harness's asyncio loop serves every backend of a test.
"""
import asyncio
import collections
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import Loop, free_port     # noqa: E402  (one asyncio loop on a daemon thread)


class _Conn(asyncio.Protocol):
    def __init__(self, backend):
        self.b = backend
        self.buf = b""
        self.transport = None

    def connection_made(self, transport):
        if self.b.stopped:
            transport.abort()
            return
        self.transport = transport
        self.b.conns.add(transport)
        self.b.connections += 1
        self.b.peers.add(transport.get_extra_info("peername")[0])

    def connection_lost(self, exc):
        self.b.conns.discard(self.transport)

    def data_received(self, data):
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            head, rest = self.buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            hdrs = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                hdrs[k.strip().lower()] = v.strip()
            n = int(hdrs.get("content-length", "0"))
            if len(rest) < n:
                return
            self.buf = rest[n:]
            self.b.handle(self, lines[0], hdrs)


class Backend:
    def __init__(self, name="pod1", miss_every=0, delay=0.0, tetherid=False, mode="http"):
        self.name, self.miss_every, self.delay = name, miss_every, delay
        self.tetherid, self.mode = tetherid, mode
        self.port = free_port()
        self.stopped = False
        self.conns = set()
        self.lock = threading.Lock()
        self.requests = self.logins = self.pages = self.misses = self.carts = 0
        self.connections = 0
        self.no_tetherid = 0
        self.peers = set()
        self.times = []                 # monotonic arrival time of each request
        self.users = set()              # user names that logged in
        self.events = collections.defaultdict(list)   # user -> ["login", "page", "401", ...]
        self.sessions = {}              # SID -> user
        self.next_sid = 1

        async def go():
            loop = asyncio.get_running_loop()
            self.server = await loop.create_server(lambda: _Conn(self), "127.0.0.1", self.port,
                                                   reuse_address=True, backlog=4096)
        Loop.get().call(go())

    @property
    def target(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        """Stops listening and resets every open connection: a dead backend."""
        async def go():
            self.stopped = True
            self.server.close()
            for t in list(self.conns):
                t.abort()
        Loop.get().call(go())

    def handle(self, conn, request_line, hdrs):
        with self.lock:
            self.requests += 1
            self.times.append(time.monotonic())
        if self.mode == "sink":
            return
        method, target, _ = request_line.split(" ", 2)
        status, extra = self._route(method, target, hdrs)
        body = f"{self.name}\n".encode()
        resp = (f"HTTP/1.1 {status} {'OK' if status == 200 else 'Unauthorized'}\r\nX-Pod: {self.name}\r\n"
                f"{extra}Content-Length: {len(body)}\r\n\r\n").encode() + body
        if self.delay:
            asyncio.get_running_loop().call_later(self.delay, self._write, conn, resp)
        else:
            self._write(conn, resp)

    @staticmethod
    def _write(conn, resp):
        if conn.transport and not conn.transport.is_closing():
            conn.transport.write(resp)

    def _cookie(self, hdrs, name):
        for part in hdrs.get("cookie", "").split(";"):
            k, _, v = part.strip().partition("=")
            if k == name:
                return v
        return None

    def _route(self, method, target, hdrs):
        with self.lock:
            if target.startswith("/login?user="):
                user = target[len("/login?user="):]
                sid = "%s.%x" % (self.name, self.next_sid)      # unique across backends
                self.next_sid += 1
                self.sessions[sid] = user
                self.logins += 1
                self.users.add(user)
                self.events[user].append("login")
                extra = f"Set-Cookie: SID={sid}; Path=/; HttpOnly\r\nX-Session: new\r\n"
                if self.tetherid:
                    extra += "Set-Cookie: TETHERID=feedfacecafebeef; Path=/\r\n"
                return 200, extra
            self.pages += 1
            if self.tetherid and self._cookie(hdrs, "TETHERID") != "feedfacecafebeef":
                self.no_tetherid += 1
            sid = self._cookie(hdrs, "SID")
            user = self.sessions.get(sid)
            if user is not None and self.miss_every and self.pages % self.miss_every == 0:
                del self.sessions[sid]
                user_missed = user
                user = None
            else:
                user_missed = None
            if user is None:
                self.misses += 1
                if user_missed:
                    self.events[user_missed].append("401")
                return 401, "X-Session: miss\r\n"
            self.events[user].append("page")
            self.carts += method == "POST"     # cart additions answered 200
            return 200, "X-Session: local\r\n"
