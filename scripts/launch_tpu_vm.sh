#!/usr/bin/env bash
# Launch an experiment on every worker of a Cloud TPU VM slice (one process per host).
#   scripts/launch_tpu_vm.sh [--dry_run] EXPERIMENT TPU_NAME ZONE [flags...]
# EXPERIMENT is cnn, lm, seq2seq or ddpm (see scripts/run_experiment.sh); the flags
# go to its main.py, e.g.
#   scripts/launch_tpu_vm.sh cnn my-v4-32 us-central2-b --workdir=gs://bucket/runs/cnn
# Two ssh commands to all workers: the first checks the repository out at
# ~/research (from REPO_URL, default: this checkout's origin) and installs the venv
# with jax[tpu]; the second starts the run. JAX reads the slice's topology itself
# (--distributed_auto), so no coordinator address is needed.
# --dry_run (or DRY_RUN=1) prints the gcloud commands instead of running them.
set -euo pipefail
HERE="$(CDPATH='' cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
ARGS_HELP='TPU_NAME ZONE'
# shellcheck source=scripts/launch_common.sh
source "$HERE/launch_common.sh"
if [ "${1:-}" = --dry_run ]; then DRY_RUN=1; shift; fi

[ $# -ge 3 ] || usage "missing arguments"
EXPERIMENT="$1"; TPU_NAME="$2"; ZONE="$3"; shift 3
check_experiment "$EXPERIMENT"
REPO_URL="${REPO_URL:-$(git -C "$HERE" config --get remote.origin.url || true)}"
[ -n "$REPO_URL" ] || usage "no git remote 'origin': set REPO_URL"

EXTRA="${RESEARCH_JAX_EXTRA:-tpu}"
RUN=(scripts/run_experiment.sh "$EXPERIMENT" --distributed_auto "$@")
SETUP="{ [ -d ~/research ] || git clone $(quote "$REPO_URL") ~/research; }"
SETUP+=" && cd ~/research && git pull --ff-only"
SETUP+=" && RESEARCH_JAX_EXTRA=$(quote "$EXTRA") bash scripts/env.sh"
LAUNCH="cd ~/research && RESEARCH_JAX_EXTRA=$(quote "$EXTRA") $(quote_all "${RUN[@]}")"
SSH=(gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$ZONE" --worker=all --command)

if [ "$DRY_RUN" = 1 ]; then
  quote_all "${SSH[@]}" "$SETUP"
  quote_all "${SSH[@]}" "$LAUNCH"
  echo "# each worker runs: $("$HERE/run_experiment.sh" --dry_run "${RUN[@]:1}")"
  exit 0
fi
"${SSH[@]}" "$SETUP"
exec "${SSH[@]}" "$LAUNCH"
