#!/usr/bin/env bash
# A Docker engine for the image builds and the engine tests (Makefile: docker-engine, test).
#
#   engine.sh install        Debian's docker.io, docker-compose and debootstrap, if missing (root)
#   engine.sh start          install, then start dockerd unless an engine already answers; it
#                            stays up until `engine.sh stop`
#   engine.sh run -- CMD...  install, start dockerd if none answers, run CMD, then stop dockerd
#                            again if this script started it for a run and no other run still
#                            uses it (concurrent runs hold leases)
#   engine.sh stop           stop the dockerd this script started, unless a run still uses it
#   engine.sh status
#
# An engine this script did not start (a system service, a remote DOCKER_HOST) is used as it
# is and never stopped. With DOCKER_HOST=unix:///some.sock, a dockerd started here listens
# there instead of /var/run/docker.sock (a private engine). Debian's CLI is called by path: a
# /usr/local/bin/docker found first on PATH may be a newer client that refuses BuildKit
# without the buildx plugin.
set -euo pipefail

DOCKER=/usr/bin/docker
if [[ "$(id -u)" -eq 0 ]]; then
    STATE="${TICKPIPE_DOCKERD_STATE:-/run/tickpipe-dockerd}"
else  # only root starts an engine; the leases of other users' runs live in their own folder
    STATE="${TICKPIPE_DOCKERD_STATE:-${XDG_RUNTIME_DIR:-/tmp}/tickpipe-dockerd-$(id -u)}"
fi
PIDFILE="$STATE/dockerd.pid"   # the dockerd this script started
MODE="$STATE/mode"             # `persistent` (engine.sh start) or `run` (engine.sh run)
LEASES="$STATE/leases"         # one file per run in progress, named by its pid
LOG="$STATE/dockerd.log"

log() { printf 'docker-engine: %s\n' "$*" >&2; }

answers() {
    [[ -x "$DOCKER" ]] && timeout 10 "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1
}

is_root() { [[ "$(id -u)" -eq 0 ]]; }

install() {
    local missing=()
    # An engine installed some other way (docker-ce) is left alone: installing docker.io
    # beside it would replace its containerd.
    [[ -x /usr/sbin/dockerd ]] || command -v dockerd >/dev/null || missing+=(docker.io)
    [[ -x /usr/bin/docker-compose ]] || missing+=(docker-compose)
    [[ -x /usr/sbin/debootstrap ]] || missing+=(debootstrap)
    ((${#missing[@]})) || return 0
    if ! is_root; then
        log "missing ${missing[*]}: as root, apt-get install -y ${missing[*]}"
        answers && return 0  # an engine runs: what needs the rest says so itself
        exit 1
    fi
    log "installing ${missing[*]} (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    }
}

# The dockerd this script started, if it still runs.
our_pid() {
    local pid
    [[ -f "$PIDFILE" ]] || return 1
    pid="$(cat "$PIDFILE")"
    [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q '^[^ ]*dockerd ' || return 1
    echo "$pid"
}

live_leases() {
    local lease n=0
    for lease in "$LEASES"/*; do
        [[ -e "$lease" ]] || continue
        if kill -0 "$(basename "$lease")" 2>/dev/null; then
            n=$((n + 1))
        else
            rm -f "$lease"  # a run that died without releasing
        fi
    done
    echo "$n"
}

# Serialize start/stop decisions between concurrent runs.
locked() {
    mkdir -p "$STATE" "$LEASES"
    exec 9>"$STATE/lock"
    flock 9
}

unlock() { flock -u 9; }

start_dockerd() {  # $1: persistent | run
    is_root || { log "no Docker engine answers and starting one needs root"; exit 1; }
    [[ -x /usr/sbin/dockerd ]] || { log "dockerd not installed: engine.sh install"; exit 1; }
    # A DOCKER_HOST naming a unix socket is where the new engine listens (a private engine
    # beside the default socket); otherwise dockerd's default, /var/run/docker.sock.
    local listen=()
    [[ "${DOCKER_HOST:-}" == unix://* ]] && listen=(--host "$DOCKER_HOST")
    log "starting dockerd ${listen[*]} (log: $LOG)"
    # Its own session: it outlives make and is not killed with the caller's process group.
    setsid /usr/sbin/dockerd --pidfile "$PIDFILE" "${listen[@]}" >>"$LOG" 2>&1 </dev/null 9>&- &
    echo "$1" >"$MODE"
    local i
    for i in $(seq 1 120); do
        answers && { log "dockerd answers ($(("$i" / 2)) s)"; return 0; }
        kill -0 "$!" 2>/dev/null || break
        sleep 0.5
    done
    log "dockerd did not answer; the end of its log:"
    tail -n 30 "$LOG" >&2 || true
    exit 1
}

stop_dockerd() {
    local pid i
    pid="$(our_pid)" || { rm -f "$PIDFILE" "$MODE"; return 0; }
    log "stopping the dockerd started here (pid $pid)"
    kill -TERM "$pid"
    for i in $(seq 1 60); do  # it stops its containers first (10 s each at most)
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    kill -0 "$pid" 2>/dev/null && { log "dockerd did not stop; killing it"; kill -KILL "$pid"; }
    rm -f "$PIDFILE" "$MODE"
}

cmd_start() {  # $1: persistent | run
    install
    locked
    if ! answers; then
        our_pid >/dev/null && { log "the dockerd started here runs but does not answer"; exit 1; }
        start_dockerd "$1"
    fi
    unlock
}

release() {
    locked
    rm -f "$LEASES/$$"
    if [[ "$(live_leases)" -eq 0 && "$(cat "$MODE" 2>/dev/null)" == run ]]; then
        stop_dockerd
    fi
    unlock
}

cmd_run() {
    cmd_start run
    locked
    touch "$LEASES/$$"
    unlock
    # Interrupted (Ctrl-C reaches the command too), the run still gives the engine back once
    # the command ends; a run killed outright leaves a lease the next start or stop drops.
    trap 'release; exit 130' INT
    trap 'release; exit 143' TERM
    local rc=0
    "$@" 9>&- || rc=$?
    trap - INT TERM
    release
    return "$rc"
}

cmd_stop() {
    locked
    local n
    n="$(live_leases)"
    if [[ "$n" -gt 0 ]]; then
        log "$n run(s) still use the engine: left running"
    else
        stop_dockerd
    fi
    unlock
}

cmd_status() {
    local pid
    if answers; then
        echo "engine: answers ($("$DOCKER" version --format '{{.Server.Version}}'))"
    else
        echo "engine: none answers"
    fi
    if pid="$(our_pid)"; then
        echo "started here: pid $pid ($(cat "$MODE" 2>/dev/null)), $(live_leases) run(s) using it"
    fi
}

case "${1:-}" in
    install) install ;;
    start) cmd_start persistent ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    run)
        shift
        [[ "${1:-}" == "--" ]] && shift
        (($#)) || { log "usage: engine.sh run -- COMMAND..."; exit 2; }
        cmd_run "$@"
        ;;
    *) log "usage: engine.sh install|start|stop|status|run -- COMMAND..."; exit 2 ;;
esac
