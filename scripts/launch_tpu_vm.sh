#!/usr/bin/env bash
# Launch an experiment on every worker of a Cloud TPU VM slice (one process per host).
#   scripts/launch_tpu_vm.sh [--dry_run] EXPERIMENT TPU_NAME ZONE [flags...]
# EXPERIMENT is cnn, lm, seq2seq or ddpm (see scripts/run_experiment.sh); the flags
# go to its main.py, e.g.
#   scripts/launch_tpu_vm.sh cnn my-v4-32 us-central2-b --workdir=gs://bucket/runs/cnn
# Two ssh commands to all workers: the first checks the repository out at
# ~/research (from REPO_URL, default: this checkout's origin) and installs the venv
# with jax[tpu]; the second starts the run detached from the ssh session (setsid,
# nohup), so a dropped connection does not end it, each worker appending to its own
# log, ~/research/logs/EXPERIMENT-HOSTNAME.log (the launcher prints how to follow
# them). JAX reads the slice's topology itself (--distributed_auto), so no
# coordinator address is needed. --resume is passed: launching again continues from
# the workdir's last checkpoint.
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
RUN=(scripts/run_experiment.sh "$EXPERIMENT" --distributed_auto --resume "$@")
SETUP="{ [ -d ~/research ] || git clone $(quote "$REPO_URL") ~/research; }"
SETUP+=" && cd ~/research && git pull --ff-only"
SETUP+=" && RESEARCH_JAX_EXTRA=$(quote "$EXTRA") bash scripts/env.sh"
LOG="logs/$EXPERIMENT-\$(hostname).log"
LAUNCH="cd ~/research && mkdir -p logs"
LAUNCH+=" && { RESEARCH_JAX_EXTRA=$(quote "$EXTRA") setsid nohup $(quote_all "${RUN[@]}")"
LAUNCH+=" >> \"$LOG\" 2>&1 < /dev/null & }"
LAUNCH+=" && echo \"started: \$(hostname):~/research/$LOG\""
SSH=(gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$ZONE" --worker=all --command)
FOLLOW=(gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$ZONE" --worker=0 --command
        "tail -F ~/research/logs/$EXPERIMENT-*.log")
LOGS_LINE="# logs: ~/research/logs/$EXPERIMENT-HOSTNAME.log on each worker; follow worker 0"
LOGS_LINE+=" with: $(quote_all "${FOLLOW[@]}")"

if [ "$DRY_RUN" = 1 ]; then
  quote_all "${SSH[@]}" "$SETUP"
  quote_all "${SSH[@]}" "$LAUNCH"
  echo "# each worker runs: $("$HERE/run_experiment.sh" --dry_run "${RUN[@]:1}")"
  echo "$LOGS_LINE"
  exit 0
fi
"${SSH[@]}" "$SETUP"
"${SSH[@]}" "$LAUNCH"
echo "$LOGS_LINE"
