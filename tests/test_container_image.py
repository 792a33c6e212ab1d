"""The generated container image, built and run for real with podman.

hadolint proves the Dockerfile is well written, not that it builds or starts. Here the Dockerfile
of a project with every option on is built unmodified with ``podman build``, on a locally made
stand-in for ``python:3.11-slim`` and one for ``ghcr.io/astral-sh/uv`` (see ``support/podman.py``),
and then:

- the default command serves ``/healthz`` through a published loopback port, as the numeric
  non-root user, and ``podman healthcheck run`` reports healthy; the image holds no compiler;
- the image, whose build stage installs ``uv.lock`` with uv, is no larger than the same image
  built the way it was before the lock (pip into a virtualenv), built beside it;
- the migration command (compose's ``migrate`` service) upgrades an empty PostgreSQL database
  on the host;
- the worker command (compose's ``worker`` service), on the host network against the machine's
  Redis, completes an asynchronous API request sent to a web container, with a pool of
  ``CELERY_CONCURRENCY`` (2) processes.

The containers run with compose's hardening of their service (read-only root filesystem, a
tmpfs on ``/tmp``, no capabilities, no-new-privileges) and the commands compose resolves.

The same image runs the Kubernetes dev overlay as ``kubectl kustomize`` renders it, played by
``podman kube play`` with the few adaptations podman 4.3 needs (``support/kube.py`` lists them):
the migrate Job's pod upgrades an empty database; the web and worker pods run under their own
securityContext (uid 10001, read-only root, no capabilities, seccomp) and memory limit; web
answers its startup, liveness and readiness probes; the worker runs an asynchronous API
request and answers its liveness probe.

Build time, image size and the time from ``podman run`` to a healthy ``/healthz`` appear in the
"container image (podman)" section at the end of the pytest run.

Everything the tests create (containers, pods, the project image, the databases, a throwaway
redis-server) is removed; the base images stay cached in
``/var/cache/flaskscale-podman``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest
from support import kube
from support.podman import (
    BASE_PYTHON,
    LABEL,
    Podman,
    PodmanUnavailable,
    Stopwatch,
    python_base_tags,
    record_metric,
    uv_image_versions,
)
from support.postgres import throwaway_database
from support.postgres import url as postgres_url
from support.processes import answers, wait_for
from support.processes import http_get as get
from support.redis import RedisServer
from support.rendering import preset, render
from support.services import (
    E2E_REQUIRED,
    free_port,
    require_command,
    require_service,
)
from support.validators import compose_config

if TYPE_CHECKING:
    from requests import Response

SLUG = "image_check"
ANSWERS = preset(
    "full",
    project_name="Image Check",
    project_slug=SLUG,
    python_version=BASE_PYTHON,
    languages="en,es,de",
)
HOST = "127.0.0.1"
POSTGRES_PORT = 5432
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
    uv_versions = uv_image_versions(dockerfile)
    assert uv_versions, "no COPY --from=ghcr.io/astral-sh/uv:... in the generated Dockerfile"
    with podman.lock():
        try:
            base = podman.ensure_python_base(tags)
            for version in uv_versions:
                podman.ensure_uv_image(version)
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
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    """A redis-server of this module's own (nothing saved): the containers' broker and store."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url()


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
    # The catalogues were compiled into the image: pages in the language the browser asks for.
    import requests

    login = requests.get(
        f"http://{HOST}:{port}/login", headers={"Accept-Language": "es"}, timeout=10
    ).text
    assert '<html lang="es">' in login
    assert "¿Has olvidado tu contraseña?" in login, login[:2000]
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
    # uv built the virtualenv and stayed in the build stage.
    uv = image.podman("exec", web, "sh", "-c", "command -v uv uvx; true").stdout
    assert not uv.strip(), f"uv in the image: {uv.split()}"

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


# How the build stage installed the project before uv.lock (template 0.12.0): pip, resolving the
# newest releases into a virtualenv. Built beside the locked image to compare their sizes.
PIP_BUILD_STAGE = """\
FROM python:{python}-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \\
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY {slug}/ {slug}/
RUN /opt/venv/bin/pip install --no-cache-dir .
"""


def test_the_locked_image_is_no_larger_than_the_pip_built_one(image: Image, record_property):
    dockerfile = (image.project / "Dockerfile").read_text()
    uv_stage = re.search(r"^FROM \S+ AS build\n.*?uv sync --locked --no-dev --no-editable\n",
                         dockerfile, re.S | re.M)  # fmt: skip
    assert uv_stage, "the Dockerfile's build stage no longer installs with uv sync --locked"
    pip_stage = PIP_BUILD_STAGE.format(python=BASE_PYTHON, slug=SLUG)
    (image.project / "Dockerfile.pip").write_text(dockerfile.replace(uv_stage[0], pip_stage))
    ref = f"{image.ref}-pip"
    try:
        image.podman(
            "build", "--format", "docker", "--pull=never", "--layers=false", "--label", LABEL,
            "--file", str(image.project / "Dockerfile.pip"), "--tag", ref, str(image.project),
            timeout=1200,
        )  # fmt: skip
        locked, pip = image.size(image.ref), image.size(ref)
    finally:
        image.podman.remove_images([ref])
    record_metric(record_property, "image size, built by pip", f"{pip / 1e6:.0f} MB")
    assert locked <= pip, f"the uv.lock image is {locked / 1e6:.0f} MB, pip's {pip / 1e6:.0f} MB"


def test_the_migration_command_upgrades_an_empty_postgresql_database(
    image: Image, migrated: tuple[str, str]
):
    database, output = migrated
    assert_upgraded(image.project, database, output)


def assert_upgraded(project: Path, database: str, output: str) -> None:
    """``database`` holds the tables the shipped migrations create, at their head revision."""
    import psycopg

    sources = [path.read_text() for path in (project / "migrations/versions").glob("*.py")]
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
        "--env", f"METRICS_PORT={free_port()}",  # on the host's network: a free port of its own
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

    response, done_seconds = asynchronous_report(base, lambda: image.logs(worker))
    logs = f"--- worker\n{image.logs(worker)[-3000:]}\n--- web\n{image.logs(web)[-2000:]}"
    assert response.status_code == 200, f"{response.status_code} {response.text}\n{logs}"
    report = response.json()
    assert (report["items"], report["words"]) == (1, 3), report
    # The worker container ran it (web only queued it).
    assert "run_request" in image.logs(worker), logs
    # The pool has CELERY_CONCURRENCY's default size, not one process per CPU.
    assert re.search(r"concurrency:\s+2 \(prefork\)", image.logs(worker)), logs
    record_metric(record_property, "async request via worker container", f"{done_seconds:.1f} s")


def asynchronous_report(base: str, worker_logs: Callable[[], str]) -> tuple[Response, float]:
    """A user's item report, asked of the API at ``base``: answered 202, then its result;
    the final answer and the seconds from the request to it."""
    import requests

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

    (response,) = wait_for(finished, 90, lambda: f"no result in 90 s:\n{worker_logs()[-3000:]}")
    return response, watch.seconds


# -- the Kubernetes manifests, played by podman -----------------------------------------------


@dataclass
class Cluster:
    """The dev overlay, as kustomize renders it, and its pods as podman plays them."""

    podman: Podman
    scratch: Path
    rendered: list[dict]
    image: str
    database: str
    port: int  # web's, on the host network
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))
    web: dict = field(default_factory=dict)  # the Deployments, as played
    worker: dict = field(default_factory=dict)
    beat: dict = field(default_factory=dict)
    ready_seconds: float = 0.0  # from `kube play` to web's /readyz 200

    def adapted(self, *workloads: dict) -> list[dict]:
        return kube.for_podman(self.rendered, list(workloads), self.image, self.port, self.run_id)

    def container(self, workload: dict) -> str:
        return kube.container_name(workload, kube.pod_spec(workload)["containers"][0]["name"])

    def logs(self, workload: dict) -> str:
        proc = self.podman("logs", self.container(workload), check=False)
        return proc.stdout + proc.stderr

    def exec(self, workload: dict, *command: str, check: bool = True) -> str:
        return self.podman("exec", self.container(workload), *command, check=check).stdout

    def state(self, workload: dict) -> tuple[str, int]:
        """The container's status (running, exited...) and exit code."""
        out = self.podman("inspect", "--format", STATE, self.container(workload)).stdout.split()
        return out[0], int(out[1])


STATE = "{{.State.Status}} {{.State.ExitCode}}"


@pytest.fixture(scope="module")
def manifests(image: Image, redis_server: RedisServer, tmp_path_factory) -> Iterator[Cluster]:
    """The dev overlay rendered for an empty database and a Redis of its own."""
    require_service("PostgreSQL", POSTGRES_PORT)
    with throwaway_database("flaskscale_kube") as database:
        # secrets.env, as a user fills it in from secrets.env.example.
        rendered = kube.render_overlay(
            image.project / "deploy/k8s/overlays/dev",
            {
                "SECRET_KEY": image.secret_key,
                "DATABASE_URL": postgres_url(database),
                "REDIS_URL": redis_server.url(2),
                "CELERY_BROKER_URL": redis_server.url(3),
            },
        )
        scratch = tmp_path_factory.mktemp("kube")
        yield Cluster(image.podman, scratch, rendered, image.ref, database, free_port())


@pytest.fixture(scope="module")
def migrate_job(manifests: Cluster) -> tuple[int, str]:
    """The migrate Job's pod, run to its end: its exit code and its output."""
    played = manifests.adapted(kube.job_as_pod(kube.find(manifests.rendered, "Job", "migrate")))
    pod = played[-1]
    with kube.played(manifests.podman, manifests.scratch / "migrate.yaml", played):

        def exited() -> list | None:
            status, code = manifests.state(pod)
            return [code] if status in ("exited", "stopped") else None

        (code,) = wait_for(exited, 120, lambda: manifests.logs(pod))
        return code, manifests.logs(pod)


@pytest.fixture(scope="module")
def cluster(manifests: Cluster, migrate_job: tuple[int, str]) -> Iterator[Cluster]:
    """The web, worker and beat Deployments, running against the migrated database."""
    assert migrate_job[0] == 0, f"the migrate Job failed:\n{migrate_job[1]}"
    app = manifests.adapted(
        *(kube.find(manifests.rendered, "Deployment", name) for name in ("web", "worker", "beat"))
    )
    manifests.web, manifests.worker, manifests.beat = app[-3:]
    watch = Stopwatch()
    with kube.played(manifests.podman, manifests.scratch / "app.yaml", app):

        def ready() -> bytes | None:
            status, _ = manifests.state(manifests.web)
            if status != "running":
                pytest.fail(f"web is {status}:\n{manifests.logs(manifests.web)[-4000:]}")
            return answers(f"http://{HOST}:{manifests.port}/readyz")

        wait_for(ready, 90, lambda: f"no /readyz 200:\n{manifests.logs(manifests.web)[-4000:]}")
        manifests.ready_seconds = watch.seconds
        yield manifests


def test_the_migrate_job_upgrades_an_empty_database(
    image: Image, manifests: Cluster, migrate_job: tuple[int, str]
):
    code, output = migrate_job
    assert code == 0, output
    assert_upgraded(image.project, manifests.database, output)


def test_the_web_worker_and_beat_pods_run_under_their_security_context(cluster: Cluster):
    for workload in (cluster.web, cluster.worker, cluster.beat):
        name = workload["metadata"]["name"]
        # The securityContext is played as rendered (kube.for_podman leaves it alone).
        pod = kube.pod_spec(workload)["securityContext"]
        (spec,) = kube.pod_spec(workload)["containers"]
        assert pod["runAsUser"] == 10001 and spec["securityContext"]["readOnlyRootFilesystem"]

        # PID 1, the pod's command, as the manifest's user, with no capability at all and no
        # way to gain privileges (allowPrivilegeEscalation: false), under seccomp.
        lines = cluster.exec(workload, "cat", "/proc/1/status").splitlines()
        status = dict(line.split(":\t", 1) for line in lines)
        assert set(status["Uid"].split()) == {str(pod["runAsUser"])}, status["Uid"]
        assert set(status["Gid"].split()) == {str(pod["runAsGroup"])}, status["Gid"]
        for capabilities in ("CapPrm", "CapEff", "CapBnd", "CapAmb"):
            assert int(status[capabilities], 16) == 0, f"{name} {capabilities}: {status}"
        assert status["NoNewPrivs"].strip() == "1", status
        assert status["Seccomp"].strip() == "2", status  # filter mode: RuntimeDefault
        cmdline = cluster.exec(workload, "cat", "/proc/1/cmdline").replace("\0", " ")
        assert spec["command"][0] in cmdline, cmdline

        # The root filesystem is read-only; the emptyDir on /tmp is writable.
        container = cluster.container(workload)
        touched = cluster.podman("exec", container, "touch", "/app/probe", check=False)
        assert "Read-only file system" in touched.stderr, touched
        cluster.exec(workload, "touch", "/tmp/probe")

        # The memory limit reaches the container's cgroup (v1 or v2).
        limit = spec["resources"]["limits"]["memory"]
        assert limit.endswith("Mi"), limit
        expected = int(limit.removesuffix("Mi")) * 2**20
        cgroup = cluster.exec(workload, "sh", "-c", "cat /sys/fs/cgroup/memory.max 2>/dev/null"
                              " || cat /sys/fs/cgroup/memory/memory.limit_in_bytes")  # fmt: skip
        assert int(cgroup) == expected, f"{name}: limit {limit}, cgroup {cgroup}"

    # Beat keeps its schedule on the emptyDir (--schedule /tmp/...): it starts there.
    def beat_started() -> bool:
        schedule = "celerybeat-schedule" in cluster.exec(cluster.beat, "ls", "/tmp")
        return schedule and "beat: Starting..." in cluster.logs(cluster.beat)

    wait_for(beat_started, 60, lambda: f"beat did not start:\n{cluster.logs(cluster.beat)}")


def test_the_web_pod_answers_its_probes(cluster: Cluster, record_property):
    import requests

    (container,) = kube.pod_spec(cluster.web)["containers"]
    probes = {kind: container[kind]["httpGet"] for kind in
              ("startupProbe", "livenessProbe", "readinessProbe")}  # fmt: skip
    for kind, check in probes.items():
        headers = {header["name"]: header["value"] for header in check.get("httpHeaders", [])}
        url = f"http://{HOST}:{check['port']}{check['path']}"
        response = requests.get(url, headers=headers, timeout=10)
        assert response.status_code == 200, f"{kind} {url}: {response.status_code} {response.text}"
    # Readiness covers the services the pod needs, each reached from inside the pod.
    readiness = requests.get(f"http://{HOST}:{cluster.port}/readyz", timeout=10).json()
    assert readiness == {"status": "ok", "database": "ok", "redis": "ok", "broker": "ok"}
    record_metric(record_property, "kube play -> web /readyz 200", f"{cluster.ready_seconds:.1f} s")


def test_the_worker_pod_runs_a_task_and_answers_its_liveness_probe(cluster: Cluster):
    response, _ = asynchronous_report(
        f"http://{HOST}:{cluster.port}", lambda: cluster.logs(cluster.worker)
    )
    logs = cluster.logs(cluster.worker)
    assert response.status_code == 200, f"{response.status_code} {response.text}\n{logs[-3000:]}"
    assert (response.json()["items"], response.json()["words"]) == (1, 3), response.json()
    assert "run_request" in logs, logs[-3000:]
    # --concurrency $(CELERY_CONCURRENCY): the pod's env value, not one process per CPU.
    (container,) = kube.pod_spec(cluster.worker)["containers"]
    concurrency = next(e["value"] for e in container["env"] if e["name"] == "CELERY_CONCURRENCY")
    assert re.search(rf"concurrency:\s+{concurrency} \(prefork\)", logs), logs[-3000:]

    # The liveness probe's command, in the pod. Kubernetes' runtimes set HOSTNAME (the pod's
    # name) in every container; podman 4.3's kube play does not: given here.
    probe = container["livenessProbe"]["exec"]["command"]
    hostname = kube.pod_name(cluster.worker)
    worker = cluster.container(cluster.worker)
    proc = cluster.podman(
        "exec", "--env", f"HOSTNAME={hostname}", worker, *probe, check=False, timeout=120
    )
    assert proc.returncode == 0, f"liveness {probe}: {proc.stdout}{proc.stderr}\n{logs[-3000:]}"
