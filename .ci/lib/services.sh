# shellcheck shell=bash
# Bring up what the test suite talks to: a Docker engine (plus debootstrap,
# which builds the workspace image without any registry), PostgreSQL and
# Redis. Every function is idempotent: it checks first and only acts when the
# thing is missing or down, so running it on a warm machine costs ~0.1 s.
# Requires common.sh.

DOCKERD_LOG="${DOCKERD_LOG:-/var/log/aicode-ci-dockerd.log}"

# (a) Packages. Debian's docker.io installs in ~10 s; nothing is pulled from a
# container registry here (none is reachable), so debootstrap is what gives us
# a base filesystem for the workspace image.
ensure_packages() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    # nft: aicode filters an agent container's traffic to the gateway's ports (as root).
    [[ -x /usr/sbin/nft ]] || missing+=(nftables)
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        apt_install "${missing[@]}"
    fi
}

# (b) The Docker engine. There is no systemd to start it, so run dockerd in
# the background ourselves. --iptables=false/--ip-masq=false: this sandbox
# does not let dockerd program iptables NAT, and the tests need no egress
# (containers use network "none", or "host" to reach a mock on 127.0.0.1).
ensure_dockerd() {
    if docker info >/dev/null 2>&1; then
        return 0
    fi
    log "starting dockerd (log: $DOCKERD_LOG)"
    # setsid + nohup: detach it from this script's process group and stdin so
    # it survives the end of this shell and never waits on a terminal.
    setsid nohup dockerd --iptables=false --ip-masq=false \
        </dev/null >>"$DOCKERD_LOG" 2>&1 &
    if ! wait_for 60 docker info; then
        tail -n 30 "$DOCKERD_LOG" >&2 || true
        die "dockerd did not answer 'docker info' within 60 s"
    fi
    log "dockerd is up: $(docker info --format '{{.ServerVersion}} storage={{.Driver}} cgroup={{.CgroupVersion}}')"
}

# (c) PostgreSQL. On this project's machines it already runs (trust auth on
# 127.0.0.1:5432); after a machine restart it may not, so start the Debian
# cluster. pg_ctlcluster would otherwise hand over to systemctl, which does
# not exist here, hence --skip-systemctl-redirect.
ensure_postgres() {
    if pg_isready -q -h 127.0.0.1 -p 5432; then
        return 0
    fi
    command -v pg_ctlcluster >/dev/null ||
        die "PostgreSQL is not running and not installed (expected Debian's postgresql package)"
    local version
    # The newest installed major version, should there be more than one.
    version=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
    [[ -n $version ]] || die "no cluster under /etc/postgresql"
    log "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
    wait_for 30 pg_isready -q -h 127.0.0.1 -p 5432 ||
        die "PostgreSQL did not become ready on 127.0.0.1:5432 within 30 s"
}

# Redis: same story. Persistence off: the tests need none, and it keeps a
# restart from replaying an old dump.
ensure_redis() {
    if [[ $(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null) == PONG ]]; then
        return 0
    fi
    command -v redis-server >/dev/null ||
        die "Redis is not running and not installed (expected Debian's redis-server package)"
    log "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 \
        --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
    wait_for 30 redis-cli -h 127.0.0.1 -p 6379 ping ||
        die "Redis did not answer on 127.0.0.1:6379 within 30 s"
}

ensure_services() {
    ensure_packages
    ensure_dockerd
    ensure_postgres
    ensure_redis
}
