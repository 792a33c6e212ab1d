"""The installed product: a wheel in a fresh virtualenv generates a project that runs.

This is the README's promise end to end: install flaskscale, generate a project with the
defaults, install that project with its own declared dependencies, run its tests, serve it;
with pip, and with the generated README's own uv commands, from its uv.lock.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tomllib
import zipfile
from pathlib import Path

import yaml
from support.commands import run
from support.processes import Process, wait_for_http
from support.rendering import REPO, preset, render
from support.services import free_port


def test_wheel_carries_the_template(built_wheel: Path):
    names = zipfile.ZipFile(built_wheel).namelist()
    assert "flaskscale_gen/_template/copier.yml" in names
    assert "flaskscale_gen/_template/template/{{project_slug}}/__init__.py.jinja" in names
    assert "flaskscale_gen/presets/full.yml" in names


def test_installed_cli_generates_a_project_that_passes_its_tests_and_serves(
    built_wheel: Path, tmp_path: Path, started: list[Process]
):
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    bin_dir = venv / "bin"
    run([str(bin_dir / "pip"), "install", "--quiet", str(built_wheel)], tmp_path)

    # Run from a folder far from the checkout: only the installed package can be used.
    work = tmp_path / "work"
    work.mkdir()
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    version = run(["flaskscale", "--version"], work, env).stdout
    assert version.startswith("flaskscale ")
    run(["flaskscale", "new", "demo", "--defaults"], work, env)
    project = work / "demo"
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert str(venv) not in str(answers.get("_src_path", ""))

    # The project's own declared dependencies are enough: install them, then test and serve.
    run([str(bin_dir / "pip"), "install", "--quiet", "-e", ".[dev]"], project, timeout=900)
    run([str(bin_dir / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"], project)
    run([str(bin_dir / "flask"), "--app", "demo", "db", "upgrade"], project, env)

    port = free_port()
    command = [str(bin_dir / "flask"), "--app", "demo", "run", "--port", str(port)]
    server = Process("flask run", command, project, {**os.environ, **env}, tmp_path / "flask.log")
    started.append(server.start())
    body = wait_for_http(f"http://127.0.0.1:{port}/healthz", 30, server)
    assert json.loads(body) == {"status": "ok"}
    ready = json.loads(wait_for_http(f"http://127.0.0.1:{port}/readyz"))
    assert ready == {"status": "ok", "database": "ok"}


def test_uvx_runs_the_readmes_first_command_with_no_virtualenv(tmp_path: Path):
    """``uvx --from . flaskscale new ...`` from the checkout: uv builds flaskscale and runs it
    from a cache of its own, so no virtualenv is made and the system Python is left alone."""
    work = tmp_path / "work"
    work.mkdir()
    env = {
        "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
        "UV_TOOL_DIR": str(tmp_path / "uv-tools"),
        "VIRTUAL_ENV": "",  # not this test run's own: uv must not install into it
    }
    uvx = [sys.executable, "-m", "uv", "tool", "run", "--from", str(REPO)]
    run([*uvx, "flaskscale", "new", "demo", "--defaults"], work, env, timeout=900)
    answers = yaml.safe_load((work / "demo" / ".copier-answers.yml").read_text())
    assert answers["project_slug"] == "demo"
    assert str(tmp_path / "uv-cache") not in str(answers.get("_src_path", ""))
    assert (work / "demo" / "demo" / "__init__.py").is_file()


def test_the_generated_readmes_commands_run_with_uv_from_the_lock(
    template_dir: Path, tmp_path: Path, started: list[Process]
):
    """The project's README, literally: ``uv run`` installs what uv.lock pins into the
    project's .venv, runs the tests, then migrates and serves."""
    project = render(template_dir, tmp_path / "demo", preset("minimal", project_slug="demo"))
    lock = (project / "uv.lock").read_bytes()
    block = re.search(r"```bash\n(.+?)\n```", (project / "README.md").read_text(), re.S)[1]
    serve_command, test_command = block.splitlines()
    assert test_command == "uv run pytest", test_command
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}  # not this test run's
    env["UV_PROJECT_ENVIRONMENT"] = str(project / ".venv")

    output = run(["bash", "-c", test_command], project, env, timeout=900).stdout
    assert re.search(r"\d+ passed", output), output[-2000:]
    pinned = {p["name"]: p["version"] for p in tomllib.loads(lock.decode())["package"]}
    python = str(project / ".venv/bin/python")
    script = "import importlib.metadata as m; print(m.version('flask'), m.version('pytest'))"
    assert run([python, "-c", script], project).stdout.split() == [
        pinned["flask"],
        pinned["pytest"],
    ]

    port = free_port()
    server = Process(
        "uv run flask", ["bash", "-c", serve_command], project,
        {**env, "FLASK_RUN_PORT": str(port)}, tmp_path / "flask.log",
    )  # fmt: skip
    started.append(server.start())
    body = wait_for_http(f"http://127.0.0.1:{port}/healthz", 60, server)
    assert json.loads(body) == {"status": "ok"}
    assert json.loads(wait_for_http(f"http://127.0.0.1:{port}/readyz")) == {
        "status": "ok",
        "database": "ok",
    }
    assert (project / "uv.lock").read_bytes() == lock  # uv run installed it as it was
