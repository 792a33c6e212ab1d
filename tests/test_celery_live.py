"""Celery on real brokers: a real worker runs the generated project's tasks.

For each broker (Redis, RabbitMQ) a project is rendered with ``celery`` and ``api`` and its
worker is started with the generated ``celery -A make_celery worker``. The tests submit the
example task and an asynchronous API request, and kill a worker with SIGKILL in the middle of a
task: a new worker must run the task to completion (``task_acks_late``). Every test runs on
both brokers.

Isolation: every project gets its own slug, hence its own queue (``task_default_queue`` is the
slug), and its own throwaway Redis server (support.redis), so that no other test, xdist worker
or test run can flush or restore the tasks it has in flight.
"""

from __future__ import annotations

import importlib
import os
import secrets
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery.exceptions import TimeoutError as ResultTimeout
from support.celery import node_name
from support.commands import project_env
from support.processes import Process, wait_for
from support.redis import throwaway_redis
from support.rendering import render
from support.services import require_service

# Tests that drive real brokers and containers share one xdist worker ("services"), so that
# they never starve each other (the container build included). Their Redis is their own.
pytestmark = pytest.mark.xdist_group("services")


RABBITMQ_PORT = 5672
# Redis hands a task whose worker vanished to another worker once it has been unacknowledged
# this long (CELERY_VISIBILITY_TIMEOUT). It must stay longer than any probe task runs, even on a
# loaded machine, or a running task would be handed out a second time.
VISIBILITY_TIMEOUT = 10

# A slow, observable task, loaded into the worker with `-I live_probe`: it records each start
# and each completion in a file, so a test can tell a task that ran twice from one that ran once.
PROBE = """\
import time

from celery import shared_task


@shared_task
def slow_write(path: str, seconds: float) -> str:
    with open(path, "a") as marks:
        marks.write("start\\n")
    time.sleep(seconds)
    with open(path, "a") as marks:
        marks.write("done\\n")
    return "finished"
"""


class LiveProject:
    def __init__(self, path: Path, slug: str, broker: str, redis_url: str) -> None:
        self.path = path
        self.slug = slug
        self.broker = broker
        self.env = {
            **project_env(path),
            "FLASK_CONFIG": "development",
            "SECRET_KEY": "live-test",
            "DATABASE_URL": f"sqlite:///{path / 'live.db'}",
            "REDIS_URL": redis_url,
            # Every worker serves its metrics: on a port of its own, never a busy one.
            "METRICS_PORT": "0",
        }
        if broker == "rabbitmq":
            self.env["CELERY_BROKER_URL"] = f"amqp://guest:guest@127.0.0.1:{RABBITMQ_PORT}//"
        else:
            self.env["CELERY_VISIBILITY_TIMEOUT"] = str(VISIBILITY_TIMEOUT)
        self._app = None

    @property
    def app(self):
        """The project's Flask app in this process, configured like the worker."""
        if self._app is None:
            saved = dict(os.environ)
            os.environ.update(self.env)
            try:
                sys.path.insert(0, str(self.path))
                package = importlib.import_module(self.slug)
                self._app = package.create_app()
                # Tasks are shared_task: .delay() uses the current Celery app, so make it ours.
                self._app.extensions["celery"].set_current()
            finally:
                os.environ.clear()
                os.environ.update(saved)
            importlib.import_module(f"{self.slug}.models")
            with self._app.app_context():
                self._app.extensions["sqlalchemy"].create_all()
        return self._app

    @property
    def celery(self):
        return self.app.extensions["celery"]


class Worker(Process):
    """A ``celery -A make_celery worker`` process (and its pool) in its own process group."""

    def __init__(self, project: LiveProject, name: str, log: Path) -> None:
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "make_celery",
            "worker",
            "-I",
            "live_probe",
        ]
        command += ["-c", "1", "-n", node_name(name), "--loglevel", "INFO"]
        command += ["--without-gossip", "--without-mingle"]
        super().__init__(name, command, project.path, project.env, log)

    def wait_ready(self, timeout: float = 60) -> None:
        wait_for(
            lambda: " ready." in self.output() or not self.running,
            timeout,
            lambda: f"the worker was not ready after {timeout} s:\n{self.output()}",
        )
        assert self.running, f"the worker exited:\n{self.output()}"

    def pool_processes(self) -> list[int]:
        """The pids of the worker's pool processes (its children)."""
        children = []
        for thread in Path(f"/proc/{self.pid}/task").iterdir():
            children += [int(pid) for pid in (thread / "children").read_text().split()]
        return children


def forget_metrics(slug: str) -> None:
    """Take the project's metrics out of prometheus-client's one registry: the next project
    imported into this process defines the same names."""
    from prometheus_client import REGISTRY
    from prometheus_client.metrics import MetricWrapperBase

    for name, module in list(sys.modules.items()):
        if name == slug or name.startswith(f"{slug}."):
            for value in vars(module).values():
                if isinstance(value, MetricWrapperBase):
                    REGISTRY.unregister(value)


def wait_out_the_visibility_timeout(project: LiveProject) -> None:
    """On Redis, let a killed worker's task become visible again before a new worker starts.

    RabbitMQ requeues the task as soon as the dead worker's connection closes. Redis hands out
    a task again once it has been unacknowledged for ``VISIBILITY_TIMEOUT`` seconds, and a
    worker looks for such tasks when it starts, then only every 100 s (kombu's
    ``unacked_restore_interval`` times ``unacked_restore_throttle``): a worker started sooner
    would find the task only at its next look, close to the test's time limit.
    """
    if project.broker == "redis":
        time.sleep(VISIBILITY_TIMEOUT + 1)


@pytest.fixture(scope="module", params=["redis", "rabbitmq"])
def live_project(request, template_dir, tmp_path_factory) -> Iterator[LiveProject]:
    broker = request.param
    if broker == "rabbitmq":
        require_service("RabbitMQ", RABBITMQ_PORT)
    slug = f"live_{broker}_{secrets.token_hex(3)}"
    path = tmp_path_factory.mktemp(f"celery-{broker}") / slug
    answers = {
        "project_name": slug,
        "project_slug": slug,
        "celery": True,
        "celery_broker": broker,
        "api": True,
        "web_ui": False,
        "socketio": False,
        "docker": False,
        "ci": "none",
    }
    render(template_dir, path, answers)
    (path / "live_probe.py").write_text(PROBE)
    # The broker (for Redis) and the results live in a Redis server of the module's own.
    with throwaway_redis(path.parent) as redis_url:
        project = LiveProject(path, slug, broker, redis_url)
        yield project
        forget_metrics(slug)
        if project.broker == "rabbitmq" and project._app is not None:
            with project.celery.connection_for_write() as connection:
                connection.default_channel.queue_delete(slug)  # RabbitMQ keeps queues until deleted


@pytest.fixture
def start_worker(live_project: LiveProject, tmp_path: Path) -> Iterator:
    """Start workers on ``live_project``; every one of them is killed at the end of the test."""
    workers: list[Worker] = []

    def start(name: str) -> Worker:
        worker = Worker(live_project, name, tmp_path / f"{name}.log").start()
        workers.append(worker)
        worker.wait_ready()
        return worker

    try:
        yield start
    finally:
        for worker in workers:
            worker.stop()


def test_a_worker_runs_the_example_task(live_project: LiveProject, start_worker):
    app = live_project.app
    assert not live_project.celery.conf.task_always_eager
    with app.app_context():
        models = importlib.import_module(f"{live_project.slug}.models")
        example = importlib.import_module(f"{live_project.slug}.example")
        db = app.extensions["sqlalchemy"]
        user = models.User(username="ada", email="ada@example.com", password="pw")
        db.session.add_all(
            [user, example.Item(name="a", owner=user), example.Item(name="b", owner=user)]
        )
        db.session.commit()
        user_id = user.id
    worker = start_worker("tasks")
    task = f"{live_project.slug}.example.count_items"
    result = live_project.celery.send_task(task, args=[user_id])
    assert result.get(timeout=30) == {"user_id": user_id, "items": 2}
    wait_for(
        lambda: f"example.count_items[{result.id}] succeeded" in worker.output(),
        10,
        f"the worker did not log the task:\n{worker.output()}",
    )


def test_an_asynchronous_request_is_run_by_the_worker(live_project: LiveProject, start_worker):
    client = live_project.app.test_client()
    account = {"username": "grace", "email": "grace@example.com", "password": "s3cret-passphrase"}
    assert client.post("/api/v1/users", json=account).status_code == 201
    token = client.post("/api/v1/tokens", auth=("grace", "s3cret-passphrase")).get_json()
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    for name in ("lamp", "desk", "chair"):
        client.post("/api/v1/items", json={"name": name, "description": "a b"}, headers=auth)

    response = client.get("/api/v1/items/report", headers=auth)
    assert response.status_code == 202
    location = response.headers["Location"]
    # Queued in the broker, not run: no worker is running yet.
    assert client.get(location, headers=auth).status_code == 202

    worker = start_worker("requests")

    def answered():
        response = client.get(location, headers=auth)
        return response if response.status_code != 202 else None

    # 90 s is generous: CI shares two cores with other tests.
    result = wait_for(answered, 90, lambda: f"no answer in 90 s:\n{worker.output()}")
    assert result.status_code == 200, f"{result.get_data(as_text=True)}\n{worker.output()}"
    assert (result.get_json()["items"], result.get_json()["words"]) == (3, 6)


def test_a_task_survives_a_killed_worker(live_project: LiveProject, start_worker, tmp_path):
    marks = tmp_path / "marks"
    first = start_worker("doomed")
    result = live_project.celery.send_task("live_probe.slow_write", args=[str(marks), 4])
    wait_for(lambda: marks.exists(), 30, f"the task never started:\n{first.output()}")

    first.kill()  # SIGKILL, mid-task: the task was never acknowledged
    assert marks.read_text() == "start\n"
    assert result.state == "STARTED"

    wait_out_the_visibility_timeout(live_project)
    second = start_worker("rescuer")
    try:
        assert result.get(timeout=120) == "finished"
    except ResultTimeout:
        pytest.fail(f"the task was not run again within 120 s:\n{second.output()}")
    assert marks.read_text() == "start\nstart\ndone\n"
    wait_for(
        lambda: f"live_probe.slow_write[{result.id}] succeeded" in second.output(),
        10,
        f"the new worker did not run the task:\n{second.output()}",
    )


def test_a_task_survives_a_killed_pool_process(live_project: LiveProject, start_worker, tmp_path):
    """The worker lives on, but the process running the task dies: the task is run again."""
    marks = tmp_path / "marks"
    worker = start_worker("survivor")
    result = live_project.celery.send_task("live_probe.slow_write", args=[str(marks), 2])
    wait_for(lambda: marks.exists(), 30, f"the task never started:\n{worker.output()}")

    [pool_process] = worker.pool_processes()
    os.kill(pool_process, signal.SIGKILL)
    # task_reject_on_worker_lost: requeued, not failed with WorkerLostError.
    try:
        assert result.get(timeout=60) == "finished"
    except ResultTimeout:
        pytest.fail(f"the task was not run again within 60 s:\n{worker.output()}")
    assert marks.read_text() == "start\nstart\ndone\n"
    assert worker.running
