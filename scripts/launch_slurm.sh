#!/usr/bin/env bash
# Submit an experiment to a SLURM GPU cluster: one process per node, all its GPUs.
#   scripts/launch_slurm.sh NODES GPUS_PER_NODE [experiment flags...]
# e.g.
#   scripts/launch_slurm.sh 2 8 --workdir=/shared/runs/cnn --config.batch_size=1024
# JAX reads SLURM's environment (--distributed_auto) for the coordinator and process
# ids. The workdir must be on a file system every node sees. A preempted or
# requeued job continues from its last checkpoint (--resume is passed).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 NODES GPUS_PER_NODE [flags for experiments/cnn/main.py ...]" >&2
  exit 2
fi
NODES="$1"; GPUS="$2"; shift 2
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ARGS="$(printf '%q ' "$@")"
sbatch --nodes="$NODES" --ntasks-per-node=1 --gpus-per-node="$GPUS" \
  --cpus-per-task="${CPUS_PER_TASK:-16}" --signal=TERM@120 --requeue \
  --job-name="${JOB_NAME:-research}" --output="${LOG_PATTERN:-slurm-%j.out}" \
  --wrap="cd '$ROOT' && srun --kill-on-bad-exit=1 env RESEARCH_JAX_EXTRA=cuda12 \
          scripts/train.sh --distributed_auto --resume $ARGS"
