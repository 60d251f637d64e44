#!/usr/bin/env bash
# Set up (first run only) and train the seed's CNN on the offline MNIST digits.
# Extra arguments are passed to experiments/cnn/main.py, e.g.
#   scripts/train.sh --workdir=runs/cnn --config.num_epochs=1
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
has_workdir=0
for arg in "$@"; do
  case "$arg" in --workdir=*|--workdir) has_workdir=1 ;; esac
done
if [ "$has_workdir" = 0 ]; then
  set -- --workdir="runs/cnn_mnist_offline/$(date +%Y%m%d-%H%M%S)" "$@"
fi
exec python -m experiments.cnn.main "$@"
