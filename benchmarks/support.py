"""What every benchmark needs: a rendered project, a virtualenv for it, gunicorn, wrk.

A measurement, not a test: nothing here passes or fails on a figure. A server that does not
start, or a load generator that does not run, stops the run (SystemExit) instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from support.celery import node_name  # noqa: E402
from support.nginx import local_config  # noqa: E402
from support.postgres import throwaway_database  # noqa: E402
from support.processes import Process, answers  # noqa: E402
from support.redis import RedisServer  # noqa: E402
from support.rendering import preset, render, snapshot_template  # noqa: E402
from support.services import free_port, service_available  # noqa: E402

__all__ = [
    "Process",
    "RedisServer",
    "free_port",
    "local_config",
    "node_name",
    "service_available",
    "throwaway_database",
]

HOST = "127.0.0.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# The worker settings both servers of a comparison get, whatever the project's config says.
GUNICORN_WORKERS = ["--workers", "2", "--worker-class", "gthread", "--threads", "4"]
# Rate limits raised out of the way through the project's own settings: a benchmark from one
# address is exactly what they are there to stop.
NO_RATE_LIMITS = {
    "API_RATE_LIMIT": "1000000 per second",
    "LOGIN_RATE_LIMIT_PER_ADDRESS": "1000000 per second",
    "LOGIN_RATE_LIMIT_PER_ACCOUNT": "1000000 per second",
    # A full run lasts longer than an access token's default 15 minutes.
    "ACCESS_TOKEN_MINUTES": "600",
}


def render_project(root: Path, name: str, preset_name: str, **answers: Any) -> Path:
    """The template of this checkout (uncommitted changes included), rendered into root/name."""
    template = root / "template"
    if not template.exists():
        snapshot_template(template)
    return render(template, root / name, preset(preset_name, project_name=name, **answers))


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(os.environ.get("FLASKSCALE_BENCH_CACHE", Path(base) / "flaskscale-bench"))


def dependencies_of(project: Path) -> list[str]:
    return tomllib.loads((project / "pyproject.toml").read_text())["project"]["dependencies"]


def project_venv(*projects: Path) -> Path:
    """The python of a virtualenv holding the dependencies of every one of ``projects`` (not
    the projects themselves: they run from their folders): one install for all the rows.
    Cached by the dependency list, so that a rerun installs nothing.
    """
    dependencies = sorted({dependency for p in projects for dependency in dependencies_of(p)})
    key = "\n".join([sys.version, *dependencies])
    venv = cache_dir() / f"venv-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    python = venv / "bin" / "python"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / "lock", "w") as lock:  # two runs at once build it once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / "complete").exists():
            print(f"installing the project's dependencies into {venv} (once)", flush=True)
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
            install = [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ]
            done = subprocess.run([*install, *dependencies], capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(f"pip could not install the dependencies:\n{done.stderr}")
            (venv / "complete").write_text(key)
    return python


def production_env(project: Path, database_url: str) -> dict[str, str]:
    """The environment production gives the generated app, limits raised out of the way."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FLASK_", "PROMETHEUS_", "VIRTUAL_ENV", "PYTHON"))
    }
    return {
        **inherited,
        **NO_RATE_LIMITS,
        "PYTHONPATH": str(project),
        "FLASK_CONFIG": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "TRUSTED_HOSTS": "localhost,127.0.0.1",
        "DATABASE_URL": database_url,
    }


class Server:
    """A gunicorn on loopback in its own process group; access lines go nowhere, errors to a
    log file."""

    def __init__(
        self,
        name: str,
        python: Path,
        cwd: Path,
        env: Mapping[str, str],
        args: list[str],
        workers: list[str] = GUNICORN_WORKERS,
    ):
        self.name, self.port = name, free_port()
        self.log = cwd / f"{name}-{self.port}.log"
        cmd = [str(python), "-m", "gunicorn", *args, *workers]
        cmd += ["--bind", f"{HOST}:{self.port}"]
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                cmd,
                cwd=cwd,
                env={**env, "METRICS_PORT": str(free_port())},
                stdout=subprocess.DEVNULL,  # the access log: formatted, then dropped
                stderr=log,
                start_new_session=True,
            )
        wait_until_answers(self.url("/healthz"), self.proc, self.log)

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def wait_until_answers(url: str, proc: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        if answers(url) is not None:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # its workers too: it leads a session of its own
    raise SystemExit(f"{url} did not answer: see {log}\n{log.read_text()[-3000:]}")


def cpu_seconds(groups: Iterable[int]) -> float:
    """CPU time (user and system) the live processes of these process groups have used so far:
    a server's master and workers (each Server leads a session, so its group is its pid)."""
    groups, ticks = set(groups), 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):  # a process that ended since the listing
            # After the command's closing parenthesis: state, ppid, pgrp, ... utime, stime.
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) in groups:
                ticks += int(fields[11]) + int(fields[12])
    return ticks / CLOCK_TICKS


def wrk(
    url: str,
    seconds: float,
    headers: Mapping[str, str] | None = None,
    script: Path | None = None,
    servers: Iterable[int] = (),
) -> dict[str, float]:
    """Requests per second, latency percentiles (ms) and failed responses of ``url`` under
    ``wrk -t1 -c8`` for ``seconds``; with ``servers`` (process groups), the CPU they used a
    request, in microseconds."""
    cmd = ["wrk", "-t1", "-c8", f"-d{seconds}s", "--latency"]
    for name, value in (headers or {}).items():
        cmd += ["-H", f"{name}: {value}"]
    cmd += ["-s", str(script)] if script else []
    cpu_before = cpu_seconds(servers)
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(servers) - cpu_before
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": latency(out, "50%"),
        "p99_ms": latency(out, "99%"),
        "failed": int(failed.group(1)) if failed else 0,
        "socket_errors": sum(map(int, errors.groups())) if errors else 0,
        "server_cpu_us": cpu / requests * 1e6 if servers and requests else None,
    }


def latency(wrk_output: str, percentile: str) -> float:
    value, unit = re.search(rf"{percentile}\s+([\d.]+)(us|ms|s)\b", wrk_output).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
