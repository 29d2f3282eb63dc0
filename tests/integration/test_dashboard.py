"""The dashboard in a real browser: headless Chromium (Debian's chromium,
installed by scripts/install-deps.sh test) loads / of the metrics port,
the page polls /stats, and the DOM it built must show every server with
its state; a screenshot is taken; after `disable server` through the
runtime API the page shows the server in maintenance."""
import os
import re
import shutil
import struct
import subprocess
import tempfile
import urllib.request

from harness import Backend, Tether, banner, conf, free_port, main, wait_for

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         "--window-size=1600,1000"]


def chromium(url, *extra):
    """One headless run with a fresh profile; its stdout.  Virtual time lets
    the page's timers run (a few polls of /stats) and waits for its fetches,
    so the DOM dumped is the one the data built."""
    assert CHROMIUM, "chromium is not installed: scripts/install-deps.sh test installs it"
    profile = tempfile.mkdtemp(prefix="tchrome-")
    try:
        out = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=4000", *extra,
                              url], capture_output=True, text=True, timeout=90)
        return out.stdout
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def rows(dom):
    """{"backend/server": state} of the rendered server rows."""
    return dict(re.findall(r'<tr data-server="([^"]+)" data-state="([A-Z]+)"', dom))


def dump_until(url, pred, tries=5):
    """The DOM once pred(dom) holds (a slow machine may need a second run)."""
    dom = ""
    for _ in range(tries):
        dom = chromium(url, "--dump-dom")
        if pred(dom):
            return dom
    raise AssertionError("the page never showed the expected data:\n" + dom[-3000:])


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", head
    return struct.unpack(">II", head[16:24])


def test_dashboard_in_chromium():
    a, b, c = Backend("a"), Backend("b"), Backend("c")
    c.stop()                                        # c is DOWN by its checks
    mport = free_port()
    hc = 'health = { type = "tcp"; interval = "200ms"; timeout = "200ms"; rise = 1; fall = 1; };'
    t = Tether(*conf([("a", a.addr), ("b", b.addr), ("c", c.addr)], backend_extra=hc,
                     global_extra=f'admin = "@DIR@/admin.sock"; metrics = "127.0.0.1:{mport}";'))
    assert wait_for(lambda: t.state("c") == "DOWN", 5)
    for _ in range(20):
        assert banner(t.port) in ("a", "b")
    url = f"http://127.0.0.1:{mport}/"
    page = urllib.request.urlopen(url, timeout=5)
    assert page.headers["Content-Type"].startswith("text/html")
    html = page.read().decode()
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="(https?:)?//', html), "an external asset"

    want = {"be/a": "UP", "be/b": "UP", "be/c": "DOWN"}
    dom = dump_until(url, lambda d: 'data-ready="1"' in d and rows(d) == want)
    assert re.search(r'data-polls="([2-9]|\d\d+)"', dom), "the page did not poll again"
    assert '<tr data-frontend="fe">' in dom and '<tr data-worker="0">' in dom, dom[-3000:]
    assert re.search(r"<td[^>]*>fe</td><td[^>]*>be</td>", dom), dom[-3000:]

    shot = os.path.join(t.dir, "dashboard.png")
    chromium(url, f"--screenshot={shot}")
    assert os.path.exists(shot), "no screenshot"
    assert png_size(shot) == (1600, 1000) and os.path.getsize(shot) > 20000, (png_size(shot), os.path.getsize(shot))
    if os.environ.get("TETHER_SCREENSHOT"):         # to refresh docs/img/dashboard.png
        shutil.copy(shot, os.environ["TETHER_SCREENSHOT"])

    rc, out = t.admin("disable server be b")
    assert rc == 0, out
    want["be/b"] = "MAINT"
    dump_until(url, lambda d: rows(d) == want)
    t.stop()


if __name__ == "__main__":
    main(globals())
