#!/usr/bin/env bash
# Train every family (CNN, LSTM, GRU, transformer, DDPM U-Net) for a few hundred steps
# in fp32 and bf16 on this machine's accelerator and print a table: examples/s, MFU
# against the device's dense bf16 peak, compile time and peak device memory
# (under 8 min: --budget_s). Set RESEARCH_JAX_EXTRA=cuda12 (or tpu) so that the first
# set-up installs JAX for the accelerator. Extra arguments go to
# benchmarks/accelerator_check.py, e.g.
#   RESEARCH_JAX_EXTRA=cuda12 scripts/accelerator_check.sh
#   scripts/accelerator_check.sh --tiny                  # CPU smoke test, tiny sizes
#   scripts/accelerator_check.sh --families=cnn,ddpm --steps=500
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
exec python -m benchmarks.accelerator_check "$@"
