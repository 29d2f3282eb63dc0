"""The control plane under mistakes and abuse (issue 16): the admin socket's
path, permissions and levels; reloads that change admin or metrics; the
admin and metrics listeners out of descriptors, crowded, or fed slowly;
command-line papercuts."""
import grp
import os
import re
import resource
import signal
import socket
import stat
import subprocess
import tempfile
import time

from harness import valgrind  # noqa: F401 (marker read by meson.build)
from harness import TETHER, Backend, Tether, banner, conf, free_port, main, read_all, wait_for

SRC = os.environ.get("TETHER_SRCDIR", ".")


def admin_at(path, cmd):
    out = subprocess.run([TETHER, "-x", path, cmd], capture_output=True, text=True, timeout=10)
    return out.returncode, out.stdout + out.stderr


def one_backend(global_extra):
    """A tether in front of one backend "a", with global_extra: (t, a)."""
    a = Backend("a")
    return Tether(*conf([("a", a.addr)], global_extra=global_extra)), a


def start_fails(text, tmpdir):
    """Runs tether on text; it must exit non-zero at start.  Its stderr."""
    path = os.path.join(tmpdir, "fail.conf")
    with open(path, "w") as f:
        f.write(text)
    out = subprocess.run([TETHER, "-c", path], capture_output=True, text=True, timeout=20)
    assert out.returncode != 0, out.stderr
    return out.stderr


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def nfds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def http(port, request, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(request)
    data = read_all(s)
    s.close()
    return data


def closed_within(s, seconds, trickle=None):
    """True when the peer closes s within seconds; trickle: bytes sent one
    a second meanwhile (a slow client)."""
    end = time.time() + seconds
    sent = 0
    s.settimeout(0.2)
    while time.time() < end:
        if trickle and sent < len(trickle):
            try:
                s.send(trickle[sent:sent + 1])
                sent += 1
            except OSError:
                return True
        t_next = time.time() + 1
        while time.time() < min(t_next, end):
            try:
                if s.recv(4096) == b"":
                    return True
            except socket.timeout:
                continue
            except OSError:
                return True
    return False


def test_admin_path_not_a_socket_refused():
    a = Backend("a")
    d = tempfile.mkdtemp(prefix="tit-")
    regular = os.path.join(d, "admin.sock")
    with open(regular, "w") as f:
        f.write("precious\n")
    text, _ = conf([("a", a.addr)], global_extra='admin = "%s";' % regular)
    err = start_fails(text, d)
    assert "global.admin %s: the path exists and is not a socket" % regular in err, err
    assert open(regular).read() == "precious\n"


@valgrind
def test_admin_live_socket_kept_stale_replaced():
    a = Backend("a")
    d = tempfile.mkdtemp(prefix="tit-")
    sock = os.path.join(d, "admin.sock")
    extra = 'admin = "%s";' % sock
    t = Tether(*conf([("a", a.addr)], global_extra=extra))
    # a second instance on the same path: refused, and the first keeps it
    err = start_fails(conf([("a", a.addr)], global_extra=extra)[0], d)
    assert "global.admin %s: another process is listening on it" % sock in err, err
    assert admin_at(sock, "show info")[0] == 0
    # the first killed: its socket file is stale, and the next start takes it
    t.proc.kill()
    t.proc.wait()
    assert os.path.exists(sock)
    t2 = Tether(*conf([("a", a.addr)], global_extra=extra))
    assert admin_at(sock, "show info")[0] == 0
    # t2's file replaced by a third instance (t2's removed by hand): t2's
    # exit must leave the third's socket in place
    os.unlink(sock)
    t3 = Tether(*conf([("a", a.addr)], global_extra=extra))
    assert admin_at(sock, "show info")[0] == 0
    t2.stop()
    assert os.path.exists(sock), "a stopping instance removed another's socket"
    assert admin_at(sock, "show info")[0] == 0
    # a socket file removed by hand is made again by a reload
    os.unlink(sock)
    t3.signal(signal.SIGHUP)
    assert wait_for(lambda: "reloaded" in t3.logtext(), 10), t3.logtext()
    assert "reload: admin socket now %s" % sock in t3.logtext(), t3.logtext()
    assert admin_at(sock, "show info")[0] == 0
    t3.stop()
    assert not os.path.exists(sock), "the instance did not remove its own socket"


def test_admin_mode_group_level():
    a, b = Backend("a"), Backend("b")
    old = os.umask(0)       # the socket's mode must not come from the umask
    try:
        text, port = conf([("a", a.addr), ("b", b.addr)], global_extra='admin = "@DIR@/admin.sock";')
        t = Tether(text, port)
        group = grp.getgrgid(os.getgid()).gr_name
        text2, port2 = conf([("a", a.addr), ("b", b.addr)],
                            global_extra='admin = { path = "@DIR@/ro.sock"; mode = "0640"; group = "%s"; '
                                         'level = "user"; };' % group)
        t2 = Tether(text2, port2)
    finally:
        os.umask(old)
    st = os.stat(os.path.join(t.dir, "admin.sock"))
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    ro = os.path.join(t2.dir, "ro.sock")
    st = os.stat(ro)
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_gid == os.getgid(), (oct(st.st_mode), st.st_gid)
    rc, out = admin_at(ro, "show servers")
    assert rc == 0 and "\na 127.0.0.1" in out, out
    rc, out = admin_at(ro, "disable server be a")
    assert rc == 1 and "ERR permission denied (level user; disable needs level operator)" in out, out
    assert t2.state("a") is None            # t2.admin() uses admin.sock: not this one
    assert "a 127.0.0.1:%d UP" % a.port in admin_at(ro, "show servers")[1]
    # level operator, by reload, in place: disable now works, del does not
    t2.write(text2.replace('"user"', '"operator"').replace('"0640"', '"0660"'))
    t2.signal(signal.SIGHUP)
    assert wait_for(lambda: "reloaded" in t2.logtext(), 10), t2.logtext()
    assert "level operator" in t2.logtext(), t2.logtext()
    assert stat.S_IMODE(os.stat(ro).st_mode) == 0o660
    assert admin_at(ro, "disable server be a")[0] == 0
    rc, out = admin_at(ro, "del server be a")
    assert "permission denied (level operator; del needs level admin)" in out, out
    t.stop()
    t2.stop()


@valgrind
def test_reload_rebinds_admin_and_metrics():
    a = Backend("a")
    m1, m2 = free_port(), free_port()
    text, port = conf([("a", a.addr)], global_extra='admin = "@DIR@/one.sock"; metrics = "127.0.0.1:%d";' % m1)
    t = Tether(text, port)
    one, two = os.path.join(t.dir, "one.sock"), os.path.join(t.dir, "two.sock")
    assert b"200 OK" in http(m1, b"GET /metrics HTTP/1.0\r\n\r\n")
    t.write(text.replace("one.sock", "two.sock").replace(str(m1), str(m2)))
    t.signal(signal.SIGHUP)
    assert wait_for(lambda: "reloaded" in t.logtext(), 10), t.logtext()
    log = t.logtext()
    assert "reload: metrics now on 127.0.0.1:%d" % m2 in log and "reload: admin socket now %s" % two in log, log
    assert b"200 OK" in http(m2, b"GET /metrics HTTP/1.0\r\n\r\n")
    try:
        http(m1, b"GET /metrics HTTP/1.0\r\n\r\n", timeout=2)
        assert False, "the old metrics port still answers"
    except ConnectionRefusedError:
        pass
    assert admin_at(two, "show info")[0] == 0
    assert not os.path.exists(one)
    # a change that cannot be applied refuses the reload, naming the setting
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    m3 = busy.getsockname()[1]
    t.write(text.replace("one.sock", "two.sock").replace(str(m1), str(m3)))
    t.signal(signal.SIGHUP)
    assert wait_for(lambda: "reload of" in t.logtext(), 10), t.logtext()
    log = t.logtext()
    assert re.search(r"global\.metrics 127\.0\.0\.1:%d: Address already in use" % m3, log), log
    assert log.count("reloaded") == 1, log
    assert b"200 OK" in http(m2, b"GET /metrics HTTP/1.0\r\n\r\n")
    assert admin_at(two, "show info")[0] == 0
    busy.close()
    t.stop()


def test_control_out_of_fds_pauses():
    """EMFILE on the metrics port: accepting pauses (no spin), and resumes."""
    mport = free_port()
    t, a = one_backend('metrics = "127.0.0.1:%d";' % mport)
    pid = t.proc.pid
    assert b"200 OK" in http(mport, b"GET /metrics HTTP/1.0\r\n\r\n")
    have = nfds(pid)
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (have + 3, hard))
    held = [socket.create_connection(("127.0.0.1", mport)) for _ in range(3)]
    assert wait_for(lambda: nfds(pid) >= have + 3, 5)
    late = socket.create_connection(("127.0.0.1", mport))
    late.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
    assert wait_for(lambda: "pausing its accepts" in t.logtext(), 5), t.logtext()
    c0, t0 = cpu_seconds(pid), time.time()
    time.sleep(1.5)         # measuring a rate over a window, not waiting for a condition
    used = (cpu_seconds(pid) - c0) / (time.time() - t0)
    assert used < 0.3, "%.0f%% CPU while out of descriptors" % (used * 100)
    for s in held:
        s.close()
    late.settimeout(10)
    data = read_all(late)
    assert data.startswith(b"HTTP/1.1 200 OK"), data[:200]
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
    t.stop()


@valgrind
def test_control_clients_capped():
    t, a = one_backend('admin = "@DIR@/admin.sock";')
    pid, sock = t.proc.pid, os.path.join(t.dir, "admin.sock")
    have = nfds(pid)
    clients = []
    for _ in range(100):
        s = socket.socket(socket.AF_UNIX)
        s.connect(sock)
        clients.append(s)
    assert wait_for(lambda: nfds(pid) >= have + 64, 5)
    time.sleep(0.3)         # the rest are queued, not accepted: give it a chance to misbehave
    assert nfds(pid) <= have + 64, nfds(pid) - have
    clients[-1].sendall(b"show info\n")
    for s in clients[:-1]:
        s.close()
    clients[-1].settimeout(10)
    assert b"\nOK\n" in clients[-1].recv(65536)
    clients[-1].close()
    assert wait_for(lambda: nfds(pid) <= have, 10)
    t.stop()


def test_control_slow_request_bounded():
    """One byte a second holds neither a metrics nor an admin client."""
    mport = free_port()
    t, a = one_backend('admin = "@DIR@/admin.sock"; metrics = "127.0.0.1:%d";' % mport)
    m = socket.create_connection(("127.0.0.1", mport))
    assert closed_within(m, 9, trickle=b"GET /metrics HTTP/1.1\r\nHost: x\r\n"), "metrics client kept"
    s = socket.socket(socket.AF_UNIX)
    s.connect(os.path.join(t.dir, "admin.sock"))
    assert closed_within(s, 9, trickle=b"show servers and more words"), "admin client kept"
    t.stop()


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def test_admin_client_never_reading_bounded():
    """A client that sends commands and never reads their answers: tether
    stops reading it once an answer waits, so its buffer does not grow."""
    t, a = one_backend('admin = "@DIR@/admin.sock";')
    pid = t.proc.pid
    before = rss_kb(pid)
    s = socket.socket(socket.AF_UNIX)
    s.connect(os.path.join(t.dir, "admin.sock"))
    s.setblocking(False)
    sent, chunk = 0, b"show info\n" * 1000
    end = time.time() + 3
    while time.time() < end:
        try:
            sent += s.send(chunk)
        except BlockingIOError:
            time.sleep(0.01)
        except OSError:
            break
    grew = rss_kb(pid) - before
    assert sent < 8 << 20, "tether read %d bytes of commands whose answers nobody read" % sent
    assert grew < 32 << 10, "RSS grew %d kB" % grew
    s.close()
    t.stop()


@valgrind
def test_admin_quit_closes_at_once():
    t, a = one_backend('admin = "@DIR@/admin.sock";')
    pid = t.proc.pid
    have = nfds(pid)
    for _ in range(20):
        s = socket.socket(socket.AF_UNIX)
        s.connect(os.path.join(t.dir, "admin.sock"))
        s.sendall(b"quit\n")
        s.settimeout(5)
        assert s.recv(100) == b""
        s.close()
    assert wait_for(lambda: nfds(pid) <= have, 5), nfds(pid) - have
    t.stop()


def test_metrics_methods():
    mport = free_port()
    t, a = one_backend('metrics = "127.0.0.1:%d";' % mport)
    r = http(mport, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    assert r.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n") and b"\r\nAllow: GET, HEAD\r\n" in r, r
    get = http(mport, b"GET /stats HTTP/1.0\r\n\r\n")
    head = http(mport, b"HEAD /stats HTTP/1.0\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n"), head
    assert re.search(rb"Content-Length: [1-9]", head), head
    assert len(get) > len(head)
    assert http(mport, b"GET /nope HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 404")
    assert http(mport, b"HEAD /nope HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 404")
    t.stop()


def test_cli_papercuts():
    out = subprocess.run([TETHER, "-c"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 2 and "option -c needs an argument" in out.stderr, out.stderr
    out = subprocess.run([TETHER, "-x", "/nonexistent.sock"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 2 and "option -x needs" in out.stderr, out.stderr
    t, a = one_backend('admin = "@DIR@/admin.sock";')
    sock = os.path.join(t.dir, "admin.sock")
    words = subprocess.run([TETHER, "-x", sock, "show", "servers"], capture_output=True, text=True, timeout=10)
    quoted = subprocess.run([TETHER, "-x", sock, "show servers"], capture_output=True, text=True, timeout=10)
    assert words.returncode == 0 and words.stdout == quoted.stdout, (words.stdout, quoted.stdout)
    assert banner(t.port) == "a"
    t.stop()


def test_nofile_warning():
    a = Backend("a")
    text, port = conf([("a", a.addr)], global_extra="maxconn = 20000;")
    d = tempfile.mkdtemp(prefix="tit-")
    path, log = os.path.join(d, "t.conf"), os.path.join(d, "log")
    with open(path, "w") as f:
        f.write(text)
    with open(log, "w") as lf:
        p = subprocess.Popen([TETHER, "-c", path], stdout=lf, stderr=lf,
                             preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (512, 512)))
        try:
            assert wait_for(lambda: " started: " in open(log).read(), 20), open(log).read()
            text = open(log).read()
            assert "warning: 20000 client connections (global.maxconn 20000) need about 4" in text, text
            assert "RLIMIT_NOFILE is 512" in text, text
        finally:
            p.terminate()
            p.wait(30)


def test_service_admin_outside_private_tmp():
    """conf/tether.service hides /tmp (PrivateTmp): the configuration it
    installs must put the admin socket where `tether -x` can reach it."""
    unit = open(os.path.join(SRC, "conf/tether.service")).read()
    assert "RuntimeDirectory=tether" in unit
    m = re.search(r"sed '(s\|[^|]*\|[^|]*\|)' conf/tether.conf > /etc/tether/tether.conf", unit)
    assert m, "the unit's install line does not say how to install the configuration"
    pat, rep = m.group(1).split("|")[1:3]
    installed = open(os.path.join(SRC, "conf/tether.conf")).read().replace(pat, rep)
    admin = re.search(r'admin = "([^"]+)"', installed).group(1)
    if "PrivateTmp=yes" in unit:
        assert not admin.startswith("/tmp/"), admin
    assert admin.startswith("/run/tether/"), admin


if __name__ == "__main__":
    main(globals())
