"""10,000 Socket.IO clients, live: the way the generated docs say to serve them.

Four instances of a project with Socket.IO (gevent) and the API, each started with its own
``gunicorn.conf.py`` and ``GUNICORN_WORKER_CONNECTIONS=3000``, behind the generated nginx
config (``ip_hash``), on a Redis server of the test's own. 10,000 clients connect through nginx
with an access token, 2,500 to each instance (ip_hash hashes the first three octets of the
client address: each instance gets the clients of the 127.0.N.1 addresses that land on it),
then one event pushed by the project's ``push_to_user()`` from another process must reach
every one of them.

What it proves: nothing on the way caps the connections below 10,000 (nginx's
``worker_connections``, gunicorn's ``worker_connections``, the open files limit, which
gunicorn.conf.py raises to the hard limit). How fast the event arrives is the benchmark's
business (``python -m benchmarks --only socketio``), never asserted here.

The clients are tests/support/socketio_clients.py: lean asyncio WebSockets, 2,500 a process.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from requests.adapters import HTTPAdapter
from support.commands import project_env, run
from support.processes import wait_for
from support.redis import throwaway_redis
from support.rendering import preset, render
from support.services import free_port, require_command, require_modules
from support.webstack import WebStack, nginx_directory, sign_up

pytestmark = pytest.mark.xdist_group("services")

INSTANCES = ["a", "b", "c", "d"]
CLIENTS_PER_INSTANCE = 2500
WORKER_CONNECTIONS = 3000  # GUNICORN_WORKER_CONNECTIONS: an instance's clients, and headroom
SOURCES = [f"127.0.{n}.1" for n in range(1, 64)]
CLIENTS = Path(__file__).parent / "support" / "socketio_clients.py"
PUSH = """\
import sys
import time

from {slug} import create_app
from {slug}.api.models import Token
from {slug}.realtime.push import push_to_user

app = create_app()
with app.app_context():
    user_id = Token.by_access_token(sys.argv[1]).user_id
    push_to_user(user_id, "scale", {{"label": "all", "sent": time.monotonic()}})
"""


@pytest.fixture(scope="module")
def stack(template_dir, tmp_path_factory) -> Iterator[WebStack]:
    require_command("redis-server")
    require_command("nginx")
    require_modules("gunicorn", "gevent", "flask_socketio", "redis")
    slug = f"scale_{secrets.token_hex(3)}"
    project = tmp_path_factory.mktemp("scale") / slug
    answers = {"celery": False, "docker": False, "kubernetes": False, "ci": "none"}
    choices = preset("full", project_name=slug, project_slug=slug, **answers)
    render(template_dir, project, {**choices, "database": "sqlite", "tracing": "none"})
    with contextlib.ExitStack() as services:
        env = {
            **project_env(project),
            "FLASK_CONFIG": "production",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "TRUSTED_HOSTS": "localhost,127.0.0.1",
            "DATABASE_URL": f"sqlite:///{project / 'scale.db'}",
            "REDIS_URL": services.enter_context(throwaway_redis(project.parent)),
            "PROXY_COUNT": "1",
            "GUNICORN_WORKER_CONNECTIONS": str(WORKER_CONNECTIONS),
            "LOG_LEVEL": "WARNING",
        }
        nginx_root = nginx_directory("scale")
        services.callback(shutil.rmtree, nginx_root, ignore_errors=True)
        logs = tmp_path_factory.mktemp("scale-logs")
        ports = {name: free_port() for name in INSTANCES}
        stack = WebStack(project=project, env=env, logs=logs, nginx_root=nginx_root, ports=ports)
        services.callback(stack.stop)
        run([sys.executable, "-m", "flask", "--app", slug, "db", "upgrade"], project, env)
        for name in INSTANCES:
            stack.start_instance(name)
        stack.start_nginx()
        yield stack


def sources_by_instance(stack: WebStack) -> dict[str, list[str]]:
    """The client addresses that ip_hash sends to each instance."""
    spread: dict[str, list[str]] = {name: [] for name in INSTANCES}
    for source in SOURCES:
        http = requests.Session()
        adapter = HTTPAdapter()
        adapter.init_poolmanager(10, 10, source_address=(source, 0))
        http.mount("http://", adapter)
        response = http.get(stack.url + "/healthz", timeout=10)
        spread[stack.instance_of(response.headers["X-Upstream"])].append(source)
    assert all(spread.values()), f"ip_hash sent no address to some instance: {spread}"
    return spread


def clients_process(targets: list[dict]) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, str(CLIENTS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    proc.stdin.write(json.dumps({"targets": targets, "event": "scale"}) + "\n")
    proc.stdin.flush()
    return proc


def report(proc: subprocess.Popen) -> dict:
    proc.stdin.write("report\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


def test_one_event_reaches_10000_clients_over_four_instances(stack: WebStack):
    token = sign_up(stack.url, "crowd")
    processes = []
    started = time.monotonic()
    try:
        for sources in sources_by_instance(stack).values():
            share, extra = divmod(CLIENTS_PER_INSTANCE, len(sources))
            targets = [
                {
                    "url": stack.url,
                    "clients": share + (n < extra),
                    "auth": {"token": token},
                    "source": source,
                }
                for n, source in enumerate(sources)
            ]
            processes.append(clients_process(targets))
        hellos = [json.loads(proc.stdout.readline() or "{}") for proc in processes]
        connected = sum(hello.get("connected", 0) for hello in hellos)
        refused = [reason for hello in hellos for reason in hello.get("refused", [])]
        total = CLIENTS_PER_INSTANCE * len(INSTANCES)
        assert connected == total, f"{connected} connected; refused: {refused[:5]}\n" + (
            stack.diagnostics()
        )

        print(f"{connected} clients connected in {time.monotonic() - started:.0f} s")
        push = PUSH.format(slug=stack.project.name)
        run([sys.executable, "-c", push, token], stack.project, stack.env)

        def delivered() -> int:
            return sum(len(report(proc)["received"].get("all", [])) for proc in processes)

        wait_for(lambda: delivered() == total, 60, lambda: f"{delivered()} of {total} got it")
        latencies = [ms for proc in processes for ms in report(proc)["received"]["all"]]
        print(f"the event reached all {total} in {max(latencies):.0f} ms")
        assert "worker_connections are not enough" not in stack.nginx_log("error.log")
    finally:
        for proc in processes:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write("quit\n")
                proc.stdin.close()
            proc.wait(30)
