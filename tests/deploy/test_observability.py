"""Prometheus config and alert rules (promtool), Grafana dashboards and the OTel Collector
config: valid, and every metric they query is one the services really export."""

from __future__ import annotations

import contextlib
import importlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from tests.deploy.tools import ROOT, run, tool
from tickpipe.app import load_specs

PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
# A metric name, not a label matcher (`up{tickpipe_service!=""}`).
METRIC = re.compile(r"\b(tickpipe_[a-z0-9_]+)\b(?!\s*(?:=|!=|=~|!~))")
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
}


def exported_metrics() -> set[str]:
    """Series names the services' code registers (the registry is process-wide)."""
    for spec in load_specs().values():
        package = spec.build.__module__.split(".")[0]
        with contextlib.suppress(ModuleNotFoundError):  # its own metrics module, if any
            importlib.import_module(f"{package}.metrics")
    names = set()
    for family in REGISTRY.collect():
        names |= {family.name + s for s in SUFFIXES.get(family.type, ("",))}
    return names


def _dashboard_exprs() -> list[tuple[str, str]]:
    out = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            out += [(f"{path.name}: {panel['title']}", t["expr"]) for t in panel["targets"]]
    return out


def _alert_exprs() -> list[tuple[str, str]]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [(r["alert"], r["expr"]) for g in rules["groups"] for r in g["rules"]]


# --- promtool --------------------------------------------------------------------------------


def test_prometheus_config_when_checked_by_promtool_then_valid_with_its_rules() -> None:
    result = run([tool("promtool"), "check", "config", "prometheus.yml"], cwd=PROMETHEUS)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "8 rules found" in result.stdout + result.stderr


def test_alert_rules_when_unit_tested_by_promtool_then_pass() -> None:
    result = run([tool("promtool"), "test", "rules", "alerts.test.yml"], cwd=PROMETHEUS)

    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rule_tests_when_an_expectation_is_wrong_then_promtool_fails(tmp_path: Path) -> None:
    """The rule tests can fail: an alert expected where none fires is reported."""
    tests = yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text())
    tests["rule_files"] = [str(PROMETHEUS / "alerts.yml")]
    first = tests["tests"][0]["alert_rule_test"][0]  # target down: no alert after one blip
    first["exp_alerts"] = [{"exp_labels": {"severity": "critical"}}]
    (tmp_path / "wrong.test.yml").write_text(yaml.safe_dump(tests))

    result = run([tool("promtool"), "test", "rules", "wrong.test.yml"], cwd=tmp_path)

    assert result.returncode != 0


def test_alert_rule_tests_when_run_then_cover_every_alert() -> None:
    tests = yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text())
    tested = {t["alertname"] for case in tests["tests"] for t in case["alert_rule_test"]}
    firing = {
        t["alertname"]
        for case in tests["tests"]
        for t in case["alert_rule_test"]
        if t["exp_alerts"]
    }
    alerts = {name for name, _ in _alert_exprs()}
    assert tested == alerts
    assert firing == alerts, "every alert has a case where it fires"


def test_dashboard_queries_when_parsed_by_promtool_then_valid_promql(tmp_path: Path) -> None:
    # Grafana's variables become what they expand to.
    grafana = {"$__rate_interval": "1m", "$__range": "1h", "$service": ".*", "$account": ".*"}
    rules = []
    for i, (_, query) in enumerate(_dashboard_exprs()):
        expr = query
        for var, value in grafana.items():
            expr = expr.replace(var, value)
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    assert "$" not in json.dumps(rules)
    (tmp_path / "dashboards.rules.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]})
    )

    result = run([tool("promtool"), "check", "rules", tmp_path / "dashboards.rules.yml"])

    assert result.returncode == 0, result.stdout + result.stderr


# --- the names are the code's ------------------------------------------------------------------


def test_queries_when_read_then_every_metric_is_one_the_services_export() -> None:
    exported = exported_metrics()
    used: dict[str, set[str]] = {}
    for where, expr in _dashboard_exprs() + _alert_exprs():
        for name in METRIC.findall(expr):
            used.setdefault(name, set()).add(where)
    unknown = {name: sorted(where) for name, where in used.items() if name not in exported}
    assert not unknown
    for needed in (
        "tickpipe_messages_in_total",
        "tickpipe_end_to_end_latency_seconds_bucket",
        "tickpipe_consumer_lag",
        "tickpipe_dead_letters_total",
        "tickpipe_risk_decisions_total",
        "tickpipe_pnl_net",
        "tickpipe_position_qty",
        "tickpipe_orders_total",
    ):
        assert needed in used, needed


def test_dashboards_when_provisioned_then_use_the_provisioned_datasource() -> None:
    provisioning = ROOT / "deploy/grafana/provisioning"
    sources = yaml.safe_load((provisioning / "datasources/datasources.yml").read_text())
    uids = {d["uid"]: d for d in sources["datasources"]}
    assert uids["prometheus"]["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((provisioning / "dashboards/dashboards.yml").read_text())
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"])
    assert mounts["./deploy/grafana/dashboards"] == providers["providers"][0]["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    titles = set()
    assert {p.stem for p in DASHBOARDS} == {"tickpipe-pipeline", "tickpipe-trading"}
    for path in DASHBOARDS:
        d = json.loads(path.read_text())
        assert d["uid"] == path.stem and d["title"] not in titles
        titles.add(d["title"])
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids)), path.name
        for panel in d["panels"]:
            refs = [panel["datasource"]] + [t["datasource"] for t in panel["targets"]]
            assert all(r == {"type": "prometheus", "uid": "prometheus"} for r in refs)
        for var in d["templating"]["list"]:
            assert METRIC.findall(var["query"]["query"])[0] in exported_metrics()


def _collector() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "deploy/otel/collector.yaml").read_text())  # type: ignore[no-any-return]


def test_otel_collector_when_configured_then_otlp_in_and_jaeger_out() -> None:
    config = _collector()
    pipeline = config["service"]["pipelines"]["traces"]
    for section in ("receivers", "processors", "exporters"):
        assert set(pipeline[section]) <= set(config[section]), section
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    assert config["exporters"]["otlp/jaeger"]["endpoint"] == "jaeger:4317"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert "jaeger" in services and "otel-collector" in services
    assert services["otel-collector"]["profiles"] == services["jaeger"]["profiles"]
    # The services' exporter speaks OTLP/HTTP (tickpipe.telemetry.tracing) to the collector
    # when the profile runs it; the core stack exports nothing (the endpoint's default is empty).
    for name in ("ingest", "risk"):
        endpoint = services[name]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
        assert endpoint == "${OTEL_EXPORTER_OTLP_ENDPOINT:-}"
    documented = "OTEL_EXPORTER_OTLP_ENDPOINT=http://otel-collector:4318"
    assert documented in (ROOT / "docker-compose.yml").read_text()


@pytest.mark.parametrize("path", ["deploy/prometheus/alerts.yml", "deploy/otel/collector.yaml"])
def test_yaml_when_loaded_then_has_no_duplicate_keys(path: str) -> None:
    class Strict(yaml.SafeLoader):
        pass

    def mapping(loader: Strict, node: yaml.MappingNode) -> dict[Any, Any]:
        keys = [loader.construct_object(k) for k, _ in node.value]
        assert len(keys) == len(set(keys)), f"duplicate key in {path}: {keys}"
        return loader.construct_mapping(node)

    Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    yaml.load((ROOT / path).read_text(), Loader=Strict)  # a SafeLoader subclass
