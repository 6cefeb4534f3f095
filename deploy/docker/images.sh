#!/usr/bin/env bash
# The images docker-compose.yml and the engine tests run, built without an image registry when
# none answers (Makefile: images, base-images, wheelhouse).
#
#   images.sh bases       Kafka, Redis, Prometheus and the Python base image; writes
#                         .tickpipe/images.env (KAFKA_IMAGE=..., for compose and the tests)
#   images.sh wheelhouse  .tickpipe/wheelhouse: the locked runtime dependencies as published on
#                         PyPI (checked against uv.lock's hashes) and the workspace members'
#                         wheels, built here on the host
#   images.sh tickpipe    the wheelhouse, then the tickpipe image (deploy/Dockerfile) as
#                         $TICKPIPE_IMAGE; nothing is fetched inside `docker build`
#   images.sh all         bases, then tickpipe (the default)
#
# Where each base image comes from (TICKPIPE_IMAGES, default auto):
#   auto      the public image if it is here or can be pulled, else its local equivalent
#   registry  the public image, pulled if missing
#   local     the local equivalents, always
# Local equivalents: a minimal Debian root file system (debootstrap --variant=minbase, imported
# with `docker import`) with Python 3.11, a JRE, Redis or Prometheus from Debian's packages, and
# Kafka from its Maven Central jars on the JRE. KAFKA_IMAGE, REDIS_IMAGE, PROMETHEUS_IMAGE,
# PYTHON_IMAGE set in the environment are used as given.
#
# Caches, outside the checkout (TICKPIPE_CACHE_DIR, default ~/.cache/tickpipe): downloaded
# .debs, the root file systems as tarballs, the Kafka jars and the third-party wheels, each keyed
# by what it is built from. Docker keeps the images; a warm run rebuilds nothing.
set -euo pipefail
shopt -s inherit_errexit

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/deploy/docker"
DOCKER=/usr/bin/docker  # Debian's CLI: BuildKit without the buildx plugin
export DOCKER_BUILDKIT=1
CACHE="${TICKPIPE_CACHE_DIR:-$HOME/.cache/tickpipe}"
STATE="$ROOT/.tickpipe"
ENV_FILE="$STATE/images.env"
WHEELHOUSE="$STATE/wheelhouse"
MODE="${TICKPIPE_IMAGES:-auto}"
TICKPIPE_IMAGE="${TICKPIPE_IMAGE:-tickpipe:local}"

# Today's public images (also the defaults in docker-compose.yml and deploy/Dockerfile).
PUBLIC_PYTHON=python:3.11.14-slim-bookworm
PUBLIC_KAFKA=apache/kafka:4.1.1
PUBLIC_REDIS=redis:7.4.2-alpine
PUBLIC_PROMETHEUS=prom/prometheus:v2.53.4
# Their local equivalents.
LOCAL_PYTHON=tickpipe-local/python:3.11-bookworm
LOCAL_KAFKA=tickpipe-local/kafka:4.1.1
LOCAL_REDIS=tickpipe-local/redis:7-bookworm
LOCAL_PROMETHEUS=tickpipe-local/prometheus:2-bookworm
JRE_ROOTFS=tickpipe-local/debian-jre:17-bookworm
REDIS_ROOTFS=tickpipe-local/debian-redis:bookworm
PROMETHEUS_ROOTFS=tickpipe-local/debian-prometheus:bookworm
SUITE=bookworm
# Bump to rebuild every root file system (a change to rootfs() below).
ROOTFS_RECIPE=2

log() { printf 'images: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

engine() {
    [[ -x "$DOCKER" ]] || die "$DOCKER not found: make docker-engine"
    timeout 10 "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1 \
        || die "no Docker engine answers: make docker-engine"
}

# Serialize with concurrent runs on the same machine (shared caches and tags).
lock() {
    mkdir -p "$CACHE"
    exec 8>"$CACHE/images.lock"
    flock 8
}

mirror() {
    [[ -n "${DEBIAN_MIRROR:-}" ]] && { echo "$DEBIAN_MIRROR"; return; }
    local found
    found="$(grep -hsE '^(URIs:|deb) ' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list \
        | grep -v security | grep -oE 'https?://[^ ]+/debian/?' | head -1 || true)"
    echo "${found:-http://deb.debian.org/debian}"
}

present() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

label() { "$DOCKER" image inspect -f "{{index .Config.Labels \"$2\"}}" "$1" 2>/dev/null || true; }

# docker build, quiet unless it fails.
build() {
    local out
    out="$(mktemp)"
    if ! "$DOCKER" build --progress=plain "$@" >"$out" 2>&1; then
        tail -n 40 "$out" >&2
        rm -f "$out"
        die "docker build $* failed"
    fi
    rm -f "$out"
}

# A Debian root file system with the given packages, imported as an image. $1: tag, $2: packages
# (comma-separated), then `docker import --change` instructions.
rootfs() {
    local tag="$1" packages="$2" key tar dir
    shift 2
    key="$(printf '%s\n' "$ROOTFS_RECIPE" "$SUITE" "$packages" "$@" | sha256sum | cut -c1-16)"
    [[ "$(label "$tag" io.tickpipe.rootfs)" == "$key" ]] && return 0
    tar="$CACHE/rootfs/${tag//[\/:]/_}-$key.tar"
    if [[ ! -f "$tar" ]]; then
        [[ "$(id -u)" -eq 0 ]] || die "building $tag needs debootstrap as root (or a registry)"
        command -v debootstrap >/dev/null || die "debootstrap not installed: make docker-engine"
        mkdir -p "$CACHE/rootfs" "$CACHE/debs"
        dir="$(mktemp -d "$CACHE/rootfs/build.XXXXXX")"
        # A private copy (hard links) of the shared .deb cache: concurrent builds never see
        # each other's half-downloaded files; new downloads are linked back afterwards.
        mkdir "$dir/debs"
        find "$CACHE/debs" -maxdepth 1 -name '*.deb' -exec ln -t "$dir/debs" {} +
        log "debootstrap $SUITE with $packages for $tag (about a minute)"
        if ! debootstrap --variant=minbase --include="$packages" --cache-dir="$dir/debs" \
            "$SUITE" "$dir/root" "$(mirror)" >"$dir/log" 2>&1; then
            tail -n 20 "$dir/log" >&2
            tail -n 20 "$dir/root/debootstrap/debootstrap.log" >&2 2>/dev/null || true
            rm -rf "$dir"
            die "debootstrap failed for $tag"
        fi
        # What an image needs no copy of: package caches and lists, documentation (copyright
        # files stay), logs, and the host's resolver and name (Docker provides both).
        (
            cd "$dir/root"
            rm -rf var/cache/apt/archives/*.deb var/cache/apt/*.bin var/lib/apt/lists/* \
                usr/share/man/* usr/share/info/* usr/share/locale/* var/log/* tmp/* \
                etc/resolv.conf etc/hostname etc/machine-id
            find usr/share/doc -type f ! -name copyright -delete
            find usr/share/doc -type d -empty -delete
        )
        find "$dir/debs" -maxdepth 1 -name '*.deb' -links 1 -exec ln -f -t "$CACHE/debs" {} +
        tar --numeric-owner -C "$dir/root" -cf "$tar.partial" .
        mv "$tar.partial" "$tar"
        rm -rf "$dir"
    fi
    local changes=() change
    for change in "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        "ENV LANG=C.UTF-8" "LABEL io.tickpipe.rootfs=$key" "$@"; do
        changes+=(--change "$change")
    done
    log "importing $tag"
    "$DOCKER" import "${changes[@]}" "$tar" "$tag" >/dev/null
}

# The Kafka jars of deploy/docker/kafka/pom.xml, resolved once per pom.
kafka_jars() {
    local pom="$HERE/kafka/pom.xml" key home
    key="$(sha256sum "$pom" | cut -c1-16)"
    home="$CACHE/kafka-image-$key"
    if [[ ! -f "$home/.complete" ]]; then
        command -v mvn >/dev/null || die "Maven (mvn) is needed once to fetch the Kafka jars"
        log "resolving the Kafka jars from Maven Central"
        rm -rf "$home"
        mkdir -p "$home"
        cp "$pom" "$home/pom.xml"  # Maven writes nothing into the checkout
        if ! mvn -q -B -f "$home/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
            -DoutputDirectory="$home/libs" >"$home/mvn.log" 2>&1; then
            tail -n 30 "$home/mvn.log" >&2
            die "Maven could not resolve the Kafka jars"
        fi
        ls "$home/libs"/kafka_2.13-*.jar >/dev/null
        touch "$home/.complete"
    fi
    echo "$home/libs"
}

local_python() {
    rootfs "$LOCAL_PYTHON" python3.11,python3.11-venv,python3-distutils,ca-certificates \
        'CMD ["python3.11"]'
}

local_kafka() {
    local stage libs
    rootfs "$JRE_ROOTFS" openjdk-17-jre-headless
    libs="$(kafka_jars)"
    stage="$(mktemp -d "$STATE/kafka-image.XXXXXX")"
    cp -r "$HERE/kafka/." "$stage/"
    cp -l "$libs"/*.jar "$stage/libs/" 2>/dev/null || { mkdir -p "$stage/libs"; cp "$libs"/*.jar "$stage/libs/"; }
    build --build-arg "JRE_IMAGE=$JRE_ROOTFS" -t "$LOCAL_KAFKA" "$stage"
    rm -rf "$stage"
}

local_redis() {
    rootfs "$REDIS_ROOTFS" redis-server
    build --build-arg "REDIS_BASE=$REDIS_ROOTFS" -t "$LOCAL_REDIS" "$HERE/redis"
}

local_prometheus() {
    rootfs "$PROMETHEUS_ROOTFS" prometheus,wget
    build --build-arg "PROMETHEUS_BASE=$PROMETHEUS_ROOTFS" -t "$LOCAL_PROMETHEUS" \
        "$HERE/prometheus"
}

# Picks one base image; prints VAR=image. $1: variable, $2: public image, $3: local builder,
# $4: its local tag.
resolve() {
    local var="$1" public="$2" builder="$3" local_tag="$4" given reason
    given="${!var:-}"
    if [[ -n "$given" ]]; then
        present "$given" || "$DOCKER" pull -q "$given" >/dev/null \
            || die "$var=$given: not here and cannot be pulled"
        echo "$var=$given"
        return
    fi
    case "$MODE" in
        registry)
            present "$public" || "$DOCKER" pull -q "$public" >/dev/null || die "cannot pull $public"
            echo "$var=$public"
            ;;
        local)
            "$builder"
            echo "$var=$local_tag"
            ;;
        auto)
            if present "$public"; then
                echo "$var=$public"
            elif reason="$(timeout 120 "$DOCKER" pull -q "$public" 2>&1 >/dev/null)"; then
                echo "$var=$public"
            else
                log "$public cannot be pulled (${reason:-timed out}): using $local_tag"
                "$builder"
                echo "$var=$local_tag"
            fi
            ;;
        *) die "TICKPIPE_IMAGES=$MODE: expected auto, registry or local" ;;
    esac
}

bases() {
    engine
    lock
    mkdir -p "$STATE"
    # The four at once: a cold local build is mostly debootstrap waiting on dpkg and the network.
    local out pids=() pid failed=0 lines
    out="$(mktemp -d)"
    resolve PYTHON_IMAGE "$PUBLIC_PYTHON" local_python "$LOCAL_PYTHON" >"$out/1" & pids+=($!)
    resolve KAFKA_IMAGE "$PUBLIC_KAFKA" local_kafka "$LOCAL_KAFKA" >"$out/2" & pids+=($!)
    resolve REDIS_IMAGE "$PUBLIC_REDIS" local_redis "$LOCAL_REDIS" >"$out/3" & pids+=($!)
    resolve PROMETHEUS_IMAGE "$PUBLIC_PROMETHEUS" local_prometheus "$LOCAL_PROMETHEUS" \
        >"$out/4" & pids+=($!)
    for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
    lines="$(cat "$out"/1 "$out"/2 "$out"/3 "$out"/4)"
    rm -rf "$out"
    ((failed == 0)) || die "some base images could not be had (above)"
    {
        echo "# Written by deploy/docker/images.sh: the images this machine runs compose with."
        echo "# docker-compose --env-file .tickpipe/images.env ... (or export them)"
        echo "$lines"
        echo "TICKPIPE_IMAGE=$TICKPIPE_IMAGE"
    } >"$ENV_FILE.new"
    mv "$ENV_FILE.new" "$ENV_FILE"
    log "wrote $ENV_FILE: $(echo "$lines" | tr '\n' ' ')"
}

tool() {  # the pinned uv and pip of the Makefile's .tools, else PATH's
    local candidate
    for candidate in "$ROOT/.tools/bin/$1" "$(command -v "$1" || true)"; do
        [[ -n "$candidate" && -x "$candidate" ]] && { echo "$candidate"; return; }
    done
    die "$1 not found: make install"
}

# pip's platform tags for a manylinux (glibc) Linux: every manylinux level up to Debian
# bookworm's glibc 2.36, so that the choice never depends on the machine building it.
platforms() {
    local arch minor
    arch="$(uname -m)"
    for minor in $(seq 36 -1 17); do printf -- '--platform manylinux_2_%s_%s ' "$minor" "$arch"; done
    printf -- '--platform manylinux2014_%s --platform linux_%s' "$arch" "$arch"
}

wheelhouse() {
    local uv pip req key cache new
    uv="$(tool uv)"
    pip="$(tool pip)"
    mkdir -p "$STATE" "$CACHE/wheelhouse"
    req="$(mktemp)"
    # What `uv sync --frozen --no-default-groups --all-packages` installs, less the members.
    "$uv" export --project "$ROOT" --frozen --no-default-groups --all-packages \
        --no-emit-workspace --no-header -q -o "$req"
    key="$( (cat "$req"; uname -m) | sha256sum | cut -c1-16)"
    cache="$CACHE/wheelhouse/$key"
    if [[ ! -f "$cache/.complete" ]]; then
        log "downloading the locked wheels (PyPI, checked against uv.lock's hashes)"
        rm -rf "$cache.partial"
        mkdir -p "$cache.partial"
        # pip decides markers by the interpreter it runs on, not the image's: decide them here
        # for CPython 3.11 on Linux, patch level unknown (the image's interpreter decides again).
        "$ROOT/.venv/bin/python" "$HERE/target_requirements.py" "$(uname -m)" <"$req" >"$req.target"
        # shellcheck disable=SC2046 # platforms() is a word list
        PIP_FIND_LINKS='' PIP_NO_INDEX='' "$pip" download -q --disable-pip-version-check \
            --no-deps --require-hashes --only-binary=:all: $(platforms) \
            --python-version 3.11 --implementation cp -d "$cache.partial" -r "$req.target"
        cp "$req" "$cache.partial/requirements.txt"
        touch "$cache.partial/.complete"
        rm -rf "$cache"
        mv "$cache.partial" "$cache"
    fi
    rm -f "$req" "$req.target"
    new="$WHEELHOUSE.new.$$"
    rm -rf "$new"
    mkdir -p "$new/deps" "$new/members"
    cp -l "$cache"/*.whl "$cache/requirements.txt" "$new/deps/" 2>/dev/null \
        || cp "$cache"/*.whl "$cache/requirements.txt" "$new/deps/"
    # Hatchling's wheels are reproducible: unchanged sources, the same bytes, a cached layer.
    "$uv" build --project "$ROOT" --all-packages --wheel -q -o "$new/members"
    rm -rf "$WHEELHOUSE"
    mv "$new" "$WHEELHOUSE"
    log "wheelhouse: $(ls "$WHEELHOUSE/deps" | grep -c '\.whl$') locked wheels, $(ls "$WHEELHOUSE/members" | wc -l) members"
}

tickpipe() {
    engine
    [[ -f "$ENV_FILE" ]] || bases
    wheelhouse  # the members as the checkout has them now (seconds when the lock is cached)
    local python
    python="$(sed -n 's/^PYTHON_IMAGE=//p' "$ENV_FILE")"
    log "building $TICKPIPE_IMAGE on $python"
    build -f "$ROOT/deploy/Dockerfile" --build-arg "PYTHON_IMAGE=$python" -t "$TICKPIPE_IMAGE" "$ROOT"
    log "$TICKPIPE_IMAGE: $("$DOCKER" image inspect -f '{{.Size}}' "$TICKPIPE_IMAGE" \
        | awk '{printf "%.0f MB", $1 / 1e6}')"
}

case "${1:-all}" in
    bases) bases ;;
    wheelhouse) wheelhouse ;;
    tickpipe) tickpipe ;;
    all) bases; tickpipe ;;
    *) die "usage: images.sh [bases|wheelhouse|tickpipe|all]" ;;
esac
