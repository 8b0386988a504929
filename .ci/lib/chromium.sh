# shellcheck shell=bash
# Debian's Chromium for the browser tests (tests/test_browser*.py drive it with Playwright's Python
# package). Playwright's own browser download cannot work here, so the tests launch
# /usr/bin/chromium; this installs it from Debian when it is missing. Requires common.sh.

CHROMIUM_BIN="${AICODE_TEST_CHROMIUM:-/usr/bin/chromium}"

_chromium_ok() {
    [[ -x $CHROMIUM_BIN ]] && "$CHROMIUM_BIN" --version >/dev/null 2>&1
}

ensure_chromium() {
    if _chromium_ok; then
        log "$("$CHROMIUM_BIN" --version 2>/dev/null) already installed: $CHROMIUM_BIN"
        return 0
    fi
    log "installing Debian's chromium for the browser tests"
    # fonts-dejavu-core: text in screenshots renders the same on a minimal machine.
    apt_install chromium fonts-dejavu-core
    _chromium_ok || die "$CHROMIUM_BIN is missing or does not run after installing Debian's chromium"
    log "$("$CHROMIUM_BIN" --version 2>/dev/null) at $CHROMIUM_BIN"
}
