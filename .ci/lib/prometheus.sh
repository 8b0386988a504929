# shellcheck shell=bash
# Debian's Prometheus for the metrics tests: tests/test_metrics.py starts a real Prometheus that
# scrapes a running server, and checks deploy/prometheus/alerts.yml with promtool. The package's
# own service is never started (there is no systemd here); the tests run their own instance on
# 127.0.0.1. Requires common.sh.

_prometheus_ok() {
    command -v prometheus >/dev/null && command -v promtool >/dev/null && prometheus --version >/dev/null 2>&1
}

ensure_prometheus() {
    if _prometheus_ok; then
        log "$(prometheus --version 2>&1 | head -1) already installed"
        return 0
    fi
    log "installing Debian's prometheus (for the scrape test and promtool)"
    # The package's post-install tries to start its service; with no init system that fails harmlessly.
    apt_install prometheus
    _prometheus_ok || die "prometheus or promtool is missing after installing Debian's prometheus"
    log "$(prometheus --version 2>&1 | head -1)"
}
