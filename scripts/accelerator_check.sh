#!/usr/bin/env bash
# Train every family (CNN, LSTM, GRU, transformer, DDPM U-Net) at its experiment's
# ':gpu' config sizes (experiments/*/configs/default.py:gpu: batch, model sizes, steps
# per call, default offline data) for a few hundred steps in fp32 and in bf16 on this
# machine's accelerator, and print a table: examples/s, TFLOP/s per device, MFU against
# the row dtype's peak (research/train/efficiency.py PEAK_TFLOPS), the issue's bf16
# MFU target and whether it is met, compile time, peak device memory and the loss.
# Budgeted to end within 8 min on one GPU (--budget_s). Set RESEARCH_JAX_EXTRA=cuda12
# (or tpu) so that the first set-up installs JAX for the accelerator. Extra arguments go
# to benchmarks/accelerator_check.py, e.g.
#   RESEARCH_JAX_EXTRA=cuda12 scripts/accelerator_check.sh
#   scripts/accelerator_check.sh --tiny                  # CPU smoke test, tiny sizes
#   scripts/accelerator_check.sh --families=cnn,ddpm --dtypes=bfloat16 --steps=640
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
exec python -m benchmarks.accelerator_check "$@"
