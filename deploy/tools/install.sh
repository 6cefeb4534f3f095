#!/usr/bin/env bash
# Installs the tools tests/deploy uses, into .tools/ (idempotent; a second run takes ~1 s):
#   .tools/bin/kustomize     kustomize, built with `go install` from the Go module proxy
#   .tools/bin/promtool      promtool, from Debian's `prometheus` package (extracted: no server
#                            is installed or started)
#   .tools/deploy-venv/      checkov, kubernetes-validate (ships the Kubernetes schemas) and
#                            check-jsonschema (ships the compose-spec schema), hash-locked in
#                            deploy/tools/requirements.txt, apart from the project's own lock
# Needs: go, apt-get (root for `apt-get update` when the package lists are empty), uv.
set -euo pipefail

KUSTOMIZE_VERSION=v5.8.1
PROMETHEUS_DEB=prometheus  # Debian 12: 2.42.0

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tools="$root/.tools"
bin="$tools/bin"
venv="$tools/deploy-venv"
reqs="$root/deploy/tools/requirements.txt"
mkdir -p "$bin"

log() { printf 'deploy-tools: %s\n' "$*" >&2; }

install_kustomize() {
    if [[ -x "$bin/kustomize" ]] && "$bin/kustomize" version 2>/dev/null | grep -qx "$KUSTOMIZE_VERSION"; then
        return
    fi
    local go
    go="$(command -v go || true)"
    [[ -n "$go" ]] || go=/usr/local/go/bin/go
    [[ -x "$go" ]] || { log "go not found: needed to build kustomize"; exit 1; }
    log "building kustomize $KUSTOMIZE_VERSION (go install, about a minute)"
    # GOTOOLCHAIN=local: build with the Go that is here, never fetch another toolchain.
    GOBIN="$bin" GOTOOLCHAIN=local GOFLAGS=-buildvcs=false \
        "$go" install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
}

install_promtool() {
    if [[ -x "$bin/promtool" ]] && "$bin/promtool" --version >/dev/null 2>&1; then
        return
    fi
    log "fetching promtool from Debian's $PROMETHEUS_DEB package"
    local tmp
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' RETURN
    if ! (cd "$tmp" && apt-get download -q "$PROMETHEUS_DEB" >/dev/null 2>&1); then
        if [[ "$(id -u)" -eq 0 ]]; then
            apt-get update -qq
        else
            sudo apt-get update -qq
        fi
        (cd "$tmp" && apt-get download -q "$PROMETHEUS_DEB" >/dev/null)
    fi
    dpkg-deb -x "$tmp"/"$PROMETHEUS_DEB"_*.deb "$tmp/x"
    install -m 0755 "$tmp/x/usr/bin/promtool" "$bin/promtool"
}

install_venv() {
    local stamp
    stamp="$venv/.requirements-$(sha256sum "$reqs" | cut -c1-16)"
    [[ -f "$stamp" ]] && return
    local uv
    uv="$(command -v "$tools/bin/uv" || command -v uv || true)"
    [[ -n "$uv" ]] || { log "uv not found (run \`make install\` first)"; exit 1; }
    log "syncing $venv from deploy/tools/requirements.txt"
    [[ -x "$venv/bin/python" ]] || "$uv" venv -q --python 3.11 --python-preference only-system "$venv"
    "$uv" pip sync -q --python "$venv/bin/python" --require-hashes "$reqs"
    rm -f "$venv"/.requirements-*
    touch "$stamp"
}

install_kustomize
install_promtool
install_venv
log "ready: kustomize $("$bin/kustomize" version), $("$bin/promtool" --version 2>&1 | head -1), tools venv $venv"
