"""docs/promises.md stays honest: every test it names exists, every row
names a test or says "not yet tested", and the count of untested promises
is printed.  Usage: promises_check.py SRCDIR"""
import os
import re
import sys

src = sys.argv[1] if len(sys.argv) > 1 else "."
doc = open(os.path.join(src, "docs", "promises.md")).read()
REF = re.compile(r"(tests/[\w/.-]+\.(?:py|c|sh))(?:::([\w]+))?")
errors, rows, untested = [], 0, 0
cache = {}


def defined(path, name):
    if path not in cache:
        full = os.path.join(src, path)
        cache[path] = open(full).read() if os.path.exists(full) else None
    text = cache[path]
    if text is None:
        return False
    if name is None:
        return True
    if path.endswith(".py"):
        return re.search(r"^def test_%s\(" % re.escape(name), text, re.M) is not None
    # C: a cmocka case that is registered, not only written
    return re.search(r"cmocka_unit_test\w*\(test_%s\b" % re.escape(name), text) is not None


for line in doc.splitlines():
    if not line.startswith("| ") or line.startswith("| promise") or line.startswith("|---"):
        continue
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) < 2:
        errors.append("a row without a test column: " + line)
        continue
    rows += 1
    held = cells[-1]
    refs = REF.findall(held)
    if "not yet tested" in held:
        untested += 1
    elif not refs and not held.startswith("the build"):
        errors.append("a row names no test and does not say \"not yet tested\": " + line)
    for path, name in refs:
        if path.endswith((".py", ".c")) and not name and "not yet tested" not in held:
            errors.append(f"{path}: name the test (FILE::NAME): {line}")
        elif not defined(path, name or None):
            errors.append(f"{path}::{name}: no such test")

for e in errors:
    print("promises.md:", e)
print(f"{rows} promises, {untested} marked not yet tested, {len(errors)} errors")
sys.exit(1 if errors else 0)
