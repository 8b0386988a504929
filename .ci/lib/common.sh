# shellcheck shell=bash
# Shared helpers for .ci/run and tests/image/build.sh. Source it; it defines
# functions and a few variables and changes nothing on the machine.

# The repository root, whichever script sourced us and from wherever it ran.
AICODE_ROOT="${AICODE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
# Everything downloaded or built for tests lives here (git-ignored), so a
# rebuild on the same machine is quick and a fresh clone starts clean.
AICODE_CACHE="${AICODE_CACHE:-$AICODE_ROOT/.cache}"

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Millisecond clock from bash itself. EPOCHREALTIME is "seconds.micros" with
# the locale's decimal mark, so strip every non-digit instead of splitting on '.'.
_now_ms() { local t=${EPOCHREALTIME//[!0-9]/}; echo $((10#$t / 1000)); }

# `step NAME CMD...` runs CMD, prints how long it took and remembers it for
# `step_summary`, so the timing of every CI phase is visible in the log.
# CMD runs as a plain command, not inside `if`/`||`: that would switch off
# `set -e` for everything CMD does. A failing step therefore ends the script;
# the EXIT trap's `step_summary` then marks the step that was running.
STEP_TIMINGS=()
_STEP_NAME=
_STEP_START=0
step() {
    _STEP_NAME=$1; shift
    _STEP_START=$(_now_ms)
    log "==> $_STEP_NAME"
    "$@"
    _step_done ""
}
_step_done() {
    local ms took
    ms=$(( $(_now_ms) - _STEP_START ))
    took=$(printf '%d.%ds' $((ms / 1000)) $((ms % 1000 / 100)))
    STEP_TIMINGS+=("$(printf '%-30s %8s%s' "$_STEP_NAME" "$took" "$1")")
    log "<== $_STEP_NAME: $took$1"
    _STEP_NAME=
}
step_summary() {
    [[ -z $_STEP_NAME ]] || _step_done " (FAILED)"
    ((${#STEP_TIMINGS[@]})) || return 0
    log "step timings:"
    local line
    for line in "${STEP_TIMINGS[@]}"; do printf '    %s\n' "$line" >&2; done
}

# Wait up to $1 seconds for the command in $2.. to succeed (polling every 0.5 s).
wait_for() {
    local timeout=$1; shift
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
}

# apt-get install the given Debian packages. `apt-get update` runs first and at
# most once per process: on a fresh machine the package lists may be missing
# or stale, and an install from stale lists fails with 404s.
_APT_UPDATED=
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    if [[ -z $_APT_UPDATED ]]; then
        apt-get update -qq
        _APT_UPDATED=1
    fi
    # With recommends, as on the machines this was verified on (debootstrap
    # wants debian-archive-keyring and gnupg to check the mirror's signature).
    apt-get install -y -qq "$@"
}
