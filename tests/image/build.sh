#!/usr/bin/env bash
# Build the workspace image the tests run agents in, without any container
# registry (none is reachable on the test machines):
#
#   debootstrap a minimal Debian (cached as a tarball) -> add the non-root user
#   `agent` and /workspace -> copy in the real Claude Code native binary ->
#   `docker import` the folder as an image.
#
# It honours the same contract as the Containerfile's `workspace` target:
# `claude` and `git` on PATH, a non-root default user (agent, uid 1000),
# WORKDIR /workspace. It also carries python3, so that a test's fake agent
# written in Python can run inside the container too.
#
# Usage: tests/image/build.sh [TAG]     (default: $AICODE_TEST_IMAGE or aicode-workspace:test)
# Env:   AICODE_TEST_CLAUDE_BIN   native claude binary to copy in (default: the
#                                 pinned npm install, made if missing)
#        AICODE_TEST_IMAGE_REBUILD=1  rebuild even if the image is up to date
#        AICODE_DEBIAN_MIRROR     override the mirror debootstrap uses
#
# Cached twice: the image is left alone when its label says it was built from
# the same inputs (this script + CLI version), and the debootstrap result is
# kept under .cache/ so a rebuild after a CLI bump takes seconds, not minutes.
set -euo pipefail

# shellcheck source=.ci/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../.ci/lib/common.sh"

TAG="${1:-${AICODE_TEST_IMAGE:-aicode-workspace:test}}"
SUITE=bookworm  # the CLI's native binary needs glibc; bookworm's 2.36 is fine
VARIANT=minbase # only Essential + apt: ~100 MB instead of ~300 MB
# git: part of the image contract. ca-certificates: HTTPS for git and the CLI.
# python3: for Python test fixtures that play the agent inside a container.
# Not python3-minimal: that one lacks even json; the full stdlib adds ~25 MB.
INCLUDE=git,ca-certificates,python3
AGENT_UID=1000
LABEL_INPUTS=org.aicode.test-image.inputs
WORK="$AICODE_CACHE/workspace-image"

mkdir -p "$WORK"
# Two test runs on one machine must not build (or delete) the same thing at once.
exec 9>"$WORK/.lock"
flock 9

# --- which CLI goes in ------------------------------------------------------
if [[ -n ${AICODE_TEST_CLAUDE_BIN:-} ]]; then
    CLAUDE_BIN=$AICODE_TEST_CLAUDE_BIN
else
    # shellcheck source=.ci/lib/claude-cli.sh
    source "$AICODE_ROOT/.ci/lib/claude-cli.sh"
    ensure_claude_cli
    CLAUDE_BIN=$(claude_cli_bin)
fi
[[ -x $CLAUDE_BIN ]] || die "claude binary not found or not executable: $CLAUDE_BIN"
CLAUDE_VERSION=$("$CLAUDE_BIN" --version | awk '{print $1; exit}')
[[ -n $CLAUDE_VERSION ]] || die "$CLAUDE_BIN --version printed nothing"

# --- up to date already? ----------------------------------------------------
# The inputs are this script (which holds every build choice) and the CLI
# version; the label records their hash on the image.
INPUTS_HASH=$( { cat "${BASH_SOURCE[0]}"; echo "claude=$CLAUDE_VERSION"; } | sha256sum | cut -c1-16)
if docker image inspect "$TAG" >/dev/null 2>&1 && [[ -z ${AICODE_TEST_IMAGE_REBUILD:-} ]]; then
    have=$(docker image inspect --format "{{index .Config.Labels \"$LABEL_INPUTS\"}}" "$TAG")
    if [[ $have == "$INPUTS_HASH" ]]; then
        log "$TAG is up to date (inputs $INPUTS_HASH, Claude Code $CLAUDE_VERSION)"
        exit 0
    fi
    log "$TAG is stale (inputs ${have:-none} != $INPUTS_HASH): rebuilding"
fi

command -v debootstrap >/dev/null || die "debootstrap is missing (.ci/lib/services.sh installs it)"

ROOT=$(mktemp -d "$WORK/root.XXXXXX")
# debootstrap mounts /proc and /sys inside ROOT (and, in some containers,
# bind-mounts the host's /dev): if it dies, unmount whatever is left before
# deleting, and never let rm cross into another filesystem.
cleanup() {
    awk -v root="$ROOT/" 'index($2, root) == 1 { print $2 }' /proc/mounts | sort -r |
        xargs -r -n 1 umount -l 2>/dev/null || true
    rm -rf --one-file-system "$ROOT" "$WORK"/rootfs-*.tar.part
}
trap cleanup EXIT

# --- the Debian base, from cache or debootstrap -----------------------------
# The same mirror apt uses on this machine (the only Debian mirror reachable
# here); apt's own parser reads sources.list and deb822 .sources files alike.
debian_mirror() {
    if [[ -n ${AICODE_DEBIAN_MIRROR:-} ]]; then
        echo "$AICODE_DEBIAN_MIRROR"
        return
    fi
    local uri
    # shellcheck disable=SC2016 # $(...) here is apt's placeholder syntax, not the shell's
    uri=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null |
        awk -v suite="$SUITE" '$2 == suite { print $1; exit }')
    echo "${uri:-http://deb.debian.org/debian/}"
}

BASE_KEY=$(echo "$SUITE $VARIANT $INCLUDE" | sha256sum | cut -c1-12)
BASE_TAR="$WORK/rootfs-$SUITE-$BASE_KEY.tar"
if [[ ! -s $BASE_TAR ]]; then
    mirror=$(debian_mirror)
    # debootstrap fetches with wget, which ignores apt's proxy setting.
    eval "$(apt-config shell http_proxy Acquire::http::Proxy)"
    [[ -z ${http_proxy:-} ]] || export http_proxy
    log "debootstrap $SUITE ($VARIANT, +$INCLUDE) from $mirror (takes ~2 min)"
    debootstrap --variant="$VARIANT" --include="$INCLUDE" "$SUITE" "$ROOT" "$mirror" \
        >"$WORK/debootstrap.log" 2>&1 || {
        tail -n 40 "$WORK/debootstrap.log" >&2
        die "debootstrap failed (full log: $WORK/debootstrap.log)"
    }
    # Drop what only matters to a running Debian system or to apt: package
    # lists and caches, docs, logs. The agent never installs packages.
    rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/* "$ROOT"/var/cache/debconf/*-old \
        "$ROOT"/var/log/* "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/*
    # Docker bind-mounts its own resolv.conf/hosts/hostname; don't ship the host's.
    rm -f "$ROOT"/etc/resolv.conf "$ROOT"/etc/hostname
    tar -C "$ROOT" --numeric-owner -cf "$BASE_TAR.part" .
    mv "$BASE_TAR.part" "$BASE_TAR"
    # Bases of other suites/package sets are dead weight now.
    find "$WORK" -maxdepth 1 -name 'rootfs-*.tar' ! -path "$BASE_TAR" -delete
else
    log "using cached base $BASE_TAR"
    tar -C "$ROOT" --numeric-owner -xf "$BASE_TAR"
fi

# --- make it a workspace image ----------------------------------------------
# The CLI refuses --dangerously-skip-permissions as root, so the agent runs as
# a plain user. uid 1000 with a writable home (the CLI keeps ~/.claude and
# ~/.claude.json there when home is not read-only or mounted over).
chroot "$ROOT" useradd --uid "$AGENT_UID" --user-group --create-home \
    --home-dir /home/agent --shell /bin/bash agent
install -d -o "$AGENT_UID" -g "$AGENT_UID" -m 0755 "$ROOT/workspace"
install -m 0755 "$CLAUDE_BIN" "$ROOT/usr/local/bin/claude"

# --- import ------------------------------------------------------------------
# `docker import` builds a one-layer image straight from the tar stream; the
# -c options are the Dockerfile instructions such an image can carry.
log "importing $TAG"
new_id=$(tar -C "$ROOT" --numeric-owner -c . | docker import \
    -c "USER agent" \
    -c "WORKDIR /workspace" \
    -c "ENV HOME=/home/agent" \
    -c "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    -c "ENV LANG=C.UTF-8" \
    -c "ENV DISABLE_AUTOUPDATER=1" \
    -c "LABEL $LABEL_INPUTS=$INPUTS_HASH" \
    -c "LABEL org.aicode.claude-code.version=$CLAUDE_VERSION" \
    -c "LABEL org.opencontainers.image.title=aicode-workspace-test" \
    -c 'CMD ["/bin/bash"]' \
    -m "aicode test workspace: Debian $SUITE + Claude Code $CLAUDE_VERSION" \
    - "$TAG")

# Earlier builds are now untagged; free their ~600 MB each, except those a
# container still uses (docker refuses; a later build retries).
docker images -q --no-trunc --filter dangling=true --filter "label=$LABEL_INPUTS" |
    grep -vx "$new_id" | xargs -r docker image rm >/dev/null 2>&1 || true

# --- prove it works under the hardening the server applies ------------------
log "verifying $TAG"
docker run --rm --network none --user "$AGENT_UID" --read-only --tmpfs /tmp \
    --cap-drop ALL --security-opt no-new-privileges "$TAG" \
    sh -ec 'claude --version; git --version; python3 -c "import json, subprocess, pathlib"
            python3 --version; test "$(id -u)" = '"$AGENT_UID"
# ...and that the agent can write where it has to when the root fs is writable.
docker run --rm --network none "$TAG" \
    sh -ec 'touch /workspace/.probe /home/agent/.probe; test "$(pwd)" = /workspace'
log "built $TAG ($(docker image inspect --format '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}'), inputs $INPUTS_HASH)"
