"""``flaskscale_gen.history`` on small repositories: version names read in one git run, and the
files of one version written out for ``flaskscale new`` without touching the repository."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from support.commands import run

from flaskscale_gen import history

IDENTITY = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def git(repo: Path, *args: str) -> str:
    return run(["git", *args], cwd=repo, env=IDENTITY).stdout


def commit(repo: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "--initial-branch=main")
    return repo


def test_versions_are_named_from_every_declaring_commit_read_at_once(repo):
    # Before pyproject.toml exists, and while it has no version line: no name.
    commit(repo, {"README.md": "x\n"}, "Start")
    commit(repo, {"pyproject.toml": '[project]\nname = "x"\n'}, "No version yet")
    first = commit(repo, {"pyproject.toml": '[project]\nversion = "0.1.0"\n'}, "Release")
    after = commit(repo, {"template/a.txt": "a\n"}, "A change")
    second = commit(repo, {"pyproject.toml": '[project]\nversion = "0.2.0"\n'}, "Release")
    named = history.versions(repo)
    assert [(v.name, v.commit) for v in named] == [
        ("v0.1.0", first),
        ("v0.1.0.post1", after),
        ("v0.2.0", second),
    ]
    commits = git(repo, "rev-list", "--reverse", "HEAD").split()
    assert history.declared_versions(repo, commits) == {
        commits[0]: None,
        commits[1]: None,
        first: "0.1.0",
        after: "0.1.0",
        second: "0.2.0",
    }


def test_a_version_declared_again_is_refused(repo):
    commit(repo, {"pyproject.toml": 'version = "0.1.0"\n'}, "Release")
    commit(repo, {"pyproject.toml": 'version = "0.2.0"\n'}, "Release")
    commit(repo, {"pyproject.toml": 'version = "0.1.0"\n'}, "Back down")
    with pytest.raises(history.HistoryError, match="declared again"):
        history.versions(repo)


def test_export_writes_one_commits_files_as_a_checkout_would(repo, tmp_path):
    old = commit(repo, {"copier.yml": "a: 1\n", "template/x.txt.jinja": "old\n"}, "One")
    script = repo / "template/run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    commit(repo, {"template/x.txt.jinja": "new\n", "src/other.py": ""}, "Two")
    (repo / "template/x.txt.jinja").write_text("not committed\n")
    index = (repo / ".git/index").read_bytes()
    status = git(repo, "status", "--porcelain")

    head = git(repo, "rev-parse", "HEAD").strip()
    mask = os.umask(0o077)
    try:
        history.export(repo, head, ("copier.yml", "template", "extensions"), tmp_path / "now")
    finally:
        os.umask(mask)
    history.export(repo, old, ("copier.yml", "template"), tmp_path / "then")

    now = tmp_path / "now"
    files = sorted(str(p.relative_to(now)) for p in now.rglob("*") if p.is_file())
    assert files == ["copier.yml", "template/run.sh", "template/x.txt.jinja"]  # no src/
    assert (now / "template/x.txt.jinja").read_text() == "new\n"  # the commit, not the tree
    assert stat.S_IMODE((now / "template/run.sh").stat().st_mode) == 0o700  # exec bit, umask
    assert stat.S_IMODE((now / "copier.yml").stat().st_mode) == 0o600
    assert (tmp_path / "then/template/x.txt.jinja").read_text() == "old\n"
    assert not (tmp_path / "then/template/run.sh").exists()
    # The repository's own index and work tree are as they were.
    assert (repo / ".git/index").read_bytes() == index
    assert git(repo, "status", "--porcelain") == status


def test_export_of_a_commit_without_the_template_says_so(repo, tmp_path):
    head = commit(repo, {"README.md": "x\n"}, "Nothing of the template")
    with pytest.raises(history.HistoryError, match=re.escape("has none of copier.yml, template")):
        history.export(repo, head, ("copier.yml", "template"), tmp_path / "out")
