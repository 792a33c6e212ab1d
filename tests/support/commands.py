"""Running commands, and a generated project's own checks, with their output on failure."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest


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


def production_env(project: Path, **settings: str) -> dict[str, str]:
    """Environment for serving a generated project from its folder in production: a random
    ``SECRET_KEY``, a trusted host name, and ``settings`` (``DATABASE_URL`` at least)."""
    return {
        **project_env(project),
        "FLASK_CONFIG": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "TRUSTED_HOSTS": "shop.example.com",
        **settings,
    }


def run_project_tests(project: Path, *args: str, env: Mapping[str, str] | None = None):
    """The generated project's own test suite, in this interpreter (which holds its deps)."""
    return run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=project,
        env={**project_env(project), **(env or {})},
    )


def run_lint(project: Path) -> None:
    run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=project)
    run([sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "."], cwd=project)


def run_mypy(project: Path) -> None:
    """The project's own type check: plain ``mypy`` in its folder reads its configuration. The
    cache goes in the test's folder, beside the project, never in it (the repro check)."""
    cache = project.parent / "mypy-cache"
    run([sys.executable, "-m", "mypy", "--cache-dir", str(cache)], cwd=project)


def run_pre_commit(project: Path) -> None:
    """The project's own hooks on every file, as ``pre-commit run --all-files`` does in a new
    git checkout of it; a hook that fails or changes a file fails the check."""
    run(["git", "init", "-q"], cwd=project)
    run(["git", "add", "-A"], cwd=project)
    hooks = [sys.executable, "-m", "pre_commit", "run", "--all-files", "--show-diff-on-failure"]
    run(hooks, cwd=project)


def run_lock_check(project: Path) -> None:
    """The project's uv.lock, made at generation, is there and pins what pyproject.toml asks
    for (``uv lock --check`` resolves again and fails if the lock would change)."""
    if not (project / "uv.lock").is_file():
        pytest.fail(f"no uv.lock in {project}: generation did not lock (is uv on PATH?)")
    run(["uv", "lock", "--check"], cwd=project)
