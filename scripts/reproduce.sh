#!/usr/bin/env bash
# Set up (first run only) and re-run the README's experiments over several seeds
# (3, the DDPM 2), writing runs/reproduce/table.md: median, min and max of every
# headline figure, wall time and machine. Several hours on 2 CPU cores; finished
# runs are kept, so rerunning continues. Extra arguments go to
# experiments/reproduce.py, e.g.
#   scripts/reproduce.sh --experiments=reverse,addition --seeds=3
set -euo pipefail
source "$(dirname -- "${BASH_SOURCE[0]}")/env.sh"
cd "$RESEARCH_ROOT"
exec python -m experiments.reproduce "$@"
