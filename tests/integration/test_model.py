"""Model-based test of tether's object lifetimes across reloads.

A seeded random sequence of operations runs against the real daemon:
open a keep-alive connection, close one (or several in one batch), reload
with a changed configuration (servers added/removed, backend renamed,
algorithm changed), runtime-API add/drain/disable/enable/del server, and
health changes (a backend stops or resumes listening).  A model tracks which
configuration generation each open connection was accepted in, and after
every step checks what tether reports against it:

  active_connections == connections the model has open
  generations        == 1 + number of retired generations that still have
                        an open connection in the model

so a generation kept too long (a leaked reference) or freed too early (a
double put, which also crashes under ASan/valgrind) fails the test.  At the
end every connection closes, `generations` must be 1, and the sanitizer or
valgrind run checks that everything was freed exactly once.

    TETHER_MODEL_SECONDS=300 TETHER_MODEL_SEED=7 python3 test_model.py reload_model
"""
import os
import random
import signal
import socket
import time

from harness import valgrind  # noqa: F401 (marker read by meson.build)
from harness import VALGRIND, Backend, Tether, free_port, main, read_http, wait_for

SECONDS = float(os.environ.get("TETHER_MODEL_SECONDS", "30"))
BALANCES = ("roundrobin", "leastconn", "iphash", "cookie")


def config(servers, backend, balance, port):
    lines = ", ".join('{ name = "%s"; address = "%s"; }' % (b.name, b.addr) for b in servers)
    return (f'global = {{ log = "stderr"; admin = "@DIR@/admin.sock"; drain_timeout = "5s"; }};\n'
            f'frontends = ( {{ name = "fe"; bind = [ "127.0.0.1:{port}" ]; backend = "{backend}"; }} );\n'
            f'backends = ( {{ name = "{backend}"; balance = "{balance}"; retries = 3;\n'
            f'  health = {{ type = "tcp"; interval = "100ms"; timeout = "100ms"; rise = 1; fall = 1; }};\n'
            f'  servers = ( {lines} ); }} );\n')


class Model:
    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.backends = [Backend("s%d" % i, mode="http") for i in range(1, 6)]
        self.listening = {b.name: True for b in self.backends}
        self.port = free_port()
        self.gen = 0                    # the running generation, as the model counts them
        self.conns = []                 # (socket, generation)
        self.backend_name = "be"
        self.servers = self.backends[:3]
        self.balance = "roundrobin"
        self.added = set()              # servers added through the runtime API
        self.t = Tether(config(self.servers, self.backend_name, self.balance, self.port), self.port)
        self.log = []

    # --- what tether says ---
    def info(self):
        rc, out = self.t.admin("show info")
        assert rc == 0, (rc, out, self.t.logtext()[-3000:])
        return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)

    def check(self):
        want_active = len(self.conns)
        want_gens = 1 + len({g for _, g in self.conns if g != self.gen})
        ok = wait_for(lambda: (lambda i: int(i["active_connections"]) == want_active and
                               int(i["generations"]) == want_gens)(self.info()), 10, step=0.02)
        assert ok, ("model: active %d generations %d; tether: %s; last steps: %s"
                    % (want_active, want_gens, self.info(), self.log[-12:]))

    # --- operations ---
    def request(self, s):
        s.sendall(b"GET / HTTP/1.1\r\nHost: m\r\n\r\n")
        status, _, _, _ = read_http(s)
        assert status == 200, status

    def op_open(self):
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        except OSError as e:
            raise AssertionError("connect to tether failed: %s" % e)
        try:
            self.request(s)         # answered: accepted and proxied in the running generation
        except (OSError, AssertionError):
            s.close()               # no usable server at this moment (health churn): not open
            wait_for(lambda: int(self.info()["active_connections"]) == len(self.conns), 5, step=0.02)
            return
        self.conns.append((s, self.gen))

    def op_close(self):
        if not self.conns:
            return
        n = self.rng.randint(1, max(1, len(self.conns) // 2))
        victims = self.rng.sample(self.conns, n)
        for s, _ in victims:            # FINs in one batch
            s.shutdown(socket.SHUT_WR)
        for v in victims:
            v[0].close()
            self.conns.remove(v)

    def op_use(self):
        """A request on some old connections: they must still be served."""
        for s, _ in self.rng.sample(self.conns, min(5, len(self.conns))):
            self.request(s)

    def op_reload(self):
        k = self.rng.randint(1, len(self.backends))
        self.servers = self.rng.sample(self.backends, k)
        if self.rng.random() < 0.2:
            self.backend_name = "be%d" % self.rng.randint(0, 3)
        if self.rng.random() < 0.3:
            self.balance = self.rng.choice(BALANCES)
        self.added.clear()
        self.t.write(config(self.servers, self.backend_name, self.balance, self.port))
        before = self.t.logtext().count("reloaded ")
        self.t.signal(signal.SIGHUP)
        assert wait_for(lambda: self.t.logtext().count("reloaded ") == before + 1, 10), self.t.logtext()[-2000:]
        self.gen += 1

    def op_admin(self):
        b = self.rng.choice(self.backends)
        verb = self.rng.choice(("add", "drain", "disable", "enable", "del", "weight"))
        if verb == "add":
            cmd = "add server %s %s %s" % (self.backend_name, b.name, b.addr)
        elif verb == "weight":
            cmd = "set weight %s %s %d" % (self.backend_name, b.name, self.rng.randint(0, 4))
        else:
            cmd = "%s server %s %s" % (verb, self.backend_name, b.name)
        rc, out = self.t.admin(cmd)
        assert rc in (0, 1), (cmd, rc, out)     # OK or a clean ERR, never a dead socket

    def op_health(self):
        b = self.rng.choice(self.backends)
        if self.listening[b.name]:
            if sum(self.listening.values()) > 2:
                b.stop_listening()
                self.listening[b.name] = False
        else:
            b.start()
            self.listening[b.name] = True

    def step(self):
        ops = [(self.op_open, 30), (self.op_close, 18), (self.op_use, 10), (self.op_reload, 12),
               (self.op_admin, 18), (self.op_health, 6)]
        op = self.rng.choices([o for o, _ in ops], [w for _, w in ops])[0]
        self.log.append(op.__name__)
        op()
        self.check()

    def finish(self):
        for s, _ in self.conns:
            s.shutdown(socket.SHUT_WR)
        for s, _ in self.conns:
            s.close()
        self.conns = []
        self.check()
        assert self.info()["generations"] == "1"
        self.t.stop()


@valgrind
def test_reload_model():
    seed = int(os.environ.get("TETHER_MODEL_SEED", str(int(time.time()) % 100000)))
    print("seed", seed, "(TETHER_MODEL_SEED=%d reproduces it)" % seed, flush=True)
    m = Model(seed)
    end = time.time() + SECONDS / (3 if VALGRIND else 1)
    steps = 0
    try:
        while time.time() < end:
            m.step()
            steps += 1
    except BaseException:
        print("seed %d failed after %d steps: %s" % (seed, steps, m.log[-20:]), flush=True)
        raise
    m.finish()
    print("%d steps, %d generations" % (steps, m.gen + 1))


if __name__ == "__main__":
    main(globals())
