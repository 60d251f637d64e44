#!/usr/bin/env bash
# Benchmark our JAX training steps side by side with PyTorch peers (eager,
# channels-last, torch.compile), then the whole main job beside the seed's program
# in PyTorch, and write runs/benchmark/report.md. Extra arguments go to
# benchmarks/run.py, e.g.
#   scripts/benchmark.sh                                  # everything, ~30 min
#   scripts/benchmark.sh --quick                          # smoke test, < 1 min
#   scripts/benchmark.sh --models=cnn_train,lstm --reps=7
#   scripts/benchmark.sh --frameworks=jax                 # no torch needed
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"

needs_torch=1
for arg in "$@"; do
  case "$arg" in --frameworks=jax) needs_torch=0 ;; esac
done

# PyTorch's CPU build only: a plain `pip install torch` on Linux may pull the CUDA
# build (GBs). Where the machine keeps the 2.13.0+cpu wheel (or a pip index with it
# is configured, e.g. PIP_EXTRA_INDEX_URL), pip prefers it to 2.13.0.
if [ "$needs_torch" = 1 ] && ! python -c 'import torch' 2>/dev/null; then
  echo "[setup] installing the PyTorch CPU wheel for the peers" >&2
  wheel=(/opt/wheels/torch-2.13.0+cpu-*.whl)
  if [ -e "${wheel[0]}" ]; then
    python -m pip install --quiet "${wheel[0]}"
  fi
  python -m pip install --quiet -e "$ROOT[test,bench]"
  if python -c 'import sys, torch; sys.exit(torch.version.cuda is not None)'; then :; else
    echo "[setup] a CUDA build of torch got installed; install torch==2.13.0+cpu" >&2
    exit 1
  fi
fi

exec python -m benchmarks.run "$@"
