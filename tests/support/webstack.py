"""A generated project's web tier, live: app instances (its ``gunicorn.conf.py``) on loopback
behind a local copy of its nginx config, which names the instance that answered in
``X-Upstream``."""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from support.commands import run
from support.nginx import local_config
from support.processes import Process, answers, wait_for
from support.services import free_port, require_command

HOST = "127.0.0.1"
PASSWORD = "correct horse battery"


def nginx_directory(prefix: str) -> Path:
    """A directory for nginx's config, logs and temporary files, outside pytest's private tree:
    nginx's workers may run as another user."""
    root = Path(tempfile.mkdtemp(prefix=f"flaskscale-nginx-{prefix}-"))
    root.chmod(0o755)
    return root


@dataclass
class WebStack:
    project: Path
    env: dict
    logs: Path
    nginx_root: Path
    nginx_port: int = field(default_factory=free_port)
    ports: dict[str, int] = field(default_factory=lambda: {"a": free_port(), "b": free_port()})
    instances: dict[str, Process] = field(default_factory=dict)
    nginx: Process | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.nginx_port}"

    def instance_of(self, upstream: str) -> str:
        """The instance name ("a" or "b") behind an ``X-Upstream`` value."""
        port = int(upstream.rsplit(":", 1)[1])
        return next(name for name, p in self.ports.items() if p == port)

    def start_instance(self, name: str) -> Process:
        # Each instance serves its metrics on a port of its own (9100 unless told).
        env = {"METRICS_PORT": str(free_port()), **self.env, "PORT": str(self.ports[name])}
        # gunicorn.conf.py binds 0.0.0.0:$PORT; the command line keeps the test on loopback.
        cmd = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py"]
        cmd += ["--bind", f"{HOST}:{self.ports[name]}"]
        process = Process(f"web-{name}", cmd, self.project, env, self.logs / f"web-{name}.log")
        self.instances[name] = process.start()
        wait_for(
            lambda: answers(f"http://{HOST}:{self.ports[name]}/healthz") or not process.running,
            60,
            lambda: f"instance {name} did not start:\n{process.output()[-4000:]}",
        )
        assert process.running, f"instance {name} exited:\n{process.output()[-4000:]}"
        return process

    def start_nginx(self) -> Process:
        nginx = require_command("nginx")
        ports = list(self.ports.values())
        config = local_config(
            self.project, self.nginx_root, ports, self.nginx_port, show_upstream=True
        )
        run([nginx, "-t", "-c", str(config)], self.nginx_root)
        cmd = [nginx, "-c", str(config), "-g", "daemon off;"]
        log = self.logs / "nginx.log"
        self.nginx = Process("nginx", cmd, self.nginx_root, dict(os.environ), log).start()
        wait_for(lambda: answers(self.url + "/healthz"), 20, self.diagnostics)
        return self.nginx

    def processes(self) -> list[Process]:
        return [*self.instances.values(), *([self.nginx] if self.nginx else [])]

    def stop(self) -> None:
        for process in self.processes():
            process.stop()

    def nginx_log(self, name: str) -> str:
        """nginx's ``access.log`` or ``error.log``."""
        path = self.nginx_root / name
        return path.read_text(errors="replace") if path.exists() else ""

    def diagnostics(self) -> str:
        parts = [f"--- {p.name}\n{p.output()[-3000:]}" for p in self.processes()]
        parts.append(f"--- nginx error.log\n{self.nginx_log('error.log')[-3000:]}")
        return "\n".join(parts)


def sign_up(url: str, username: str) -> str:
    """Register through the API at ``url``, log in, and return the access token."""
    import requests

    http = requests.Session()
    response = http.post(
        url + "/api/v1/users",
        json={"username": username, "email": f"{username}@example.com", "password": PASSWORD},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    response = http.post(url + "/api/v1/tokens", auth=(username, PASSWORD), timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["access_token"]
