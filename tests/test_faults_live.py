"""Degrade, don't fail: a live app's dependencies go away and come back (issue 15).

One generated project with every feature on (preset ``full``: web UI, API v1+v2, PostgreSQL,
Celery with the Redis broker, Socket.IO), served by one gunicorn instance from its own
``gunicorn.conf.py`` in production, against:

- a throwaway ``redis-server`` on a port of its own (``REDIS_URL``: the cache, the rate limits,
  the Socket.IO message queue, Celery's broker and results), which the tests stop and start;
- a PostgreSQL database of its own on the machine's server, reached through a TCP proxy
  (``support.tcp_proxy``) that the tests switch to refusing or swallowing connections. The
  proxy, not the server, is what fails: other tests use the machine's PostgreSQL meanwhile, and
  ``ALTER DATABASE ... ALLOW_CONNECTIONS false`` would only show a server that answers "no",
  never one that does not answer at all.

No Celery worker runs: asynchronous requests are only queued, and the queue is counted.
Each test is one outage story: what clients get while the dependency is gone, then that the
next requests succeed with the same gunicorn process, and rows counted in the database show that
nothing written was lost or written twice.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from support.commands import production_env, run
from support.postgres import dsn, fetch, throwaway_database
from support.processes import Process, serve, wait_for
from support.redis import RedisServer
from support.rendering import preset, render
from support.services import free_port, require_modules, require_service
from support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.xdist_group("services")

HOST = "127.0.0.1"
POSTGRES_PORT = 5432
PASSWORD = "correct horse battery"
# Bounds, not benchmarks: a call to a service that is down gives up within a second or two
# (the generated timeouts), and a request that hung on it would take minutes (TCP's timeouts).
PROMPT = 5.0
# A server that does not answer at all is given up on after the connect timeout (2 s).
SILENT_PROMPT = 10.0
DATABASE_DOWN = {"code": 503, "message": "the database is unavailable, try again shortly"}
# Sent while the database is down: never to be found in it.
LOST = {"name": "lost"}
QUEUE_DOWN = {"code": 503, "message": "Asynchronous requests are unavailable: try again later."}


@dataclass
class App:
    """The gunicorn instance, its dependencies, and a signed-up user's API token."""

    url: str
    slug: str
    database: str
    gunicorn: Process
    redis: RedisServer
    proxy: TcpProxy
    token: str = ""
    user_id: int = 0

    def request(self, method: str, path: str, token: str | None = None, **kwargs):
        headers = {"Authorization": f"Bearer {token or self.token}", **kwargs.pop("headers", {})}
        return requests.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def log_in(self, username: str) -> str:
        """A new access token through the API (HTTP basic auth)."""
        response = requests.post(self.url + "/api/v1/tokens", auth=(username, PASSWORD), timeout=30)
        assert response.status_code == 201, self.explain(response)
        return response.json()["access_token"]

    def items(self) -> int:
        """Rows in the items table, read directly from the database (not through the proxy)."""
        return fetch("SELECT count(*) FROM items", dsn(self.database))[0][0]

    def queued(self) -> int:
        """Tasks waiting in the project's Celery queue (a Redis list named after the queue)."""
        return self.redis.client().llen(self.slug)

    def log(self) -> str:
        return self.gunicorn.output()

    def explain(self, response: requests.Response) -> str:
        return f"{response.status_code} {response.text[:500]}\n--- gunicorn\n{self.log()[-4000:]}"


def sign_up(app: App, username: str) -> None:
    """Register ``username`` through the API; their token becomes the app's."""
    response = requests.post(
        app.url + "/api/v1/users",
        json={"username": username, "email": f"{username}@example.com", "password": PASSWORD},
        timeout=30,
    )
    assert response.status_code == 201, app.explain(response)
    app.user_id = response.json()["id"]
    app.token = app.log_in(username)


@pytest.fixture(scope="module")
def app(template_dir, tmp_path_factory) -> Iterator[App]:
    require_service("PostgreSQL", POSTGRES_PORT)
    require_modules("psycopg", "gunicorn", "gevent", "redis", "celery", "socketio")

    slug = f"faults_{secrets.token_hex(3)}"
    root = tmp_path_factory.mktemp("faults")
    project = render(template_dir, root / slug, preset("full", project_slug=slug, ci="none"))
    redis = RedisServer(root)
    proxy = TcpProxy(HOST, POSTGRES_PORT)
    with contextlib.ExitStack() as cleanup:
        database = cleanup.enter_context(throwaway_database(slug))
        cleanup.callback(proxy.stop)
        proxy.forward()
        cleanup.callback(redis.stop)
        redis.start()
        env = production_env(
            project,
            DATABASE_URL=f"postgresql://postgres@{proxy.address}/{database}",
            REDIS_URL=redis.url(),
            LOG_LEVEL="INFO",
            METRICS_PORT=str(free_port()),
        )
        run([sys.executable, "-m", "flask", "--app", slug, "db", "upgrade"], project, env)
        url, gunicorn = serve(project, env, root / "gunicorn.log", cleanup)
        app = App(url, slug, database, gunicorn, redis, proxy)
        sign_up(app, "ada")
        yield app


def ready(app: App) -> tuple[int, dict]:
    response = requests.get(app.url + "/readyz", timeout=30)
    return response.status_code, response.json()


def assert_alive(app: App) -> None:
    """/healthz asks no dependency: the process is up, whatever is down."""
    response = requests.get(app.url + "/healthz", timeout=30)
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def assert_no_restart(app: App) -> None:
    """The same gunicorn worker served it all: never restarted, never timed out."""
    assert app.gunicorn.running, app.log()[-4000:]
    assert app.log().count("Booting worker") == 1, app.log()[-4000:]


def timed(call, *args, **kwargs) -> tuple[requests.Response, float]:
    start = time.monotonic()
    response = call(*args, **kwargs)
    return response, time.monotonic() - start


def names(response: requests.Response) -> list[str]:
    """The names of the items on a page of the API's item list."""
    return [item["name"] for item in response.json()["data"]]


def redis_keys(app: App, pattern: str) -> list[bytes]:
    return app.redis.client().keys(pattern)


# --- Redis ----------------------------------------------------------------------------------


def test_with_redis_down_writes_reads_and_log_ins_work_and_everything_returns_with_it(app: App):
    before = app.items()
    with socket_io_client(app) as notifications:
        assert_redis_in_use(app, notifications)

        app.redis.stop()
        assert_redis_outage_answers(app, before)

        app.redis.start()
        assert_redis_is_back(app, before, notifications)
    assert_no_restart(app)


def assert_redis_in_use(app: App, notifications: list) -> None:
    """The summary is cached in Redis, the rate limits count there, events pass through it."""
    assert app.get("/api/v1/items/summary").status_code == 200
    assert redis_keys(app, f"{app.slug}:*"), "the summary was not cached in Redis"
    assert redis_keys(app, "LIMITS*"), "the rate limits are not counted in Redis"
    wait_for(lambda: subscribed(app), 10, "the app does not listen for Socket.IO events")
    push_from_another_process(app, "before")
    wait_for(lambda: notifications, 10, "no Socket.IO event came through Redis")


def assert_redis_outage_answers(app: App, before: int) -> None:
    """What clients get while Redis is down: everything but asynchronous requests works."""
    # A write commits, and answers 201, though its cached summary cannot be dropped.
    response, took = timed(app.post, "/api/v1/items", json={"name": "lamp"})
    assert response.status_code == 201, app.explain(response)
    assert took < PROMPT
    assert app.items() == before + 1
    assert "Could not drop the item summary" in app.log()
    # Reads come from the database, the summary included (Redis restarts empty: no stale one).
    response = app.get("/api/v1/items")
    assert response.status_code == 200, app.explain(response)
    assert "lamp" in names(response)
    response = app.get("/api/v1/items/summary")
    assert response.status_code == 200, app.explain(response)
    assert response.json()["items"] == before + 1
    # Logging in works: the limits count in this process's memory meanwhile.
    token = app.log_in("ada")
    assert "falling back to in-memory storage" in app.log()
    # Logging out closes the token's Socket.IO room through the message queue: the event is
    # dropped (logged), the log-out is done.
    response, took = timed(app.request, "DELETE", "/api/v1/tokens", token=token)
    assert response.status_code == 204, app.explain(response)
    assert took < PROMPT
    assert app.get("/api/v1/items", token=token).status_code == 401
    assert "Cannot publish to redis... giving up" in app.log()
    # An asynchronous request cannot be queued: 503 at once, with when to try again.
    response, took = timed(app.get, "/api/v1/items/report")
    assert response.status_code == 503, app.explain(response)
    assert took < PROMPT
    assert response.headers["Retry-After"] == "30"
    assert response.json() == QUEUE_DOWN
    # Ready all the same: Redis and the broker are reported, the app serves without them.
    status, report = ready(app)
    assert (status, report) == (
        200,
        {"status": "ok", "database": "ok", "redis": "degraded", "broker": "degraded"},
    )
    assert_alive(app)


def assert_redis_is_back(app: App, before: int, notifications: list) -> None:
    """The next requests use Redis again: the queue, the cache, the limits, the events."""
    assert ready(app) == (200, {"status": "ok", "database": "ok", "redis": "ok", "broker": "ok"})
    # Queueing works, and only the request made now is in the queue.
    response = app.get("/api/v1/items/report")
    assert response.status_code == 202, app.explain(response)
    assert app.queued() == 1
    assert app.get(response.headers["Location"]).status_code == 202  # no worker: still waiting
    # A summary is kept in Redis again, and dropped when the items change.
    assert app.get("/api/v1/items/summary").json()["items"] == before + 1
    assert redis_keys(app, f"{app.slug}:*"), "the summary was not cached in Redis again"
    response = app.post("/api/v1/items", json={"name": "desk"})
    assert response.status_code == 201, app.explain(response)
    assert app.get("/api/v1/items/summary").json()["items"] == before + 2
    assert app.items() == before + 2
    # The rate limits go back to Redis, where every process shares them. Flask-Limiter tries
    # the storage again after 1, 2, 4... seconds (at most 32) of requests: allow for that.
    wait_for(
        lambda: app.get("/api/v1/items").status_code == 200 and redis_keys(app, "LIMITS*"),
        60,
        lambda: f"the rate limits did not return to Redis:\n{app.log()[-3000:]}",
    )
    # The open connection hears other processes again once the app has resubscribed, which
    # python-socketio retries after 1, 2, 4... seconds.
    wait_for(lambda: subscribed(app), 60, lambda: f"no resubscription:\n{app.log()[-3000:]}")
    push_from_another_process(app, "after")
    wait_for(lambda: len(notifications) == 2, 10, "no Socket.IO event came through Redis again")
    assert notifications == [{"text": "before"}, {"text": "after"}]


@contextlib.contextmanager
def socket_io_client(app: App) -> Iterator[list]:
    """A Socket.IO connection of the user, and the notifications it receives."""
    import socketio

    received: list[dict] = []
    client = socketio.Client(reconnection=False)
    client.on("notification", received.append)
    client.connect(app.url, auth={"token": app.token}, transports=["polling"], wait_timeout=10)
    try:
        yield received
    finally:
        client.disconnect()


def subscribed(app: App) -> bool:
    """Whether the app's process listens on its Socket.IO channel (once it has a connection)."""
    return app.redis.client().pubsub_numsub(f"{app.slug}.socketio")[0][1] == 1


def push_from_another_process(app: App, text: str) -> None:
    """Send a notification through Redis to the user's connections, as a worker does."""
    import socketio

    queue = socketio.RedisManager(app.redis.url(), channel=f"{app.slug}.socketio", write_only=True)
    queue.emit("notification", {"text": text}, room=f"user:{app.user_id}", namespace="/")


# --- PostgreSQL -----------------------------------------------------------------------------


def terminate_connections(database: str) -> int:
    """End the database's server processes, as a restart or a fail-over does; how many."""
    rows = fetch(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        f"WHERE datname = '{database}' AND pid <> pg_backend_pid()",
        dsn("postgres"),
    )
    return rows[0][0]


def test_killed_database_connections_are_replaced_by_the_next_request(app: App):
    before = app.items()
    assert app.get("/api/v1/items").status_code == 200  # a pooled connection to kill
    assert terminate_connections(app.database) >= 1

    response = app.post("/api/v1/items", json={"name": "chair"})
    assert response.status_code == 201, app.explain(response)
    response = app.get("/api/v1/items")
    assert response.status_code == 200, app.explain(response)
    assert ready(app)[0] == 200
    assert app.items() == before + 1
    assert_no_restart(app)


def web_log_in(app: App, username: str) -> dict[str, str]:
    """Log in through the web UI's form; the session cookie.

    The cookie is Secure (production) and the test speaks plain HTTP, so it is carried by hand.
    """
    page = requests.get(app.url + "/login", timeout=30)
    csrf_token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text)
    assert csrf_token, page.text
    response = requests.post(
        app.url + "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": csrf_token[1]},
        cookies={"session": page.cookies["session"]},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 302, app.explain(response)
    return {"session": response.cookies["session"]}


def assert_database_outage_answers(app: App, session: dict[str, str], within: float) -> None:
    """What every kind of client gets while the database cannot be reached, ``within`` s."""
    for method, path, body in [("GET", "/api/v1/items", None), ("POST", "/api/v2/items", LOST)]:
        response, took = timed(app.request, method, path, json=body)
        assert response.status_code == 503, app.explain(response)
        assert took < within
        assert response.headers["Retry-After"] == "5"
        assert response.json() == DATABASE_DOWN
    # A signed-in page loads its user from the database: the error page needs none.
    response = requests.get(app.url + "/", cookies=session, timeout=30)
    assert response.status_code == 503, app.explain(response)
    assert response.headers["Retry-After"] == "5"
    assert response.headers["Content-Type"].startswith("text/html")
    assert "503 Service Unavailable" in response.text
    assert DATABASE_DOWN["message"] in response.text
    assert "Log out" not in response.text
    status, report = ready(app)
    assert (status, report) == (
        503,
        {"status": "unavailable", "database": "unavailable", "redis": "ok", "broker": "ok"},
    )
    assert_alive(app)


def assert_database_is_back(app: App, session: dict[str, str], before: int) -> None:
    """The next requests succeed; of the writes, only the ones answered 201 are in the table."""
    response = app.post("/api/v1/items", json={"name": "shelf"})
    assert response.status_code == 201, app.explain(response)
    response = app.get("/api/v1/items")
    assert response.status_code == 200, app.explain(response)
    assert "lost" not in names(response)
    response = requests.get(app.url + "/", cookies=session, timeout=30)
    assert response.status_code == 200, app.explain(response)
    assert "shelf" in response.text
    assert ready(app) == (200, {"status": "ok", "database": "ok", "redis": "ok", "broker": "ok"})
    assert app.items() == before + 1


def test_an_unreachable_database_is_a_503_and_the_next_requests_after_it_returns_succeed(
    app: App,
):
    session = web_log_in(app, "ada")
    before = app.items()

    app.proxy.refuse()  # the server is gone: connections refused, open ones cut
    assert_database_outage_answers(app, session, within=PROMPT)

    app.proxy.forward()
    assert_database_is_back(app, session, before)
    assert_no_restart(app)


def test_a_database_that_does_not_answer_is_a_503_within_seconds(app: App):
    session = web_log_in(app, "ada")
    before = app.items()

    app.proxy.swallow()  # packets dropped: only the connect timeout (2 s) ends the wait
    assert_database_outage_answers(app, session, within=SILENT_PROMPT)

    app.proxy.forward()
    assert_database_is_back(app, session, before)
    assert_no_restart(app)
