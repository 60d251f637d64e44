#!/usr/bin/env bash
# Set up (first run only) and run one experiment with its default config:
#   scripts/run_experiment.sh [--dry_run] EXPERIMENT [flags...]
#   scripts/run_experiment.sh --list        # the experiment names, one a line
# EXPERIMENT is a directory of experiments/ (cnn, lm, seq2seq, ddpm); this runs
#   python -m experiments.EXPERIMENT.main --config=experiments/EXPERIMENT/configs/default.py flags...
# (a --config flag among the flags replaces the default), from the repository root,
# so relative paths (--workdir=runs/lm) are taken from there. --workdir has no
# default here (every process of a multi-process run must get the same one). With
# --dry_run (or DRY_RUN=1) it prints the command instead and installs nothing.
set -euo pipefail
HERE="$(CDPATH='' cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
DRY_RUN="${DRY_RUN:-0}"
if [ "${1:-}" = --dry_run ]; then DRY_RUN=1; shift; fi

# Experiments are the directories of experiments/ with a configs/default.py.
list_experiments() {
  (cd "$HERE/../experiments" && printf '%s\n' */configs/default.py) | sed 's|/.*||'
}
usage() {
  echo "usage: $0 [--dry_run] {$(list_experiments | paste -sd '|' -)} [flags...]${1:+ ($1)}" >&2
  exit 2
}
if [ "${1:-}" = --list ]; then list_experiments; exit 0; fi

[ $# -ge 1 ] || usage "no experiment given"
EXPERIMENT="$1"; shift
list_experiments | grep -xF -- "$EXPERIMENT" >/dev/null || usage "unknown experiment '$EXPERIMENT'"
CONFIG="experiments/$EXPERIMENT/configs/default.py"

has_config=0
for arg in "$@"; do
  case "$arg" in --config=*|--config) has_config=1 ;; esac
done
command=(python -m "experiments.$EXPERIMENT.main")
[ "$has_config" = 1 ] || command+=("--config=$CONFIG")
command+=("$@")

if [ "$DRY_RUN" = 1 ]; then
  printf '%q ' "${command[@]}" | sed 's/ $//'
  echo
  exit 0
fi
source "$HERE/env.sh"
cd "$RESEARCH_ROOT"
exec "${command[@]}"
