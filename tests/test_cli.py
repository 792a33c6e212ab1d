"""The ``flaskscale`` CLI through Typer's runner: answers, flags, messages, and failures."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from flaskscale_gen import __version__, generate, history
from flaskscale_gen.cli import app
from flaskscale_gen.questions import load_questions
from flaskscale_gen.template_source import template_root

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def tree_state(root: Path) -> dict[str, str]:
    """Every path below ``root`` with a hash of its content (or 'dir'), to compare before/after."""
    state = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        state[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def answers_of(project: Path) -> dict:
    return yaml.safe_load((project / ".copier-answers.yml").read_text())


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0
    # This checkout's last commit, named from the history.
    head = history.versions(template_root())[-1].name
    assert result.stdout.strip() == f"flaskscale {__version__} (template {head})"


def test_help_of_every_command_shows_examples():
    for command in ("new", "options", "versions", "update"):
        result = invoke(command, "--help")
        assert result.exit_code == 0
        assert "Example" in result.stdout


def test_options_lists_every_question_with_its_details():
    result = runner.invoke(app, ["options"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    names = [line.split("│")[1].strip() for line in result.stdout.splitlines() if "│" in line]
    questions = load_questions(template_root())
    assert names == [q.name for q in questions.values() if not q.computed]
    assert "sqlite, postgresql" in result.stdout
    assert "celery is true" in result.stdout  # when celery_broker is asked


def test_new_with_defaults_creates_a_git_repository_with_one_commit(tmp_path):
    dest = tmp_path / "demo"
    result = invoke("new", str(dest), "--defaults")
    assert result.exit_code == 0, result.output
    assert (dest / "demo" / "__init__.py").is_file()
    answers = answers_of(dest)
    assert answers["project_name"] == "demo"
    assert answers["project_slug"] == "demo"
    log = subprocess.run(
        ["git", "log", "--oneline"], cwd=dest, capture_output=True, text=True, check=True
    )
    assert len(log.stdout.splitlines()) == 1
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=dest, capture_output=True, text=True, check=True
    )
    assert status.stdout == ""
    assert f"cd {dest}" in result.stdout
    assert "pip install -e '.[dev]'" in result.stdout
    assert "flask --app demo run" in result.stdout


def test_new_pins_the_dependencies_in_a_committed_uv_lock(tmp_path):
    dest = tmp_path / "locked"
    result = invoke("new", str(dest), "--defaults", "--preset", "minimal")
    assert result.exit_code == 0, result.output
    lock = (dest / "uv.lock").read_text()
    assert 'name = "flask"' in lock and 'name = "locked"' in lock
    tracked = subprocess.run(
        ["git", "ls-files", "uv.lock"], cwd=dest, capture_output=True, text=True, check=True
    )
    assert tracked.stdout.strip() == "uv.lock"
    assert "  uv run pytest" in result.stdout
    assert "Without uv: python -m venv .venv" in result.stdout


def test_new_without_uv_makes_the_project_and_says_how_to_lock_later(tmp_path, monkeypatch, capfd):
    from plumbum import local

    dest = tmp_path / "unlocked"
    # Copier runs its tasks in plumbum's copy of the environment, taken at plumbum's import.
    with local.env(PATH="/usr/bin:/bin"):  # git, no uv
        local.env.pop("UV", None)
        result = invoke("new", str(dest), "--defaults", "--preset", "minimal")
    assert result.exit_code == 0, result.output
    assert (dest / "pyproject.toml").is_file() and not (dest / "uv.lock").exists()
    assert "uv is not installed: run make lock" in capfd.readouterr().err
    assert "pip install -e '.[dev]'" in result.stdout and "uv run" not in result.stdout


def test_new_into_an_existing_empty_folder(tmp_path):
    dest = tmp_path / "empty"
    dest.mkdir()
    result = invoke("new", str(dest), "-y", "--no-git")
    assert result.exit_code == 0, result.output
    assert (dest / "empty" / "config.py").is_file()
    assert not (dest / ".git").exists()


def test_new_prints_the_project_name_as_given(tmp_path):
    """``new``'s lines are plain text: brackets in a name are not taken for Rich markup."""
    dest = tmp_path / "shop"
    name = "[bold]Shop[/bold] :smile:"
    result = invoke(
        "new", str(dest), "-y", "--no-git", "--preset", "minimal", "-d", f"project_name={name}"
    )
    assert result.exit_code == 0, result.output
    assert f"Created {name!r} in {dest}, from template v" in result.stdout
    assert answers_of(dest)["project_name"] == name


def test_preset_answers_can_be_overridden_with_data(tmp_path):
    dest = tmp_path / "svc"
    result = invoke(
        "new", str(dest), "-y", "--no-git", "--preset", "api", "--data", "database=sqlite"
    )
    assert result.exit_code == 0, result.output
    answers = answers_of(dest)
    assert answers["api"] is True
    assert answers["web_ui"] is False
    assert answers["api_versions"] == "v1+v2"
    assert answers["database"] == "sqlite"  # --data wins over the preset


def test_answers_file_then_data(tmp_path):
    answers_file = tmp_path / "answers.yml"
    answers_file.write_text("project_name: Order Service\nweb_ui: false\ncelery: false\n")
    dest = tmp_path / "orders"
    result = invoke(
        "new", str(dest), "-y", "--no-git", "--answers-file", str(answers_file), "-d", "api=false"
    )
    assert result.exit_code == 0, result.output
    answers = answers_of(dest)
    assert answers["project_name"] == "Order Service"
    assert answers["project_slug"] == "order_service"
    assert answers["web_ui"] is False
    assert answers["api"] is False
    assert (dest / "order_service" / "health.py").is_file()
    assert not (dest / "order_service" / "api").exists()


def test_pretend_lists_the_files_and_writes_nothing(tmp_path):
    dest = tmp_path / "demo"
    result = invoke("new", str(dest), "-y", "--pretend")
    assert result.exit_code == 0, result.output
    assert "demo/__init__.py" in result.stdout
    assert "Nothing was written" in result.stdout
    assert list(tmp_path.iterdir()) == []


BAD_INPUTS = {
    "slug-keyword": (["--data", "project_slug=import"], "is a Python keyword"),
    "slug-not-identifier": (["--data", "project_slug=My-App"], "is not a valid package name"),
    "slug-leading-digit": (["--data", "project_slug=1app"], "is not a valid package name"),
    "slug-not-ascii": (["--data", "project_slug=café"], "is not a valid package name"),
    "slug-trailing-underscore": (["--data", "project_slug=app_"], "is not a valid package name"),
    "slug-shadows-flask": (["--data", "project_slug=flask"], "would shadow"),
    "slug-shadows-tests": (["--data", "project_slug=tests"], "would shadow"),
    "name-without-letters": (["--data", "project_name=!!!"], "project_slug is empty"),
    "bad-email": (["--data", "author_email=nobody"], "is not an e-mail address"),
    "unknown-locale": (["--data", "languages=en,xx"], '"xx" is not a locale code'),
    "locale-with-dash": (["--data", "languages=en,pt-BR"], 'write "pt_BR"'),
    "languages-without-en": (["--data", "languages=es,de"], "leaves out en"),
    "language-twice": (["--data", "languages=en,es,es"], "names a language twice"),
    "unknown-key": (["--data", "colour=blue"], "unknown question 'colour'"),
    "computed-key": (["--data", "redis=true"], "is computed from other answers"),
    "not-key-value": (["--data", "celery"], "is not KEY=VALUE"),
    "bad-bool": (["--data", "celery=maybe"], "is not a boolean"),
    "bad-choice": (["--data", "database=mysql"], "is not one of: sqlite, postgresql"),
    "bad-version": (["--data", "python_version=2.7"], "is not one of: 3.11, 3.12, 3.13"),
    "k8s-without-docker": (
        ["--data", "docker=false", "--data", "kubernetes=true"],
        "kubernetes needs the Docker image",
    ),
    "unknown-preset": (["--preset", "huge"], "unknown preset 'huge'"),
    "missing-answers-file": (["--answers-file", "/nonexistent/a.yml"], "cannot read"),
}


@pytest.mark.parametrize("args,message", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, args, message):
    dest = tmp_path / "out" / "demo"
    before = tree_state(tmp_path)
    result = invoke("new", str(dest), "-y", *args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert message in lines[0]
    assert "Traceback" not in result.output
    assert tree_state(tmp_path) == before


def test_broken_answers_file_is_reported_with_its_line(tmp_path):
    answers_file = tmp_path / "answers.yml"
    answers_file.write_text("web_ui: true\napi: [unclosed\n")
    result = invoke("new", str(tmp_path / "demo"), "-y", "--answers-file", str(answers_file))
    assert result.exit_code == 2
    assert "is not valid YAML (line" in result.stderr
    assert not (tmp_path / "demo").exists()


def test_non_empty_destination_is_left_untouched(tmp_path):
    dest = tmp_path / "demo"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    before = tree_state(tmp_path)
    result = invoke("new", str(dest), "-y")
    assert result.exit_code == 2
    assert "exists and is not empty" in result.stderr
    assert tree_state(tmp_path) == before


def test_destination_that_cannot_be_written(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = invoke("new", str(blocker / "demo"), "-y")
    assert result.exit_code == 2
    assert "cannot write to" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_no_terminal_and_no_defaults_is_refused(tmp_path):
    result = invoke("new", str(tmp_path / "demo"))
    assert result.exit_code == 2
    assert "pass --defaults" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_interrupt_during_rendering_leaves_nothing_behind(tmp_path, monkeypatch):
    real_render = generate.render

    def render_then_interrupt(staging, *args, **kwargs):
        real_render(staging, *args, **kwargs)
        assert any(staging.iterdir())  # files were written to the staging folder...
        raise KeyboardInterrupt

    monkeypatch.setattr(generate, "render", render_then_interrupt)
    result = invoke("new", str(tmp_path / "deep" / "demo"), "-y")
    assert result.exit_code == 2
    assert "interrupted: nothing was written" in result.stderr
    assert list(tmp_path.iterdir()) == []  # ...and removed, with the parents it created


def test_failing_git_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "missing" / "nowhere"))
    monkeypatch.setenv("GIT_WORK_TREE", str(tmp_path / "missing"))
    monkeypatch.setattr(generate.subprocess, "run", _failing_git(generate.subprocess.run))
    result = invoke("new", str(tmp_path / "demo"), "-y")
    assert result.exit_code == 2
    assert "git failed" in result.stderr
    assert "--no-git" in result.stderr
    assert list(tmp_path.iterdir()) == []


def _failing_git(real_run):
    def run(cmd, *args, **kwargs):
        if cmd[:2] == ["git", "commit"] or "commit" in cmd:
            raise subprocess.CalledProcessError(128, cmd, stderr="fatal: simulated failure")
        return real_run(cmd, *args, **kwargs)

    return run


# PEP 508's name rule (what pip accepts as a distribution name).
DISTRIBUTION_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)


@pytest.mark.parametrize("slug", ["a", "app2", "order_service", "a__b", "app_", "café", "x٣", "ǆ"])
def test_a_slug_is_accepted_exactly_when_pip_and_python_accept_it(tmp_path, slug):
    """The slug is the distribution name and the import name: both rules, ASCII only."""
    valid = slug.isascii() and slug.isidentifier() and bool(DISTRIBUTION_NAME.match(slug))
    dest = str(tmp_path / "demo")
    result = invoke("new", dest, "-y", "--pretend", "--data", f"project_slug={slug}")
    assert (result.exit_code == 0) == valid, result.output
    if not valid:
        assert "is not a valid package name" in result.stderr


@pytest.mark.parametrize("content", ["", "defaults: [1, 2]\n", "trust: {a: [\n"])
def test_an_unreadable_copier_settings_file_is_named_with_the_fix(tmp_path, monkeypatch, content):
    settings = tmp_path / "settings.yml"
    settings.write_text(content)
    monkeypatch.setenv("COPIER_SETTINGS_PATH", str(settings))
    result = invoke("new", str(tmp_path / "demo"), "-y")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"Copier's settings file {settings} is not valid" in lines[0]
    assert "COPIER_SETTINGS_PATH" in lines[0]
    assert not (tmp_path / "demo").exists()
