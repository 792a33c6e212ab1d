"""Read replicas and a connection pooler, live (issue 20).

A generated API project (PostgreSQL) under its own gunicorn, in production, against a cluster of
the test's own (``support.pgcluster``):

- a primary, and PgBouncer in transaction pooling before it, with fewer server connections than
  gunicorn has threads: ``DATABASE_URL`` goes through PgBouncer;
- a streaming replica (``DATABASE_REPLICA_URLS``) that replays the primary's changes two
  seconds late (``recovery_min_apply_delay``), so that a read shows which server answered it,
  and streams them through a TCP proxy that the test can stall.

``pg_stat_statements`` on each server counts the queries it ran.
"""

from __future__ import annotations

import contextlib
import secrets
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from support.commands import production_env, run
from support.pgcluster import Cluster, PgBouncer
from support.postgres import execute, fetch
from support.processes import Process, serve, wait_for
from support.rendering import preset, render
from support.services import free_port, require_modules
from support.tcp_proxy import HOST, TcpProxy

pytestmark = pytest.mark.xdist_group("services")

DATABASE = "shop"
PASSWORD = "correct horse battery"
REPLAY_DELAY = 2  # seconds the replica waits before applying what the primary wrote
ITEM_READS = (
    "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query LIKE 'SELECT%FROM items%'"
)


@dataclass
class Stack:
    url: str
    project: Path
    env: dict[str, str]
    cluster: Cluster
    bouncer: PgBouncer
    gunicorn: Process
    stream: TcpProxy
    token: str = ""

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def item_reads(self) -> tuple[int, int]:
        """SELECTs of items run so far by (the primary, the replica)."""
        primary, replica = self.cluster.primary, self.cluster.replica
        return fetch(ITEM_READS, primary.dsn(DATABASE))[0][0], fetch(
            ITEM_READS, replica.dsn(DATABASE)
        )[0][0]

    def explain(self, response: requests.Response | None = None) -> str:
        answer = f"{response.status_code} {response.text[:400]}\n" if response is not None else ""
        return (
            f"{answer}--- gunicorn\n{self.gunicorn.output()[-4000:]}\n"
            f"--- pgbouncer\n{self.bouncer.process.output()[-2000:]}\n{self.cluster.diagnostics()}"
        )


@pytest.fixture(scope="module")
def stack(template_dir, tmp_path_factory) -> Iterator[Stack]:
    require_modules("psycopg", "gunicorn")
    root = tmp_path_factory.mktemp("replicas")
    slug = f"replicas_{secrets.token_hex(3)}"
    project = render(template_dir, root / slug, preset("api", project_slug=slug, ci="none"))
    cluster = Cluster({"recovery_min_apply_delay": f"{REPLAY_DELAY}s"})
    stream = TcpProxy(HOST, cluster.primary.port)
    cluster.replica_settings["primary_conninfo"] = f"host={HOST} port={stream.port} user=postgres"
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(cluster.stop)
        cleanup.callback(stream.stop)
        stream.forward()
        cluster.start()
        execute(f"CREATE DATABASE {DATABASE}", cluster.primary.dsn())
        execute("CREATE EXTENSION pg_stat_statements", cluster.primary.dsn(DATABASE))
        bouncer = PgBouncer(cluster, pool_size=4)
        cleanup.callback(bouncer.stop)
        bouncer.start()
        env = production_env(
            project,
            DATABASE_URL=bouncer.url(DATABASE),
            DATABASE_REPLICA_URLS=cluster.replica.url(DATABASE),
            # An idle primary makes a replica's lag look as old as the last write it replayed:
            # the bound is generous, so that the replica stays in use throughout.
            REPLICA_MAX_LAG_SECONDS="600",
            READ_YOUR_WRITES_SECONDS="601",
            API_RATE_LIMIT="100000 per minute",  # the readers below are one client address
            WEB_CONCURRENCY="2",
            GUNICORN_THREADS="4",
            METRICS_PORT=str(free_port()),
        )
        # Migrations go to the primary itself, as docs/deploy.md says, not through the pooler.
        migrate_env = {**env, "DATABASE_URL": cluster.primary.url(DATABASE)}
        run([sys.executable, "-m", "flask", "--app", slug, "db", "upgrade"], project, migrate_env)
        url, gunicorn = serve(project, env, root / "gunicorn.log", cleanup)
        stack = Stack(url, project, env, cluster, bouncer, gunicorn, stream)
        response = requests.post(
            url + "/api/v1/users",
            json={"username": "ada", "email": "ada@example.com", "password": PASSWORD},
            timeout=30,
        )
        assert response.status_code == 201, stack.explain(response)
        response = requests.post(url + "/api/v1/tokens", auth=("ada", PASSWORD), timeout=30)
        assert response.status_code == 201, stack.explain(response)
        stack.token = response.json()["access_token"]
        # The replica has the user and the token before any test reads with them.
        wait_for(cluster.replayed(), 30, lambda: "not replayed\n" + stack.explain())
        yield stack


def item_names(stack: Stack, client: requests.Session | None = None) -> list[str]:
    """The names on the first page of the user's items, for ``client`` (default: a new one)."""
    url = stack.url + "/api/v1/items"
    response = (client or requests).get(url, headers=stack.headers(), timeout=30)
    assert response.status_code == 200, stack.explain(response)
    return [item["name"] for item in response.json()["data"]]


def create_item(stack: Stack, name: str, client: requests.Session | None = None):
    url = stack.url + "/api/v1/items"
    return (client or requests).post(url, json={"name": name}, headers=stack.headers(), timeout=30)


def replica_status(stack: Stack) -> str:
    return requests.get(stack.url + "/readyz", timeout=30).json()["replicas"]["replica-1"]["status"]


def test_reads_run_on_the_replica(stack: Stack):
    """Read by clients with no recent write: the replica runs every one, the primary none."""
    assert create_item(stack, "first").status_code == 201
    wait_for(stack.cluster.replayed(), 30, lambda: "not replayed\n" + stack.explain())
    before = stack.item_reads()
    for _ in range(10):
        assert item_names(stack) == ["first"]
    primary, replica = (after - was for after, was in zip(stack.item_reads(), before, strict=True))
    assert (primary, replica) == (0, 10), stack.explain()
    ready = requests.get(stack.url + "/readyz", timeout=30).json()
    assert ready["replicas"]["replica-1"]["status"] == "ok", ready


def test_a_client_reads_its_own_write_at_once_and_others_when_the_replica_has_it(stack: Stack):
    writer = requests.Session()  # keeps cookies, as a browser does
    assert create_item(stack, "mine", writer).status_code == 201
    assert "mine" in item_names(stack, writer), "the writer reads its write: from the primary"
    assert "mine" not in item_names(stack), f"others read the replica, {REPLAY_DELAY} s behind"
    wait_for(lambda: "mine" in item_names(stack), 30, lambda: "never replayed\n" + stack.explain())


MEASURE_LAG = """
from {slug} import create_app
from {slug}.replicas import measure_lag

app = create_app()
with app.app_context():
    print(measure_lag(app.extensions["replicas"].replicas[0].engine))
"""


def measured_lag(stack: Stack) -> float:
    """The generated ``measure_lag()`` of the replica, run in the project as the app runs it."""
    slug = stack.project.name
    code = MEASURE_LAG.format(slug=slug)
    return float(run([sys.executable, "-c", code], stack.project, stack.env).stdout)


def test_the_lag_is_measured_against_the_primary(stack: Stack):
    """A replica whose stream stalls, still connected, has replayed all it received but not all
    the primary wrote: it is behind. Once the stream flows and it replays, it is not."""
    wait_for(stack.cluster.replayed(), 30, lambda: "not replayed\n" + stack.explain())
    assert measured_lag(stack) == 0.0
    stack.stream.stall()
    try:
        assert create_item(stack, "while stalled").status_code == 201
        time.sleep(1.5)
        assert measured_lag(stack) >= 1.0
    finally:
        stack.stream.resume()
    wait_for(stack.cluster.replayed(), 30, lambda: "not replayed\n" + stack.explain())
    assert measured_lag(stack) == 0.0


def test_writes_through_pgbouncer_from_8_clients_all_succeed(stack: Stack):
    """8 clients, 25 writes each, over 8 gunicorn threads sharing 4 server connections."""
    before = stack.bouncer.stats(DATABASE).get("total_xact_count", 0)
    statuses: list[int] = []

    def client(number: int) -> None:
        with requests.Session() as session:
            for write in range(25):
                statuses.append(create_item(stack, f"c{number}-{write}", session).status_code)

    threads = [threading.Thread(target=client, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [201] * 200, stack.explain()
    rows = fetch("SELECT name FROM items", stack.cluster.primary.dsn(DATABASE))
    assert {f"c{n}-{w}" for n in range(8) for w in range(25)} <= {name for (name,) in rows}
    transactions = stack.bouncer.stats(DATABASE)["total_xact_count"] - before
    assert transactions >= 200, "the writes did not go through PgBouncer"


def test_stopping_the_replica_loses_no_read(stack: Stack):
    """Readers keep reading while the replica stops (sessions ended under them): the primary
    answers instead, and /readyz says the replica is down; started again, it is read again."""
    statuses: list[int] = []
    done = threading.Event()

    def reader() -> None:
        with requests.Session() as session:
            while not done.is_set():
                url = stack.url + "/api/v1/items"
                statuses.append(session.get(url, headers=stack.headers(), timeout=30).status_code)

    readers = [threading.Thread(target=reader) for _ in range(4)]
    for thread in readers:
        thread.start()
    time.sleep(1)
    stack.cluster.replica.stop("fast")
    time.sleep(2)
    done.set()
    for thread in readers:
        thread.join()
    failed = [status for status in statuses if status != 200]
    assert statuses and not failed, f"{len(failed)} of {len(statuses)} failed\n{stack.explain()}"
    assert "read replica replica-1 is down" in stack.gunicorn.output()
    ready = requests.get(stack.url + "/readyz", timeout=30)
    assert ready.status_code == 200, ready.text
    # What the worker that answers has learned from its own reads.
    wait_for(
        lambda: item_names(stack) and replica_status(stack) == "down",
        30,
        lambda: "/readyz never reported the replica down\n" + stack.explain(),
    )

    stack.cluster.replica.start()
    before = stack.item_reads()[1]
    # Each gunicorn worker finds it back at its own next check (REPLICA_CHECK_SECONDS).
    wait_for(
        lambda: item_names(stack) and stack.item_reads()[1] > before,
        30,
        lambda: "reads never went back to the replica\n" + stack.explain(),
    )
