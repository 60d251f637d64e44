#!/usr/bin/env bash
# Set up (first run only) and train the seed's CNN on the offline MNIST digits.
# Extra arguments are passed to experiments/cnn/main.py (through
# scripts/run_experiment.sh cnn), e.g.
#   scripts/train.sh --workdir=runs/cnn --config.num_epochs=1
# Without --workdir the run goes to runs/cnn_mnist_offline/<date-time> (relative
# paths are taken from the repository root).
set -euo pipefail
has_workdir=0
for arg in "$@"; do
  case "$arg" in --workdir=*|--workdir) has_workdir=1 ;; esac
done
if [ "$has_workdir" = 0 ]; then
  set -- --workdir="runs/cnn_mnist_offline/$(date +%Y%m%d-%H%M%S)" "$@"
fi
exec "$(dirname -- "${BASH_SOURCE[0]}")/run_experiment.sh" cnn "$@"
