"""What an operator watches a generated project with: alerting rules, a Grafana dashboard and the
Kubernetes monitoring overlay, checked by the real tools.

- `promtool check rules` and `promtool test rules` on deploy/prometheus/alerts.yml: each alert
  fires on a synthetic series that breaks its threshold and stays quiet on a healthy one;
- the dashboard's JSON is what Grafana imports, and each of its queries is valid PromQL (promtool
  checks them as recording rules) on metrics the project defines;
- the monitoring overlay builds with kustomize, passes `kubernetes-validate --strict`, and its
  ServiceMonitor and PrometheusRule (CRDs, which the validator only warns about) are checked here.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest
import yaml
from support.commands import run
from support.rendering import preset, render
from support.services import require_command
from support.validators import compose_config, kustomize

COMBOS: dict[str, dict] = {
    "full": preset("full", project_name="Shop Floor"),
    "api-kubernetes": preset("api", project_name="Ledger", kubernetes=True),
    "minimal": preset("minimal", project_name="Bare"),
}

REQUEST_ALERTS = {"HighErrorRate", "HighLatency"}
REQUEST_PANELS = ["Request rate", "Error rate", "Latency", "Requests in flight"]


@pytest.fixture(scope="module")
def projects(template_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("observability")
    return {name: render(template_dir, root / name, answers) for name, answers in COMBOS.items()}


def celery(combo: str) -> bool:
    return COMBOS[combo].get("celery", False)


def alert_groups(project: Path) -> list[dict]:
    return yaml.safe_load((project / "deploy/prometheus/alerts.yml").read_text())["groups"]


def dashboard(project: Path) -> dict:
    return json.loads((project / "deploy/grafana/dashboard.json").read_text())


def defined_metrics(project: Path) -> set[str]:
    """The metric names the project's code defines (prometheus-client's first argument)."""
    package = (
        project / yaml.safe_load((project / ".copier-answers.yml").read_text())["project_slug"]
    )
    pattern = re.compile(r'\b(?:Counter|Gauge|Histogram|GaugeMetricFamily)\(\s*"(\w+)"')
    return {name for path in package.rglob("*.py") for name in pattern.findall(path.read_text())}


def metrics_named(expr: str) -> set[str]:
    """The project metrics a PromQL expression reads (a histogram's series by its own name)."""
    return {
        re.sub(r"_(bucket|count|sum)$", "", name)
        for name in re.findall(r"\b(?:flask|celery)_\w+", expr)
    }


# --- alerts --------------------------------------------------------------------------------


@pytest.mark.parametrize("combo", COMBOS)
def test_alerts_pass_promtool_and_fire_only_on_trouble(
    projects: dict[str, Path], combo: str
) -> None:
    folder = projects[combo] / "deploy/prometheus"
    promtool = require_command("promtool")
    run([promtool, "check", "rules", "alerts.yml"], folder)
    run([promtool, "test", "rules", "alerts.test.yml"], folder)

    rules = [rule for group in alert_groups(projects[combo]) for rule in group["rules"]]
    expected = REQUEST_ALERTS | ({"CeleryQueueBacklog"} if celery(combo) else set())
    assert {rule["alert"] for rule in rules} == expected
    for rule in rules:
        assert rule["for"] and rule["labels"]["severity"] in ("warning", "critical"), rule
        assert rule["annotations"].keys() == {"summary", "description"}, rule
    # Each alert has a case in the unit tests that expects it to fire.
    tests = yaml.safe_load((folder / "alerts.test.yml").read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert fired == expected


@pytest.mark.parametrize("combo", ["full", "api-kubernetes"])
def test_compose_prometheus_loads_the_alerts(projects: dict[str, Path], combo: str) -> None:
    project = projects[combo]
    config = yaml.safe_load((project / "deploy/prometheus/prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    # promtool's config check reads the rule files it names.
    run(
        [require_command("promtool"), "check", "config", "prometheus.yml"],
        project / "deploy/prometheus",
    )
    volumes = compose_config(project)["services"]["prometheus"]["volumes"]
    mounted = {volume["target"]: volume.get("source", "") for volume in volumes}
    assert mounted["/etc/prometheus/alerts.yml"].endswith("deploy/prometheus/alerts.yml")


def test_no_compose_no_prometheus_config(projects: dict[str, Path]) -> None:
    """Without docker the alerts and the dashboard stay (any Prometheus can load them)."""
    folder = projects["minimal"] / "deploy"
    assert sorted(p.name for p in (folder / "prometheus").iterdir()) == [
        "alerts.test.yml",
        "alerts.yml",
    ]
    assert (folder / "grafana/dashboard.json").is_file()


@pytest.mark.parametrize("combo", COMBOS)
def test_the_docs_name_the_alerts_and_the_queue_metric(
    projects: dict[str, Path], combo: str
) -> None:
    project = projects[combo]
    docs = (project / "docs/deploy.md").read_text()
    readme = (project / "README.md").read_text()
    alerts = {rule["alert"] for group in alert_groups(project) for rule in group["rules"]}
    assert all(f"`{alert}`" in docs for alert in alerts)
    assert "deploy/grafana/dashboard.json" in docs and "deploy/grafana/dashboard.json" in readme
    assert ("CeleryQueueBacklog" in docs) == celery(combo)
    for text in (docs, readme):
        assert ("celery_queue_length" in text) == celery(combo)
    kubernetes = COMBOS[combo].get("docker", True) and COMBOS[combo].get("kubernetes", False)
    assert ("overlays/monitoring" in docs) == kubernetes
    assert ("ServiceMonitor" in readme) == kubernetes


# --- dashboard -------------------------------------------------------------------------------


def overlap(a: dict, b: dict) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


@pytest.mark.parametrize("combo", COMBOS)
def test_dashboard_is_a_grafana_import(projects: dict[str, Path], combo: str) -> None:
    board = dashboard(projects[combo])
    assert board["title"] == COMBOS[combo]["project_name"]
    assert re.fullmatch(r"[a-z0-9-]{1,40}", board["uid"])
    assert board["schemaVersion"] >= 39
    [source] = board["__inputs"]
    assert (source["name"], source["type"], source["pluginId"]) == (
        "DS_PROMETHEUS",
        "datasource",
        "prometheus",
    )

    panels = board["panels"]
    titles = REQUEST_PANELS + (
        ["Task rates", "Queue length", "Task run time"] if celery(combo) else []
    )
    if COMBOS[combo].get("database") == "postgresql":
        titles += ["Database reads by server", "Replica lag"]
    assert [panel["title"] for panel in panels] == titles
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        assert panel["type"] == "timeseries"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]
    for a, b in itertools.combinations(panels, 2):
        assert not overlap(a["gridPos"], b["gridPos"]), (a["title"], b["title"])


@pytest.mark.parametrize("combo", COMBOS)
def test_every_query_is_promql_on_the_projects_metrics(
    projects: dict[str, Path], combo: str, tmp_path: Path
) -> None:
    project = projects[combo]
    panels = dashboard(project)["panels"]
    # Grafana fills in $__rate_interval; promtool needs a duration.
    queries = [t["expr"].replace("$__rate_interval", "5m") for p in panels for t in p["targets"]]
    alerts = [rule["expr"] for group in alert_groups(project) for rule in group["rules"]]

    records = [{"record": f"dashboard:query{n}", "expr": q} for n, q in enumerate(queries)]
    rules = tmp_path / "queries.yml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    run([require_command("promtool"), "check", "rules", str(rules)], tmp_path)

    defined = defined_metrics(project)
    for expr in queries + alerts:
        assert metrics_named(expr), expr
        assert metrics_named(expr) <= defined, (expr, defined)
    # The dashboard shows every metric (the version's label aside), Celery's only with Celery.
    shown = set().union(*map(metrics_named, queries))
    assert shown == defined - {"flask_app_info"}
    assert any(name.startswith("celery_") for name in shown) == celery(combo)


# --- Kubernetes: the monitoring overlay -------------------------------------------------------


def test_monitoring_overlay_scrapes_both_tiers_and_carries_the_alerts(
    projects: dict[str, Path],
) -> None:
    for combo in ("full", "api-kubernetes"):
        project = projects[combo]
        docs = kustomize(project, project / "deploy/k8s/overlays/monitoring")
        by_kind: dict[str, list[dict]] = {}
        for doc in docs:
            by_kind.setdefault(doc["kind"], []).append(doc)

        # The headless metrics Services, one per tier that serves metrics.
        [monitor] = by_kind["ServiceMonitor"]
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        selector = monitor["spec"]["selector"]["matchLabels"]
        scraped = [
            s for s in by_kind["Service"] if selector.items() <= s["metadata"]["labels"].items()
        ]
        tiers = ["web", "worker"] if celery(combo) else ["web"]
        assert (
            sorted(s["spec"]["selector"]["app.kubernetes.io/component"] for s in scraped) == tiers
        )
        for service in scraped:
            assert service["spec"]["clusterIP"] == "None"
            assert service["spec"]["ports"] == [
                {"name": "metrics", "port": 9100, "targetPort": "metrics"}
            ]
        assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
        # Each Service's pods have the port it names.
        for service in scraped:
            [deployment] = [
                d
                for d in by_kind["Deployment"]
                if service["spec"]["selector"].items()
                <= d["spec"]["template"]["metadata"]["labels"].items()
            ]
            ports = deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
            assert {"name": "metrics", "containerPort": 9100} in ports

        # The operator's Prometheus, in its namespace, may reach the metrics ports.
        [policy] = [
            p for p in by_kind["NetworkPolicy"] if p["metadata"]["name"].endswith("-from-namespace")
        ]
        sources = policy["spec"]["ingress"][0]["from"]
        assert {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
        } in sources

        # The same alerts as Prometheus's rule file.
        [rule] = by_kind["PrometheusRule"]
        assert rule["apiVersion"] == "monitoring.coreos.com/v1"
        assert rule["spec"] == {"groups": alert_groups(project)}
        assert {d["metadata"]["namespace"] for d in docs if d["kind"] != "Namespace"} == {
            monitor["metadata"]["namespace"]
        }
