"""The whole stack, live: a project with every feature on, run as real processes on loopback.

Two app instances (the generated ``gunicorn.conf.py``), the generated nginx config in front of
them, one Celery worker, against the machine's PostgreSQL, a Redis server of the stack's own and
(for the second stack) the machine's RabbitMQ. Every request goes through nginx. The stacks:

- ``redis``: Redis is the broker; every test runs on it.
- ``rabbitmq``: RabbitMQ is the broker (results and Socket.IO stay on Redis); only the tests
  that involve Celery run on it.

ip_hash hashes the first three octets of the client address, so clients bind to 127.0.N.1
addresses to land on different instances. The nginx copy adds one header, ``X-Upstream``
(the instance that answered), so that a test can tell where a client landed.

Isolation: each stack has its own slug (hence its own Celery queue and Socket.IO channel),
its own PostgreSQL database (dropped at the end) and its own throwaway Redis server
(support.redis), which no other test can flush.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
import requests
from requests.adapters import HTTPAdapter
from support.celery import node_name
from support.commands import project_env, run
from support.otlp import Collector, Span
from support.postgres import throwaway_database
from support.postgres import url as postgres_url
from support.processes import Process, wait_for
from support.redis import throwaway_redis
from support.rendering import preset, render
from support.services import (
    free_port,
    require_command,
    require_modules,
    require_service,
)
from support.webstack import HOST, PASSWORD, WebStack, nginx_directory, sign_up

try:
    import socketio  # python-socketio's client (websocket-client runs its WebSocket transport)
except ImportError:  # the stack fixture skips, or fails under FLASKSCALE_E2E=required
    socketio = None

# Tests that drive real brokers and containers share one xdist worker ("services"), so that
# they never starve each other (the container build included). Their Redis is their own.
pytestmark = pytest.mark.xdist_group("services")


POSTGRES_PORT = 5432
RABBITMQ_PORT = 5672
# Redis hands a task whose worker vanished to another worker once it has been unacknowledged
# this long (CELERY_VISIBILITY_TIMEOUT): longer than the example job (3 s) runs, even on a
# loaded machine, or a running job would be handed out a second time.
VISIBILITY_TIMEOUT = 10
# The host name the stack is configured for (TRUSTED_HOSTS).
PUBLIC_HOST = "shop.example.com"
# Client addresses: ip_hash spreads them over the instances by their first three octets.
SOURCES = [f"127.0.{n}.1" for n in range(1, 25)]


# --- clients ----------------------------------------------------------------------------


class SourceAddressAdapter(HTTPAdapter):
    """Open connections from a given local address."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def http_from(address: str) -> requests.Session:
    session = requests.Session()
    adapter = SourceAddressAdapter(address)
    session.mount("http://", adapter)
    return session


@dataclass
class Listener:
    """A python-socketio client that records the events it receives."""

    client: socketio.Client
    received: list[tuple[str, object]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def events(self, name: str) -> list:
        with self.lock:
            return [data for event, data in self.received if event == name]

    def wait(self, name: str, predicate: Callable[[list], bool], timeout: float = 20) -> list:
        return wait_for(
            lambda: predicate(self.events(name)) and self.events(name),
            timeout,
            lambda: f"no matching {name!r} event; received: {self.received}",
        )


# --- the stack ----------------------------------------------------------------------------


@dataclass(kw_only=True)
class Stack(WebStack):
    broker: str
    slug: str
    collector: Collector
    workers: list[Process] = field(default_factory=list)
    token: str = ""

    def start_worker(self) -> Process:
        n = len(self.workers) + 1
        cmd = [sys.executable, "-m", "celery", "-A", "make_celery", "worker"]
        cmd += ["-n", node_name(f"live{n}")]
        cmd += ["--loglevel", "INFO", "--concurrency", "2", "--without-gossip", "--without-mingle"]
        env = {**self.env, "METRICS_PORT": str(free_port())}  # the worker's own
        worker = Process(f"worker{n}", cmd, self.project, env, self.logs / f"worker{n}.log")
        self.workers.append(worker.start())
        wait_for(
            lambda: " ready." in worker.output() or not worker.running,
            60,
            lambda: f"worker {n} was not ready:\n{worker.output()[-4000:]}",
        )
        assert worker.running, f"worker {n} exited:\n{worker.output()[-4000:]}"
        return worker

    def processes(self) -> list[Process]:
        return [*self.workers, *super().processes()]

    # Clients

    def get(self, path: str, source: str = HOST, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return http_from(source).get(self.url + path, headers=headers, timeout=10, **kwargs)

    def upstream_of(self, source: str) -> str:
        """The instance ("a" or "b") that nginx sends ``source``'s requests to."""
        response = http_from(source).get(self.url + "/healthz", timeout=10)
        assert response.status_code == 200
        return self.instance_of(response.headers["X-Upstream"])

    def sources_by_instance(self) -> dict[str, list[str]]:
        spread: dict[str, list[str]] = {"a": [], "b": []}
        for source in SOURCES:
            spread[self.upstream_of(source)].append(source)
        assert spread["a"] and spread["b"], f"ip_hash sent every address one way: {spread}"
        return spread

    @contextlib.contextmanager
    def socket(self, source: str, transport: str, token: str = "") -> Iterator[Listener]:
        """A Socket.IO connection through nginx from ``source``, with ``token`` (default: the
        stack's API token)."""
        options: dict = {}
        if transport == "websocket":
            raw = socket.create_connection((HOST, self.nginx_port), source_address=(source, 0))
            options["websocket_extra_options"] = {"socket": raw}
        client = socketio.Client(reconnection=False, http_session=http_from(source), **options)
        listener = Listener(client)

        @client.on("*")
        def record(event, data=None):
            with listener.lock:
                listener.received.append((event, data))

        try:
            client.connect(
                self.url,
                auth={"token": token or self.token},
                transports=[transport],
                wait_timeout=10,
            )
        except socketio.exceptions.ConnectionError as exc:
            pytest.fail(f"{transport} connection from {source}: {exc}\n{self.diagnostics()}")
        try:
            yield listener
        finally:
            client.disconnect()


@pytest.fixture(scope="module")
def stack(request, template_dir, tmp_path_factory) -> Iterator[Stack]:
    broker = request.param
    require_service("PostgreSQL", POSTGRES_PORT)
    if broker == "rabbitmq":
        require_service("RabbitMQ", RABBITMQ_PORT)
    require_command("nginx")
    require_modules("socketio", "websocket", "psycopg", "gunicorn", "gevent", "redis", "celery")

    slug = f"live_{broker}_{secrets.token_hex(3)}"
    project = tmp_path_factory.mktemp(f"stack-{broker}") / slug
    choices = preset("full", project_name=slug, project_slug=slug, celery_broker=broker, ci="none")
    render(template_dir, project, choices)
    services = contextlib.ExitStack()
    database_name = services.enter_context(throwaway_database(slug))
    redis_url = services.enter_context(throwaway_redis(project.parent))
    collector = services.enter_context(Collector())
    env = {
        **project_env(project),
        "FLASK_CONFIG": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        # The public name; the tests' clients use 127.0.0.1, which the app always trusts.
        "TRUSTED_HOSTS": PUBLIC_HOST,
        "DATABASE_URL": postgres_url(database_name),
        "REDIS_URL": redis_url,
        "PROXY_COUNT": "1",
        "API_RATE_LIMIT": "100000 per minute",
        # The load tests log in from a few addresses; the per-account limit stays as it is.
        "LOGIN_RATE_LIMIT_PER_ADDRESS": "100000 per minute",
        "SOCKETIO_EVENT_RATE_LIMIT": "100000 per minute",
        "LOG_LEVEL": "INFO",
        # Every process exports its spans here, a batch every 200 ms (the SDK's default: 5 s).
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    if broker == "rabbitmq":
        env["CELERY_BROKER_URL"] = f"amqp://guest:guest@{HOST}:{RABBITMQ_PORT}//"
    else:
        env["CELERY_VISIBILITY_TIMEOUT"] = str(VISIBILITY_TIMEOUT)

    nginx_root = nginx_directory(broker)
    logs = tmp_path_factory.mktemp(f"stack-{broker}-logs")
    stack = Stack(
        broker=broker,
        project=project,
        slug=slug,
        collector=collector,
        env=env,
        logs=logs,
        nginx_root=nginx_root,
    )
    try:
        run([sys.executable, "-m", "flask", "--app", slug, "db", "upgrade"], project, env)
        stack.start_instance("a")
        stack.start_instance("b")
        stack.start_nginx()
        stack.start_worker()
        stack.token = sign_up(stack.url, "ada")
        yield stack
    finally:
        stack.stop()
        with contextlib.suppress(Exception):
            services.close()
        shutil.rmtree(nginx_root, ignore_errors=True)


BOTH = pytest.mark.parametrize("stack", ["redis", "rabbitmq"], indirect=True)
REDIS = pytest.mark.parametrize("stack", ["redis"], indirect=True)


# --- the tests ----------------------------------------------------------------------------


@REDIS
def test_register_log_in_and_call_the_api_through_nginx(stack: Stack):
    spread = stack.sources_by_instance()
    http = http_from(spread["a"][0])
    response = http.post(
        stack.url + "/api/v1/items",
        json={"name": "telescope"},
        headers={"Authorization": f"Bearer {stack.token}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    assert stack.instance_of(response.headers["X-Upstream"]) == "a"
    item_path = response.headers["Location"].removeprefix(stack.url)
    # The other instance reads what the first one wrote: they share the database.
    response = stack.get(item_path, source=spread["b"][0])
    assert response.status_code == 200, response.text
    assert stack.instance_of(response.headers["X-Upstream"]) == "b"
    assert response.json()["name"] == "telescope"
    assert stack.get("/api/v1/items", headers={"Authorization": "Bearer nope"}).status_code == 401


@REDIS
def test_nginx_passes_the_host_on_and_the_app_refuses_an_untrusted_one(stack: Stack):
    http = http_from(HOST)
    response = http.get(stack.url + "/api", headers={"Host": PUBLIC_HOST}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["health"] == f"http://{PUBLIC_HOST}/healthz"
    response = http.get(stack.url + "/api", headers={"Host": "evil.example"}, timeout=10)
    assert response.status_code == 400, response.text
    assert "evil.example/" not in response.text


@BOTH
def test_an_asynchronous_request_answers_202_then_the_workers_result(stack: Stack):
    token = sign_up(stack.url, "reporter")
    headers = {"Authorization": f"Bearer {token}"}
    spread = stack.sources_by_instance()
    on_a, on_b = http_from(spread["a"][0]), http_from(spread["b"][0])
    for name, description in [("lamp", "brass reading lamp"), ("desk", "oak")]:
        response = on_a.post(
            stack.url + "/api/v1/items",
            json={"name": name, "description": description},
            headers=headers,
            timeout=10,
        )
        assert response.status_code == 201, response.text

    response = on_a.get(stack.url + "/api/v1/items/report", headers=headers, timeout=10)
    assert response.status_code == 202, response.text
    status_url = stack.url + response.headers["Location"]
    # The other instance answers for the task: the result is in Redis, not in a process.
    polls = []

    def finished() -> requests.Response | None:
        poll = on_b.get(status_url, headers=headers, timeout=10)
        polls.append(poll.status_code)
        return poll if poll.status_code != 202 else None

    result = wait_for(finished, 30, lambda: f"still 202 after {len(polls)} polls")
    assert stack.instance_of(result.headers["X-Upstream"]) == "b"
    assert result.status_code == 200, result.text
    report = result.json()
    assert (report["items"], report["words"]) == (2, 4)
    assert "run_request" in stack.workers[-1].output()
    # Someone else's token cannot read it.
    someone_else = {"Authorization": f"Bearer {stack.token}"}
    assert on_b.get(status_url, headers=someone_else, timeout=10).status_code == 403


def json_lines(output: str) -> list[dict]:
    """The JSON objects a process logged, one a line (its output has other lines too)."""
    entries = []
    for line in output.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):  # a line another process's cut in two
                entries.append(json.loads(line))
    return entries


@REDIS
def test_one_request_id_goes_from_nginx_through_the_app_into_the_worker(stack: Stack):
    token = sign_up(stack.url, "tracer")
    # A client cannot choose its id: nginx names every request ($request_id).
    response = stack.get(
        "/api/v1/items/report",
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": "chosen-by-the-client"},
    )
    assert response.status_code == 202, response.text
    request_id = response.headers["X-Request-ID"]
    assert re.fullmatch("[0-9a-f]{32}", request_id), request_id
    # nginx too writes its access line once the response has gone.
    wait_for(
        lambda: any(
            line.endswith(f" {request_id}") for line in stack.nginx_log("access.log").splitlines()
        ),
        10,
        lambda: f"no nginx line ends with {request_id}:\n{stack.nginx_log('access.log')[-2000:]}",
    )

    # The app's JSON lines for the request: its own (queued as task ...) and the access log's,
    # which gunicorn writes once the response has gone, so maybe after the client read it.
    def app_lines_with_access_line() -> list[dict] | None:
        lines = [
            entry
            for instance in stack.instances.values()
            for entry in json_lines(instance.output())
            if entry.get("request_id") == request_id
        ]
        return lines if any(entry["logger"] == "gunicorn.access" for entry in lines) else None

    app_lines = wait_for(app_lines_with_access_line, 10, f"no access line for {request_id}")
    queued = [entry for entry in app_lines if "queued as task" in entry["message"]]
    assert len(queued) == 1, app_lines
    task_id = queued[0]["message"].rsplit(" ", 1)[1]
    assert {"gunicorn.access", queued[0]["logger"]} <= {entry["logger"] for entry in app_lines}

    # The worker's JSON line for that task, in another process, names the same request.
    def worker_line() -> dict | None:
        for entry in json_lines(stack.workers[-1].output()):
            if task_id in entry["message"] and "succeeded" in entry["message"]:
                return entry
        return None

    finished = wait_for(
        worker_line,
        30,
        lambda: f"no line for task {task_id}:\n{stack.workers[-1].output()[-3000:]}",
    )
    assert finished["request_id"] == request_id, finished
    assert finished["level"] == "INFO"


def descends(span: Span, ancestor: Span, spans: list[Span]) -> bool:
    """Whether ``ancestor`` is ``span``'s parent, or its parent's, and so on."""
    parents = {each.span_id: each.parent_id for each in spans}
    parent = span.parent_id
    while parent:
        if parent == ancestor.span_id:
            return True
        parent = parents.get(parent, "")
    return False


@BOTH
def test_one_trace_goes_from_the_app_into_the_worker_and_names_their_log_lines(stack: Stack):
    """The app's gunicorn workers and the Celery worker's pool processes (all forked) export
    their spans to the collector; the task's spans join the request's trace across the broker."""
    token = sign_up(stack.url, f"traced-{stack.broker}")
    response = stack.get("/api/v1/items/report", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 202, response.text
    request_id = response.headers["X-Request-ID"]

    # The request's span names its trace; the app's JSON lines for the request carry it.
    app_lines = [
        entry
        for instance in stack.instances.values()
        for entry in json_lines(instance.output())
        if entry.get("request_id") == request_id and entry["logger"] != "gunicorn.access"
    ]
    assert app_lines, "no line of the app for the request"
    trace_ids = {entry.get("trace_id") for entry in app_lines}
    assert len(trace_ids) == 1 and None not in trace_ids, app_lines
    [trace_id] = trace_ids

    def whole_trace() -> list | None:
        spans = stack.collector.trace(trace_id)
        kinds = {span.kind for span in spans}
        return spans if {"SERVER", "PRODUCER", "CONSUMER"} <= kinds else None

    spans = wait_for(
        whole_trace, 30, lambda: f"trace {trace_id} incomplete: {stack.collector.trace(trace_id)}"
    )
    [server] = [span for span in spans if span.kind == "SERVER"]
    assert server.name == "GET /api/v1/items/report"
    assert {span.service for span in spans} == {stack.slug.replace("_", "-")}
    [task] = [span for span in spans if span.kind == "CONSUMER"]
    assert task.name.startswith("run/") and task.scope.endswith("celery"), task
    # Queries on both sides: the token's lookup in the app, the report's in the worker.
    queries = [span for span in spans if span.scope.endswith("sqlalchemy")]
    assert any(
        descends(query, server, spans) and not descends(query, task, spans) for query in queries
    ), spans
    assert any(descends(query, task, spans) for query in queries), spans

    # The worker's lines for the task carry the same trace.
    def worker_lines() -> list | None:
        lines = [
            entry
            for entry in json_lines(stack.workers[-1].output())
            if entry.get("request_id") == request_id and "succeeded" in entry["message"]
        ]
        return lines or None

    [finished] = wait_for(worker_lines, 30, lambda: stack.workers[-1].output()[-3000:])
    assert finished["trace_id"] == trace_id, finished


def channel_listeners(stack: Stack) -> int:
    """Processes subscribed to the stack's Socket.IO channel in Redis."""
    import redis

    client = redis.Redis.from_url(stack.env["REDIS_URL"])
    try:
        return client.pubsub_numsub(f"{stack.slug}.socketio")[0][1]
    finally:
        client.close()


@REDIS
def test_an_event_emitted_by_one_instance_reaches_a_client_of_the_other(stack: Stack):
    spread = stack.sources_by_instance()
    with (
        stack.socket(spread["a"][0], "websocket") as on_a,
        stack.socket(spread["b"][0], "polling") as on_b,
    ):
        assert on_a.client.transport() == "websocket"
        assert on_a.wait("welcome", bool) == [{"username": "ada"}]
        # An instance subscribes to the channel in a thread of its own once its first client
        # connects: an event published before both have would be lost (the test's race, not
        # the app's: in service the instances listen long before a notification).
        wait_for(
            lambda: channel_listeners(stack) >= 2,
            10,
            lambda: f"{channel_listeners(stack)} instance(s) listen on the Socket.IO channel",
        )
        assert on_b.client.call("notify", {"text": "from b"}, timeout=10) == {"status": "sent"}
        note = {"from": "ada", "text": "from b"}
        on_a.wait("notification", lambda events: note in events)
        assert on_a.client.call("notify", {"text": "from a"}, timeout=10) == {"status": "sent"}
        on_b.wait("notification", lambda events: {"from": "ada", "text": "from a"} in events)
        polling_sid = on_b.client.eio.sid
    # The polling client's requests all went to instance b.
    assert f"sid={polling_sid}" in stack.instances["b"].output()
    assert f"sid={polling_sid}" not in stack.instances["a"].output()
    # nginx upgraded the other client's connection (it logs it once closed).
    wait_for(
        lambda: re.search(r'transport=websocket[^"]*" 101 ', stack.nginx_log("access.log")),
        10,
        lambda: f"no WebSocket upgrade in nginx's log:\n{stack.nginx_log('access.log')[-3000:]}",
    )


@BOTH
def test_a_celery_task_reports_progress_to_clients_on_both_instances(stack: Stack):
    spread = stack.sources_by_instance()
    with (
        stack.socket(spread["a"][0], "websocket") as on_a,
        stack.socket(spread["b"][0], "polling") as on_b,
    ):
        reply = on_a.client.call("start_job", {"steps": 3}, timeout=10)
        last = {"job": reply["job"], "step": 3, "steps": 3}
        for listener in (on_a, on_b):
            progress = listener.wait("job_progress", lambda events: last in events, timeout=30)
            assert [event["step"] for event in progress] == [1, 2, 3]
    assert f"long_job[{reply['job']}] succeeded" in stack.workers[-1].output()


@REDIS
def test_polling_clients_stay_on_their_instance(stack: Stack):
    spread = stack.sources_by_instance()
    sources = spread["a"][:4] + spread["b"][:4]
    expected = {source: stack.upstream_of(source) for source in sources}

    def chat(source: str) -> str:
        with stack.socket(source, "polling") as listener:
            for n in range(5):
                reply = listener.client.call("notify", {"text": f"{source} {n}"}, timeout=10)
                assert reply == {"status": "sent"}
                time.sleep(0.1)
            return listener.client.eio.sid

    with ThreadPoolExecutor(len(sources)) as pool:
        sids = dict(zip(sources, pool.map(chat, sources), strict=True))
    logs = {name: process.output() for name, process in stack.instances.items()}
    for source, sid in sids.items():
        served_by = [name for name, log in logs.items() if f"sid={sid}" in log]
        assert served_by == [expected[source]], f"{source}'s session {sid} went to {served_by}"
    for name, log in logs.items():
        assert "Invalid session" not in log, f"instance {name} saw an unknown session"


@REDIS
def test_a_refused_socket_is_told_why(stack: Stack):
    client = socketio.Client(reconnection=False)
    errors = []
    client.on("connect_error", errors.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect(stack.url, auth={"token": "not-a-token"}, wait_timeout=10)
    # What socket.io-client shows as err.message.
    assert errors == [{"message": "The access token is invalid or has expired."}]


@REDIS
def test_revoking_a_token_through_one_instance_disconnects_its_socket_on_the_other(stack: Stack):
    token = sign_up(stack.url, "revoker")
    spread = stack.sources_by_instance()
    with stack.socket(spread["a"][0], "websocket", token=token) as on_a:
        assert on_a.wait("welcome", bool) == [{"username": "revoker"}]
        response = http_from(spread["b"][0]).delete(
            stack.url + "/api/v1/tokens", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert response.status_code == 204, response.text
        assert stack.instance_of(response.headers["X-Upstream"]) == "b"
        # The socket sends nothing: only instance b's word, through Redis, can close it.
        wait_for(
            lambda: not on_a.client.connected,
            10,
            lambda: f"the socket on instance a is still connected:\n{stack.diagnostics()}",
        )


@BOTH
def test_a_task_survives_a_worker_killed_in_the_middle(stack: Stack):
    """Before the redis stack's last test, which kills an instance: the job's events reach a
    client through instance a."""
    spread = stack.sources_by_instance()
    with stack.socket(spread["a"][0], "websocket") as listener:
        reply = listener.client.call("start_job", {"steps": 6}, timeout=10)
        job = reply["job"]
        listener.wait("job_progress", lambda events: any(e["job"] == job for e in events))
        stack.workers[-1].kill()  # SIGKILL to the worker and its pool, mid-task
        if stack.broker == "redis":
            # RabbitMQ requeues the job when the worker's connection drops; Redis once it has
            # been unacknowledged for VISIBILITY_TIMEOUT s. A worker looks for such jobs when it
            # starts, then only every 100 s (kombu's restore interval times its throttle).
            time.sleep(VISIBILITY_TIMEOUT + 1)
        rescuer = stack.start_worker()
        last = {"job": job, "step": 6, "steps": 6}
        try:
            listener.wait("job_progress", lambda events: last in events, timeout=90)
        except BaseException:
            print(f"the new worker's log:\n{rescuer.output()[-3000:]}")
            raise
    wait_for(
        lambda: f"long_job[{job}] succeeded" in rescuer.output(),
        10,
        lambda: f"the new worker did not finish the task:\n{rescuer.output()[-3000:]}",
    )


@REDIS
def test_log_in_attempts_on_one_account_are_counted_once_by_every_instance(stack: Stack):
    """Guesses spread over both instances, both API versions and two addresses share one
    count in Redis: after 10 failed attempts even the right password waits."""
    sign_up(stack.url, "eve")  # succeeded: neither the registration nor the log-in counts
    spread = stack.sources_by_instance()
    sources = [spread["a"][0], spread["b"][0]] * 5
    upstreams, statuses = set(), []
    for n, source in enumerate(sources):
        version = ("v1", "v2")[n % 2]
        response = http_from(source).post(
            f"{stack.url}/api/{version}/tokens", auth=("eve", "a wrong guess"), timeout=10
        )
        statuses.append(response.status_code)
        upstreams.add(stack.instance_of(response.headers["X-Upstream"]))
    assert statuses == [401] * 10, statuses
    assert upstreams == {"a", "b"}
    last = http_from(SOURCES[-1]).post(
        f"{stack.url}/api/v2/tokens", auth=("eve", PASSWORD), timeout=10
    )
    assert last.status_code == 429, last.text
    assert int(last.headers["Retry-After"]) > 0


@REDIS
def test_failed_log_ins_do_not_stall_the_event_loop(stack: Stack):
    """Checking a password (scrypt) is slow on purpose; on a gevent worker it runs in the
    thread pool, so the event loop keeps answering while clients keep failing to log in."""
    from werkzeug.security import check_password_hash, generate_password_hash

    stored = generate_password_hash("a passphrase")  # scrypt, as the app's passwords
    one_check = min(timed(lambda: check_password_hash(stored, "a wrong guess")) for _ in range(3))
    instance = f"http://{HOST}:{stack.ports['a']}"  # one worker process, straight, no nginx
    stop = threading.Event()

    def fail_to_log_in(n: int) -> None:
        http = requests.Session()
        attempt = 0
        while not stop.is_set():  # bounded by stop, set after a few seconds
            attempt += 1  # a new name each time, so that no per-account limit cuts in
            credentials = (f"nobody{n}-{attempt}", "a wrong guess")
            response = http.post(f"{instance}/api/v1/tokens", auth=credentials, timeout=30)
            assert response.status_code == 401, response.text

    pauses = []
    with ThreadPoolExecutor(8) as pool:
        clients = [pool.submit(fail_to_log_in, n) for n in range(8)]
        time.sleep(1)  # the failed log-ins are under way
        probe = requests.Session()
        for _ in range(20):
            pauses.append(timed(lambda: probe.get(f"{instance}/healthz", timeout=30)))
            time.sleep(0.05)
        stop.set()
    for client in clients:
        client.result()  # every attempt was a 401: a real password check, not a refusal
    pauses.sort()
    median = pauses[len(pauses) // 2]
    # On a blocked loop /healthz waits behind whole password checks; here it does not.
    assert median < one_check / 2, (
        f"/healthz took {median:.3f} s; one check takes {one_check:.3f} s"
    )


@REDIS
def test_every_get_succeeds_while_an_instance_is_killed(stack: Stack):
    """Last of the redis stack's tests: it leaves one instance dead.

    nginx sends a request the killed instance never answered to the other one, so no GET gets
    an error status. A response the instance was writing at the instant of SIGKILL is cut off
    (nginx had passed its headers on already): the client sees a broken read, at most one per
    client in flight, and its retry of that idempotent GET succeeds.
    """
    spread = stack.sources_by_instance()
    sources = spread["a"][:4] + spread["b"][:4]
    sessions = {source: http_from(source) for source in sources}
    headers = {"Authorization": f"Bearer {stack.token}"}
    path = "/api/v1/items"
    done = threading.Semaphore(0)
    CUT = -1

    def get(n: int) -> tuple[int, str]:
        source = sources[n % len(sources)]
        try:
            response = sessions[source].get(stack.url + path, headers=headers, timeout=20)
            return response.status_code, response.headers.get("X-Upstream", "")
        except requests.exceptions.ChunkedEncodingError as exc:  # the body was cut off
            return CUT, repr(exc)
        except requests.RequestException as exc:
            return 0, repr(exc)
        finally:
            done.release()

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(get, n) for n in range(200)]
        for _ in range(50):
            done.acquire()
        stack.instances["a"].kill()
        results = [future.result() for future in futures]
    failures = [result for result in results if result[0] not in (200, CUT)]
    assert not failures, f"{len(failures)} GETs failed: {failures[:5]}"
    cut = [n for n, result in enumerate(results) if result[0] == CUT]
    assert len(cut) <= len(sources), f"{len(cut)} responses cut off: {results[cut[0]]}"
    assert [get(n)[0] for n in cut] == [200] * len(cut)  # each retry, on the live instance
    results = [result for result in results if result[0] == 200]
    served = {stack.instance_of(upstream.split(",")[-1].strip()) for _, upstream in results}
    assert served == {"a", "b"}


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started
