"""The docker compose `observability` profile: Prometheus and Grafana files that fit together."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from worker.observability.metrics import WorkerMetrics
from worker.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/grafana/dashboards/twap-worker.json"
METRIC = re.compile(r"\btwap_[a-z_]+\b")


def load(path: str) -> Any:
    return yaml.safe_load((ROOT / path).read_text())


def exposed_names() -> set[str]:
    """Every sample name a worker exposes (counters with _total, histograms with _bucket...)."""
    registry = WorkerMetrics().registry
    return {sample.name for family in registry.collect() for sample in family.samples}


def test_profile_runs_prometheus_and_grafana_beside_the_worker() -> None:
    """Both services are in the optional profile and mount files that exist in the repo."""
    services = load("docker-compose.yml")["services"]
    assert "profiles" not in services["worker"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["observability"]
        for volume in services[name]["volumes"]:
            assert (ROOT / volume.split(":")[0]).exists(), volume


def test_prometheus_scrapes_the_worker_port() -> None:
    """The scrape target is the worker service on the worker's default HTTP port."""
    config = load("deploy/prometheus/prometheus.yml")
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == [f"worker:{Settings().http_port}"]
    compose = load("docker-compose.yml")["services"]
    mounted = {v.split(":")[1] for v in compose["prometheus"]["volumes"]}
    assert set(config["rule_files"]) <= mounted


def test_alerts_and_dashboard_name_real_metrics() -> None:
    """Every twap_* name in an alert or a dashboard query is one the worker exposes."""
    alerts = load("deploy/prometheus/alerts.yml")
    exprs = [rule["expr"] for group in alerts["groups"] for rule in group["rules"]]
    dashboard = json.loads(DASHBOARD.read_text())
    exprs += [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for expr in exprs for name in METRIC.findall(expr)}
    assert used and used <= exposed_names(), used - exposed_names()


def test_dashboard_shows_throughput_lateness_statuses_and_switches() -> None:
    """The provisioned dashboard has those panels, on the provisioned datasource."""
    dashboard = json.loads(DASHBOARD.read_text())
    titles = " | ".join(p["title"].lower() for p in dashboard["panels"])
    for words in ("throughput", "lateness", "by status", "kill switch", "circuit breaker"):
        assert words in titles
    (source,) = load("deploy/grafana/provisioning/datasources/prometheus.yml")["datasources"]
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} == {source["uid"]}
    provider = load("deploy/grafana/provisioning/dashboards/twap.yml")["providers"][0]
    grafana = load("docker-compose.yml")["services"]["grafana"]
    assert any(v.endswith(":" + provider["options"]["path"] + ":ro") for v in grafana["volumes"])
