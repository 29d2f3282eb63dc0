#!/bin/sh
# The lab's benchmark (not a test): pattern C end to end, tether-load ->
# tether -> tether-pods -> redis-server; docs/lab.md "Benchmark".
# Uses the release build in build-rel/ (TETHER_BUILD=DIR for another).
exec python3 "$(dirname "$0")/lab/bench.py" "$@"
