"""``flaskscale update`` and plain ``copier update`` across real template versions.

The versions are built from this repository's own tree in a temporary git repository:
v0.1.0 is the tree as it is; v0.2.0 renames a question (``description`` -> ``summary``),
moves a generated file (``tests/test_health.py`` -> ``tests/test_probes.py``), changes a
``.gitignore`` line and adds a README section, with migrations for the rename and the move;
v0.3.0 only adds another README line. There are no tags anywhere: the versions are named from
the history (``flaskscale_gen.history``). The canonical URL is redirected to that repository
(``FLASKSCALE_TEMPLATE_MIRROR``), or, for an installed wheel, to the bundle inside it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from support.commands import run, run_project_tests
from support.rendering import REPO
from support.wheels import build, fresh_venv, offline_pip
from typer.testing import CliRunner

from flaskscale_gen import history, template_source
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
    """Commit with ``version`` in pyproject.toml: that commit is named v<version>. No tag."""
    text = (repo / "pyproject.toml").read_text()
    (repo / "pyproject.toml").write_text(
        re.sub(r'^version = "[^"]*"', f'version = "{version}"', text, count=1, flags=re.M)
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"Release {version}")


def first_release(repo: Path) -> Path:
    """A new git repository at ``repo`` holding this tree, committed as v0.1.0."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".*_cache", "*.egg-info")
    repo.mkdir()
    for name in ("copier.yml", "pyproject.toml", "README.md", "CHANGELOG.md", "hatch_build.py"):
        shutil.copy2(REPO / name, repo / name)
    for name in ("template", "migrations", "extensions", "src"):
        shutil.copytree(REPO / name, repo / name, ignore=ignore)
    git(repo, "init", "-q", "--initial-branch=main")
    release(repo, "0.1.0")
    return repo


@pytest.fixture(scope="session")
def versions(tmp_path_factory) -> Versions:
    """A template repository whose commits are named v0.1.0, v0.2.0 and v0.3.0 (no tags)."""
    repo = first_release(tmp_path_factory.mktemp("template-history") / "flaskscale")
    log = repo.parent / "migrations.log"

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
        "_migrations:\n",
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
    monkeypatch.setattr(template_source, "installed_template_version", lambda: f"v{version}")


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


def test_new_records_the_canonical_source_and_the_version_name(monkeypatch, versions, tmp_path):
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
    """As if the canonical URL were reachable, with the version tags published there."""
    project = generate(monkeypatch, versions, tmp_path / "plain")
    published = tmp_path / "published.git"
    history.tagged_repository(versions.repo, published)
    env = {**redirect_env(str(published)), "COPIER_CACHE_DIR": str(tmp_path / "cache")}
    env.pop(MIRROR_ENV, None)
    copier = Path(sys.executable).with_name("copier")
    command = [str(copier)] if copier.exists() else [sys.executable, "-m", "copier"]
    run([*command, "update", "--trust", "--defaults"], cwd=project, env=env)
    assert answers_of(project)["_commit"] == "v0.3.0"  # the newest version
    assert "- Template v0.3.0." in (project / "README.md").read_text()
    assert (project / "tests/test_probes.py").is_file()


NEW_DEPENDENCY = '    "humanize>=4.9,<5",\n'


@pytest.fixture(scope="session")
def dependency_versions(tmp_path_factory) -> Versions:
    """v0.1.0 is this tree; v0.2.0 adds a dependency to every project's pyproject.toml."""
    repo = first_release(tmp_path_factory.mktemp("dependency-history") / "flaskscale")
    pyproject = repo / "template/pyproject.toml.jinja"
    edit(pyproject, '    "flask>=3.1,<4",\n', '    "flask>=3.1,<4",\n' + NEW_DEPENDENCY)
    release(repo, "0.2.0")
    return Versions(repo, repo.parent / "unused.log")


def locked(project: Path) -> dict[str, str]:
    """{package: version} as the project's uv.lock pins them."""
    lock = tomllib.loads((project / "uv.lock").read_text())
    return {package["name"]: package["version"] for package in lock["package"]}


@pytest.mark.parametrize("updater", ["flaskscale", "copier"])
def test_an_update_keeps_the_owners_uv_lock_and_uv_lock_then_adds_the_new_dependency(
    monkeypatch, dependency_versions, tmp_path, updater
):
    project = generate(monkeypatch, dependency_versions, tmp_path / "locked")
    assert "click" in locked(project), "generation made no uv.lock: is uv on PATH?"
    # The owner's own choices in the lock: an older click than the newest, and a dependency of
    # their own (uv add writes both pyproject.toml and uv.lock).
    run(["uv", "lock", "--quiet", "--upgrade-package", "click==8.1.8"], project)
    run(["uv", "add", "--quiet", "--no-sync", "tabulate>=0.9"], project)
    commit_all(project)
    owners_lock = (project / "uv.lock").read_bytes()

    if updater == "flaskscale":
        result = flaskscale("update", str(project), "--to", "0.2.0", "--defaults")
        assert result.exit_code == 0, result.output
        assert "run 'make lock' to pin its dependencies in uv.lock" in result.output
    else:
        published = tmp_path / "published.git"
        history.tagged_repository(dependency_versions.repo, published)
        env = {**redirect_env(str(published)), "COPIER_CACHE_DIR": str(tmp_path / "cache")}
        env.pop(MIRROR_ENV, None)
        run([sys.executable, "-m", "copier", "update", "--trust", "--defaults"], project, env)
    assert answers_of(project)["_commit"] == "v0.2.0"
    pyproject = (project / "pyproject.toml").read_text()
    assert NEW_DEPENDENCY in pyproject and '"tabulate>=0.9"' in pyproject
    # The update left the lock as the owner had it, and says so: it no longer matches.
    assert (project / "uv.lock").read_bytes() == owners_lock
    assert subprocess.run(["uv", "lock", "--check"], cwd=project, capture_output=True).returncode

    run(["uv", "lock", "--quiet"], project)
    pins = locked(project)
    assert "humanize" in pins  # the template's new dependency
    assert "tabulate" in pins and pins["click"] == "8.1.8"  # the owner's choices, kept


def test_a_checkout_renders_its_last_commit_and_warns_of_uncommitted_changes(
    monkeypatch, versions, tmp_path
):
    checkout = tmp_path / "checkout"
    git(tmp_path, "clone", "-q", str(versions.repo), str(checkout))
    readme = checkout / "template/README.md.jinja"
    readme.write_text(readme.read_text() + "- Not committed yet.\n")
    (checkout / "myapp").mkdir()  # an untracked project inside the checkout: no harm
    git(checkout / "myapp", "init", "-q")
    monkeypatch.setattr(template_source, "template_root", lambda: checkout)
    result = runner.invoke(app, ["new", str(tmp_path / "demo"), "-y", "--preset", "minimal"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "uncommitted template changes" in warnings[0], result.stderr
    assert "Not committed yet" not in (tmp_path / "demo/README.md").read_text()
    assert answers_of(tmp_path / "demo")["_commit"] == "v0.3.0"
    assert answers_of(tmp_path / "demo")["_src_path"] == CANONICAL_URL


def test_new_refuses_a_version_its_mirror_does_not_have(monkeypatch, versions, tmp_path):
    as_installed(monkeypatch, versions, "0.9.0")
    result = runner.invoke(app, ["new", str(tmp_path / "demo"), "-y", "--preset", "minimal"])
    assert result.exit_code == 2
    assert f"template v0.9.0 is not in {versions.repo}" in result.output
    assert not (tmp_path / "demo").exists()


def test_the_history_names_every_commit_and_refuses_a_shallow_clone(versions, tmp_path):
    named = history.versions(versions.repo)
    assert [v.name for v in named] == ["v0.1.0", "v0.2.0", "v0.3.0"]
    shallow = tmp_path / "shallow"
    run(["git", "clone", "-q", "--depth", "1", f"file://{versions.repo}", str(shallow)], tmp_path)
    with pytest.raises(history.HistoryError, match="shallow clone"):
        history.versions(shallow)


# --- built wheels, installed in fresh virtualenvs, updating offline ---------------------------


def offline_env(tmp_path: Path, venv: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k != MIRROR_ENV and not k.startswith(("GIT_CONFIG", "PYTHONPATH", "VIRTUAL_ENV"))
    }
    # git may use local files only: any attempt to reach github.com fails.
    return {
        **env,
        "PATH": f"{venv / 'bin'}{os.pathsep}{env['PATH']}",
        "GIT_ALLOW_PROTOCOL": "file",
        "COPIER_CACHE_DIR": str(tmp_path / "cache"),
    }


def cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed ``flaskscale``, with no terminal."""
    return subprocess.run(
        ["flaskscale", *args], cwd=cwd, env=env, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, check=False, timeout=300,
    )  # fmt: skip


@pytest.mark.xdist_group("wheels")
def test_a_wheel_of_a_later_commit_updates_offline_with_no_tags_and_no_source(
    versions, wheelhouse, tmp_path
):
    checkout = tmp_path / "checkout"
    git(tmp_path, "clone", "-q", str(versions.repo), str(checkout))
    built = [build(checkout, tmp_path / "build-1")]
    readme = checkout / "template/README.md.jinja"
    readme.write_text(readme.read_text() + "- Template after v0.3.0.\n")
    git(checkout, "commit", "-q", "-am", "A template change after v0.3.0")
    built.append(build(checkout, tmp_path / "build-2"))
    assert not run(["git", "tag"], checkout).stdout  # no tags anywhere
    kept = []
    for number, wheel in enumerate(built):
        folder = tmp_path / "wheels" / str(number)  # same file name: one folder each
        folder.mkdir(parents=True)
        kept.append(Path(shutil.copy2(wheel, folder)))
    first, later = kept
    for gone in (checkout, tmp_path / "build-1", tmp_path / "build-2"):
        shutil.rmtree(gone)

    venv = fresh_venv(tmp_path / "venv")
    run([*offline_pip(venv, wheelhouse), str(first)], tmp_path)
    env = offline_env(tmp_path, venv)
    assert cli(env, tmp_path, "--version").stdout.strip() == "flaskscale 0.3.0 (template v0.3.0)"
    made = cli(env, tmp_path, "new", "proj", "--defaults", "--preset", "minimal")
    assert made.returncode == 0, made.stdout + made.stderr
    project = tmp_path / "proj"
    assert answers_of(project)["_commit"] == "v0.3.0"
    edit(project / "README.md", "\n", "\nOur notes.\n")
    commit_all(project)

    run([*offline_pip(venv, wheelhouse), "--force-reinstall", "--no-deps", str(later)], tmp_path)
    listed = cli(env, tmp_path, "versions").stdout
    later_line = r"^v0\.3\.0\.post1 +development build, 1 commits after v0\.3\.0 \(installed\)$"
    assert re.search(later_line, listed, re.M), listed
    assert re.search(r"^v0\.2\.0 +\S", listed, re.M), listed
    updated = cli(env, project, "update", "--defaults")
    assert updated.returncode == 0, updated.stdout + updated.stderr
    assert "from v0.3.0 to v0.3.0.post1" in updated.stdout
    text = (project / "README.md").read_text()
    assert "Our notes." in text and "- Template after v0.3.0." in text
    assert answers_of(project)["_commit"] == "v0.3.0.post1"
    assert answers_of(project)["_src_path"] == CANONICAL_URL


@pytest.mark.xdist_group("wheels")
def test_the_readme_quick_start_from_the_checkout_then_an_update(versions, wheelhouse, tmp_path):
    """README's first command, literally, in a checkout (uvx: no virtualenv); then a template
    commit, and an update with the same uvx, which builds the checkout's new commit."""
    checkout = tmp_path / "flaskscale"
    git(tmp_path, "clone", "-q", str(versions.repo), str(checkout))
    readme = (checkout / "README.md").read_text()
    quick_start = re.search(r"```bash\n(.+?)\n", readme)[1]
    uvx = "uvx --from . flaskscale"
    assert quick_start.startswith(f"{uvx} new "), quick_start
    env = {
        **offline_env(tmp_path, tmp_path / "no-venv"),
        "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
        "UV_TOOL_DIR": str(tmp_path / "uv-tools"),
        "UV_NO_INDEX": "1",
        "UV_FIND_LINKS": str(wheelhouse),
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # uv's own uvx
    run(["bash", "-c", quick_start], checkout, env)
    project = (checkout / quick_start.split(" new ", 1)[1].split()[0]).resolve()
    # The same from inside the checkout: the new project is an untracked repository there.
    run(["bash", "-c", f"{uvx} new inside --defaults --preset minimal"], checkout, env)
    inside = checkout / "inside"

    template = checkout / "template/README.md.jinja"
    template.write_text(template.read_text() + "- Template after the quick start.\n")
    git(checkout, "commit", "-q", "-m", "A template change", "--", "template")
    for made in (project, inside):
        edit(made / "README.md", "\n", "\nOur notes.\n")
        commit_all(made)
        update = f"uvx --from {checkout} flaskscale update --defaults"
        run(["bash", "-c", update], made, env)
        text = (made / "README.md").read_text()
        assert "Our notes." in text and "- Template after the quick start." in text
        assert answers_of(made)["_commit"] == "v0.3.0.post1"


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


# --- the real move of v0.3.0: web/, realtime/ and the example modules --------------------

WEB_PACKAGE = "template/{{project_slug}}/{% if web_ui %}web{% endif %}/__init__.py.jinja"


@pytest.fixture(scope="session")
def restructured(tmp_path_factory) -> Path:
    """A template repository: the tree just before v0.3.0's moves (v0.2.0), then this one."""
    added = git(REPO, "log", "--diff-filter=A", "--format=%H", "--", WEB_PACKAGE).split()
    if not added:
        pytest.fail("this checkout's history has no commit that added the web package")
    repo = tmp_path_factory.mktemp("restructure") / "flaskscale"
    repo.mkdir()
    archive = subprocess.run(
        ["git", "archive", "--format=tar", f"{added[-1]}^"], cwd=REPO, capture_output=True
    )
    subprocess.run(["tar", "-x"], cwd=repo, input=archive.stdout, check=True)
    git(repo, "init", "-q", "--initial-branch=main")
    release(repo, "0.2.0")
    for name in ("copier.yml", "pyproject.toml", "README.md", "CHANGELOG.md", "hatch_build.py"):
        shutil.copy2(REPO / name, repo / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".*_cache", "*.egg-info")
    for name in ("template", "migrations", "extensions", "src"):
        shutil.rmtree(repo / name, ignore_errors=True)
        shutil.copytree(REPO / name, repo / name, ignore=ignore)
    release(repo, "0.3.0")
    return repo


def test_the_v0_3_0_moves_carry_the_owners_edits_to_the_new_places(
    monkeypatch, restructured, tmp_path
):
    monkeypatch.setenv(MIRROR_ENV, str(restructured))
    monkeypatch.setattr(template_source, "installed_template_version", lambda: "v0.2.0")
    result = flaskscale("new", str(tmp_path / "shop"), "--defaults", "--preset", "full")
    assert result.exit_code == 0, result.output
    project = tmp_path / "shop"
    slug = answers_of(project)["project_slug"]
    edit(project / slug / "auth.py", "\ndef is_local_path", "\n# Ours: audited.\ndef is_local_path")
    edit(project / slug / "templates/base.html", "<body>", '<body class="ours">')
    commit_all(project)

    result = flaskscale("update", str(project), "--to", "0.3.0", "--defaults")
    assert result.exit_code == 0, result.output
    assert not (project / slug / "auth.py").exists()
    assert "# Ours: audited." in (project / slug / "web/auth.py").read_text()
    assert '<body class="ours">' in (project / slug / "web/templates/base.html").read_text()
    assert answers_of(project)["_commit"] == "v0.3.0"
    run_project_tests(project)
