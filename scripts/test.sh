#!/usr/bin/env bash
# Set up (first run only) and run the whole test suite, on 2 pytest workers by
# default (most tests are compile-bound, single-threaded work). Extra arguments go
# to pytest, e.g. scripts/test.sh -n 0 -x.
set -euo pipefail
source "$(dirname -- "${BASH_SOURCE[0]}")/env.sh"
cd "$RESEARCH_ROOT"
# Many tests (and the entry points they start as subprocesses) compile the same tiny
# programs: share JAX's compilation cache within this run, in a fresh directory so
# no run depends on an earlier one.
cache="$(mktemp -d "${TMPDIR:-/tmp}/research-jit-cache.XXXXXX")"
trap 'rm -rf "$cache"' EXIT
export JAX_COMPILATION_CACHE_DIR="$cache"
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0
export JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=-1
# The test programs are tiny, so compiling them costs more than running them: XLA:CPU
# compiles with LLVM's cheap settings here (four model test files: 91 s -> 64 s on 2
# cores). Experiments and benchmarks keep the full optimisation.
export XLA_FLAGS="--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true${XLA_FLAGS:+ $XLA_FLAGS}"
python -m pytest tests -n "${PYTEST_WORKERS:-2}" --dist loadgroup "$@"
