#!/usr/bin/env bash
# Set up (first run only) and run the whole test suite, on 2 pytest workers by
# default (most tests are compile-bound, single-threaded work: 8 min instead of
# 12.5 on 2 cores). Extra arguments go to pytest, e.g. scripts/test.sh -n 0 -x.
set -euo pipefail
source "$(dirname -- "${BASH_SOURCE[0]}")/env.sh"
cd "$RESEARCH_ROOT"
exec python -m pytest tests -n "${PYTEST_WORKERS:-2}" "$@"
