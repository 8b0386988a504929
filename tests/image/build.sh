#!/usr/bin/env bash
# Build the workspace image the tests run agents in, without any container
# registry (none is reachable on the test machines):
#
#   debootstrap a minimal Debian (cached as a tarball) -> add the non-root user
#   `agent` and /workspace -> copy in the real agent CLIs: the Claude Code and
#   Codex native binaries, the Gemini CLI's bundle plus the host's Node.js ->
#   `docker import` the folder as an image.
#
# It honours the same contract as the Containerfile's `workspace` target:
# `claude`, `codex`, `gemini` and `git` on PATH, a non-root default user
# (agent, uid 1000), WORKDIR /workspace. It also carries python3, so that a
# test's fake agent written in Python can run inside the container too.
#
# Usage: tests/image/build.sh [TAG]     (default: $AICODE_TEST_IMAGE or aicode-workspace:test)
# Env:   AICODE_TEST_CLAUDE_BIN   native claude binary to copy in
#        AICODE_TEST_CODEX_BIN    native codex binary to copy in
#        AICODE_TEST_GEMINI_DIR   @google/gemini-cli package folder (holds bundle/)
#                                 (each defaults to the pinned npm install in
#                                 .cache/, made if missing)
#        AICODE_NODE_BIN          Node.js >= 20 for the Gemini CLI (default: `node`
#                                 on PATH; see node_bin_for_image in .ci/lib/agent-clis.sh)
#        AICODE_TEST_IMAGE_REBUILD=1  rebuild even if the image is up to date
#        AICODE_DEBIAN_MIRROR     override the mirror debootstrap uses
#
# Cached twice: the image is left alone when its label says it was built from
# the same inputs (this script + CLI and Node versions), and the debootstrap
# result is kept under .cache/ so a rebuild after a CLI bump takes seconds,
# not minutes.
set -euo pipefail

# shellcheck source=.ci/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../.ci/lib/common.sh"
# Pins and install helpers for Codex, Gemini and Node (defines functions only).
# shellcheck source=.ci/lib/agent-clis.sh
source "$AICODE_ROOT/.ci/lib/agent-clis.sh"

TAG="${1:-${AICODE_TEST_IMAGE:-aicode-workspace:test}}"
SUITE=bookworm  # claude's native binary and node need glibc; bookworm's 2.36 is fine
VARIANT=minbase # only Essential + apt: ~100 MB instead of ~300 MB
# git: part of the image contract. ca-certificates: HTTPS for git and the CLI.
# python3: for Python test fixtures that play the agent inside a container.
# Not python3-minimal: that one lacks even json; the full stdlib adds ~25 MB.
# node (for gemini) needs libstdc++6 and libgcc-s1: minbase has both (apt
# needs them); the ldd check below fails the build if that ever changes.
INCLUDE=git,ca-certificates,python3
AGENT_UID=1000
LABEL_INPUTS=org.aicode.test-image.inputs
WORK="$AICODE_CACHE/workspace-image"

mkdir -p "$WORK"
# Two test runs on one machine must not build (or delete) the same thing at once.
exec 9>"$WORK/.lock"
flock 9

# --- which CLIs go in -------------------------------------------------------
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

if [[ -n ${AICODE_TEST_CODEX_BIN:-} ]]; then
    CODEX_BIN=$AICODE_TEST_CODEX_BIN
else
    ensure_codex_cli
    CODEX_BIN=$(codex_cli_bin)
fi
[[ -x $CODEX_BIN ]] || die "codex binary not found or not executable: $CODEX_BIN"
# It prints "codex-cli 0.171.0".
CODEX_VER=$("$CODEX_BIN" --version 2>/dev/null | awk '$1 == "codex-cli" {print $2; exit}')
[[ -n $CODEX_VER ]] || die "$CODEX_BIN --version did not print 'codex-cli VERSION'"
[[ $CODEX_VER == "$CODEX_VERSION" ]] ||
    die "$CODEX_BIN is Codex $CODEX_VER, but .ci/lib/agent-clis.sh pins $CODEX_VERSION"

if [[ -n ${AICODE_TEST_GEMINI_DIR:-} ]]; then
    GEMINI_DIR=$AICODE_TEST_GEMINI_DIR
else
    ensure_gemini_cli
    GEMINI_DIR=$(gemini_cli_dir)
fi
[[ -f $GEMINI_DIR/bundle/gemini.js ]] || die "no Gemini CLI in $GEMINI_DIR (bundle/gemini.js is missing)"
NODE_BIN=$(node_bin_for_image)
NODE_VER=$("$NODE_BIN" -p process.versions.node)
# Ask the CLI itself, run by the Node that goes in. It writes state under
# GEMINI_CLI_HOME even for --version: give it a throwaway one.
gemini_home=$(mktemp -d)
GEMINI_VER=$(GEMINI_CLI_HOME=$gemini_home "$NODE_BIN" "$GEMINI_DIR/bundle/gemini.js" --version </dev/null) ||
    GEMINI_VER=
rm -rf "$gemini_home"
[[ $GEMINI_VER =~ ^[0-9][0-9A-Za-z.+-]*$ ]] ||
    die "$GEMINI_DIR/bundle/gemini.js --version (Node $NODE_VER) printed '$GEMINI_VER', not a version"
[[ $GEMINI_VER == "$GEMINI_CLI_VERSION" ]] ||
    die "$GEMINI_DIR is Gemini CLI $GEMINI_VER, but .ci/lib/agent-clis.sh pins $GEMINI_CLI_VERSION"

# --- up to date already? ----------------------------------------------------
# The inputs are this script (which holds every build choice) and the CLI and
# Node versions; the label records their hash on the image.
INPUTS_HASH=$( {
    cat "${BASH_SOURCE[0]}"
    echo "claude=$CLAUDE_VERSION codex=$CODEX_VER+code-mode-host gemini=$GEMINI_VER node=$NODE_VER"
} | sha256sum | cut -c1-16)
VERSIONS="Claude Code $CLAUDE_VERSION, Codex $CODEX_VER, Gemini CLI $GEMINI_VER, Node $NODE_VER"
if docker image inspect "$TAG" >/dev/null 2>&1 && [[ -z ${AICODE_TEST_IMAGE_REBUILD:-} ]]; then
    have=$(docker image inspect --format "{{index .Config.Labels \"$LABEL_INPUTS\"}}" "$TAG")
    if [[ $have == "$INPUTS_HASH" ]]; then
        log "$TAG is up to date (inputs $INPUTS_HASH; $VERSIONS)"
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
# Codex: the static musl binary alone is the CLI. (The npm package's wrapper
# also puts a bundled rg on the binary's PATH and ships helpers for features
# the server does not use: bwrap sandbox, code-mode host, voice.)
install -m 0755 "$CODEX_BIN" "$ROOT/usr/local/bin/codex"
# Beside it in the package: the host of its "code mode" (the default models call their tools through
# JavaScript it runs; without it they can run no tool at all), looked for next to the codex binary,
# and the ripgrep it searches with.
install -m 0755 "$(dirname "$CODEX_BIN")/codex-code-mode-host" "$ROOT/usr/local/bin/codex-code-mode-host"
install -m 0755 "$(dirname "$CODEX_BIN")/../codex-path/rg" "$ROOT/usr/local/bin/rg"
# Gemini: the package folder (bundle/ is self-contained) run by the host's
# Node, which is one binary needing only glibc, libstdc++ and libgcc_s.
install -m 0755 "$NODE_BIN" "$ROOT/usr/local/bin/node"
install -d -m 0755 "$ROOT/usr/local/lib/gemini-cli"
cp -R "$GEMINI_DIR/." "$ROOT/usr/local/lib/gemini-cli/"
chmod -R u+w,go-w,a+rX "$ROOT/usr/local/lib/gemini-cli"
printf '%s\n' '#!/bin/sh' \
    'exec /usr/local/bin/node /usr/local/lib/gemini-cli/bundle/gemini.js "$@"' \
    >"$ROOT/usr/local/bin/gemini"
chmod 0755 "$ROOT/usr/local/bin/gemini"
# Every shared library node links must resolve inside the image. (ldd fails
# on a static node: nothing to check then.)
missing=$( { chroot "$ROOT" ldd /usr/local/bin/node || true; } | awk '/not found/ {print $1}')
[[ -z $missing ]] || die "node ($NODE_BIN) needs libraries the image lacks: $missing (add their packages to INCLUDE)"

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
    -c "LABEL org.aicode.codex.version=$CODEX_VER" \
    -c "LABEL org.aicode.gemini-cli.version=$GEMINI_VER" \
    -c "LABEL org.opencontainers.image.title=aicode-workspace-test" \
    -c 'CMD ["/bin/bash"]' \
    -m "aicode test workspace: Debian $SUITE + $VERSIONS" \
    - "$TAG")

# Earlier builds are now untagged; free their ~1 GB each, except those a
# container still uses (docker refuses; a later build retries).
docker images -q --no-trunc --filter dangling=true --filter "label=$LABEL_INPUTS" |
    grep -vx "$new_id" | xargs -r docker image rm >/dev/null 2>&1 || true

# --- prove it works under the hardening the server applies ------------------
# Codex and Gemini must report their pinned versions (= the labels). Gemini
# writes state even for --version and HOME is read-only here: give it a home
# on the tmpfs.
log "verifying $TAG"
docker run --rm --network none --user "$AGENT_UID" --read-only --tmpfs /tmp \
    --cap-drop ALL --security-opt no-new-privileges \
    -e "WANT_CODEX=codex-cli $CODEX_VER" -e "WANT_GEMINI=$GEMINI_VER" "$TAG" \
    sh -ec 'claude --version; git --version; python3 -c "import json, subprocess, pathlib"
            python3 --version; test "$(id -u)" = '"$AGENT_UID"'
            v=$(codex --version); echo "$v"; test "$v" = "$WANT_CODEX"
            v=$(GEMINI_CLI_HOME=/tmp/gemini gemini --version); echo "gemini $v"; test "$v" = "$WANT_GEMINI"'
# ...and that the agent can write where it has to when the root fs is writable.
docker run --rm --network none "$TAG" \
    sh -ec 'touch /workspace/.probe /home/agent/.probe; test "$(pwd)" = /workspace'
log "built $TAG ($(docker image inspect --format '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}'), inputs $INPUTS_HASH)"
