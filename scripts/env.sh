# Make (or reuse) the virtual environment, install the package with its test extra,
# and set the runtime environment. Sourced by the other scripts, and safe to source
# from your own (bash) shell:
#   source scripts/env.sh
# It changes no shell option (no set -e/-u/pipefail) and not your working directory,
# and a failure returns non-zero instead of closing your shell. Run directly
# (bash scripts/env.sh), it only sets up the environment.
#
# The install step runs when there is no install stamp, when setup.cfg is newer than
# the stamp, or when RESEARCH_JAX_EXTRA asks for a jax extra the stamp does not
# record: RESEARCH_JAX_EXTRA=cuda12 (NVIDIA GPUs) or tpu (Cloud TPU). Several
# processes (e.g. SLURM nodes on a shared file system) may source this at once: a
# lock (flock) on a file in the venv lets one install while the others wait.
#
# Inputs: VENV (default <repo>/.venv), PYTHON (to create it, default python3),
# RESEARCH_JAX_EXTRA. Sets RESEARCH_ROOT and ROOT (the repository), activates the
# venv and exports PYTHONPATH and TF_CPP_MIN_LOG_LEVEL (and MALLOC_* on CPU).

# The jax extra recorded in a stamp file ('' for a CPU install or an old stamp).
_research_stamp_extra() {
  [ -f "$1" ] && sed -n '/^jax_extra=/{s///p;q;}' "$1"
  return 0
}

# Succeeds when VENV ($1) needs an install for the requested extra ($2).
_research_needs_install() {
  local stamp="$1/.research-installed"
  [ -x "$1/bin/python" ] || return 0
  [ -f "$stamp" ] || return 0
  [ "$RESEARCH_ROOT/setup.cfg" -nt "$stamp" ] && return 0
  [ -n "$2" ] && [ "$2" != "$(_research_stamp_extra "$stamp")" ] && return 0
  return 1
}

# Creates VENV ($1) if needed and installs into it, holding the venv's lock. A
# subshell, so the lock's file descriptor and any failure stay inside it; each step
# is checked explicitly (set -e is ignored where the caller tests the result).
_research_install() (
  venv="$1"; want="$2"; stamp="$1/.research-installed"
  mkdir -p "$venv" || exit 1
  exec 9>>"$venv/.research-install.lock" || exit 1
  if command -v flock >/dev/null 2>&1 && ! flock -n 9; then
    echo "[setup] another process is installing into $venv: waiting" >&2
    flock 9 || echo "[setup] warning: could not lock $venv; installing unlocked" >&2
  fi
  # Another process may have installed while this one waited.
  _research_needs_install "$venv" "$want" || exit 0
  if [ ! -x "$venv/bin/python" ]; then
    echo "[setup] creating virtual environment in $venv" >&2
    "${PYTHON:-python3}" -m venv "$venv" || exit 1
  fi
  # Keep an accelerator extra across setup.cfg updates: jax and its plugin must match.
  extra="${want:-$(_research_stamp_extra "$stamp")}"
  packages=(-e "$RESEARCH_ROOT[test]")
  [ -z "$extra" ] || packages+=("jax[$extra]")
  echo "[setup] installing research and its dependencies${extra:+ with jax[$extra]}" >&2
  "$venv/bin/python" -m pip install --quiet --upgrade pip || exit 1
  # One resolve, so jax[extra] stays within setup.cfg's jax range.
  "$venv/bin/python" -m pip install --quiet "${packages[@]}" || exit 1
  printf 'jax_extra=%s\n' "$extra" >"$stamp.tmp" && mv -f "$stamp.tmp" "$stamp"
)

# Exports the runtime environment of the activated venv.
_research_export() {
  # glibc otherwise mmaps and unmaps every large buffer (XLA's step arena,
  # activations) on every step: 25-30% of CPU time goes to page faults. glibc caps
  # MALLOC_MMAP_THRESHOLD_ at 32 MiB, so switch mmap off for malloc altogether and
  # keep freed memory in one heap. CPU training only: on GPUs and TPUs those
  # buffers live in device memory, while one malloc arena would serialise the
  # host's many threads (input pipeline, runtime) and the padded, never-trimmed
  # heap would hold on to host memory the input pipeline needs.
  if [ -z "${RESEARCH_JAX_EXTRA:-}" ]; then
    export MALLOC_MMAP_MAX_="${MALLOC_MMAP_MAX_:-0}"
    export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-1}"
    export MALLOC_TRIM_THRESHOLD_="${MALLOC_TRIM_THRESHOLD_:-17179869184}"
    export MALLOC_TOP_PAD_="${MALLOC_TOP_PAD_:-1073741824}"
  fi
  # TensorFlow is only the input pipeline here: keep its C++ logging quiet.
  export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
  case ":${PYTHONPATH:-}:" in
    *":$RESEARCH_ROOT:"*) ;;  # Sourced again: already there.
    *) export PYTHONPATH="$RESEARCH_ROOT${PYTHONPATH:+:$PYTHONPATH}" ;;
  esac
}

_research_env() {
  local venv want
  RESEARCH_ROOT="$(CDPATH='' cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)" \
    || return 1
  export RESEARCH_ROOT
  ROOT="$RESEARCH_ROOT"
  venv="${VENV:-$RESEARCH_ROOT/.venv}"
  want="${RESEARCH_JAX_EXTRA:-}"
  if _research_needs_install "$venv" "$want"; then
    _research_install "$venv" "$want" || {
      echo "[setup] installation into $venv failed" >&2
      return 1
    }
  fi
  # shellcheck disable=SC1091
  source "$venv/bin/activate" || return 1
  _research_export
}

if [ -z "${BASH_VERSION:-}" ]; then
  echo "scripts/env.sh needs bash (run: bash, then source scripts/env.sh)" >&2
  return 1 2>/dev/null || exit 1
fi
_research_rc=0
_research_env || _research_rc=$?
unset -f _research_env _research_export _research_install _research_needs_install \
  _research_stamp_extra
if [ "$_research_rc" != 0 ]; then
  unset _research_rc
  return 1 2>/dev/null || exit 1
fi
unset _research_rc
