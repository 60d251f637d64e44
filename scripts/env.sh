# Sourced by the other scripts: make (or reuse) the virtual environment, install the
# package with its test extra, and set the runtime environment. Safe to re-run: the
# install step is skipped while setup.cfg is unchanged since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment in $VENV" >&2
  "$PYTHON" -m venv "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"

STAMP="$VENV/.research-installed"
if [ ! -f "$STAMP" ] || [ "$ROOT/setup.cfg" -nt "$STAMP" ]; then
  echo "[setup] installing research and its dependencies" >&2
  python -m pip install --quiet --upgrade pip
  python -m pip install --quiet -e "$ROOT[test]"
  # On accelerators: RESEARCH_JAX_EXTRA=cuda12 (NVIDIA GPUs) or tpu (Cloud TPU).
  if [ -n "${RESEARCH_JAX_EXTRA:-}" ]; then
    python -m pip install --quiet "jax[${RESEARCH_JAX_EXTRA}]"
  fi
  touch "$STAMP"
fi

# glibc otherwise mmaps and unmaps every large buffer (XLA's step arena, activations)
# on every step: 25-30% of CPU time goes to page faults. glibc caps
# MALLOC_MMAP_THRESHOLD_ at 32 MiB, so switch mmap off for malloc altogether and keep
# freed memory in one heap.
export MALLOC_MMAP_MAX_="${MALLOC_MMAP_MAX_:-0}"
export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-1}"
export MALLOC_TRIM_THRESHOLD_="${MALLOC_TRIM_THRESHOLD_:-17179869184}"
export MALLOC_TOP_PAD_="${MALLOC_TOP_PAD_:-1073741824}"
# TensorFlow is only the input pipeline here: keep its C++ logging quiet.
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
cd "$ROOT"
