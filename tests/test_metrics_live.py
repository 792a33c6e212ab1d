"""Metrics, live, read back through a real Prometheus server.

A project (preset api, with Celery) runs as two gunicorn instances of two workers each behind
its nginx config, on a PostgreSQL database and a Redis server of its own, with a Celery worker
of two pool processes. Prometheus scrapes the three metrics ports every second. Whichever
worker of whichever instance answered a request, ``sum(flask_http_request_total)`` must grow by
exactly the number of requests the app received: each gunicorn master sums its workers' files
(prometheus-client's multiprocess mode), and Prometheus sums the instances. The worker's
``celery_queue_length``, read from Redis at each scrape, counts the tasks sent while it takes none.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from celery import Celery
from prometheus_client.parser import text_string_to_metric_families
from support.celery import node_name
from support.commands import project_env, run
from support.postgres import throwaway_database
from support.postgres import url as postgres_url
from support.processes import Process, answers, wait_for
from support.redis import throwaway_redis
from support.rendering import preset, render
from support.services import free_port, require_command, require_modules, require_service
from support.webstack import HOST, WebStack, nginx_directory, sign_up

pytestmark = pytest.mark.xdist_group("services")

SCRAPE = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: web
    static_configs:
      - targets: [{web}]
  - job_name: worker
    static_configs:
      - targets: ["{worker}"]
"""


@dataclass(kw_only=True)
class Observed(WebStack):
    """The web tier, a Celery worker and Prometheus scraping them."""

    metrics_ports: dict[str, int] = field(
        default_factory=lambda: {"a": free_port(), "b": free_port(), "worker": free_port()}
    )
    prometheus_port: int = field(default_factory=free_port)
    others: list[Process] = field(default_factory=list)
    token: str = ""

    def start_instance(self, name: str) -> Process:
        base = self.env
        self.env = {**base, "METRICS_PORT": str(self.metrics_ports[name])}
        try:
            return super().start_instance(name)
        finally:
            self.env = base

    def start_worker(self) -> Process:
        cmd = [sys.executable, "-m", "celery", "-A", "make_celery", "worker", "-c", "2"]
        cmd += ["-n", node_name("metrics"), "--loglevel", "INFO"]
        cmd += ["--without-gossip", "--without-mingle"]
        env = {**self.env, "METRICS_PORT": str(self.metrics_ports["worker"])}
        worker = Process("worker", cmd, self.project, env, self.logs / "worker.log").start()
        self.others.append(worker)
        # Ready, it serves its metrics.
        metrics = f"http://{HOST}:{self.metrics_ports['worker']}/metrics"
        wait_for(
            lambda: answers(metrics) or not worker.running,
            60,
            lambda: f"the worker did not start:\n{worker.output()[-4000:]}",
        )
        assert worker.running, worker.output()[-4000:]
        return worker

    def start_prometheus(self, root: Path) -> Process:
        targets = {name: f"{HOST}:{port}" for name, port in self.metrics_ports.items()}
        config = root / "prometheus.yml"
        config.write_text(
            SCRAPE.format(web=f'"{targets["a"]}", "{targets["b"]}"', worker=targets["worker"])
        )
        run([require_command("promtool"), "check", "config", str(config)], root)
        cmd = [require_command("prometheus"), f"--config.file={config}"]
        cmd += [f"--storage.tsdb.path={root / 'data'}"]
        cmd += [f"--web.listen-address={HOST}:{self.prometheus_port}"]
        prometheus = Process("prometheus", cmd, root, {}, self.logs / "prometheus.log").start()
        self.others.append(prometheus)
        wait_for(
            lambda: answers(f"http://{HOST}:{self.prometheus_port}/-/ready"),
            60,
            lambda: f"prometheus did not start:\n{prometheus.output()[-4000:]}",
        )
        return prometheus

    def processes(self) -> list[Process]:
        return [*super().processes(), *self.others]

    def query(self, promql: str) -> list[dict]:
        url = f"http://{HOST}:{self.prometheus_port}/api/v1/query"
        response = requests.get(url, params={"query": promql}, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()["data"]["result"]

    def value(self, promql: str) -> float:
        """The single value of ``promql``; 0 when it has none (no such series yet)."""
        result = self.query(promql)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else 0.0

    def scraped_after(self, moment: float) -> None:
        """Wait until Prometheus has scraped every target, successfully, since ``moment``."""

        def done() -> bool:
            scrapes = self.query("timestamp(up)")
            healthy = {r["metric"]["instance"] for r in self.query("up == 1")}
            return (
                len(scrapes) == 3
                and len(healthy) == 3
                and all(float(r["value"][1]) > moment for r in scrapes)
            )

        wait_for(done, 30, lambda: f"no fresh scrape: {self.query('up')}\n{self.diagnostics()}")

    def requests_counted(self) -> float:
        self.scraped_after(time.time())
        return self.value("sum(flask_http_request_total)")


@pytest.fixture(scope="module")
def stack(template_dir, tmp_path_factory) -> Iterator[Observed]:
    require_service("PostgreSQL", 5432)
    for command in ("nginx", "prometheus", "promtool"):
        require_command(command)
    require_modules("psycopg", "gunicorn", "redis", "prometheus_client")

    slug = f"metrics_{secrets.token_hex(3)}"
    project = tmp_path_factory.mktemp("metrics") / slug
    answers_ = preset("api", project_name=slug, project_slug=slug, ci="none", celery=True)
    render(template_dir, project, answers_)
    nginx_root = nginx_directory("metrics")
    prometheus_root = Path(tempfile.mkdtemp(prefix="flaskscale-prometheus-"))
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, nginx_root, ignore_errors=True)
        cleanup.callback(shutil.rmtree, prometheus_root, ignore_errors=True)
        database = cleanup.enter_context(throwaway_database(slug))
        redis_url = cleanup.enter_context(throwaway_redis(project.parent))
        env = {
            **project_env(project),
            "FLASK_CONFIG": "production",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "TRUSTED_HOSTS": "shop.example.com",
            "DATABASE_URL": postgres_url(database),
            "REDIS_URL": redis_url,
            "PROXY_COUNT": "1",
            "WEB_CONCURRENCY": "2",
            "GUNICORN_THREADS": "2",
        }
        logs = tmp_path_factory.mktemp("metrics-logs")
        stack = Observed(project=project, env=env, logs=logs, nginx_root=nginx_root)
        cleanup.callback(stack.stop)
        run([sys.executable, "-m", "flask", "--app", slug, "db", "upgrade"], project, env)
        stack.start_instance("a")
        stack.start_instance("b")
        stack.start_nginx()
        stack.start_worker()
        stack.start_prometheus(prometheus_root)
        stack.token = sign_up(stack.url, "ada")
        yield stack


def test_prometheus_counts_exactly_the_requests_of_every_worker_of_both_instances(stack):
    before = stack.requests_counted()
    observed_before = stack.value("sum(flask_http_request_duration_seconds_count)")
    http = requests.Session()
    auth = {"Authorization": f"Bearer {stack.token}"}
    statuses = [http.get(stack.url + "/healthz", timeout=10).status_code for _ in range(20)]
    statuses += [
        http.get(stack.url + "/api/v1/items", headers=auth, timeout=10).status_code
        for _ in range(30)
    ]
    statuses += [http.get(stack.url + f"/no/such/{n}", timeout=10).status_code for n in range(9)]
    # nginx passes /metrics on to the app's port, which does not serve it.
    exposed = http.get(stack.url + "/metrics", timeout=10)
    statuses.append(exposed.status_code)
    assert "flask_http_request_total" not in exposed.text
    assert statuses == [200] * 50 + [404] * 10, stack.diagnostics()

    assert stack.requests_counted() == before + len(statuses)
    by_status = {
        r["metric"]["status"]: float(r["value"][1])
        for r in stack.query("sum by (status) (flask_http_request_total)")
    }
    assert by_status["404"] >= 10
    unmatched = stack.query('flask_http_request_total{status="404"}')
    assert {r["metric"]["endpoint"] for r in unmatched} == {"<unmatched>"}
    # Both instances answered (nginx balances round robin) and were scraped apart.
    instances = stack.query('sum by (instance) (flask_http_request_total{job="web"})')
    assert len(instances) == 2
    # Every request was timed too.
    observed = stack.value("sum(flask_http_request_duration_seconds_count)")
    assert observed == observed_before + len(statuses)
    assert stack.value('sum(flask_http_request_duration_seconds_bucket{le="+Inf"})') == observed
    assert stack.value("sum(flask_http_requests_in_flight)") == 0
    assert stack.query("flask_app_info")


def test_an_asynchronous_request_moves_the_celery_task_counters(stack):
    stack.scraped_after(time.time())
    metrics = ["started", "succeeded", "failed"]
    before = {m: stack.value(f"sum(celery_task_{m}_total)") for m in metrics}
    runs_before = stack.value("sum(celery_task_runtime_seconds_count)")

    auth = {"Authorization": f"Bearer {stack.token}"}
    response = requests.get(stack.url + "/api/v1/items/report", headers=auth, timeout=10)
    assert response.status_code == 202, response.text
    status_url = stack.url + response.headers["Location"]

    def finished() -> bool:
        return requests.get(status_url, headers=auth, timeout=10).status_code != 202

    wait_for(finished, 30, lambda: f"the report never finished\n{stack.diagnostics()}")
    stack.scraped_after(time.time())
    after = {m: stack.value(f"sum(celery_task_{m}_total)") for m in metrics}
    assert after == {
        **before,
        "started": before["started"] + 1,
        "succeeded": before["succeeded"] + 1,
    }
    assert stack.value("sum(celery_task_runtime_seconds_count)") == runs_before + 1
    tasks = {r["metric"]["task"] for r in stack.query("celery_task_succeeded_total")}
    assert any(task.endswith("run_request") for task in tasks), tasks


def worker_metric(stack: Observed, name: str, labels: dict[str, str]) -> float | None:
    """A sample of the worker's own /metrics page, as Prometheus would read it."""
    page = requests.get(f"http://{HOST}:{stack.metrics_ports['worker']}/metrics", timeout=10)
    assert page.status_code == 200, page.text  # a collector that raised fails the whole page
    for family in text_string_to_metric_families(page.text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return sample.value
    return None


def test_the_queue_length_is_what_waits_while_no_worker_consumes(stack):
    """The worker stops taking tasks from the project's queue; five sent tasks wait there."""
    queue = stack.project.name  # the project's slug: its task_default_queue
    client = Celery(broker=stack.env["REDIS_URL"], set_as_current=False)
    client.conf.task_default_queue = queue
    task = f"{queue}.tasks.report_usage"
    done = {"task": task}
    succeeded = worker_metric(stack, "celery_task_succeeded_total", done) or 0
    assert worker_metric(stack, "celery_queue_length", {"queue": queue}) == 0

    assert client.control.cancel_consumer(queue, reply=True, timeout=5, limit=1), (
        "no worker answered"
    )
    try:
        for _ in range(5):
            client.send_task(task)
        assert worker_metric(stack, "celery_queue_length", {"queue": queue}) == 5
        stack.scraped_after(time.time())
        assert stack.value("max(celery_queue_length)") == 5
    finally:
        assert client.control.add_consumer(queue, reply=True, timeout=5, limit=1)

    def drained() -> bool:
        return worker_metric(stack, "celery_task_succeeded_total", done) == succeeded + 5

    wait_for(drained, 20, lambda: f"the tasks did not run\n{stack.diagnostics()}")
    assert worker_metric(stack, "celery_queue_length", {"queue": queue}) == 0
