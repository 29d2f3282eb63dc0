#!/bin/sh
# The live lab: a tether-sim scenario run for real, then side by side with
# tether-sim (docs/lab.md).  scripts/lab.sh --help for the options.
exec python3 "$(dirname "$0")/lab/lab.py" "$@"
