#!/usr/bin/env bash
# Submit an experiment to a SLURM GPU cluster: one process (task) per GPU.
#   scripts/launch_slurm.sh [--dry_run] EXPERIMENT NODES GPUS_PER_NODE [flags...]
# EXPERIMENT is cnn, lm, seq2seq or ddpm (see scripts/run_experiment.sh); the flags
# go to its main.py, e.g.
#   scripts/launch_slurm.sh cnn 2 8 --workdir=/shared/runs/cnn --config.batch_size=1024
# The job first installs the venv once (one task on one node, with jax[cuda12], or
# RESEARCH_JAX_EXTRA), then starts GPUS_PER_NODE tasks on every node. Each task sees
# its node's GPUs; JAX reads SLURM's environment (--distributed_auto) for the
# coordinator and process ids and keeps GPU number SLURM_LOCALID for the task. At
# start-up the run stops with one line if JAX's devices are not the GPUs SLURM
# allocated. The repository and the workdir must be on a file system every node sees.
# A preempted or requeued job continues from its last checkpoint (--resume is passed).
# CPUS_PER_TASK (default 8) sets the CPU cores of each task.
# --dry_run (or DRY_RUN=1) prints the sbatch command instead of submitting it.
set -euo pipefail
HERE="$(CDPATH='' cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname -- "$HERE")"
ARGS_HELP='NODES GPUS_PER_NODE'
# shellcheck source=scripts/launch_common.sh
source "$HERE/launch_common.sh"
if [ "${1:-}" = --dry_run ]; then DRY_RUN=1; shift; fi

[ $# -ge 3 ] || usage "missing arguments"
EXPERIMENT="$1"; NODES="$2"; GPUS="$3"; shift 3
check_experiment "$EXPERIMENT"
case "$NODES$GPUS" in ''|*[!0-9]*) usage "NODES and GPUS_PER_NODE must be numbers" ;; esac
[ "${NODES:-0}" -ge 1 ] && [ "${GPUS:-0}" -ge 1 ] || usage "NODES and GPUS_PER_NODE must be >= 1"

EXTRA="${RESEARCH_JAX_EXTRA:-cuda12}"
RUN=(scripts/run_experiment.sh "$EXPERIMENT" --distributed_auto --resume "$@")
# The install step holds env.sh's lock too, so a rerun never races a live job.
WRAP="cd $(quote "$ROOT") && export RESEARCH_JAX_EXTRA=$(quote "$EXTRA")"
WRAP+=" && srun --nodes=1 --ntasks=1 bash scripts/env.sh"
WRAP+=" && srun --kill-on-bad-exit=1 --ntasks-per-node=$GPUS $(quote_all "${RUN[@]}")"
SBATCH=(sbatch --nodes="$NODES" --ntasks-per-node="$GPUS" --gpus-per-node="$GPUS"
        --cpus-per-task="${CPUS_PER_TASK:-8}" --signal=TERM@120 --requeue
        --job-name="${JOB_NAME:-research-$EXPERIMENT}"
        --output="${LOG_PATTERN:-slurm-%j.out}" --wrap="$WRAP")

if [ "$DRY_RUN" = 1 ]; then
  quote_all "${SBATCH[@]}"
  echo "# each task runs: $("$HERE/run_experiment.sh" --dry_run "${RUN[@]:1}")"
  exit 0
fi
exec "${SBATCH[@]}"
