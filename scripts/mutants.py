#!/usr/bin/env python3
"""Mutation testing: does the test suite notice a small, realistic bug?

Reads the catalogue (scripts/mutants.txt: one mutant = a file, an exact
original snippet, its replacement and the tests that should catch it),
copies the repository's tracked files to a work directory once, and for
each mutant in turn: applies it, rebuilds incrementally (one build
directory, reused across mutants and across runs), runs the listed tests
with a timeout, and restores the file.  A mutant is

  killed       a listed test failed (or timed out),
  survived     every listed test passed: a bug the tests would let through,
  build-error  the mutant did not compile (counted apart from the score),
  stale        the snippet is no longer in the file exactly once (the code
               moved on: fix the catalogue entry; counted as a failure of
               the script, not of the tests).

Score = killed / (killed + survived).  Exit status 0 when the score is at
least --min-score (default 90) and no entry is stale.

  scripts/mutants.py                 every mutant
  scripts/mutants.py --list          the catalogue, one line each
  scripts/mutants.py --only ID ...   some mutants (IDs or prefixes: --only lb-)
  scripts/mutants.py -j 2            two mutants at a time (two copies)

Slow (a rebuild and a few tests per mutant), so not part of scripts/test.sh.
The work directory (default $TMPDIR/tether-mutants) keeps its build between
runs; --fresh recopies the tree.  See docs/testing.md.
"""
import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Mutant:
    def __init__(self, mid, title, lineno):
        self.id, self.title, self.lineno = mid, title, lineno
        self.file = None
        self.tests = []
        self.orig = []
        self.repl = []

    def pattern(self):
        """The original snippet as a regex: runs of whitespace match any
        whitespace (tabs or spaces, line breaks), the rest literally."""
        text = "\n".join(self.orig).strip()
        return re.compile(r"\s+".join(re.escape(tok) for tok in text.split()))

    def replacement(self):
        return "\n".join(self.repl).strip()


def parse(path):
    """The catalogue format (see the head of mutants.txt):
         [ID] title
         file: src/lb/roundrobin.c
         tests: lb_algos test_core_x suite:sim
         - original line
         	further original lines, indented
         + replacement line
         	further replacement lines (no '+' at all: the snippet is deleted)
    '#' lines and blank lines between entries are comments."""
    mutants, cur, last = [], None, None
    with open(path) as f:
        for n, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            m = re.match(r"^\[([A-Za-z0-9._-]+)\]\s*(.*)$", line)
            if m:
                cur = Mutant(m.group(1), m.group(2), n)
                mutants.append(cur)
                continue
            if not line.strip() or line.startswith("#"):
                continue
            if cur is None:
                raise SystemExit(f"{path}:{n}: text before the first [ID]")
            if line.startswith("file:"):
                cur.file = line[5:].strip()
            elif line.startswith("tests:"):
                cur.tests = line[6:].split()
            elif line.startswith("-"):
                cur.orig.append(line[1:])
                last = cur.orig
            elif line.startswith("+"):
                cur.repl.append(line[1:])
                last = cur.repl
            elif line[0] in " \t" and (cur.orig or cur.repl):
                last.append(line)      # a further line of the snippet above
            else:
                raise SystemExit(f"{path}:{n}: want file:, tests:, '- ' or '+ ' lines")
    ids = set()
    for m in mutants:
        if not m.file or not m.tests or not m.orig:
            raise SystemExit(f"{path}:{m.lineno}: [{m.id}] needs file:, tests: and a '-' line")
        if m.id in ids:
            raise SystemExit(f"{path}:{m.lineno}: two mutants called {m.id}")
        ids.add(m.id)
    return mutants


def run(cmd, cwd, timeout, log):
    """Runs cmd; returns its exit status, or None on timeout."""
    try:
        p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout, start_new_session=True)
        log.write(p.stdout.decode(errors="replace"))
        return p.returncode
    except subprocess.TimeoutExpired as e:
        log.write((e.stdout or b"").decode(errors="replace") + "\n*** timed out\n")
        return None


class Slot:
    """One copy of the tree and its build directory."""

    def __init__(self, root, fresh, setup_args):
        self.root = root
        self.tree = os.path.join(root, "tree")
        self.build = os.path.join(root, "build")
        if fresh and os.path.exists(root):
            shutil.rmtree(root)
        os.makedirs(root, exist_ok=True)
        added = self.sync()
        if not os.path.exists(os.path.join(self.build, "build.ninja")):
            subprocess.run(["meson", "setup", self.build, self.tree] + setup_args, check=True,
                           stdout=subprocess.DEVNULL)
        elif added:     # a new file (a test file is found by a glob): configure again
            subprocess.run(["meson", "setup", "--reconfigure", self.build, self.tree], check=True,
                           stdout=subprocess.DEVNULL)

    def sync(self):
        """Copies the repository's files (tracked and not ignored) that
        differ; true when one of them is new to the tree."""
        added = False
        files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                               cwd=TOP, stdout=subprocess.PIPE, check=True).stdout.split(b"\0")
        for rel in files:
            rel = rel.decode()
            src = os.path.join(TOP, rel)
            if not rel or not os.path.isfile(src):
                continue
            dst = os.path.join(self.tree, rel)
            with open(src, "rb") as f:
                data = f.read()
            try:
                with open(dst, "rb") as f:
                    if f.read() == data:
                        continue
            except OSError:
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                added = True
            with open(dst, "wb") as f:
                f.write(data)
            shutil.copymode(src, dst)
        return added

    def ninja(self, log, timeout):
        return run(["nice", "ninja", "-C", self.build], self.tree, timeout, log)

    def known_tests(self):
        out = subprocess.run(["meson", "test", "-C", self.build, "--no-rebuild", "--list"], cwd=self.tree,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
        # lines are "project:suite+suite / name" (or just the name)
        return {line.split(" / ")[-1].strip() for line in out.splitlines() if line.strip()}

    def test(self, m, log, timeout, mult):
        names = [t for t in m.tests if not t.startswith("suite:")]
        suites = [a for t in m.tests if t.startswith("suite:") for a in ("--suite", t[6:])]
        cmd = ["meson", "test", "-C", self.build, "--no-rebuild", "--print-errorlogs", "--maxfail", "1",
               "--num-processes", "1", "--timeout-multiplier", str(mult)] + suites + names
        return run(cmd, self.tree, timeout, log)

    def mutate(self, m, logdir, args):
        path = os.path.join(self.tree, m.file)
        with open(path) as f:
            orig = f.read()
        hits = list(m.pattern().finditer(orig))
        if len(hits) != 1:
            return "stale", f"snippet found {len(hits)} times"
        h = hits[0]
        if args.check:
            return "ok", ""
        logpath = os.path.join(logdir, m.id + ".log")
        with open(logpath, "w") as log:
            log.write(f"[{m.id}] {m.title}\n{m.file}\n--- {h.group(0)}\n+++ {m.replacement()}\n\n")
            log.flush()
            with open(path, "w") as f:
                f.write(orig[:h.start()] + m.replacement() + orig[h.end():])
            try:
                rc = self.ninja(log, args.build_timeout)
                if rc != 0:
                    return "build-error", logpath
                if not m.tests:
                    log.write("no listed test exists\n")
                    return "survived", logpath
                rc = self.test(m, log, args.test_timeout, args.timeout_multiplier)
                return ("survived" if rc == 0 else "killed"), logpath
            finally:
                with open(path, "w") as f:
                    f.write(orig)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--catalogue", default=os.path.join(TOP, "scripts", "mutants.txt"))
    ap.add_argument("--workdir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "tether-mutants"))
    ap.add_argument("--only", nargs="+", metavar="ID", help="mutant IDs or ID prefixes")
    ap.add_argument("--list", action="store_true", help="list the catalogue and exit")
    ap.add_argument("-j", type=int, default=1, help="mutants at a time (a tree and build per job)")
    ap.add_argument("--check", action="store_true", help="only check that every snippet is found once")
    ap.add_argument("--fresh", action="store_true", help="recopy the tree and rebuild from scratch")
    ap.add_argument("--test-timeout", type=float, default=900, help="seconds for one mutant's tests")
    ap.add_argument("--build-timeout", type=float, default=900)
    ap.add_argument("--timeout-multiplier", type=float, default=1.0, help="meson test's, per test")
    ap.add_argument("--min-score", type=float, default=90.0)
    args = ap.parse_args()

    mutants = parse(args.catalogue)
    if args.only:
        mutants = [m for m in mutants if any(m.id == o or m.id.startswith(o) for o in args.only)]
        if not mutants:
            raise SystemExit("no mutant matches " + " ".join(args.only))
    if args.list:
        for m in mutants:
            print(f"{m.id:28} {m.file:34} {m.title}")
        print(f"{len(mutants)} mutants")
        return 0

    setup = ["--buildtype=debugoptimized", "-Dwerror=false"]
    slots = [Slot(os.path.join(args.workdir, f"slot{i}" if i else ""), args.fresh, setup)
             for i in range(max(1, args.j))]
    logdir = os.path.join(args.workdir, "logs")
    os.makedirs(logdir, exist_ok=True)
    t0 = time.time()
    if args.check:
        bad = 0
        for m in mutants:
            verdict, detail = slots[0].mutate(m, logdir, args)
            if verdict != "ok":
                bad += 1
                print(f"{verdict:11} {m.id:28} {detail}")
        print(f"{len(mutants) - bad} of {len(mutants)} snippets found exactly once")
        return 1 if bad else 0
    for s in slots:             # the unmutated tree must build first
        with open(os.path.join(logdir, "baseline-build.log"), "w") as log:
            if s.ninja(log, args.build_timeout) != 0:
                raise SystemExit("the unmutated tree does not build: see " + log.name)
    known = slots[0].known_tests()
    missing = sorted({t for m in mutants for t in m.tests if not t.startswith("suite:") and t not in known})
    if missing:     # a test not (yet) in the tree catches nothing
        print("warning: no such test: " + " ".join(missing), flush=True)
        for m in mutants:
            m.tests = [t for t in m.tests if t.startswith("suite:") or t in known]
    print(f"{len(mutants)} mutants, work directory {args.workdir}", flush=True)

    results = {}
    free = list(slots)

    def one(m):
        slot = free.pop()
        try:
            start = time.time()
            verdict, detail = slot.mutate(m, logdir, args)
            return m, verdict, detail, time.time() - start
        finally:
            free.append(slot)

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(slots)) as ex:
        for m, verdict, detail, secs in ex.map(one, mutants):
            results[m.id] = verdict
            print(f"{verdict:11} {m.id:28} {secs:6.0f}s  {m.title}" +
                  (f"  ({detail})" if verdict in ("survived", "stale", "build-error") else ""), flush=True)

    killed = sum(v == "killed" for v in results.values())
    survived = [k for k, v in results.items() if v == "survived"]
    stale = [k for k, v in results.items() if v == "stale"]
    broken = [k for k, v in results.items() if v == "build-error"]
    scored = killed + len(survived)
    score = 100.0 * killed / scored if scored else 0.0
    print(f"\nkilled {killed}, survived {len(survived)}, build errors {len(broken)}, stale {len(stale)}; "
          f"score {score:.1f} % ({killed}/{scored}) in {(time.time() - t0) / 60:.0f} min")
    if survived:
        print("survivors: " + " ".join(survived))
    if stale:
        print("stale catalogue entries: " + " ".join(stale))
    return 0 if score >= args.min_score and not stale else 1


if __name__ == "__main__":
    sys.exit(main())
