"""Every option combination we claim to support, rendered and put through the quality gates.

The combinations (tests/support/options.py) come from copier.yml: the defaults, all off, all on,
each preset, each boolean toggled alone, and a pairwise-covering set. Each one is rendered once and
checked for unrendered Jinja, leftovers of disabled options, ruff, bandit, deptry, its own test
suite, its deployment artifacts, byte-identical re-rendering, its uv.lock, mypy and its
pre-commit hooks. A failing check does not stop the others, so the summary table at the end of
the run shows every cell.

    python -m pytest tests/test_matrix.py -n 2
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support.checks import (
    CheckFailed,
    check_jinja,
    check_leftovers,
    check_reproducible,
    check_secrets,
)
from support.commands import (
    run,
    run_lint,
    run_lock_check,
    run_mypy,
    run_pre_commit,
    run_project_tests,
)
from support.matrix_report import record
from support.options import CHECKS, SLUG, Combination, Rejected, build_matrix, option_space
from support.rendering import render
from support.validators import deploy_checks
from typer.testing import CliRunner

from flaskscale_gen.cli import app
from flaskscale_gen.questions import preset_names

MATRIX = build_matrix()


def run_checks(combination: Combination, template_dir: Path, tmp_path: Path) -> dict:
    """Every check on one combination; returns {check: ok|FAIL|skip|-} and failure messages."""
    results = dict.fromkeys(CHECKS, "-")
    failures: dict[str, str] = {}
    answers = combination.render_answers()
    project: Path | None = None

    def attempt(name: str, check: Callable[[], object]) -> None:
        try:
            check()
        except (CheckFailed, pytest.fail.Exception, AssertionError) as exc:
            results[name] = "FAIL"
            failures[name] = str(exc).strip()
        except pytest.skip.Exception as exc:
            results[name] = "skip"
            failures[name] = f"skipped: {exc}"
        except Exception as exc:  # a crashing check is a failed cell, not a lost row
            results[name] = "FAIL"
            failures[name] = f"{type(exc).__name__}: {exc}"
        else:
            results[name] = "ok"

    def do_render() -> None:
        nonlocal project
        project = render(template_dir, tmp_path / "project", answers)

    start = time.monotonic()
    attempt("render", do_render)
    if project is not None:
        package = project / SLUG
        attempt("jinja", lambda: check_jinja(project, template_dir / "template"))
        attempt("leftovers", lambda: check_leftovers(project, combination.context()))
        attempt("secrets", lambda: check_secrets(project))
        attempt("ruff", lambda: run_lint(project))
        attempt(
            "bandit",
            lambda: run([sys.executable, "-m", "bandit", "-q", "-r", str(package), "-ll"], project),
        )
        attempt("deptry", lambda: run([sys.executable, "-m", "deptry", "."], project))

        def reproducible() -> None:
            check_reproducible(project, render(template_dir, tmp_path / "again", answers))

        attempt("repro", reproducible)
        attempt("tests", lambda: run_project_tests(project))
        attempt("deploy", lambda: deploy_checks(project, tmp_path / "scratch"))
        attempt("lock", lambda: run_lock_check(project))
        attempt("mypy", lambda: run_mypy(project))
        attempt("pre-commit", lambda: run_pre_commit(project))  # last: a failed hook edits
    results["secs"] = f"{time.monotonic() - start:.0f}"
    return results, failures


@pytest.mark.parametrize("combination", MATRIX.valid, ids=[c.id for c in MATRIX.valid])
def test_combination(combination: Combination, template_dir: Path, tmp_path: Path, request) -> None:
    results, failures = run_checks(combination, template_dir, tmp_path)
    record(request.node.user_properties, combination.id, results)
    real = {k: v for k, v in failures.items() if results[k] == "FAIL"}
    if real:
        answers = " ".join(f"{k}={v}" for k, v in combination.answers.items())
        details = "\n\n".join(f"[{name}] {message[:3000]}" for name, message in real.items())
        pytest.fail(
            f"combination {combination.id} ({', '.join(combination.sources)}) failed "
            f"{', '.join(real)}\nanswers: {answers}\n\n{details}",
            pytrace=False,
        )


@pytest.mark.parametrize("rejected", MATRIX.rejected, ids=[r.id for r in MATRIX.rejected])
def test_rejected_combination(rejected: Rejected, template_dir: Path, tmp_path: Path) -> None:
    """Copier itself refuses it with the validator's one-line message; so does the CLI."""
    answers = {"project_name": "Matrix Demo", **rejected.deviations}
    dest = tmp_path / "copier"
    with pytest.raises(ValueError) as caught:
        render(template_dir, dest, answers)
    message = str(caught.value)
    assert "\n" not in message.strip(), message
    assert any(expected in message for expected in rejected.messages), message
    assert not dest.exists() or not any(dest.iterdir())

    dest = tmp_path / "cli"
    data = [arg for k, v in rejected.deviations.items() for arg in ("--data", f"{k}={v}")]
    result = CliRunner().invoke(app, ["new", str(dest), "--defaults", "--no-git", *data])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and any(m in lines[0] for m in rejected.messages), result.output
    assert not dest.exists()


def test_the_matrix_covers_every_pair_and_every_named_combination() -> None:
    covered = set()
    for combination in MATRIX.valid:
        answers = list(combination.answers.items())
        covered.update((a, b) for i, a in enumerate(answers) for b in answers[i + 1 :])
    assert MATRIX.universe <= covered
    sources = {source for c in MATRIX.valid for source in c.sources}
    space = option_space()
    expected = {"defaults", "all-off", "all-on"}
    expected |= {f"toggle:{o.name}" for o in space.options if o.is_bool}
    rejected_toggles = {r.source for r in MATRIX.rejected}
    assert expected - rejected_toggles <= sources
    assert {s for s in sources if s.startswith("preset:")} == {
        f"preset:{name}" for name in preset_names()
    }
    assert len({c.id for c in MATRIX.valid}) == len(MATRIX.valid), "ids must be unique"
    # Sub-options that do not apply are not branched on: no two combinations render alike.
    assert len({c.key for c in MATRIX.valid}) == len(MATRIX.valid)


def test_the_option_space_is_copier_yml() -> None:
    """Every bool and choice question is varied; computed ones (when: false) are not."""
    import yaml
    from support.options import SAMPLED
    from support.rendering import REPO

    config = yaml.safe_load((REPO / "copier.yml").read_text())
    expected = [
        name
        for name, spec in config.items()
        if not name.startswith("_")
        and spec.get("when", True) is not False
        and (spec.get("type") == "bool" or spec.get("choices") or name in SAMPLED)
    ]
    assert list(option_space().names) == expected


def test_the_gates_catch_what_they_are_for(tmp_path: Path) -> None:
    """The leftover and Jinja checks fail on planted faults and pass legitimate look-alikes."""
    project = tmp_path / "project"
    (project / SLUG).mkdir(parents=True)
    (project / ".github" / "workflows").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        '[project]\nname = "x"\ndependencies = ["flask>=3", "celery[redis]>=5"]\n'
    )
    (project / SLUG / "__init__.py").write_text('from celery import Celery\n\nNAME = f"{{x}}"\n')
    (project / "README.md").write_text("Run the Celery worker.\n")
    (project / ".github" / "workflows" / "ci.yml").write_text("python: ${{ matrix.python }}\n")
    context = Combination({"celery": False, "socketio": False}).context()
    with pytest.raises(CheckFailed) as caught:
        check_leftovers(project, context)
    message = str(caught.value)
    assert f"{SLUG}/__init__.py imports celery" in message
    assert "pyproject.toml depends on celery" in message
    assert "pyproject.toml depends on redis" in message
    assert "README.md:1" in message

    template_root = tmp_path / "template"
    template_root.mkdir()
    check_jinja(project, template_root)  # f-string braces and ${{ }} are not Jinja
    (project / "Makefile").write_text("run:\n\tflask --app {{ project_slug }} run\n")
    with pytest.raises(CheckFailed, match=r"Makefile:2"):
        check_jinja(project, template_root)


def test_the_secrets_gate_catches_placeholders_and_lets_required_values_pass(tmp_path: Path):
    project = tmp_path / "project"
    (project / SLUG).mkdir(parents=True)
    (project / "tests").mkdir()
    planted = {
        ".env.example": "SECRET_KEY=change-me\n# RABBITMQ_PASSWORD=changeme\n",
        "compose.yaml": (
            "    DATABASE_URL: postgresql://postgres:${POSTGRES_PASSWORD:-postgres}@db/app\n"
            "    RABBITMQ_DEFAULT_PASS: ${RABBITMQ_PASSWORD-s3cret}\n"
        ),
        "ci.yml": "POSTGRES_PASSWORD: postgres\nURL: amqp://guest:guest@localhost:5672//\n",
        f"{SLUG}/settings.py": 'API_TOKEN = "secret"\n',
    }
    for rel, text in planted.items():
        (project / rel).write_text(text)
    with pytest.raises(CheckFailed) as caught:
        check_secrets(project)
    message = str(caught.value)
    assert message.startswith("7 placeholder secret(s)"), message
    for rel in planted:
        assert f"{rel}:" in message

    legitimate = {
        ".env.example": "SECRET_KEY=\n# POSTGRES_PASSWORD=\n",
        "compose.yaml": (
            "    SECRET_KEY: ${SECRET_KEY:?set SECRET_KEY in .env}\n"
            "    DATABASE_URL: postgresql://postgres:${POSTGRES_PASSWORD:?set it}@db/app\n"
        ),
        "ci.yml": "TEST_DATABASE_URL: postgresql://postgres@localhost/test\nsecretName: app-tls\n",
        "deploy.md": 'export SECRET_KEY="$(openssl rand -hex 32)"\n# amqp://<user>:<password>@<host>//\n',
        f"{SLUG}/config.py": 'DEVELOPMENT_SECRET_KEY = "dev-only-not-secret"\n',
        "tests/test_tasks.py": 'BROKER = "amqp://guest:guest@rabbit.example//"\n',
    }
    for rel, text in legitimate.items():
        (project / rel).write_text(text)
    (project / SLUG / "settings.py").unlink()
    check_secrets(project)
