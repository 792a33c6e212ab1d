"""Celery round trip: from the request that answers 202 to the poll that reports the result.

A project rendered with ``celery=True`` runs under gunicorn (production settings, as the HTTP
rows) beside its own Celery worker (the Procfile's ``worker`` command); a bare Flask + bare
Celery app (one trivial task, one route that sends it, one that reads its state) runs beside a
worker started with the same options. Both use a redis-server of the benchmark's own, each
side a database of its own on it, so that no other process's keys or queues are in the way.

A job: ``GET`` the endpoint that answers 202, then poll its ``Location`` every ``POLL`` seconds
(ignoring its ``Retry-After: 1``, which would round every job up to a second) until it answers
200. Its time runs from just before the first request to the 200; so a job is seen finished
up to one poll interval plus one poll's round trip after it finished. ``CONCURRENCY`` clients
run jobs at once; each batch of jobs is timed as a whole too (jobs per second). Batches
alternate bare, generated, generated, bare, ... over the rounds.
"""

from __future__ import annotations

import http.client
import re
import secrets
import shlex
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.support import HOST, Process, RedisServer, Server, free_port, node_name

CONCURRENCY = 4  # clients with a job in flight at once
POLL = 0.005  # seconds between two polls of a job's status
WARM_UP = 8  # untimed jobs a side runs first: imports, connections, the pool's processes
BARE_CELERY = "bare_celery:celery_app"  # not "bare_celery": -A would take its Flask app
JOB_TIMEOUT = 60  # seconds: a job not done by then means a worker that is not working

BARE_APP = '''\
"""Bare Flask and bare Celery: one trivial task, a route that sends it, one that reads it."""

import os

from celery import Celery
from flask import Flask, url_for

celery_app = Celery(
    "bare_celery", broker=os.environ["CELERY_BROKER_URL"], backend=os.environ["REDIS_URL"]
)
celery_app.conf.task_default_queue = os.environ["BARE_CELERY_QUEUE"]
app = Flask(__name__)


@celery_app.task
def add(x, y):
    return x + y


@app.get("/healthz")
def healthz():
    return {"status": "ok"}


@app.get("/job")
def job():
    result = add.delay(1, 2)
    return "", 202, {"Location": url_for("status", task_id=result.id)}


@app.get("/jobs/<task_id>")
def status(task_id):
    result = add.AsyncResult(task_id)
    if result.state == "SUCCESS":
        return {"result": result.result}
    return "", 202, {"Location": url_for("status", task_id=task_id)}
'''


def worker_command(project: Path) -> list[str]:
    """The Procfile's ``worker`` command from ``celery`` on, its ``${VAR:-default}`` at their
    defaults: ``celery -A make_celery worker --loglevel INFO --concurrency 2``."""
    procfile = (project / "Procfile").read_text()
    line = re.search(r"^worker:(.*)$", procfile, re.MULTILINE).group(1)
    words = shlex.split(line)
    words = words[words.index("celery") :]  # without "env NAME=value ...": set here instead
    return [re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", word) for word in words]


def with_app(command: list[str], app: str) -> list[str]:
    """``command`` with another ``-A`` app: the same worker options for another app."""
    at = command.index("-A") + 1
    return [*command[:at], app, *command[at + 1 :]]


class Side:
    """An app and its worker: where to start a job, and the job's times."""

    def __init__(self, name: str, server: Server, worker: Process, path: str, headers: dict):
        self.name, self.server, self.worker = name, server, worker
        self.path, self.headers = path, headers
        self.jobs: list[float] = []  # seconds, every timed job
        self.polls: list[int] = []
        self.rates: list[float] = []  # jobs per second, a batch at a time

    def run_job(self, connection: http.client.HTTPConnection) -> tuple[float, int]:
        start = time.perf_counter()
        status, location, body = request(connection, self.path, self.headers)
        polls = 0
        while status == 202 and location and time.perf_counter() - start < JOB_TIMEOUT:
            time.sleep(POLL)
            status, location, body = request(connection, location, self.headers)
            polls += 1
        if status != 200:
            raise SystemExit(
                f"{self.name}: a job ended with {status} {body[:500]!r}; worker log:\n"
                + self.worker.output()[-3000:]
            )
        return time.perf_counter() - start, polls

    def batch(self, jobs: int, timed: bool = True) -> None:
        """``jobs`` jobs over ``CONCURRENCY`` clients."""
        results: list[tuple[float, int]] = []
        failures: list[BaseException] = []

        def client(count: int) -> None:
            connection = http.client.HTTPConnection(HOST, self.server.port, timeout=30)
            try:
                for _ in range(count):
                    results.append(self.run_job(connection))
            except BaseException as error:  # raised again in the caller's thread
                failures.append(error)
            finally:
                connection.close()

        shares = [jobs // CONCURRENCY + (n < jobs % CONCURRENCY) for n in range(CONCURRENCY)]
        threads = [threading.Thread(target=client, args=(n,)) for n in shares if n]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
        if failures:
            raise failures[0]
        if timed:
            self.jobs += [seconds for seconds, _ in results]
            self.polls += [polls for _, polls in results]
            self.rates.append(jobs / elapsed)

    def summary(self) -> dict:
        ms = sorted(seconds * 1000 for seconds in self.jobs)
        return {
            "jobs": len(ms),
            "p50_ms": statistics.median(ms),
            "p99_ms": statistics.quantiles(ms, n=100, method="inclusive")[98],
            "max_ms": ms[-1],
            "jobs_per_s": statistics.median(self.rates),
            "polls_per_job": statistics.mean(self.polls),
            "rates": self.rates,
        }


def request(connection: http.client.HTTPConnection, path: str, headers: dict):
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    body = response.read()
    return response.status, response.getheader("Location"), body


def measure(
    project: Path,
    python: Path,
    work: Path,
    env: dict,
    seed: Callable[[dict], dict],
    jobs: int,
    rounds: int,
) -> dict:
    """The row: both sides' jobs, ``jobs`` a batch, ``rounds`` batches each."""
    (work / "bare_celery.py").write_text(BARE_APP)
    project_worker = worker_command(project)
    redis = RedisServer(work)
    processes: list[Server | Process] = []  # each one as it starts: a failure stops them all
    try:
        redis.start()
        generated_env = {**env, "REDIS_URL": redis.url(1), "CELERY_BROKER_URL": redis.url(1)}
        bare_env = {**env, "REDIS_URL": redis.url(2), "CELERY_BROKER_URL": redis.url(2)}
        bare_env["BARE_CELERY_QUEUE"] = f"bare-{secrets.token_hex(4)}"
        # The writer owns no items: the report's own work is two small queries, so the row
        # shows what the round trip costs, not what a report costs.
        token = seed(generated_env)["writer_token"]
        commands = {"bare": with_app(project_worker, BARE_CELERY), "generated": project_worker}
        sides = []
        for name, cwd, side_env, server_args, path, headers in (
            # The access log formatted (and dropped) on both sides, as in the HTTP rows.
            ("bare", work, bare_env, ["--access-logfile", "-", "bare_celery:app"], "/job", {}),
            (
                "generated",
                project,
                generated_env,
                ["--config", "gunicorn.conf.py"],
                "/api/v1/items/report",
                {"Authorization": f"Bearer {token}"},
            ),
        ):
            processes.append(server := Server(f"celery-{name}", python, cwd, side_env, server_args))
            worker_cmd = [str(python), "-m", *commands[name], "-n", node_name(f"bench-{name}")]
            worker_env = {**side_env, "METRICS_PORT": str(free_port())}
            log = work / f"worker-{name}.log"
            processes.append(worker := Process(name, worker_cmd, cwd, worker_env, log).start())
            sides.append(Side(name, server, worker, path, headers))
        print(f"Celery round trip: {shlex.join(project_worker)}, {CONCURRENCY} clients", flush=True)
        for side in sides:  # the first job waits for the worker to be ready
            side.batch(WARM_UP, timed=False)
        for round_ in range(rounds):
            for side in sides if round_ % 2 == 0 else sides[::-1]:
                side.batch(jobs)
            bare, generated = sides
            print(
                f"  round {round_ + 1} {jobs} jobs: bare {bare.rates[-1]:.0f} jobs/s, "
                f"generated {generated.rates[-1]:.0f} jobs/s",
                flush=True,
            )
    finally:
        for process in processes:
            process.stop()
        redis.stop()
    bare, generated = (side.summary() for side in sides)
    return {
        "key": "celery",
        "label": "GET /api/v1/items/report (token): 202, then poll to the result",
        "bare_label": "bare Flask + Celery: one trivial task, 202, then poll",
        "worker": shlex.join(commands["generated"]),
        "bare_worker": shlex.join(commands["bare"]),
        "concurrency": CONCURRENCY,
        "poll_ms": POLL * 1000,
        "bare": bare,
        "generated": generated,
        "ratio": generated["jobs_per_s"] / bare["jobs_per_s"],
    }
