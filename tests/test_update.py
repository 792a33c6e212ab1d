"""``flaskscale update`` and plain ``copier update`` across real template versions.

The versions are built from this repository's own tree in a temporary git repository:
v0.1.0 is the tree as it is; v0.2.0 renames a question (``description`` -> ``summary``),
moves a generated file (``tests/test_health.py`` -> ``tests/test_probes.py``), changes a
``.gitignore`` line and adds a README section, with migrations for the rename and the move;
v0.3.0 only adds another README line. The canonical URL is redirected to that repository
(``FLASKSCALE_TEMPLATE_MIRROR``), or, for the installed wheel, to the bundle inside it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import REPO, run, run_project_tests
from typer.testing import CliRunner

from flaskscale_gen import template_source, update
from flaskscale_gen.cli import app
from flaskscale_gen.template_source import CANONICAL_URL, MIRROR_ENV, redirect_env

runner = CliRunner()
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}
MIGRATE = '["{{ _copier_python }}", "{{ _copier_conf.src_path }}/migrations/flaskscale_migrate.py"'


@dataclass
class Versions:
    repo: Path
    migration_log: Path


def git(cwd: Path, *args: str) -> str:
    return run(["git", *args], cwd=cwd, env=GIT_IDENTITY).stdout


def edit(path: Path, old: str, new: str) -> None:
    """Replace the first ``old`` in ``path``."""
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}: the test's template versions need updating"
    path.write_text(text.replace(old, new, 1))


def release(repo: Path, version: str) -> None:
    edit(repo / "pyproject.toml", 'version = "', f'version = "{version}"  # was "')
    text = (repo / "pyproject.toml").read_text()
    (repo / "pyproject.toml").write_text(re.sub(r'  # was "[^"\n]*"', "", text))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"Release {version}")
    git(repo, "tag", f"v{version}")


@pytest.fixture(scope="session")
def versions(tmp_path_factory) -> Versions:
    """A template repository with the tags v0.1.0, v0.2.0 and v0.3.0."""
    repo = tmp_path_factory.mktemp("template-history") / "flaskscale"
    log = repo.parent / "migrations.log"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".*_cache", "*.egg-info")
    repo.mkdir()
    for name in ("copier.yml", "pyproject.toml", "README.md", "hatch_build.py"):
        shutil.copy2(REPO / name, repo / name)
    for name in ("template", "migrations", "src"):
        shutil.copytree(REPO / name, repo / name, ignore=ignore)
    git(repo, "init", "-q", "--initial-branch=main")
    release(repo, "0.1.0")

    template = repo / "template"
    edit(repo / "copier.yml", "\ndescription:\n", "\nsummary:\n")
    for path in template.rglob("*.jinja"):
        text = path.read_text()
        path.write_text(re.sub(r"(\{\{-?\s*)description\b", r"\1summary", text))
    shutil.move(template / "tests/test_health.py.jinja", template / "tests/test_probes.py.jinja")
    edit(template / ".gitignore.jinja", "\n.coverage\n", "\n.coverage*\n")
    readme = template / "README.md.jinja"
    readme.write_text(readme.read_text() + "\n## Changelog\n\n- Template v0.2.0.\n")
    edit(
        repo / "copier.yml",
        "_migrations: []\n",
        "_migrations:\n"
        "  - version: v0.2.0\n"
        "    when: \"{{ _stage == 'before' }}\"\n"
        f'    command: {MIGRATE}, "rename-answer", "description", "summary"]\n'
        "  - version: v0.2.0\n"
        f'    command: {MIGRATE}, "move-file", "tests/test_health.py", "tests/test_probes.py"]\n'
        "  - version: v0.2.0\n"
        f'    command: "echo {{{{ _version_from }}}}-{{{{ _version_to }}}} >> {log}"\n',
    )
    release(repo, "0.2.0")

    readme.write_text(readme.read_text() + "- Template v0.3.0.\n")
    release(repo, "0.3.0")
    return Versions(repo, log)


@pytest.fixture(autouse=True)
def isolated(tmp_path_factory, monkeypatch):
    """Copier's mirror cache and git identity of our own; no redirect left over."""
    monkeypatch.setenv("COPIER_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "copier-cache"))
    for key, value in GIT_IDENTITY.items():
        monkeypatch.setenv(key, value)


def as_installed(monkeypatch, versions: Versions, version: str) -> None:
    """Behave like flaskscale ``version``, with the canonical URL redirected to ``versions``."""
    monkeypatch.setenv(MIRROR_ENV, str(versions.repo))
    monkeypatch.setattr(template_source, "installed_version", lambda: version)
    monkeypatch.setattr(update, "installed_version", lambda: version)


def flaskscale(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def generate(monkeypatch, versions, dest: Path, version: str = "0.1.0", *data: str) -> Path:
    as_installed(monkeypatch, versions, version)
    options = [opt for pair in data for opt in ("--data", pair)]
    # The minimal preset keeps the projects' own test runs short.
    result = flaskscale("new", str(dest), "--defaults", "--preset", "minimal", *options)
    assert result.exit_code == 0, result.output
    return dest


def answers_of(project: Path) -> dict:
    return yaml.safe_load((project / ".copier-answers.yml").read_text())


def commit_all(project: Path, message: str = "My edits") -> None:
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", message)


def state(project: Path) -> tuple[str, str, str]:
    """HEAD, git status, and a hash of every file in the work tree (tracked or not)."""
    index = project.parent / f".{project.name}.index"
    env = {**GIT_IDENTITY, "GIT_INDEX_FILE": str(index)}
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True
    ).stdout
    status = git(project, "status", "--porcelain", "--untracked-files=all")
    run(["git", "add", "-A", "--force"], cwd=project, env=env)
    tree = run(["git", "write-tree"], cwd=project, env=env).stdout
    index.unlink()
    return head, status, tree


def test_new_records_the_canonical_source_and_the_release_tag(monkeypatch, versions, tmp_path):
    project = generate(monkeypatch, versions, tmp_path / "demo")
    answers = answers_of(project)
    assert answers["_src_path"] == CANONICAL_URL
    assert answers["_commit"] == "v0.1.0"


def test_update_keeps_edits_brings_changes_and_migrates_once(monkeypatch, versions, tmp_path):
    project = generate(
        monkeypatch, versions, tmp_path / "sheep", "0.1.0", "description=Counts the sheep"
    )
    slug = answers_of(project)["project_slug"]
    edit(project / "README.md", "\n", "\nOur team's notes live in docs/.\n")
    logs = project / slug / "logs.py"
    logs.write_text(logs.read_text() + "\n# Local: keep one line per record for our collector.\n")
    health_test = project / "tests/test_health.py"
    health_test.write_text(
        health_test.read_text()
        + "\n\ndef test_liveness_is_json(client):\n"
        + '    assert client.get("/healthz").is_json\n'
    )
    commit_all(project)
    log_before = versions.migration_log.read_text() if versions.migration_log.exists() else ""

    result = flaskscale("update", str(project), "--to", "0.2.0", "--defaults")
    assert result.exit_code == 0, result.output
    assert "from v0.1.0 to v0.2.0" in result.output
    assert "Conflicts" not in result.output
    readme = (project / "README.md").read_text()
    assert "Our team's notes live in docs/." in readme  # the edit survives
    assert "- Template v0.2.0." in readme  # v0.2.0's change arrives
    assert "Counts the sheep" in readme  # the renamed question kept its answer
    assert "# Local: keep one line per record" in logs.read_text()
    assert (project / ".gitignore").read_text().count(".coverage*") == 1
    # The moved file: gone from the old place, the user's test carried to the new one.
    assert not health_test.exists()
    probes = (project / "tests/test_probes.py").read_text()
    assert "def test_liveness_is_json(client):" in probes
    assert "def test_liveness(client):" in probes
    answers = answers_of(project)
    assert answers["summary"] == "Counts the sheep"
    assert "description" not in answers
    assert answers["_commit"] == "v0.2.0"
    assert answers["_src_path"] == CANONICAL_URL
    migrations = versions.migration_log.read_text()[len(log_before) :]
    assert migrations.splitlines() == ["v0.1.0-v0.2.0"]
    run_project_tests(project)

    commit_all(project, "Update to v0.2.0")
    result = flaskscale("update", str(project), "--to", "0.3.0", "--defaults")
    assert result.exit_code == 0, result.output
    assert "- Template v0.3.0." in (project / "README.md").read_text()
    # v0.2.0's migrations do not run again on the way to v0.3.0.
    assert versions.migration_log.read_text()[len(log_before) :] == migrations
    assert answers_of(project)["summary"] == "Counts the sheep"


def test_a_line_both_sides_changed_is_a_reported_inline_conflict(monkeypatch, versions, tmp_path):
    project = generate(monkeypatch, versions, tmp_path / "clash")
    edit(project / ".gitignore", "\n.coverage\n", "\n.coverage\ncoverage.xml\n")
    commit_all(project)
    mine = (project / ".gitignore").read_text().splitlines()

    result = flaskscale("update", str(project), "--to", "0.2.0", "--defaults")
    assert result.exit_code == 0, result.output
    assert "Conflicts in 1 files" in result.output
    assert "  .gitignore" in result.output
    assert "git add -A && git commit" in result.output
    merged = (project / ".gitignore").read_text().splitlines()
    assert "<<<<<<< before updating" in merged and ">>>>>>> after updating" in merged
    assert set(mine) <= set(merged)  # no line of the user's is lost
    assert ".coverage*" in merged  # and the template's new line is there to choose
    assert "UU .gitignore" in git(project, "status", "--porcelain")


def test_pretend_shows_the_update_and_changes_nothing(monkeypatch, versions, tmp_path):
    project = generate(monkeypatch, versions, tmp_path / "dry")
    before = state(project)
    result = flaskscale("update", str(project), "--to", "0.2.0", "--defaults", "--pretend")
    assert result.exit_code == 0, result.output
    assert "Would update" in result.output
    assert "M README.md" in result.output
    assert "A tests/test_probes.py" in result.output
    assert "Nothing was changed" in result.output
    assert state(project) == before


def test_data_turns_celery_on_in_an_existing_project(monkeypatch, versions, tmp_path):
    celery_files = [p for p in (versions.repo / "template").rglob("*") if "if celery" in str(p)]
    if not celery_files:
        pytest.skip("the template has no Celery support yet")
    project = generate(monkeypatch, versions, tmp_path / "jobs", "0.3.0", "celery=false")
    assert "celery" not in (project / "pyproject.toml").read_text().lower()

    result = flaskscale("update", str(project), "--defaults", "--data", "celery=true")
    assert result.exit_code == 0, result.output
    assert "Conflicts" not in result.output
    assert answers_of(project)["celery"] is True
    pyproject = (project / "pyproject.toml").read_text().lower()
    assert re.search(r'"celery\[?', pyproject)  # the dependency
    slug = answers_of(project)["project_slug"]
    code = "\n".join(p.read_text() for p in (project / slug).rglob("*.py"))
    assert "Celery" in code  # the wiring
    assert any("celery" in p.name or "tasks" in p.name for p in (project / slug).rglob("*.py"))
    run_project_tests(project)


@pytest.fixture(scope="session")
def v2_project(tmp_path_factory, versions) -> Path:
    """A committed project at v0.2.0, generated once and copied by each refusal test."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COPIER_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "copier-cache"))
        for key, value in GIT_IDENTITY.items():
            mp.setenv(key, value)
        return generate(mp, versions, tmp_path_factory.mktemp("v2") / "v2app", "0.2.0")


def _dirty(project: Path) -> None:
    (project / "README.md").write_text("work in progress\n")


def _not_a_project(project: Path) -> None:
    git(project, "rm", "-q", "-r", ".")
    (project / "notes.txt").write_text("just a repo\n")
    commit_all(project, "Not a project any more")


def _no_answers(project: Path) -> None:
    git(project, "rm", "-q", ".copier-answers.yml")
    commit_all(project, "Drop the answers")


def _broken_answers(project: Path) -> None:
    (project / ".copier-answers.yml").write_text("_src_path: [unclosed\n")
    commit_all(project, "Break the answers")


def _no_commit_recorded(project: Path) -> None:
    (project / ".copier-answers.yml").write_text("project_name: x\n")
    commit_all(project, "Lose the version")


@pytest.mark.parametrize(
    ("damage", "args", "message"),
    [
        (_dirty, (), "has uncommitted changes"),
        (_not_a_project, (), "is not a generated project"),
        (_no_answers, (), "is not a generated project"),
        (_broken_answers, (), "is broken (not valid YAML)"),
        (_no_commit_recorded, (), "is broken (no _src_path)"),
        (None, ("--to", "0.1.0"), "downgrades are not supported"),
        (None, ("--to", "9.9.9"), "unknown version 9.9.9"),
        (None, ("--data", "nope=1"), "unknown question 'nope'"),
    ],
)
def test_refusals_exit_2_and_touch_nothing(
    monkeypatch, versions, v2_project, tmp_path, damage, args, message
):
    as_installed(monkeypatch, versions, "0.3.0")
    project = tmp_path / "project"
    shutil.copytree(v2_project, project, symlinks=True)
    if damage:
        damage(project)
    before = state(project)
    result = flaskscale("update", str(project), "--defaults", *args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert state(project) == before


def test_refusal_outside_a_git_repository(monkeypatch, versions, v2_project, tmp_path):
    as_installed(monkeypatch, versions, "0.3.0")
    project = tmp_path / "nogit"
    shutil.copytree(v2_project, project, ignore=shutil.ignore_patterns(".git"))
    files = sorted(p.name for p in project.rglob("*"))
    result = flaskscale("update", str(project), "--defaults")
    assert result.exit_code == 2
    assert "is not a git repository" in result.output
    assert sorted(p.name for p in project.rglob("*")) == files


def test_plain_copier_update_from_the_project_folder(monkeypatch, versions, tmp_path):
    project = generate(monkeypatch, versions, tmp_path / "plain")
    # As if the canonical URL were reachable: git sends it to the template repository.
    env = {**redirect_env(str(versions.repo)), "COPIER_CACHE_DIR": str(tmp_path / "cache")}
    env.pop(MIRROR_ENV, None)
    copier = Path(sys.executable).with_name("copier")
    command = [str(copier)] if copier.exists() else [sys.executable, "-m", "copier"]
    run([*command, "update", "--trust", "--defaults"], cwd=project, env=env)
    assert answers_of(project)["_commit"] == "v0.3.0"  # the newest tag
    assert "- Template v0.3.0." in (project / "README.md").read_text()
    assert (project / "tests/test_probes.py").is_file()


# --- the built wheel, installed in a fresh virtualenv, offline --------------------------------


@pytest.fixture(scope="session")
def wheel_venv(tmp_path_factory, versions) -> Path:
    """The template repository at v0.3.0 built as sdist, then wheel from the sdist, installed."""
    dist = tmp_path_factory.mktemp("dist")
    build = [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist)]
    run([*build, str(versions.repo)], cwd=dist)
    (wheel,) = dist.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "flaskscale_gen/_template.bundle" in names
    assert "flaskscale_gen/_template/copier.yml" in names
    venv = tmp_path_factory.mktemp("venv") / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], cwd=dist)
    pip = [str(venv / "bin/python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index"]
    run([*pip, str(wheel)], cwd=dist)
    return venv


def offline_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k != MIRROR_ENV and not k.startswith(("GIT_CONFIG", "PYTHONPATH"))
    }
    # git may use local files only: any attempt to reach github.com fails.
    return {**env, "GIT_ALLOW_PROTOCOL": "file", "COPIER_CACHE_DIR": str(tmp_path / "cache")}


def test_wheel_update_in_a_fresh_virtualenv_offline(monkeypatch, versions, wheel_venv, tmp_path):
    flaskscale_bin = str(wheel_venv / "bin/flaskscale")
    env = offline_env(tmp_path)
    version = run([flaskscale_bin, "--version"], cwd=tmp_path, env=env).stdout
    assert version.strip() == "flaskscale 0.3.0"

    # A project made by flaskscale 0.1.0 (earlier), edited by its owner.
    project = generate(monkeypatch, versions, tmp_path / "old")
    edit(project / "README.md", "\n", "\nOur notes.\n")
    commit_all(project)
    result = subprocess.run(
        [flaskscale_bin, "update", "--defaults"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "from v0.1.0 to v0.3.0" in result.stdout
    assert answers_of(project)["_commit"] == "v0.3.0"
    assert answers_of(project)["_src_path"] == CANONICAL_URL
    readme = (project / "README.md").read_text()
    assert "Our notes." in readme and "- Template v0.3.0." in readme

    # The installed wheel's own `new` records the canonical source and its tag too.
    run([flaskscale_bin, "new", str(tmp_path / "fresh"), "--defaults"], cwd=tmp_path, env=env)
    answers = answers_of(tmp_path / "fresh")
    assert (answers["_src_path"], answers["_commit"]) == (CANONICAL_URL, "v0.3.0")


def test_wheel_without_git_history_builds_and_records_its_release(versions, tmp_path):
    source = tmp_path / "export"
    shutil.copytree(versions.repo, source, ignore=shutil.ignore_patterns(".git"))
    run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", "d", "."], source)
    (wheel,) = (source / "d").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "flaskscale_gen/_template.bundle" not in names
    assert "flaskscale_gen/_template/copier.yml" in names


def test_migration_script_is_harmless_to_run_again(tmp_path, monkeypatch):
    answers = tmp_path / ".copier-answers.yml"
    answers.write_text("_commit: v0.1.0\n_src_path: x\ndescription: Hi\n")
    script = REPO / "migrations/flaskscale_migrate.py"
    for _ in range(2):
        run([sys.executable, str(script), "rename-answer", "description", "summary"], tmp_path)
    assert yaml.safe_load(answers.read_text()) == {
        "_commit": "v0.1.0",
        "_src_path": "x",
        "summary": "Hi",
    }
