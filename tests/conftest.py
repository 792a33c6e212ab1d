"""Shared fixtures for the generator's tests.

Projects are rendered from a snapshot of the working tree (``copier.yml`` and
``template/`` copied to a plain folder), so tests see uncommitted template changes
and never depend on which git tags exist.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

# tests/matrix.py: the option matrix's summary table (combination x check) at the end of a run;
# tests/podman_support.py: the container image's build time, size and start-up time.
pytest_plugins = ["matrix", "podman_support"]

REPO = Path(__file__).resolve().parents[1]
E2E_REQUIRED = os.environ.get("FLASKSCALE_E2E") == "required"

# Keep a developer's own Copier settings (defaults, trust lists) out of the tests.
_SETTINGS = Path("/tmp/flaskscale-empty-copier-settings.yml")
_SETTINGS.write_text("{}\n")
os.environ["COPIER_SETTINGS_PATH"] = str(_SETTINGS)


def pytest_configure(config: pytest.Config) -> None:
    # pytest-copie's `copie` fixture renders the template named by --template.
    if getattr(config.option, "template", None) in (None, "."):
        config.option.template = str(REPO)


def snapshot_template(dest: Path) -> Path:
    """Copy ``copier.yml`` and ``template/`` into ``dest``: a plain folder, no git."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "copier.yml", dest / "copier.yml")
    shutil.copytree(
        REPO / "template",
        dest / "template",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache"),
    )
    return dest


@pytest.fixture(scope="session")
def template_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return snapshot_template(tmp_path_factory.mktemp("template"))


def render(template: Path, dest: Path, answers: Mapping[str, Any] | None = None) -> Path:
    """Render ``template`` into ``dest`` with ``answers`` and defaults for the rest."""
    from copier import run_copy

    run_copy(
        str(template),
        str(dest),
        data=dict(answers or {}),
        defaults=True,
        unsafe=True,
        quiet=True,
    )
    return dest


def run(cmd: list[str], cwd: Path, env: Mapping[str, str] | None = None, timeout: int = 600):
    """Run ``cmd``; on failure, fail the test with its output."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} exited {proc.returncode} in {cwd}\n"
            f"--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-6000:]}"
        )
    return proc


def project_env(project: Path) -> dict[str, str]:
    """Environment for running a generated project's code from its folder without installing it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "DATABASE_URL"))}
    env["PYTHONPATH"] = str(project)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_project_tests(project: Path, *args: str, env: Mapping[str, str] | None = None):
    """The generated project's own test suite, in this interpreter (which holds its deps)."""
    return run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:copie", *args],
        cwd=project,
        env={**project_env(project), **(env or {})},
    )


def run_lint(project: Path) -> None:
    run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=project)
    run([sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "."], cwd=project)


def service_available(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, port: int, host: str = "127.0.0.1") -> None:
    """Skip when a service is missing; fail instead under FLASKSCALE_E2E=required."""
    if service_available(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if E2E_REQUIRED:
        pytest.fail(f"{message} and FLASKSCALE_E2E=required")
    pytest.skip(f"{message}; start it to run this test")


def require_command(name: str) -> str:
    """The path of a tool; skip when missing, fail under FLASKSCALE_E2E=required."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed (.ci/run installs it)"
    if E2E_REQUIRED:
        pytest.fail(f"{message} and FLASKSCALE_E2E=required")
    pytest.skip(message)


@pytest.fixture
def chdir_tmp(tmp_path: Path) -> Iterator[Path]:
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(old)


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The flaskscale-gen wheel, built once per session from this checkout."""
    from support.wheels import build

    return build(REPO, tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory, built_wheel: Path) -> Path:
    """flaskscale's dependencies and its build backend, for installs that run offline."""
    from support.wheels import wheelhouse

    return wheelhouse(tmp_path_factory.mktemp("wheelhouse"), str(built_wheel), "hatchling")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    """Status and body of a GET, error statuses included."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_for_http(url: str, timeout: float = 30, proc: subprocess.Popen | None = None) -> bytes:
    """Poll ``url`` until it answers 2xx; fail early if ``proc`` exits."""
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read()
        except OSError as exc:
            last = exc
            time.sleep(0.2)
    pytest.fail(f"{url} did not answer within {timeout}s: {last}")
