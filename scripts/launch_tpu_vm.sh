#!/usr/bin/env bash
# Launch an experiment on every worker of a Cloud TPU VM slice (one process per host).
#   scripts/launch_tpu_vm.sh TPU_NAME ZONE [experiment flags...]
# e.g.
#   scripts/launch_tpu_vm.sh my-v4-32 us-central2-b --workdir=gs://bucket/runs/cnn
# Each worker runs the same command; JAX reads the slice's topology itself
# (--distributed_auto), so no coordinator address is needed. The repository must be
# checked out at ~/research on every worker (the first command below does it).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 TPU_NAME ZONE [flags for experiments/cnn/main.py ...]" >&2
  exit 2
fi
TPU_NAME="$1"; ZONE="$2"; shift 2
REPO_URL="${REPO_URL:-$(git config --get remote.origin.url || true)}"
ARGS="$(printf '%q ' "$@")"
gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$ZONE" --worker=all --command "
  set -e
  [ -d ~/research ] || git clone '$REPO_URL' ~/research
  cd ~/research && git pull --ff-only
  RESEARCH_JAX_EXTRA=tpu scripts/train.sh --distributed_auto $ARGS
"
