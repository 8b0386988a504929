# shellcheck shell=bash
# The OpenAI Codex CLI and the Google Gemini CLI for the workspace image and
# the end-to-end tests, installed from the npm registry into the project's
# git-ignored cache (never globally), pinned. Requires common.sh.
#
# Codex: @openai/codex is only a Node wrapper (bin/codex.js execs the real
# program). The program is a static musl native executable (~300 MB, needs
# neither Node nor glibc) in a per-platform optional dependency, e.g.
# @openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex, which is
# all the test image needs.
# Gemini: @google/gemini-cli is plain Node (engines: node >= 20) with a
# self-contained bundle/ (entry bundle/gemini.js); the image needs that folder
# and a Node binary (node_bin_for_image). Its optional native addons
# (node-pty, keytar) are not needed headless: it falls back without them.
# Neither package needs an install script, so install with --ignore-scripts
# (node-pty's would try to compile with node-gyp).

# Keep in step with `ARG CODEX_VERSION` / `ARG GEMINI_CLI_VERSION` in the
# Containerfile (check_agent_cli_pins enforces it).
CODEX_VERSION="${CODEX_VERSION:-0.171.0}"
GEMINI_CLI_VERSION="${GEMINI_CLI_VERSION:-0.61.0}"
CODEX_PREFIX="${CODEX_PREFIX:-$AICODE_CACHE/codex/$CODEX_VERSION}"
GEMINI_CLI_PREFIX="${GEMINI_CLI_PREFIX:-$AICODE_CACHE/gemini-cli/$GEMINI_CLI_VERSION}"
# The oldest Node the Gemini CLI supports ("engines" in its package.json).
NODE_MIN_MAJOR=20

# "<npm platform package> <Rust target triple>" of this machine's Codex build.
_codex_platform() {
    case "$(uname -m)" in
        x86_64 | amd64) echo "@openai/codex-linux-x64 x86_64-unknown-linux-musl" ;;
        aarch64 | arm64) echo "@openai/codex-linux-arm64 aarch64-unknown-linux-musl" ;;
        *) die "no Codex native build for $(uname -m)" ;;
    esac
}

# Path of the native codex executable inside the install prefix.
codex_cli_bin() {
    local pkg triple
    read -r pkg triple <<<"$(_codex_platform)"
    echo "$CODEX_PREFIX/node_modules/$pkg/vendor/$triple/bin/codex"
}

# The @google/gemini-cli package folder (holds bundle/gemini.js).
gemini_cli_dir() {
    echo "$GEMINI_CLI_PREFIX/node_modules/@google/gemini-cli"
}

# A host Node.js binary of version >= NODE_MIN_MAJOR to copy into the test
# image for the Gemini CLI: $AICODE_NODE_BIN if set, else `node` on PATH.
# It must be self-contained apart from glibc/libstdc++ (as the nodejs.org and
# NodeSource builds are; Debian's own nodejs links libnode.so and is also too
# old on bookworm): tests/image/build.sh checks its libraries with ldd.
node_bin_for_image() {
    local node=${AICODE_NODE_BIN:-} version
    if [[ -z $node ]]; then
        node=$(command -v node) ||
            die "no node on PATH: the Gemini CLI in the workspace image needs Node.js >= $NODE_MIN_MAJOR (install it, e.g. from NodeSource, or set AICODE_NODE_BIN)"
    fi
    node=$(readlink -f "$node")
    version=$("$node" -p process.versions.node 2>/dev/null) || version=
    [[ $version =~ ^[0-9]+\. ]] ||
        die "$node is not a working Node.js: the Gemini CLI needs Node.js >= $NODE_MIN_MAJOR (set AICODE_NODE_BIN to one)"
    ((${version%%.*} >= NODE_MIN_MAJOR)) ||
        die "$node is Node.js $version; the Gemini CLI needs >= $NODE_MIN_MAJOR (install a newer one, e.g. from NodeSource, or set AICODE_NODE_BIN)"
    echo "$node"
}

# Installed, executable and reporting the pinned version?
_codex_cli_ok() {
    local bin out
    bin=$(codex_cli_bin)
    [[ -x $bin ]] || return 1
    out=$("$bin" --version 2>/dev/null) || return 1
    [[ $out == "codex-cli $CODEX_VERSION" ]]
}

# Installed with the pinned version? (Read from package.json: running the CLI
# takes seconds and needs a Node >= 20.)
_gemini_cli_ok() {
    local dir version
    dir=$(gemini_cli_dir)
    [[ -f $dir/bundle/gemini.js && -f $dir/package.json ]] || return 1
    command -v node >/dev/null || return 1
    version=$(node -p 'require(process.argv[1]).version' "$dir/package.json" 2>/dev/null) || return 1
    [[ $version == "$GEMINI_CLI_VERSION" ]]
}

# `_npm_install_pinned PREFIX SPEC`: a clean pinned install into PREFIX.
_npm_install_pinned() {
    local prefix=$1 spec=$2
    command -v npm >/dev/null || apt_install npm
    log "installing $spec into $prefix"
    rm -rf "$prefix"
    mkdir -p "$prefix"
    # --include=optional: Codex's native binary IS an optional dependency;
    # make sure an `omit=optional` in someone's npmrc cannot drop it.
    npm install --prefix "$prefix" --ignore-scripts --include=optional --save-exact \
        --no-audit --no-fund --loglevel=error "$spec"
}

ensure_codex_cli() {
    if _codex_cli_ok; then
        log "Codex CLI $CODEX_VERSION already installed: $(codex_cli_bin)"
        return 0
    fi
    _npm_install_pinned "$CODEX_PREFIX" "@openai/codex@$CODEX_VERSION"
    _codex_cli_ok || die "$(codex_cli_bin) is missing or does not report version $CODEX_VERSION"
    log "Codex CLI: $("$(codex_cli_bin)" --version 2>/dev/null) at $(codex_cli_bin)"
}

ensure_gemini_cli() {
    local node home out
    if _gemini_cli_ok; then
        log "Gemini CLI $GEMINI_CLI_VERSION already installed: $(gemini_cli_dir)"
        return 0
    fi
    _npm_install_pinned "$GEMINI_CLI_PREFIX" "@google/gemini-cli@$GEMINI_CLI_VERSION"
    _gemini_cli_ok || die "$(gemini_cli_dir) is missing or is not version $GEMINI_CLI_VERSION"
    # Run it once with the Node that goes into the image. It writes state
    # under GEMINI_CLI_HOME even for --version: keep that out of $HOME.
    node=$(node_bin_for_image)
    home=$(mktemp -d)
    out=$(GEMINI_CLI_HOME=$home "$node" "$(gemini_cli_dir)/bundle/gemini.js" --version </dev/null) || true
    rm -rf "$home"
    [[ $out == "$GEMINI_CLI_VERSION" ]] ||
        die "$(gemini_cli_dir)/bundle/gemini.js --version printed '$out', expected $GEMINI_CLI_VERSION"
    log "Gemini CLI: $out at $(gemini_cli_dir) (Node $("$node" --version))"
}

ensure_agent_clis() {
    ensure_codex_cli
    ensure_gemini_cli
}

# The Containerfile installs the same CLIs for the production workspace image;
# fail early if the pins drift apart.
check_agent_cli_pins() {
    local file="$AICODE_ROOT/Containerfile" arg want pinned
    [[ -f $file ]] || return 0
    for arg in CODEX_VERSION GEMINI_CLI_VERSION; do
        want=${!arg}
        pinned=$(sed -n "s/^ARG $arg=\([^[:space:]]*\).*/\1/p" "$file" | head -n 1)
        [[ $pinned == "$want" ]] ||
            die "Containerfile pins $arg '$pinned' but .ci/lib/agent-clis.sh pins '$want'"
    done
}
