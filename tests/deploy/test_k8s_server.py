"""Both overlays against a real Kubernetes API server: `kubectl apply --dry-run=server`.

The API server (kube-apiserver built from k8s.io/kubernetes at the version deploy/tools/
install.sh pins, on Debian's etcd) runs for this module on loopback ports, with a token made
here. Server-side dry runs go through everything a real apply does short of storing: defaulting,
validation against the server's own schemas (and the Prometheus Operator's CRDs for the prod
overlay's ServiceMonitors and PrometheusRule), and admission, Pod Security included: the
overlays' namespaces enforce the `restricted` profile, and a Pod made from each workload's
template is admitted there while a Pod running as root is refused. There is no node: nothing
is scheduled or run (tests/deploy/test_manifests_run.py runs the workloads as processes).
"""

from __future__ import annotations

import re
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.deploy.test_k8s import K8S_VERSIONS
from tests.deploy.tools import OVERLAYS, ROOT, SERVICES, TOOLS, load_all, missing, run, tool
from tickpipe.infra import free_port

pytestmark = pytest.mark.timeout(600)

K8S_VERSION = re.search(r"^K8S_VERSION=(\S+)", (ROOT / "deploy/tools/install.sh").read_text(), re.M)
CRDS = TOOLS / "crds"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")


@dataclass
class ApiServer:
    kubectl: Path
    kubeconfig: Path

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return run([self.kubectl, "--kubeconfig", self.kubeconfig, *args], input=stdin)

    def apply(self, docs: list[dict[str, Any]], *flags: str) -> subprocess.CompletedProcess[str]:
        return self.run("apply", *flags, "-f", "-", stdin=yaml.safe_dump_all(docs))


def _write_private(path: Path, text: str) -> None:
    path.touch(mode=0o600)
    path.write_text(text)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)


def _service_account_keys(work: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private, public = work / "sa.key", work / "sa.pub"
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_private(private, pem.decode())
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def _kubeconfig(path: Path, port: int, ca: Path, token: str) -> Path:
    cluster = {"server": f"https://127.0.0.1:{port}", "certificate-authority": str(ca)}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "tests", "cluster": cluster}],
        "users": [{"name": "tests", "user": {"token": token}}],
        "contexts": [{"name": "tests", "context": {"cluster": "tests", "user": "tests"}}],
        "current-context": "tests",
    }
    _write_private(path, yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    etcd, kube_apiserver, kubectl = tool("etcd"), tool("kube-apiserver"), tool("kubectl")
    work = tmp_path_factory.mktemp("apiserver")
    client, peer, port = free_port(), free_port(), free_port()
    private, public = _service_account_keys(work)
    token = secrets.token_hex(24)  # made here for this run; only in 0600 files
    _write_private(work / "tokens.csv", f"{token},tickpipe-tests,tickpipe-tests,system:masters\n")
    etcd_argv = [
        str(etcd), "--data-dir", str(work / "etcd"),
        "--listen-client-urls", f"http://127.0.0.1:{client}",
        "--advertise-client-urls", f"http://127.0.0.1:{client}",
        "--listen-peer-urls", f"http://127.0.0.1:{peer}",
        "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
        "--initial-cluster", f"default=http://127.0.0.1:{peer}",
    ]  # fmt: skip
    apiserver_argv = [
        str(kube_apiserver), f"--etcd-servers=http://127.0.0.1:{client}",
        "--bind-address=127.0.0.1", f"--secure-port={port}", f"--cert-dir={work / 'certs'}",
        f"--token-auth-file={work / 'tokens.csv'}", "--authorization-mode=RBAC",
        "--service-account-issuer=https://kubernetes.default.svc",
        f"--service-account-key-file={public}", f"--service-account-signing-key-file={private}",
        "--service-cluster-ip-range=10.96.0.0/24",
    ]  # fmt: skip
    log = work / "apiserver.log"
    procs = [_start(etcd_argv, work / "etcd.log")]
    try:
        procs.append(_start(apiserver_argv, log))
        ca = work / "certs" / "apiserver.crt"  # self-signed for 127.0.0.1, made at start
        server = ApiServer(kubectl, _kubeconfig(work / "kubeconfig", port, ca, token))
        deadline = time.monotonic() + 120
        while True:
            assert all(p.poll() is None for p in procs), log.read_text()[-3000:]
            ready = server.run("get", "--raw", "/readyz") if ca.is_file() else None
            if ready and ready.returncode == 0 and ready.stdout.strip() == "ok":
                break
            assert time.monotonic() < deadline, f"not ready: {ready}\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
        yield server
    finally:
        for proc in reversed(procs):
            _stop(proc)


@pytest.fixture(scope="module")
def prepared(apiserver: ApiServer, manifests: dict[str, list[dict[str, Any]]]) -> ApiServer:
    """What a dry run cannot stand in for, created for real: the overlays' namespaces (with
    their Pod Security labels), their ServiceAccounts, and the Prometheus Operator's CRDs."""
    if not CRDS.is_dir():
        missing("the Prometheus Operator CRDs")
    crds = [d for f in sorted(CRDS.glob("*.yaml")) for d in load_all(f.read_text())]
    done = apiserver.apply(crds, "--server-side")
    assert done.returncode == 0, done.stderr
    for crd in crds:
        name = crd["metadata"]["name"]
        waited = apiserver.run(
            "wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s"
        )
        assert waited.returncode == 0, waited.stderr
    for overlay in OVERLAYS:
        docs = manifests[overlay]
        namespaces = [d for d in docs if d["kind"] == "Namespace"]
        done = apiserver.apply(namespaces)
        assert done.returncode == 0, done.stderr
        namespace = namespaces[0]["metadata"]["name"]
        accounts = [d for d in docs if d["kind"] == "ServiceAccount"]
        default = {"apiVersion": "v1", "kind": "ServiceAccount",
                   "metadata": {"name": "default", "namespace": namespace}}  # fmt: skip
        done = apiserver.apply([*accounts, default])  # no controller manager makes `default`
        assert done.returncode == 0, done.stderr
    return apiserver


def test_api_server_when_started_then_is_the_pinned_kubernetes(apiserver: ApiServer) -> None:
    assert K8S_VERSION
    done = apiserver.run("version", "-o", "yaml")
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(done.stdout)["serverVersion"]["gitVersion"] == K8S_VERSION[1]
    # ... the newest release whose schemas test_k8s.py validates against.
    assert K8S_VERSION[1].rsplit(".", 1)[0] == "v" + K8S_VERSIONS[-1].rsplit(".", 1)[0]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_when_applied_with_a_server_dry_run_then_every_object_admitted_without_warning(
    prepared: ApiServer, built: dict[str, Path], overlay: str
) -> None:
    docs = load_all(built[overlay].read_text())
    done = prepared.run("apply", "--dry-run=server", "-f", str(built[overlay]))
    assert done.returncode == 0, done.stderr
    # Pod Security warns (`warn: restricted` on the namespaces) about a template it would
    # refuse as a Pod; any other warning (a deprecated API, an unknown field) counts too.
    assert "Warning" not in done.stderr, done.stderr
    assert done.stdout.count("(server dry run)") == len(docs), done.stdout


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_when_made_from_each_workload_then_pod_security_restricted_admits_them(
    prepared: ApiServer, manifests: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    """Pod Security enforces on Pods, not on the workloads that make them: a Pod from each
    template, dry-run created, is what the kubelet's pods would meet."""
    pods = []
    for w in manifests[overlay]:
        if w["kind"] not in WORKLOAD_KINDS:
            continue
        name, spec = w["metadata"]["name"], dict(w["spec"]["template"]["spec"])
        # A StatefulSet's pods get a claim per volumeClaimTemplate, named as its controller does.
        claims = [c["metadata"]["name"] for c in w["spec"].get("volumeClaimTemplates", [])]
        spec["volumes"] = spec.get("volumes", []) + [
            {"name": c, "persistentVolumeClaim": {"claimName": f"{c}-{name}-0"}} for c in claims
        ]
        metadata = {"name": f"{name}-0", "namespace": w["metadata"]["namespace"]}
        pods.append({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
    assert {p["metadata"]["name"] for p in pods} >= {f"{n}-0" for n in (*SERVICES, "api")}
    done = prepared.apply(pods, "--dry-run=server")
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr
    assert done.stdout.count("created (server dry run)") == len(pods), done.stdout


def test_pod_security_when_a_pod_may_run_as_root_then_the_namespace_refuses_it(
    prepared: ApiServer, manifests: dict[str, list[dict[str, Any]]]
) -> None:
    """The check above can fail: the namespace really enforces `restricted`."""
    (namespace,) = [d for d in manifests["dev"] if d["kind"] == "Namespace"]
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "as-root", "namespace": namespace["metadata"]["name"]},
        "spec": {"containers": [{"name": "c", "image": "tickpipe:local"}]},
    }
    done = prepared.apply([pod], "--dry-run=server")
    assert done.returncode != 0
    assert "violates PodSecurity" in done.stderr and "restricted" in done.stderr, done.stderr
