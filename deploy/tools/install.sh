#!/usr/bin/env bash
# Installs the tools tests/deploy uses, into .tools/ (idempotent; a second run takes ~1 s):
#   .tools/bin/kustomize     kustomize, built with `go install` from the Go module proxy
#   .tools/bin/promtool      promtool, from Debian's `prometheus` package (extracted: no server
#                            is installed or started)
#   .tools/deploy-venv/      checkov, kubernetes-validate (ships the Kubernetes schemas) and
#                            check-jsonschema (ships the compose-spec schema), hash-locked in
#                            deploy/tools/requirements.txt, apart from the project's own lock
#   .tools/bin/kube-apiserver, kubectl
#                            a real API server (and its client) for `kubectl apply
#                            --dry-run=server`, built from k8s.io/kubernetes through the Go
#                            module proxy (about 5 minutes once; kept under
#                            ~/.cache/tickpipe/kube-<version> for later checkouts)
#   .tools/bin/etcd          its store, from Debian's `etcd-server` package (extracted)
#   .tools/crds/             the Prometheus Operator's CRDs (its Go module, through the proxy)
# Needs: go, apt-get (root for `apt-get update` when the package lists are empty), uv.
set -euo pipefail

KUSTOMIZE_VERSION=v5.8.1
PROMETHEUS_DEB=prometheus  # Debian 12: 2.42.0
K8S_VERSION=v1.37.2        # the newest Kubernetes tests/deploy validates against
ETCD_DEB=etcd-server       # Debian 12: 3.4.23
PROMETHEUS_OPERATOR_VERSION=v0.85.0

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tools="$root/.tools"
bin="$tools/bin"
venv="$tools/deploy-venv"
reqs="$root/deploy/tools/requirements.txt"
mkdir -p "$bin"

cache="${TICKPIPE_CACHE_DIR:-$HOME/.cache/tickpipe}"

log() { printf 'deploy-tools: %s\n' "$*" >&2; }

go_bin() {
    local go
    go="$(command -v go || true)"
    [[ -n "$go" ]] || go=/usr/local/go/bin/go
    [[ -x "$go" ]] || { log "go not found: needed to build $1"; exit 1; }
    echo "$go"
}

# A Debian package's file, extracted (nothing installed or started). $1: package, $2: file, $3: to.
deb_file() {
    local tmp
    tmp="$(mktemp -d)"
    if ! (cd "$tmp" && apt-get download -q "$1" >/dev/null 2>&1); then
        if [[ "$(id -u)" -eq 0 ]]; then
            apt-get update -qq
        else
            sudo apt-get update -qq
        fi
        (cd "$tmp" && apt-get download -q "$1" >/dev/null)
    fi
    dpkg-deb -x "$tmp"/"$1"_*.deb "$tmp/x"
    install -m 0755 "$tmp/x/$2" "$3"
    rm -rf "$tmp"
}

install_kustomize() {
    if [[ -x "$bin/kustomize" ]] && "$bin/kustomize" version 2>/dev/null | grep -qx "$KUSTOMIZE_VERSION"; then
        return
    fi
    local go
    go="$(go_bin kustomize)"
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
    deb_file "$PROMETHEUS_DEB" usr/bin/promtool "$bin/promtool"
}

install_etcd() {
    [[ -x "$bin/etcd" ]] && "$bin/etcd" --version >/dev/null 2>&1 && return
    log "fetching etcd from Debian's $ETCD_DEB package"
    deb_file "$ETCD_DEB" usr/bin/etcd "$bin/etcd"
}

# kube-apiserver and kubectl from k8s.io/kubernetes. Its go.mod points every k8s.io/* staging
# module at ./staging, which only a checkout has: a module of our own requires kubernetes and
# pins each of them to the matching v0.x release instead.
install_kube() {
    local built="$cache/kube-$K8S_VERSION/bin" minor="${K8S_VERSION#v1.}"
    minor="${minor%%.*}"
    if [[ ! -x "$built/kube-apiserver" || ! -x "$built/kubectl" ]]; then
        local go work gomod pkg flags=""
        go="$(go_bin kube-apiserver)"
        work="$(mktemp -d)"
        log "building kube-apiserver and kubectl $K8S_VERSION (go build, about 5 minutes once)"
        gomod="$(cd "$work" && GOTOOLCHAIN=local GOFLAGS=-mod=mod "$go" mod download -json \
            "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
        {
            printf 'module tickpipe.local/kube\n\ngo %s\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' \
                "$(sed -n 's/^go //p' "$gomod")" "$K8S_VERSION"
            sed -n 's|^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/.*|\t\1 => \1 v0.'"${K8S_VERSION#v1.}"'|p' "$gomod"
            printf ')\n'
        } >"$work/go.mod"
        # The version the binaries report, as Kubernetes' own build stamps it.
        for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
            flags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
            flags+=" -X $pkg.gitTreeState=clean"
        done
        mkdir -p "$built.partial"
        (cd "$work" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false" \
            "$go" build -trimpath -ldflags "-s -w$flags" -o "$built.partial/" \
            k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl)
        rm -rf "$built" "$work"
        mv "$built.partial" "$built"
    fi
    install -m 0755 "$built/kube-apiserver" "$built/kubectl" "$bin/"
}

# The Prometheus Operator's CRDs (ServiceMonitor, PrometheusRule: the prod overlay uses them),
# from its Go module, so the API server validates those objects against their real schemas.
install_crds() {
    local crds="$tools/crds" dir go kind
    [[ -f "$crds/.$PROMETHEUS_OPERATOR_VERSION" ]] && return
    go="$(go_bin crds)"
    dir="$(cd "$tools" && GOTOOLCHAIN=local GOFLAGS=-mod=mod "$go" mod download -json \
        "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" \
        | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    rm -rf "$crds"
    mkdir -p "$crds"
    for kind in servicemonitors prometheusrules; do
        cp "$dir/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" "$crds/"
    done
    touch "$crds/.$PROMETHEUS_OPERATOR_VERSION"
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
install_etcd
install_kube
install_crds
log "ready: kustomize $("$bin/kustomize" version), $("$bin/promtool" --version 2>&1 | head -1), tools venv $venv"
log "ready: $("$bin/kube-apiserver" --version), etcd $("$bin/etcd" --version | head -1 | cut -d' ' -f3), CRDs $PROMETHEUS_OPERATOR_VERSION"
