"""The generated container image, built and run for real with podman.

hadolint proves the Dockerfile is well written, not that it builds or starts. Here the Dockerfile
of a project with every option on is built unmodified with ``podman build``, on a locally made
stand-in for ``python:3.11-slim`` (see ``podman_support``), and then:

- the default command serves ``/healthz`` through a published loopback port, as the numeric
  non-root user, and ``podman healthcheck run`` reports healthy; the image holds no compiler;
- the migration command (compose's ``migrate`` service) upgrades an empty PostgreSQL database
  on the host;
- the worker command (compose's ``worker`` service), on the host network against the machine's
  Redis, completes an asynchronous API request sent to a web container, with a pool of
  ``CELERY_CONCURRENCY`` (2) processes.

The containers run with compose's hardening of their service (read-only root filesystem, a
tmpfs on ``/tmp``, no capabilities, no-new-privileges) and the commands compose resolves.

Build time, image size and the time from ``podman run`` to a healthy ``/healthz`` appear in the
"container image (podman)" section at the end of the pytest run.

Everything the tests create (containers, the project image, the database, Redis database 10) is
removed; the base images stay cached in ``/var/cache/flaskscale-podman``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest
from support.podman import (
    BASE_PYTHON,
    LABEL,
    Podman,
    PodmanUnavailable,
    Stopwatch,
    python_base_tags,
    record_metric,
)
from support.postgres import throwaway_database
from support.postgres import url as postgres_url
from support.processes import answers, wait_for
from support.processes import http_get as get
from support.rendering import preset, render
from support.services import E2E_REQUIRED, free_port, require_command, require_service
from support.validators import compose_config

SLUG = "image_check"
ANSWERS = preset("full", project_name="Image Check", project_slug=SLUG, python_version=BASE_PYTHON)
HOST = "127.0.0.1"
POSTGRES_PORT = 5432
REDIS_PORT = 6379
REDIS_DB = 10  # this module's own: flushed at the end (the other live tests run their own Redis)
# Under slirp4netns with allow_host_loopback, the host's 127.0.0.1 as a container sees it.
SLIRP_HOST = "10.0.2.2"
SLIRP_NETWORK = "slirp4netns:allow_host_loopback=true"
PASSWORD = "correct horse battery staple"
# TRUSTED_HOSTS of the containers; the tests reach them as 127.0.0.1, which is always trusted.
PUBLIC_HOST = "shop.example.com"

# The tests share one image: with pytest-xdist, `--dist loadgroup` keeps them on one worker.
pytestmark = pytest.mark.xdist_group("services")  # see test_celery_live.py


@dataclass
class Image:
    podman: Podman
    project: Path
    ref: str
    base: str
    build_seconds: float
    containers: list[str] = field(default_factory=list)
    secret_key: str = field(default_factory=lambda: secrets.token_hex(32))
    _compose: dict | None = None

    def compose_service(self, service: str) -> dict:
        """``service`` as compose resolves it (``${VAR:-default}`` interpolated)."""
        if self._compose is None:
            self._compose = compose_config(self.project)["services"]
        return self._compose[service]

    def compose_command(self, service: str) -> list[str]:
        """The command compose.yaml gives ``service``: the tests run what users will run."""
        return [str(word) for word in self.compose_service(service)["command"]]

    def compose_hardening(self, service: str) -> list[str]:
        """compose's read-only root, tmpfs, dropped capabilities and security options as podman
        options (podman's own extra tmpfs mounts of a read-only container are turned off)."""
        spec = self.compose_service(service)
        options = []
        if spec.get("read_only"):
            options += ["--read-only", "--read-only-tmpfs=false"]
        for mount in spec.get("tmpfs", []):
            options += ["--tmpfs", mount]
        for capability in spec.get("cap_drop", []):
            options += ["--cap-drop", capability]
        for option in spec.get("security_opt", []):
            options += ["--security-opt", option.replace(":true", "")]
        return options

    def run(self, name: str, *options: str, command: list[str] | None = None) -> str:
        """Start a detached container of the image; it is removed at the end of the module."""
        name = f"flaskscale-test-{name}-{secrets.token_hex(3)}"
        self.containers.append(name)
        self.podman(
            "run", "--detach", "--name", name, "--label", LABEL,
            "--env", f"SECRET_KEY={self.secret_key}", "--env", f"TRUSTED_HOSTS={PUBLIC_HOST}",
            *options, self.ref, *(command or []),
        )  # fmt: skip
        return name

    def once(self, *options: str, command: list[str]) -> str:
        """Run ``command`` in a throwaway container of the image; return its output."""
        name = f"flaskscale-test-once-{secrets.token_hex(3)}"
        self.containers.append(name)
        proc = self.podman(
            "run", "--name", name, "--label", LABEL, "--env", f"SECRET_KEY={self.secret_key}",
            "--env", f"TRUSTED_HOSTS={PUBLIC_HOST}", *options, self.ref, *command, timeout=300,
        )  # fmt: skip
        return proc.stdout + proc.stderr

    def logs(self, name: str) -> str:
        proc = self.podman("logs", name, check=False)
        return proc.stdout + proc.stderr

    def size(self, ref: str) -> int:
        return int(self.podman("image", "inspect", "--format", "{{.Size}}", ref).stdout)


def unavailable(reason: str) -> NoReturn:
    message = f"podman cannot build and run the image here: {reason}"
    if E2E_REQUIRED:
        pytest.fail(f"{message} (FLASKSCALE_E2E=required)")
    pytest.skip(message)


@pytest.fixture(scope="module")
def podman() -> Podman:
    require_command("podman")
    podman = Podman()
    try:
        podman.configure()
        podman.remove_strays()
        with podman.lock():
            podman.ensure_debian_image()
        podman.can_run_containers()
    except PodmanUnavailable as exc:
        unavailable(str(exc))
    return podman


@pytest.fixture(scope="module")
def image(podman: Podman, template_dir: Path, tmp_path_factory) -> Iterator[Image]:
    project = render(template_dir, tmp_path_factory.mktemp("image") / SLUG, ANSWERS)
    dockerfile = project / "Dockerfile"
    tags = python_base_tags(dockerfile)
    assert tags, f"no FROM python:{BASE_PYTHON}... in the generated Dockerfile"
    with podman.lock():
        try:
            base = podman.ensure_python_base(tags)
        except PodmanUnavailable as exc:
            unavailable(str(exc))
    ref = f"localhost/flaskscale-test/{SLUG.replace('_', '-')}:{secrets.token_hex(4)}"
    watch = Stopwatch()
    built = Image(podman, project, ref, base, 0.0)
    try:
        podman(
            "build", "--format", "docker", "--pull=never", "--layers=false",
            "--label", LABEL, "--tag", ref, str(project), timeout=1200,
        )  # fmt: skip
        built.build_seconds = watch.seconds
        yield built
    finally:
        podman.remove_containers(built.containers)
        podman.remove_images([ref])


@pytest.fixture(scope="module")
def database(image: Image) -> Iterator[str]:
    """An empty PostgreSQL database on the host, dropped at the end of the module."""
    require_service("PostgreSQL", POSTGRES_PORT)
    with throwaway_database("flaskscale_image") as name:
        yield name


@pytest.fixture(scope="module")
def migrated(image: Image, database: str) -> tuple[str, str]:
    """Run the migration command once (host network); return the database and its output."""
    output = image.once(
        "--network", "host",
        "--env", f"DATABASE_URL={postgres_url(database)}", *image.compose_hardening("migrate"),
        command=image.compose_command("migrate"),
    )  # fmt: skip
    return database, output


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    require_service("Redis", REDIS_PORT)
    import redis

    yield f"redis://{HOST}:{REDIS_PORT}/{REDIS_DB}"
    redis.Redis(host=HOST, port=REDIS_PORT, db=REDIS_DB).flushdb()


def wait_for_healthz(image: Image, container: str, url: str, timeout: float = 60) -> float:
    """Seconds until ``url`` answers 200; fail with the container's logs if it never does."""
    watch = Stopwatch()

    def healthy() -> bool:
        state = image.podman("inspect", "--format", "{{.State.Status}}", container).stdout
        if state.strip() not in ("running", "created", "configured"):
            pytest.fail(f"{container} is {state.strip()}:\n{image.logs(container)[-4000:]}")
        return answers(url) is not None

    wait_for(healthy, timeout, lambda: f"{url} did not answer 200 within {timeout}s:\n"
             f"{image.logs(container)[-4000:]}")  # fmt: skip
    return watch.seconds


def test_the_default_command_serves_healthz_as_a_non_root_user(image: Image, record_property):
    port = free_port()
    watch = Stopwatch()
    web = image.run(
        "web", "--publish", f"{HOST}:{port}:8000", *image.compose_hardening("web"),
        "--env", "DATABASE_URL=sqlite:////tmp/image_check.db",
    )  # fmt: skip
    start_seconds = watch.seconds
    wait_for_healthz(image, web, f"http://{HOST}:{port}/healthz")
    healthy_seconds = watch.seconds

    status, body = get(f"http://{HOST}:{port}/healthz")
    assert (status, body.strip()) == (200, b'{"status":"ok"}')
    # The readiness probe reaches the SQLite database the configuration names.
    assert get(f"http://{HOST}:{port}/readyz")[0] == 200

    # The server process (PID 1: gunicorn itself, exec-form CMD) runs as the numeric user.
    user = image.podman("image", "inspect", "--format", "{{.Config.User}}", image.ref).stdout
    uid = user.strip().split(":")[0]
    assert uid.isdigit() and uid != "0", f"USER is {user.strip()!r}: not a numeric non-root user"
    status_lines = image.podman("exec", web, "cat", "/proc/1/status").stdout.splitlines()
    uids = next(line for line in status_lines if line.startswith("Uid:")).split()[1:]
    assert set(uids) == {uid}, f"PID 1 runs as {uids}, the image says {uid}"
    cmdline = image.podman("exec", web, "cat", "/proc/1/cmdline").stdout.replace("\0", " ")
    assert "gunicorn" in cmdline, cmdline
    # compose's read-only root filesystem: only /tmp is writable.
    assert image.podman("exec", web, "touch", "/app/probe", check=False).returncode != 0
    image.podman("exec", web, "touch", "/tmp/probe")

    # The HEALTHCHECK survived the build (docker format), probes /healthz, and passes.
    check = image.podman("image", "inspect", "--format", "{{json .HealthCheck}}", image.ref)
    assert "/healthz" in check.stdout, f"the image's HEALTHCHECK: {check.stdout}"
    health = image.podman("healthcheck", "run", web, check=False)
    assert health.returncode == 0, f"healthcheck: {health.stdout}{health.stderr}"
    state = image.podman("inspect", "--format", "{{.State.Health.Status}}", web).stdout
    assert state.strip() == "healthy", state

    # No compiler in the runtime image: nothing can build native code there.
    compilers = image.podman(
        "exec", web, "sh", "-c",
        "for c in gcc cc c++ g++ clang x86_64-linux-gnu-gcc; do command -v $c; done; true",
    ).stdout  # fmt: skip
    assert not compilers.strip(), f"compilers in the image: {compilers.split()}"

    size = image.size(image.ref)
    added = size - image.size(image.base)
    metrics = {
        "base images": "; ".join(
            f"{name} built in {seconds:.0f} s" for name, seconds in image.podman.built.items()
        )
        or "cached",
        "podman build": f"{image.build_seconds:.1f} s",
        "image size": f"{size / 1e6:.0f} MB ({added / 1e6:.0f} MB on top of the test base)",
        "podman run -> container started": f"{start_seconds:.1f} s",
        "podman run -> /healthz 200": f"{healthy_seconds:.1f} s",
    }
    for name, value in metrics.items():
        record_metric(record_property, name, value)


def test_the_migration_command_upgrades_an_empty_postgresql_database(
    image: Image, migrated: tuple[str, str]
):
    import psycopg

    database, output = migrated
    # What the shipped migrations create, and their head revision.
    sources = [path.read_text() for path in (image.project / "migrations/versions").glob("*.py")]
    assert sources, "the project ships no migration"
    expected = {name for text in sources for name in re.findall(r'create_table\(\s*"(\w+)"', text)}
    revisions = {m for text in sources for m in re.findall(r'(?m)^revision = "(\w+)"', text)}
    parents = {m for text in sources for m in re.findall(r'(?m)^down_revision = "(\w+)"', text)}
    heads = revisions - parents

    dsn = f"host={HOST} port={POSTGRES_PORT} user=postgres dbname={database}"
    with psycopg.connect(dsn) as conn:
        query = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        tables = {row[0] for row in conn.execute(query)}
        versions = {row[0] for row in conn.execute("SELECT version_num FROM alembic_version")}
    assert expected and expected <= tables, f"tables {sorted(tables)}\n{output}"
    assert versions == heads, f"at {versions}, head is {heads}\n{output}"


def test_the_worker_command_completes_an_asynchronous_request(
    image: Image, migrated: tuple[str, str], redis_url: str, record_property
):
    import requests

    database, _ = migrated
    url_on = {
        "host": (HOST, redis_url),
        "slirp": (SLIRP_HOST, redis_url.replace(HOST, SLIRP_HOST)),
    }

    def settings(network: str) -> list[str]:
        host, redis = url_on[network]
        return [
            "--env", f"DATABASE_URL=postgresql://postgres@{host}:{POSTGRES_PORT}/{database}",
            "--env", f"REDIS_URL={redis}",
            "--env", f"CELERY_BROKER_URL={redis}",
        ]  # fmt: skip

    worker = image.run(
        "worker", "--network", "host", *settings("host"), *image.compose_hardening("worker"),
        command=image.compose_command("worker"),
    )  # fmt: skip
    # The web container reaches the host's loopback services through slirp4netns and is
    # itself reached through a published loopback port.
    port = free_port()
    web = image.run(
        "async-web", "--network", SLIRP_NETWORK, "--publish", f"{HOST}:{port}:8000",
        *settings("slirp"), *image.compose_hardening("web"),
    )  # fmt: skip
    base = f"http://{HOST}:{port}"
    wait_for_healthz(image, web, base + "/healthz")

    http = requests.Session()
    response = http.post(
        base + "/api/v1/users",
        json={"username": "ada", "email": "ada@example.com", "password": PASSWORD},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    response = http.post(base + "/api/v1/tokens", auth=("ada", PASSWORD), timeout=10)
    assert response.status_code == 201, response.text
    http.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
    response = http.post(
        base + "/api/v1/items",
        json={"name": "telescope", "description": "a brass refractor"},
        timeout=10,
    )
    assert response.status_code == 201, response.text

    watch = Stopwatch()
    response = http.get(base + "/api/v1/items/report", timeout=10, allow_redirects=False)
    assert response.status_code == 202, response.text
    status_url = base + response.headers["Location"].removeprefix(base)

    def finished() -> list | None:  # a list: a requests.Response with an error status is falsy
        answer = http.get(status_url, timeout=10, allow_redirects=False)
        return None if answer.status_code == 202 else [answer]

    (response,) = wait_for(
        finished, 90, lambda: f"no result in 90 s:\n{image.logs(worker)[-3000:]}"
    )
    done_seconds = watch.seconds
    logs = f"--- worker\n{image.logs(worker)[-3000:]}\n--- web\n{image.logs(web)[-2000:]}"
    assert response.status_code == 200, f"{response.status_code} {response.text}\n{logs}"
    report = response.json()
    assert (report["items"], report["words"]) == (1, 3), report
    # The worker container ran it (web only queued it).
    assert "run_request" in image.logs(worker), logs
    # The pool has CELERY_CONCURRENCY's default size, not one process per CPU.
    assert re.search(r"concurrency:\s+2 \(prefork\)", image.logs(worker)), logs
    record_metric(record_property, "async request via worker container", f"{done_seconds:.1f} s")
