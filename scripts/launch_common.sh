# Sourced by launch_slurm.sh and launch_tpu_vm.sh (which set HERE and strict mode):
# the --dry_run switch, the usage line, shell quoting and the experiment check.
# The launcher defines ARGS_HELP (its positional arguments) before sourcing this.
DRY_RUN="${DRY_RUN:-0}"

usage() {
  local names
  names="$("$HERE/run_experiment.sh" --list | paste -sd '|' -)"
  echo "usage: $0 [--dry_run] {$names} $ARGS_HELP [flags...]${1:+ ($1)}" >&2
  exit 2
}
# One word for a POSIX shell (sbatch --wrap and ssh run /bin/sh): single-quoted if
# needed.
quote() {
  case "$1" in
    ''|*[!A-Za-z0-9_./=:@%+,-]*) printf "'%s'" "${1//\'/\'\\\'\'}" ;;
    *) printf '%s' "$1" ;;
  esac
}
quote_all() {
  local out=() word
  for word in "$@"; do out+=("$(quote "$word")"); done
  echo "${out[*]}"
}
check_experiment() {
  "$HERE/run_experiment.sh" --list | grep -xF -- "$1" >/dev/null \
    || usage "unknown experiment '$1'"
}
