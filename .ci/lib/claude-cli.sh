# shellcheck shell=bash
# The real Claude Code CLI for the end-to-end tests, installed from the npm
# registry into the project's git-ignored cache (never globally), pinned.
# Requires common.sh.
#
# The npm package @anthropic-ai/claude-code is only a wrapper: the program is
# a self-contained native executable (~400 MB, no Node.js needed to run it)
# shipped in a per-platform optional dependency, e.g.
# @anthropic-ai/claude-code-linux-x64/claude. The wrapper's postinstall copies
# it over bin/claude.exe; whether npm runs that script depends on the npm
# version (npm 11 asks for approval), so we install with --ignore-scripts and
# take the binary from the platform package ourselves: same result on any npm.

# Keep in step with `ARG CLAUDE_CODE_VERSION` in the Containerfile
# (check_claude_cli_pin enforces it).
CLAUDE_CODE_VERSION="${CLAUDE_CODE_VERSION:-2.1.332}"
CLAUDE_CODE_PREFIX="${CLAUDE_CODE_PREFIX:-$AICODE_CACHE/claude-code/$CLAUDE_CODE_VERSION}"

# npm's name for this machine's platform package (Debian is glibc, not musl).
_claude_platform_pkg() {
    case "$(uname -m)" in
        x86_64 | amd64) echo "@anthropic-ai/claude-code-linux-x64" ;;
        aarch64 | arm64) echo "@anthropic-ai/claude-code-linux-arm64" ;;
        *) die "no Claude Code native build for $(uname -m)" ;;
    esac
}

# Path of the native claude executable inside the install prefix.
claude_cli_bin() {
    echo "$CLAUDE_CODE_PREFIX/node_modules/$(_claude_platform_pkg)/claude"
}

# Installed, executable and reporting the pinned version?
_claude_cli_ok() {
    local bin out
    bin=$(claude_cli_bin)
    [[ -x $bin ]] || return 1
    out=$("$bin" --version 2>/dev/null) || return 1
    [[ $out == "$CLAUDE_CODE_VERSION "* ]]
}

ensure_claude_cli() {
    if _claude_cli_ok; then
        log "Claude Code $CLAUDE_CODE_VERSION already installed: $(claude_cli_bin)"
        return 0
    fi
    command -v npm >/dev/null || apt_install npm
    log "installing @anthropic-ai/claude-code@$CLAUDE_CODE_VERSION into $CLAUDE_CODE_PREFIX"
    rm -rf "$CLAUDE_CODE_PREFIX"
    mkdir -p "$CLAUDE_CODE_PREFIX"
    # --include=optional: the native binary IS an optional dependency; make
    # sure an `omit=optional` in someone's npmrc cannot drop it.
    # Its engines field asks for Node >= 22; we never run it with Node, so
    # the warning npm prints on Node 20 does not matter.
    npm install --prefix "$CLAUDE_CODE_PREFIX" --ignore-scripts --include=optional \
        --no-audit --no-fund --loglevel=error \
        "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION"
    _claude_cli_ok || die "$(claude_cli_bin) is missing or does not report version $CLAUDE_CODE_VERSION"
    log "Claude Code: $("$(claude_cli_bin)" --version) at $(claude_cli_bin)"
}

# The Containerfile installs the same CLI for the production workspace image;
# fail early if the two pins drift apart.
check_claude_cli_pin() {
    local file="$AICODE_ROOT/Containerfile" pinned
    [[ -f $file ]] || return 0
    pinned=$(sed -n 's/^ARG CLAUDE_CODE_VERSION=\([^[:space:]]*\).*/\1/p' "$file" | head -n 1)
    [[ $pinned == "$CLAUDE_CODE_VERSION" ]] ||
        die "Containerfile pins Claude Code '$pinned' but .ci/lib/claude-cli.sh pins '$CLAUDE_CODE_VERSION'"
}
