"""k8s/: both overlays build, validate against the Kubernetes schemas, pass checkov, and agree
with the code (ports, settings, topics' partitions, single-instance services)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from tests.deploy.tools import OVERLAYS, ROOT, SERVICES, by_kind, run, tool
from tickpipe.app import load_specs
from tickpipe.settings import PlatformSettings
from tickpipe.topics import BY_NAME
from tickpipe_api.settings import ApiSettings

K8S_VERSIONS = ("1.30.0", "1.37.0")  # oldest and newest this repo promises to run on
CRD_GROUPS = ("monitoring.coreos.com/",)  # Prometheus Operator kinds: checked structurally below
SINGLETONS = ("ingest", "risk", "execution")
SCALED = ("feature", "inference")  # tested scaled: test_{feature,inference}_replicas_kafka
# Read by tickpipe_execution.live.credentials (`<VAR>_FILE` secret files), not a settings class.
SECRET_FILE_VARS = {"TICKPIPE_EXECUTION_API_KEY_FILE", "TICKPIPE_EXECUTION_API_SECRET_FILE"}
# Waivers (checkov.io/skipN annotations, each with its reason): image digests (set at release),
# dev's locally loaded image, and the dev-only Kafka image's own user and writable config; in
# the Dockerfile, a base image given as a build argument (its default is an exact tag).
WAIVABLE = {"CKV_K8S_43", "CKV_K8S_15", "CKV_K8S_40", "CKV_K8S_22", "CKV_DOCKER_7"}
OTEL_VARS = {"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_EXPORTER", "OTEL_BSP_SCHEDULE_DELAY"}


def _workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in {"Deployment", "StatefulSet", "Job"}]


def _tickpipe_deployments(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        name: d
        for name, d in by_kind(docs, "Deployment").items()
        if d["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == "tickpipe"
    }


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]  # type: ignore[no-any-return]


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


# --- schemas, policies -------------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_overlays_when_validated_against_kubernetes_schemas_then_pass(
    built: dict[str, Path], version: str
) -> None:
    validate = tool("kubernetes-validate")
    result = run([validate, "--strict", "-k", version, *built.values()])

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert "passed for resource deployment/risk" in out
    # The only resources without a schema are the Prometheus Operator's.
    for line in out.splitlines():
        if "Couldn't find schema" in line:
            assert any(f"api version {g}" in line for g in CRD_GROUPS), line


def test_kubernetes_validate_when_a_field_is_misspelled_then_fails(tmp_path: Path) -> None:
    """The schema check above can fail: a typo in a probe is caught, not ignored."""
    bad = yaml.safe_load((ROOT / "k8s/base/risk.yaml").read_text().split("---")[0])
    bad["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))

    result = run(
        [tool("kubernetes-validate"), "--strict", "-k", K8S_VERSIONS[0], tmp_path / "bad.yaml"]
    )

    assert result.returncode != 0
    assert "httpGett" in result.stdout + result.stderr


def test_checkov_when_scanning_overlays_and_dockerfile_then_nothing_fails_unwaived(
    built: dict[str, Path], tmp_path: Path
) -> None:
    checkov = tool("checkov")
    for overlay, path in built.items():
        (tmp_path / f"{overlay}.yaml").write_text(path.read_text())
    (tmp_path / "Dockerfile").write_text((ROOT / "deploy/Dockerfile").read_text())

    result = run(
        [
            checkov,
            "-d",
            tmp_path,
            "--framework",
            "kubernetes",
            "dockerfile",
            "--skip-download",
            "--output",
            "json",
        ],
        timeout=300,
    )

    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    by_type = {r["check_type"]: r for r in reports}
    assert set(by_type) == {"kubernetes", "dockerfile"}, result.stderr[-2000:]
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for r in reports
        for c in r["results"].get("failed_checks", [])
    ]
    assert not failed, "\n".join(failed)
    for r in reports:
        assert r["summary"]["parsing_errors"] == 0
        assert r["summary"]["passed"] > 0
        for c in r["results"].get("skipped_checks", []):
            reason = c.get("check_result", {}).get("suppress_comment", "")
            assert len(reason) >= 20, f"{c['check_id']} on {c['resource']} waived without a reason"
            assert c["check_id"] in WAIVABLE, f"new waiver {c['check_id']}: review it, list it here"
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_when_built_then_meets_the_restricted_profile(
    manifests: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    for w in _workloads(manifests[overlay]):
        name = f"{w['kind']}/{w['metadata']['name']}"
        waived = " ".join(w["metadata"].get("annotations", {}).values())
        pod = w["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod.get("automountServiceAccountToken") is False, name
        for c in pod["containers"] + pod.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", name
            assert sc.get("privileged", False) is False, name
            assert "resources" in c and {"requests", "limits"} <= set(c["resources"]), name
            if "CKV_K8S_22=" not in waived:
                assert sc["readOnlyRootFilesystem"] is True, name
        if w["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == "tickpipe":
            tmp = [m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == "/tmp"]
            volumes = {v["name"]: v for v in pod["volumes"]}
            assert tmp and "emptyDir" in volumes[tmp[0]["name"]], f"{name}: /tmp not writable"


# --- the manifests agree with the code ------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_when_built_then_ports_and_probes_match_the_code(
    manifests: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    specs = load_specs()
    docs = manifests[overlay]
    deployments = _tickpipe_deployments(docs)
    services = by_kind(docs, "Service")
    assert set(SERVICES) <= set(deployments)
    for name in SERVICES:
        d = deployments[name]
        c = _container(d)
        assert c["args"] == ["run", name]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports["http"] == specs[name].default_http_port
        assert _env(c)["TICKPIPE_HTTP_PORT"] == str(ports["http"])
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert _selects(d["spec"]["selector"]["matchLabels"], labels)
        svc = services[name]
        assert _selects(svc["spec"]["selector"], labels)
        assert svc["spec"]["ports"] == [
            {"name": "http", "port": ports["http"], "targetPort": "http", "protocol": "TCP"}
        ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_api_when_built_then_serves_on_its_settings_port_and_probes_every_service(
    manifests: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    specs = load_specs()
    docs = manifests[overlay]
    api = _tickpipe_deployments(docs)["api"]
    c = _container(api)
    env = _env(c)
    assert c["args"] == ["api", "serve"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert env["TICKPIPE_API_PORT"] == str(ports["http"])
    assert env["TICKPIPE_API_HOST"] == "0.0.0.0"
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"]["port"] == "http"
    targets = json.loads(env["TICKPIPE_API_HEALTH_TARGETS"])
    assert targets == {n: f"http://{n}:{specs[n].default_http_port}" for n in SERVICES}
    # ... and the network lets it: egress to those ports, ingress on the services' side.
    policies = by_kind(docs, "NetworkPolicy")
    egress = policies["api-egress-to-services"]["spec"]["egress"][0]
    assert {p["port"] for p in egress["ports"]} == {specs[n].default_http_port for n in SERVICES}
    ingress = policies["services-ingress-from-api"]["spec"]
    from_api = [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "api"}}}]
    assert ingress["ingress"][0]["from"] == from_api
    assert by_kind(docs, "Service")["api"]["spec"]["ports"][0]["targetPort"] == "http"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_stateful_services_when_built_then_exactly_one_replica_recreated(
    manifests: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = manifests[overlay]
    deployments = _tickpipe_deployments(docs)
    scaled = {
        h["spec"]["scaleTargetRef"]["name"]
        for h in by_kind(docs, "HorizontalPodAutoscaler").values()
    }
    for name in SINGLETONS:
        d = deployments[name]
        assert d["spec"]["replicas"] == 1, name
        assert d["spec"]["strategy"] == {"type": "Recreate"}, name
        assert name not in scaled, name
    for name in ("risk", "execution"):
        # Transactional ids are `<group>-<instance id>`: a stable one lets a restarted pod
        # fence its predecessor's producer at once.
        assert _env(_container(deployments[name]))["TICKPIPE_INSTANCE_ID"] == "0"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_autoscalers_when_built_then_bounded_by_the_input_partitions(
    manifests: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    specs = load_specs()
    docs = manifests[overlay]
    hpas = {
        h["spec"]["scaleTargetRef"]["name"]: h
        for h in by_kind(docs, "HorizontalPodAutoscaler").values()
    }
    deployments = _tickpipe_deployments(docs)
    assert set(hpas) == set(SCALED)
    for name, hpa in hpas.items():
        # A consumer beyond the widest input's partition count would get no partition at all.
        partitions = max(BY_NAME[t].partitions for t in specs[name].inputs)
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"] <= partitions, name
        assert hpa["spec"]["maxReplicas"] == partitions, f"{name}: HPA stops short of partitions"
        # An HPA-managed Deployment must not pin replicas, or every apply resets the scale.
        assert "replicas" not in deployments[name]["spec"], name
    assert hpas["feature"]["spec"]["minReplicas"] == (1 if overlay == "dev" else 2)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budgets_when_built_then_cover_every_service(
    manifests: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = manifests[overlay]
    deployments = _tickpipe_deployments(docs)
    pdbs = by_kind(docs, "PodDisruptionBudget")
    for name in SERVICES:
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        covering = [
            p for p in pdbs.values() if _selects(p["spec"]["selector"]["matchLabels"], labels)
        ]
        assert len(covering) == 1, name
        assert covering[0]["spec"] == {**covering[0]["spec"], "maxUnavailable": 1}


def _settings_classes() -> list[type[BaseSettings]]:
    # Each spec names its settings class.
    return [PlatformSettings, ApiSettings, *(spec.settings for spec in load_specs().values())]


def _is_setting(var: str, classes: list[type[BaseSettings]]) -> bool:
    for cls in classes:
        prefix = str(cls.model_config.get("env_prefix", "")).upper()
        if var.startswith(prefix) and var[len(prefix) :].lower() in cls.model_fields:
            return True
    return var in SECRET_FILE_VARS or var in OTEL_VARS


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_configuration_when_built_then_every_variable_is_a_real_setting(
    manifests: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    """pydantic-settings ignores unknown variables: a misspelt one would silently do nothing."""
    classes = _settings_classes()
    docs = manifests[overlay]
    (config,) = [
        c
        for c in by_kind(docs, "ConfigMap").values()
        if c["metadata"]["name"].startswith("tickpipe-config")
    ]
    names = set(config["data"])
    for w in _workloads(docs):
        if w["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") != "tickpipe":
            continue
        c = w["spec"]["template"]["spec"]["containers"][0]
        names |= {e["name"] for e in c.get("env", [])}
        refs = {e["configMapRef"]["name"] for e in c.get("envFrom", [])}
        assert refs == {config["metadata"]["name"]}, w["metadata"]["name"]
    unknown = sorted(n for n in names if not _is_setting(n, classes))
    assert not unknown
    assert config["data"]["TICKPIPE_BUS"] == "kafka"
    assert config["data"]["TICKPIPE_HTTP_HOST"] == "0.0.0.0"  # probes come from the kubelet


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_when_built_then_none_committed_and_mounted_as_files(
    manifests: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = manifests[overlay]
    assert not by_kind(docs, "Secret"), "secret values must not be committed"
    execution = _tickpipe_deployments(docs)["execution"]
    pod = execution["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    for var in SECRET_FILE_VARS:
        path = Path(_env(pod["containers"][0])[var])
        mount = mounts[str(path.parent)]
        assert mount["readOnly"] is True
        secret = volumes[mount["name"]]["secret"]
        assert secret["secretName"] == "tickpipe-exchange"
        assert path.name in {"api-key", "api-secret"}
    # The API refuses to start without its JWT keys: the secret is required, not optional. It
    # is mounted whole, one file per key named by its kid, so a rotation only edits the secret.
    api = _tickpipe_deployments(docs)["api"]["spec"]["template"]["spec"]
    keys = _env(api["containers"][0])["TICKPIPE_API_JWT_KEYS_FILE"]
    assert "TICKPIPE_API_JWT_KEY_FILE" not in _env(api["containers"][0])
    (mount,) = [m for m in api["containers"][0]["volumeMounts"] if m["mountPath"] == keys]
    (volume,) = [v for v in api["volumes"] if v["name"] == mount["name"]]
    assert mount["readOnly"] is True
    assert volume["secret"]["secretName"] == "tickpipe-api-jwt"
    assert not volume["secret"].get("optional", False)
    assert "items" not in volume["secret"]  # every key in the secret, whatever its kid


TRANSPORT_FILES = {
    "TICKPIPE_KAFKA_SASL_PASSWORD_FILE": "kafka-password",
    "TICKPIPE_KAFKA_SSL_CA_FILE": "ca.crt",
    "TICKPIPE_REDIS_PASSWORD_FILE": "redis-password",
    "TICKPIPE_REDIS_CA_FILE": "ca.crt",
}


def _tickpipe_workloads(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        w["metadata"]["name"]: w
        for w in _workloads(docs)
        if w["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == "tickpipe"
    }


def _config(docs: list[dict[str, Any]]) -> dict[str, str]:
    (config,) = [
        c for n, c in by_kind(docs, "ConfigMap").items() if n.startswith("tickpipe-config")
    ]
    return config["data"]  # type: ignore[no-any-return]


def test_prod_transport_when_built_then_sasl_ssl_and_tls_with_each_workloads_own_secret(
    manifests: dict[str, list[dict[str, Any]]],
) -> None:
    docs = manifests["prod"]
    config = _config(docs)
    assert config["TICKPIPE_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config["TICKPIPE_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert config["TICKPIPE_REDIS_URL"].startswith("rediss://")
    # No credential in the shared config: each workload brings its own.
    assert not {v for v in config if v.endswith("_FILE") or "USERNAME" in v}
    workloads = _tickpipe_workloads(docs)
    assert set(workloads) == {*SERVICES, "api", "topics-create"}
    secrets_used = set()
    for name, w in workloads.items():
        user = "topics" if name == "topics-create" else name
        pod = w["spec"]["template"]["spec"]
        c = pod["containers"][0]
        env = _env(c)
        assert env["TICKPIPE_KAFKA_SASL_USERNAME"] == f"tickpipe-{user}", name
        files = {v: f for v, f in TRANSPORT_FILES.items() if v in env}
        kafka = {"TICKPIPE_KAFKA_SASL_PASSWORD_FILE", "TICKPIPE_KAFKA_SSL_CA_FILE"}
        # The topics Job talks to Kafka only; everything else to Redis too.
        assert set(files) == (kafka if name == "topics-create" else set(TRANSPORT_FILES)), name
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        for var, file_name in files.items():
            path = Path(env[var])
            assert path.name == file_name, (name, var)
            mount = mounts[str(path.parent)]
            assert mount["readOnly"] is True, name
            secret = volumes[mount["name"]]["secret"]
            assert secret["secretName"] == f"tickpipe-{user}-transport", name
            assert not secret.get("optional", False), f"{name} would connect without credentials"
            secrets_used.add(secret["secretName"])
        # Secret files are 0440: readable through fsGroup, as uid 10001 in group 10001.
        assert pod["securityContext"]["fsGroup"] == c["securityContext"]["runAsGroup"], name
    assert len(secrets_used) == len(workloads)  # one Secret per workload, none shared


def test_dev_transport_when_built_then_plaintext_without_credentials(
    manifests: dict[str, list[dict[str, Any]]],
) -> None:
    docs = manifests["dev"]
    config = _config(docs)
    assert config.get("TICKPIPE_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT") == "PLAINTEXT"
    assert config["TICKPIPE_REDIS_URL"].startswith("redis://")
    for name, w in _tickpipe_workloads(docs).items():
        env = _env(w["spec"]["template"]["spec"]["containers"][0])
        assert not {v for v in env if v.startswith(("TICKPIPE_KAFKA_S", "TICKPIPE_REDIS_"))}, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_when_built_then_deny_by_default_and_allow_the_pipeline(
    manifests: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = manifests[overlay]
    policies = by_kind(docs, "NetworkPolicy")
    deny = policies["default-deny-all"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    dns = policies["allow-dns-egress"]["spec"]["egress"][0]["ports"]
    assert {(p["protocol"], p["port"]) for p in dns} == {("UDP", 53), ("TCP", 53)}
    egress = policies["tickpipe-egress"]["spec"]
    assert egress["podSelector"]["matchLabels"] == {"app.kubernetes.io/part-of": "tickpipe"}
    assert {p["port"] for p in egress["egress"][0]["ports"]} == {9092, 6379, 4318}
    scrape = policies["allow-prometheus-scrape"]["spec"]
    assert scrape["ingress"][0]["ports"] == [{"protocol": "TCP", "port": "http"}]
    for name, pod in _pods_by_name(docs).items():
        selected = [
            p
            for p in policies.values()
            if _selects(p["spec"]["podSelector"].get("matchLabels", {}), pod)
        ]
        kinds = {t for p in selected for t in p["spec"]["policyTypes"]}
        assert kinds == {"Ingress", "Egress"}, f"{name} is not under default deny"
        if name in SERVICES:
            assert scrape in [p["spec"] for p in selected], f"{name} cannot be scraped"
    if overlay == "dev":
        for infra, port in (("kafka", 9092), ("redis", 6379)):
            rule = policies[f"{infra}-ingress"]["spec"]["ingress"][0]
            assert rule["ports"] == [{"protocol": "TCP", "port": port}]
            assert rule["from"] == [
                {"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "tickpipe"}}}
            ]


def _pods_by_name(docs: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {
        w["metadata"]["name"]: w["spec"]["template"]["metadata"]["labels"] for w in _workloads(docs)
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_topics_job_when_built_then_creates_topics_with_the_overlays_replication(
    manifests: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    job = by_kind(manifests[overlay], "Job")["topics-create"]
    c = job["spec"]["template"]["spec"]["containers"][0]
    rf = "1" if overlay == "dev" else "3"
    assert c["args"] == ["topics", "create", "--replication-factor", rf]
    assert job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/part-of"] == "tickpipe"
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] >= 5  # Kafka may still be starting


def test_service_monitors_when_built_then_scrape_each_service_by_its_http_port(
    manifests: dict[str, list[dict[str, Any]]],
) -> None:
    # Prometheus Operator kinds come from a component: prod includes it; dev (kind, minikube:
    # no operator CRDs) applies without it.
    assert not by_kind(manifests["dev"], "ServiceMonitor")
    docs = manifests["prod"]
    services = by_kind(docs, "Service")
    monitors = by_kind(docs, "ServiceMonitor")
    assert all(m["apiVersion"] == "monitoring.coreos.com/v1" for m in monitors.values())
    scraped = set()
    for m in monitors.values():
        (endpoint,) = m["spec"]["endpoints"]
        assert endpoint["path"] == "/metrics"
        assert endpoint["relabelings"][0]["targetLabel"] == "tickpipe_service"
        matched = [
            s
            for s in services.values()
            if _selects(m["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
        ]
        assert len(matched) == 1, m["metadata"]["name"]
        assert endpoint["port"] in {p["name"] for p in matched[0]["spec"]["ports"]}
        scraped.add(matched[0]["metadata"]["name"])
    assert scraped == set(SERVICES)


def test_prometheus_rule_when_built_then_equals_the_compose_alert_rules(
    manifests: dict[str, list[dict[str, Any]]],
) -> None:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    (rule,) = by_kind(manifests["prod"], "PrometheusRule").values()
    assert rule["spec"]["groups"] == rules["groups"]
    assert rule["metadata"]["namespace"] == "tickpipe"


def test_dev_kafka_when_built_then_single_node_settings_let_transactions_work(
    manifests: dict[str, list[dict[str, Any]]],
) -> None:
    kafka = by_kind(manifests["dev"], "StatefulSet")["kafka"]
    c = kafka["spec"]["template"]["spec"]["containers"][0]
    env = _env(c)
    assert c["image"].startswith("apache/kafka:")
    for var in (
        "OFFSETS_TOPIC_REPLICATION_FACTOR",
        "TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[f"KAFKA_{var}"] == "1"
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    assert kafka["spec"]["template"]["spec"]["enableServiceLinks"] is False
    (config,) = [
        c
        for n, c in by_kind(manifests["dev"], "ConfigMap").items()
        if n.startswith("tickpipe-config")
    ]
    assert config["data"]["TICKPIPE_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert config["data"]["TICKPIPE_REDIS_URL"].startswith("redis://redis:6379")


def test_images_when_built_then_exact_tags(manifests: dict[str, list[dict[str, Any]]]) -> None:
    for overlay in OVERLAYS:
        for w in _workloads(manifests[overlay]):
            for c in w["spec"]["template"]["spec"]["containers"]:
                image = c["image"]
                assert re.fullmatch(r"[\w./-]+:[\w.-]+(@sha256:[0-9a-f]{64})?", image), image
                assert not image.endswith(":latest"), image
