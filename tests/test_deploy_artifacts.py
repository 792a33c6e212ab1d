"""Deployment artifacts of generated projects: validated by the real tools, and served for real.

Static checks (each needs its tool; `.ci/run` installs them):
- hadolint on the Dockerfile, with no finding at all;
- `docker-compose config -q` on compose.yaml;
- `kubectl kustomize <overlay> | kubernetes-validate --strict` for every overlay;
- actionlint on the generated workflow;
- `nginx -t` on the nginx config.
The same commands (gunicorn, Celery, migrations) must appear in the Procfile, the image, compose
and Kubernetes. A live test starts two gunicorn instances with the generated gunicorn.conf.py
behind nginx with the generated config, and kills one during a burst of GETs.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import secrets
import shlex
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml
from support.commands import project_env, run
from support.nginx import local_config
from support.processes import Process, wait_for, wait_for_http
from support.processes import http_get as get
from support.rendering import preset, render
from support.services import free_port, require_command
from support.validators import COMPOSE_SECRETS, compose_config, kustomize, nginx_test, tool

COMBOS: dict[str, dict] = {
    "all-on": preset("full", project_name="Shop Floor"),
    "docker-only": {"project_name": "Plain", "docker": True, "kubernetes": False},
    "rabbitmq": {
        "project_name": "Rabbit",
        "web_ui": False,
        "celery": True,
        "celery_broker": "rabbitmq",
        "database": "postgresql",
        "kubernetes": True,
    },
    "socketio-threading": {
        "project_name": "Threads",
        "api": False,
        "socketio": True,
        "socketio_async_mode": "threading",
        "database": "postgresql",
        "kubernetes": True,
    },
    "nothing": {"project_name": "Bare", "docker": False, "kubernetes": False, "ci": "none"},
}


@pytest.fixture(scope="module")
def projects(template_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("deploy")
    return {name: render(template_dir, root / name, answers) for name, answers in COMBOS.items()}


def with_file(name: str) -> list[str]:
    """The combinations that generate ``name``."""
    return [
        c
        for c, a in COMBOS.items()
        if a.get("docker", True) and ("k8s" not in name or a.get("kubernetes"))
    ]


def slug(project: Path) -> str:
    return yaml.safe_load((project / ".copier-answers.yml").read_text())["project_slug"]


# --- which files exist -----------------------------------------------------------------


@pytest.mark.parametrize("combo", COMBOS)
def test_files_follow_the_options(projects: dict[str, Path], combo: str) -> None:
    project, answers = projects[combo], COMBOS[combo]
    docker = answers.get("docker", True)
    kubernetes = docker and answers.get("kubernetes", False)
    github = answers.get("ci", "github") == "github"

    for always in ("gunicorn.conf.py", "Procfile", "deploy/nginx/nginx.conf", "docs/deploy.md"):
        assert (project / always).is_file(), always
    for path in ("Dockerfile", ".dockerignore", "compose.yaml"):
        assert (project / path).exists() == docker, path
    assert (project / "deploy/k8s").exists() == kubernetes
    assert (project / ".github").exists() == github

    docs = (project / "docs/deploy.md").read_text()
    env_example = (project / ".env.example").read_text()
    assert ("compose" in docs.lower()) == docker
    assert ("HTTP_PORT" in env_example) == docker
    assert ("Kubernetes" in docs) == kubernetes
    celery = answers.get("celery", False)
    assert ("celery" in (project / "Procfile").read_text()) == celery
    assert ("celery" in docs.lower()) == celery
    assert ("CELERY_CONCURRENCY" in docs) == celery
    assert ("NetworkPolicy" in docs) == kubernetes
    assert ("NetworkPolicy" in (project / "README.md").read_text()) == kubernetes


@pytest.mark.parametrize("combo", with_file("compose.yaml"))
def test_prometheus_config_passes_promtool(projects: dict[str, Path], combo: str) -> None:
    project, answers = projects[combo], COMBOS[combo]
    config = project / "deploy/prometheus/prometheus.yml"
    run([require_command("promtool"), "check", "config", str(config)], project)
    jobs = [job["job_name"] for job in yaml.safe_load(config.read_text())["scrape_configs"]]
    assert jobs == (["web", "worker"] if answers.get("celery") else ["web"])


# --- gunicorn.conf.py ------------------------------------------------------------------


def gunicorn_settings(project: Path, env: dict[str, str]) -> dict:
    saved = dict(os.environ)
    try:
        os.environ.update(env)
        return runpy.run_path(str(project / "gunicorn.conf.py"))
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_gunicorn_conf_reads_the_environment(projects: dict[str, Path]) -> None:
    plain = gunicorn_settings(
        projects["docker-only"],
        {
            "PORT": "9123",
            "WEB_CONCURRENCY": "5",
            "GUNICORN_THREADS": "8",
            "GUNICORN_GRACEFUL_TIMEOUT": "12",
        },
    )
    assert plain["wsgi_app"] == "plain:create_app()"
    assert plain["bind"] == "0.0.0.0:9123"
    assert (plain["workers"], plain["worker_class"], plain["threads"]) == (5, "gthread", 8)
    assert plain["graceful_timeout"] == 12

    gevent = gunicorn_settings(projects["all-on"], {"WEB_CONCURRENCY": "5"})
    assert (gevent["workers"], gevent["worker_class"]) == (1, "gevent")
    assert gevent["bind"] == "0.0.0.0:8000"

    threading = gunicorn_settings(projects["socketio-threading"], {"WEB_CONCURRENCY": "5"})
    assert (threading["workers"], threading["worker_class"], threading["threads"]) == (
        1,
        "gthread",
        50,
    )


def test_gunicorn_dependency_matches_the_worker_class(projects: dict[str, Path]) -> None:
    assert '"gunicorn[gevent]>=' in (projects["all-on"] / "pyproject.toml").read_text()
    for combo in ("docker-only", "socketio-threading"):
        text = (projects[combo] / "pyproject.toml").read_text()
        assert '"gunicorn>=' in text and "gevent" not in text


# --- the five validators -----------------------------------------------------------------


@pytest.mark.parametrize("combo", with_file("Dockerfile"))
def test_hadolint(projects: dict[str, Path], combo: str) -> None:
    run([tool("hadolint"), "--failure-threshold", "info", "Dockerfile"], cwd=projects[combo])


@pytest.mark.parametrize("combo", with_file("compose.yaml"))
def test_compose_config(projects: dict[str, Path], combo: str) -> None:
    project, answers = projects[combo], COMBOS[combo]
    services = compose_config(project)["services"]

    expected = {"migrate", "web", "nginx"}
    postgresql = answers.get("database") == "postgresql"
    if postgresql:
        expected |= {"db", "pgbouncer"}
    if answers.get("celery") or answers.get("socketio"):
        expected.add("redis")
    if answers.get("celery"):
        expected |= {"worker", "beat"}
    if answers.get("celery_broker") == "rabbitmq":
        expected.add("rabbitmq")
    expected.add("prometheus")
    accounts = answers.get("web_ui", True) or answers.get("api", True)
    if accounts:
        expected.add("mailpit")
    assert set(services) == expected

    assert services["web"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["nginx"]["depends_on"]["web"]["condition"] == "service_healthy"
    for name, service in services.items():
        for dependency, how in service.get("depends_on", {}).items():
            if dependency != "migrate":
                assert how["condition"] == "service_healthy", (name, dependency)
                assert "healthcheck" in services[dependency], dependency
    assert "ports" not in services["web"], "web is reached through nginx only (and scales)"
    # The metrics ports are reached by the prometheus service only; its own UI by this host only.
    for name in ("web", "worker"):
        if name in services:
            assert services[name]["expose"] == ["9100"] and "ports" not in services[name], name
    assert [p["host_ip"] for p in services["prometheus"]["ports"]] == ["127.0.0.1"]
    environment = services["web"]["environment"]
    assert environment["FLASK_CONFIG"] == "production"
    assert environment["PROXY_COUNT"] == "1"
    assert environment["TRUSTED_HOSTS"] == "localhost"  # until .env names the public hosts
    if postgresql:
        # The app's processes go through PgBouncer (transaction pooling); migrations do not.
        assert "@pgbouncer:6432/" in environment["DATABASE_URL"]
        assert "@db:5432/" in services["migrate"]["environment"]["DATABASE_URL"]
        assert services["migrate"]["environment"]["FLASK_CONFIG"] == "production"
        bouncer = services["pgbouncer"]["environment"]
        assert (bouncer["POOL_MODE"], bouncer["LISTEN_PORT"]) == ("transaction", "6432")
        assert "@db:5432/" in bouncer["DATABASE_URL"]
        for name in ("web", "worker"):
            if name in services:
                assert services[name]["depends_on"]["pgbouncer"]["condition"] == "service_healthy"
    if accounts:  # mail goes to Mailpit, whose UI is on this host only, until .env names a server
        assert (environment["MAIL_SERVER"], environment["MAIL_PORT"]) == ("mailpit", "1025")
        assert [p["host_ip"] for p in services["mailpit"]["ports"]] == ["127.0.0.1"]
        assert services["mailpit"]["read_only"] is True
    if answers.get("celery_broker") == "rabbitmq":
        assert environment["CELERY_BROKER_URL"].startswith("amqp://")
        # Queued tasks outlive a new RabbitMQ container: the node's name (its host name, which
        # names its data directory) stays fixed and its data lives in a named volume.
        rabbitmq = services["rabbitmq"]
        assert rabbitmq["hostname"] == "rabbitmq"
        volumes = [(volume["source"], volume["target"]) for volume in rabbitmq["volumes"]]
        assert volumes == [("rabbitmq", "/var/lib/rabbitmq")]

    # Hardening: the app's containers as the Kubernetes pods, nginx too; everything is limited.
    for name, service in services.items():
        limits = service["deploy"]["resources"]["limits"]
        assert limits["memory"] and limits["cpus"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        if name in ("migrate", "web", "worker", "beat", "nginx"):
            assert service["read_only"] is True, name
            assert service["cap_drop"] == ["ALL"], name
            assert [t.split(":")[0] for t in service["tmpfs"]] == ["/tmp"], name


@pytest.mark.parametrize("combo", ["all-on", "rabbitmq"])
def test_compose_needs_every_secret_set(projects: dict[str, Path], combo: str) -> None:
    """No default password: every secret compose passes on must be set (in .env)."""
    project, answers = projects[combo], COMBOS[combo]
    required = ["SECRET_KEY", "POSTGRES_PASSWORD"]
    if answers.get("celery_broker") == "rabbitmq":
        required.append("RABBITMQ_PASSWORD")
    env = {k: v for k, v in os.environ.items() if k not in COMPOSE_SECRETS}
    for missing in required:
        given = {name: secrets.token_urlsafe(24) for name in required if name != missing}
        proc = subprocess.run(
            [tool("docker-compose"), "-f", "compose.yaml", "config", "-q"],
            cwd=project, env={**env, **given}, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert proc.returncode != 0, f"compose.yaml starts without {missing}"
        assert missing in proc.stderr, proc.stderr


def deployments(docs: list[dict]) -> dict[str, dict]:
    """The Deployments of a kustomize build, by name without the overlay's prefix."""
    return {d["metadata"]["name"].rsplit("-", 1)[-1]: d for d in docs if d["kind"] == "Deployment"}


@pytest.mark.parametrize("combo", with_file("deploy/k8s"))
def test_kustomize_overlays_validate(projects: dict[str, Path], combo: str) -> None:
    project, answers = projects[combo], COMBOS[combo]
    overlays = sorted((project / "deploy/k8s/overlays").iterdir())
    assert [o.name for o in overlays] == ["dev", "monitoring", "prod"]
    assert "overlays/*/secrets.env" in (project / "deploy/k8s/.gitignore").read_text()

    for overlay in overlays:
        docs = kustomize(project, overlay)
        kinds = {(d["kind"], d["metadata"]["name"].rsplit("-", 1)[-1]) for d in docs}
        expected = {("Deployment", "web"), ("HorizontalPodAutoscaler", "web"), ("Job", "migrate")}
        expected |= {("PodDisruptionBudget", "web"), ("Service", "web"), ("Ingress", "web")}
        expected.add(("NetworkPolicy", "ingress"))  # default-deny-ingress, web-from-ingress
        if answers.get("celery"):
            expected |= {("Deployment", "worker"), ("Deployment", "beat")}
            expected |= {("HorizontalPodAutoscaler", "worker"), ("PodDisruptionBudget", "worker")}
        assert expected <= kinds

        config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
        secret = next(d for d in docs if d["kind"] == "Secret")
        assert "SECRET_KEY" in secret["data"]
        for doc in docs:
            if doc["kind"] not in ("Deployment", "Job"):
                continue
            pod = doc["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True
            for container in pod["containers"]:
                if container["name"] == "pgbouncer":  # a pinned image of its own
                    assert container["image"].startswith("edoburu/pgbouncer:v")
                else:
                    assert container["image"].split(":")[-1] == (
                        "dev" if overlay.name == "dev" else "0.1.0"
                    )
                security = container["securityContext"]
                assert security["readOnlyRootFilesystem"] is True
                assert security["allowPrivilegeEscalation"] is False
                assert security["capabilities"]["drop"] == ["ALL"]
                assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
                assert container["resources"]["requests"] and container["resources"]["limits"]
        web = next(
            d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-web")
        )
        pod = web["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
        pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
        assert pod["terminationGracePeriodSeconds"] > pre_stop + int(
            config["GUNICORN_GRACEFUL_TIMEOUT"]
        )

        # The probes reach the pod's address: they name a host the app always trusts.
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            headers = container[probe]["httpGet"]["httpHeaders"]
            assert {"name": "Host", "value": "localhost"} in headers, probe

        # Production puts PgBouncer before the primary for the app's pods, not for migrations.
        pooled = overlay.name != "dev"
        assert (("Deployment", "pgbouncer") in kinds) == pooled
        assert (("NetworkPolicy", "app") in kinds) == pooled  # pgbouncer-from-app
        job = next(d for d in docs if d["kind"] == "Job")["spec"]["template"]["spec"]
        assert "env" not in job["containers"][0], "migrations connect to DATABASE_URL, the primary"
        for name, document in deployments(docs).items():
            env = {
                e["name"]: e
                for e in document["spec"]["template"]["spec"]["containers"][0].get("env", [])
            }
            key = (
                env.get("DATABASE_URL", {}).get("valueFrom", {}).get("secretKeyRef", {}).get("key")
            )
            wanted = {"web": "POOLED_DATABASE_URL", "worker": "POOLED_DATABASE_URL"}
            wanted["pgbouncer"] = "DATABASE_URL"
            assert key == (wanted.get(name) if pooled else None), (overlay.name, name)

        ingress = next(d for d in docs if d["kind"] == "Ingress")
        assert config["TRUSTED_HOSTS"] == ingress["spec"]["rules"][0]["host"]
        annotations = ingress["metadata"].get("annotations", {})
        sticky = annotations.get("nginx.ingress.kubernetes.io/affinity") == "cookie"
        assert sticky == bool(answers.get("socketio"))
        if answers.get("celery"):
            beat = next(
                d
                for d in docs
                if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-beat")
            )
            assert beat["spec"]["replicas"] == 1
            assert beat["spec"]["strategy"]["type"] == "Recreate"


@pytest.mark.parametrize(
    "combo", [c for c, a in COMBOS.items() if a.get("ci", "github") == "github"]
)
def test_actionlint(projects: dict[str, Path], combo: str) -> None:
    project = projects[combo]
    run([tool("actionlint"), ".github/workflows/ci.yml"], cwd=project)
    text = (project / ".github/workflows/ci.yml").read_text()
    assert "cp .env.example" not in text, "CI must not take its secrets from the example file"
    workflow = yaml.safe_load(text)
    assert ("image" in workflow["jobs"]) == COMBOS[combo].get("docker", True)


@pytest.mark.parametrize("combo", COMBOS)
def test_nginx_config_passes_nginx_t(projects: dict[str, Path], combo: str, tmp_path: Path) -> None:
    text = nginx_test(projects[combo], tmp_path).read_text()
    assert "proxy_next_upstream error timeout" in text
    assert ("ip_hash;" in text) == bool(COMBOS[combo].get("socketio"))
    assert ("location /socket.io/" in text) == bool(COMBOS[combo].get("socketio"))


# --- one command per process, everywhere ---------------------------------------------


def procfile(project: Path) -> dict[str, list[str]]:
    commands = {}
    for line in (project / "Procfile").read_text().splitlines():
        if line and not line.startswith("#"):
            name, command = line.split(":", 1)
            words = shlex.split(command)
            while words[0] == "env" or "=" in words[0]:
                words.pop(0)
            commands[name] = words
    return commands


@pytest.mark.parametrize("combo", ["all-on", "rabbitmq"])
def test_the_same_commands_run_everywhere(projects: dict[str, Path], combo: str) -> None:
    project = projects[combo]
    web = ["gunicorn", "--config", "gunicorn.conf.py"]
    worker = ["celery", "-A", "make_celery", "worker", "--loglevel", "INFO", "--concurrency"]
    beat = ["celery", "-A", "make_celery", "beat", "--loglevel", "INFO"]
    migrate = ["flask", "--app", slug(project), "db", "upgrade"]
    # Containers keep beat's schedule file on the writable /tmp.
    beat_in_container = [*beat, "--schedule", "/tmp/celerybeat-schedule"]

    local = procfile(project)
    # The worker's pool size comes from CELERY_CONCURRENCY (default 2), not the CPU count.
    assert local == {
        "web1": web,
        "web2": web,
        "worker": [*worker, "${CELERY_CONCURRENCY:-2}"],
        "beat": beat,
    }

    cmd = re.search(r"^CMD (.+)$", (project / "Dockerfile").read_text(), re.M)
    assert json.loads(cmd.group(1)) == web

    services = compose_config(project)["services"]
    assert services["worker"]["command"] == [*worker, "2"]
    raw = yaml.safe_load((project / "compose.yaml").read_text())
    assert raw["services"]["worker"]["command"][-1] == "${CELERY_CONCURRENCY:-2}"
    assert services["beat"]["command"] == beat_in_container
    assert services["migrate"]["command"] == migrate
    assert services["web"].get("command") is None  # the image's CMD

    docs = kustomize(project, project / "deploy/k8s/overlays/prod")
    pods = {
        d["metadata"]["name"].rsplit("-", 1)[-1]: d["spec"]["template"]["spec"]["containers"][0]
        for d in docs
        if d["kind"] in ("Deployment", "Job")
    }
    assert pods["web"]["command"] == web
    # The kubelet expands $(CELERY_CONCURRENCY) from the container's environment, set to what
    # fits the pod's memory limit.
    assert pods["worker"]["command"] == [*worker, "$(CELERY_CONCURRENCY)"]
    concurrency = {e["name"]: e.get("value") for e in pods["worker"]["env"]}["CELERY_CONCURRENCY"]
    memory = pods["worker"]["resources"]["limits"]["memory"]
    assert memory.endswith("Mi") and (int(concurrency) + 1) * 128 <= int(memory[:-2])
    assert pods["beat"]["command"] == beat_in_container
    assert pods["migrate"]["command"] == migrate


# --- live: two gunicorn instances behind nginx -----------------------------------------


def json_lines(log: Path) -> list[dict]:
    """The JSON objects logged one a line in ``log`` (a process's stdout and stderr)."""
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


@pytest.mark.parametrize("combo", ["docker-only", "all-on"])
def test_nginx_balances_and_survives_a_killed_instance(
    projects: dict[str, Path], combo: str, tmp_path: Path, started: list[Process]
) -> None:
    nginx = require_command("nginx")
    project = projects[combo]
    env = {
        **project_env(project),
        "SECRET_KEY": secrets.token_urlsafe(48),
        "TRUSTED_HOSTS": "shop.example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path}/app.db",
        "PROXY_COUNT": "1",
    }
    ports = [free_port(), free_port()]
    logs = [tmp_path / f"web{i}.log" for i in range(2)]
    web = []
    for port, log in zip(ports, logs, strict=True):
        # The generated command; GUNICORN_CMD_ARGS keeps the test on loopback.
        command = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py"]
        settings = {**env, "PORT": str(port), "GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{port}"}
        settings["METRICS_PORT"] = str(free_port())  # each instance's own
        web.append(Process(f"web{port}", command, project, settings, log).start())
    started.extend(web)
    for port in ports:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", 30, *web)

    listen = free_port()
    conf = local_config(project, tmp_path / "nginx", ports, listen)
    command = [nginx, "-c", str(conf), "-p", str(conf.parent), "-g", "daemon off;"]
    balancer = Process("nginx", command, tmp_path, os.environ, tmp_path / "nginx.err").start()
    started.append(balancer)
    base = f"http://127.0.0.1:{listen}"
    wait_for_http(f"{base}/healthz", 30, balancer, *web)

    status, body = get(f"{base}/healthz")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    # No FLASK_CONFIG in the environment: gunicorn.conf.py makes it production (HSTS).
    with urllib.request.urlopen(f"{base}/healthz", timeout=5) as response:
        assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert get(f"{base}/readyz")[0] in (200, 503)

    # Requests through nginx carry X-Forwarded-For, which the access log (JSON lines in
    # production) shows, with the request id nginx made.
    for _ in range(10):
        assert get(f"{base}/healthz")[0] == 200
    accesses = [
        [entry for entry in json_lines(log) if entry["logger"] == "gunicorn.access"] for log in logs
    ]
    proxied = [[e for e in entries if e["client"] == "127.0.0.1"] for entries in accesses]
    served = [len(entries) for entries in proxied]
    app_ids = {entry["request_id"] for entries in proxied for entry in entries}

    def nginx_ids() -> set[str]:
        text = (conf.parent / "access.log").read_text()
        return set(re.findall(r" ([0-9a-f]{32})$", text, re.M))

    # nginx writes a request's access line once the response is sent: the client can read the
    # response, and the app log its line, before nginx's line is there.
    wait_for(lambda: app_ids <= nginx_ids(), 5, lambda: f"{proxied}\n{nginx_ids()}")
    assert sum(served) >= 10, served
    if "ip_hash;" in conf.read_text():
        assert 0 in served, f"ip_hash should keep one client on one instance: {served}"
    else:
        assert all(served), f"round robin should use both instances: {served}"
    victim = web[served.index(max(served))]

    failures = []
    for i in range(200):
        if i == 50:
            victim.kill()
        status, _ = get(f"{base}/healthz")
        if status != 200:
            failures.append((i, status))
    assert not failures, f"GETs failed after an instance was killed: {failures}"


# --- NetworkPolicy ---------------------------------------------------------------------


def selects(selector: dict, labels: dict) -> bool:
    return selector.keys() == {"matchLabels"} and selector["matchLabels"].items() <= labels.items()


def selected(policy: dict, pods: dict[str, dict]) -> set[str]:
    """The names of the pods (templates) that ``policy`` applies to."""
    return {
        name
        for name, pod in pods.items()
        if selects(policy["podSelector"], pod["metadata"]["labels"])
    }


@pytest.mark.parametrize("combo", with_file("deploy/k8s"))
def test_network_policy_admits_only_the_ingress_controller(
    projects: dict[str, Path], combo: str
) -> None:
    project = projects[combo]
    for overlay in ("dev", "prod"):
        docs = kustomize(project, project / "deploy/k8s/overlays" / overlay)
        prefix = slug(project).replace("_", "-") + "-"
        policies = {
            d["metadata"]["name"].removeprefix(prefix): d["spec"]
            for d in docs
            if d["kind"] == "NetworkPolicy"
        }
        expected = {"default-deny-ingress", "web-from-ingress", "metrics-from-namespace"}
        if overlay == "prod":
            expected.add("pgbouncer-from-app")
        assert set(policies) == expected
        deny, allow = policies["default-deny-ingress"], policies["web-from-ingress"]
        pods = {
            d["metadata"]["name"].rsplit("-", 1)[-1]: d["spec"]["template"]
            for d in docs
            if d["kind"] in ("Deployment", "Job")
        }

        # Default deny: every pod of the app, no rule, ingress only (egress, DNS included, open).
        assert deny["policyTypes"] == ["Ingress"] and "ingress" not in deny
        for name, pod in pods.items():
            assert selects(deny["podSelector"], pod["metadata"]["labels"]), name

        # The web pods, and only them, on their http port, from the ingress namespace only.
        assert allow["policyTypes"] == ["Ingress"]
        assert selected(allow, pods) == {"web"}
        [rule] = allow["ingress"]
        assert rule["from"] == [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
        ]
        ports = {p["name"] for p in pods["web"]["spec"]["containers"][0]["ports"]}
        assert rule["ports"] == [{"protocol": "TCP", "port": "http"}] and "http" in ports

        # A scraper in the namespace reaches the metrics port, which only web and worker have.
        scrape = policies["metrics-from-namespace"]
        assert scrape["policyTypes"] == ["Ingress"]
        [rule] = scrape["ingress"]
        assert rule == {
            "from": [{"podSelector": {}}],
            "ports": [{"protocol": "TCP", "port": "metrics"}],
        }
        with_metrics = {
            name
            for name, pod in pods.items()
            if selects(scrape["podSelector"], pod["metadata"]["labels"])
            and "metrics" in {p["name"] for p in pod["spec"]["containers"][0].get("ports", [])}
        }
        assert with_metrics == ({"web", "worker"} if "worker" in pods else {"web"})
        for name in with_metrics:
            annotations = pods[name]["metadata"]["annotations"]
            assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/port": "9100"}

        # PgBouncer (prod) takes connections from the app's own pods only, on its one port.
        if overlay == "prod":
            pooler = policies["pgbouncer-from-app"]
            assert selected(pooler, pods) == {"pgbouncer"}
            [rule] = pooler["ingress"]
            [source] = rule["from"]
            assert source["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": prefix[:-1]}
            assert rule["ports"] == [{"protocol": "TCP", "port": "postgres"}]
