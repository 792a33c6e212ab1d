"""Template versions named from the commit history, whether or not the clone has tags.

Every commit on the first-parent chain of the template's branch has a version name that any
clone of that history computes alike: ``v<version>`` for the commit that set ``version`` in
``pyproject.toml``, ``v<version>.post<N>`` for the N-th commit after it. A release tag is the
same name on the same commit. Copier resolves versions through git tags, so flaskscale shows it
a bare clone carrying these names as tags (``tagged_repository``); the wheel ships one as a git
bundle. Standard library only: ``hatch_build.py`` uses this module at build time.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

VERSION_FILE = "pyproject.toml"
_VERSION_LINE = re.compile(r'^version\s*=\s*"([^"]+)"', re.MULTILINE)
_NAME = re.compile(r"^v?(?P<base>\d+(?:\.\d+)*)(?:\.post(?P<distance>\d+))?$")


class HistoryError(Exception):
    """The history cannot name its versions (shallow clone, versions going down...)."""


@dataclass(frozen=True)
class TemplateVersion:
    name: str  # v0.2.0, v0.2.0.post3
    commit: str  # the full commit id
    base: str  # 0.2.0
    distance: int  # commits since the one that set ``base``

    @property
    def release(self) -> bool:
        return self.distance == 0


def version_name(base: str, distance: int) -> str:
    return f"v{base}" if distance == 0 else f"v{base}.post{distance}"


def parse_name(name: str) -> tuple[tuple[int, ...], int] | None:
    """``v0.2.0.post3`` (or ``0.2.0.post3``) -> ((0, 2, 0), 3), for ordering; else None."""
    match = _NAME.match(name.strip())
    if not match:
        return None
    return tuple(int(part) for part in match["base"].split(".")), int(match["distance"] or 0)


def git_env() -> dict[str, str]:
    """The environment without variables that point git at some other repository."""
    redirecting = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE")
    return {k: v for k, v in os.environ.items() if k not in redirecting}


def git_bytes(
    repo: Path | str, *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> bytes:
    proc = subprocess.run(
        ["git", *args],
        cwd=repo,
        env={**git_env(), **(env or {})},
        input=stdin,
        capture_output=True,
        check=False,
    )
    if proc.returncode:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()
        raise HistoryError(f"git {args[0]} failed in {repo}: {detail[-1] if detail else '?'}")
    return proc.stdout


def git(repo: Path | str, *args: str, stdin: str | None = None) -> str:
    return git_bytes(repo, *args, stdin=None if stdin is None else stdin.encode()).decode()


def declared_versions(repo: Path, commits: list[str]) -> dict[str, str | None]:
    """The version in ``pyproject.toml`` at each of ``commits`` (None before there was one).

    One ``git cat-file --batch`` reads them all: a git process per commit was most of the
    time ``flaskscale new`` spent before Copier started.
    """
    request = "".join(f"{commit}:{VERSION_FILE}\n" for commit in commits).encode()
    out = git_bytes(repo, "cat-file", "--batch", stdin=request)
    declared: dict[str, str | None] = {}
    pos = 0
    for commit in commits:
        # "<object> <type> <size>\n<content>\n", or "<request> missing\n" (no such file).
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if header[-1] == b"missing":
            declared[commit] = None
            continue
        size = int(header[2])
        content = out[pos : pos + size].decode(errors="replace") if header[1] == b"blob" else ""
        pos += size + 1
        match = _VERSION_LINE.search(content)
        declared[commit] = match[1] if match else None
    return declared


def versions(repo: Path, rev: str = "HEAD") -> list[TemplateVersion]:
    """Every commit on ``rev``'s first-parent chain, oldest first, with its version name."""
    if git(repo, "rev-parse", "--is-shallow-repository").strip() == "true":
        raise HistoryError(
            f"{repo} is a shallow clone, so its versions cannot be named: "
            "fetch the whole history first (git fetch --unshallow)"
        )
    commits = git(repo, "rev-list", "--first-parent", "--reverse", rev).split()
    touched = set(git(repo, "rev-list", "--first-parent", rev, "--", VERSION_FILE).split())
    declared_at = declared_versions(
        repo, [c for i, c in enumerate(commits) if i == 0 or c in touched]
    )
    named: list[TemplateVersion] = []
    seen: set[str] = set()
    base: str | None = None
    start = 0
    for index, commit in enumerate(commits):
        if commit in declared_at:
            declared = declared_at[commit]
            if declared != base:
                if declared in seen:
                    raise HistoryError(
                        f"version {declared} is declared again at {commit[:12]}: "
                        f"the version in {VERSION_FILE} may only go up"
                    )
                seen.add(declared)
                base, start = declared, index
        if base is None:
            continue  # before the project declared a version: nothing to name
        distance = index - start
        named.append(TemplateVersion(version_name(base, distance), commit, base, distance))
    if not named:
        raise HistoryError(f"{repo} has no commit with a version in {VERSION_FILE}")
    return named


def export(repo: Path | str, commit: str, paths: tuple[str, ...], dest: Path) -> None:
    """The files under ``paths`` as ``commit`` has them, written into ``dest`` by git itself.

    ``git restore`` into ``dest`` with an index of its own: modes, symlinks and line endings
    as a checkout writes them, and the repository's own index and work tree left alone.
    """
    present = git(repo, "ls-tree", "--name-only", commit, "--", *paths).splitlines()
    if not present:
        raise HistoryError(f"{commit[:12]} in {repo} has none of {', '.join(paths)}")
    dest.mkdir(parents=True, exist_ok=True)
    git_bytes(
        repo, f"--work-tree={dest}", "restore", f"--source={commit}", "--worktree", "--",
        *present, env={"GIT_INDEX_FILE": str(dest.parent / f".{dest.name}.index")},
    )  # fmt: skip


def is_dirty(repo: Path, *paths: str) -> bool:
    """Uncommitted or untracked changes under ``paths`` (every path when none is given)."""
    return bool(git(repo, "status", "--porcelain", "--", *paths).strip())


def cloned_versions(source: str | Path, dest: Path) -> list[TemplateVersion]:
    """A bare clone of ``source`` (a checkout, a repository URL or a bundle) at ``dest``,
    without its tags, and the versions of its history."""
    git(dest.parent, "clone", "--bare", "--quiet", "--no-tags", str(source), str(dest))
    return versions(dest)


def tagged_repository(source: str | Path, dest: Path) -> list[TemplateVersion]:
    """A bare clone of ``source`` at ``dest`` whose tags are exactly the version names.

    ``source`` is a checkout, a repository URL or a bundle; its own tags are replaced, so a
    release tag and the derived name can never disagree.
    """
    named = cloned_versions(source, dest)
    commands = "".join(f"create refs/tags/{v.name} {v.commit}\n" for v in named)
    git(dest, "update-ref", "--stdin", stdin=commands)
    return named


def tag_names(repo: Path | str) -> list[str]:
    """The version tags of a repository or bundle, oldest first."""
    refs = git(Path.cwd(), "ls-remote", "--tags", "--refs", str(repo)).splitlines()
    names = [line.split("refs/tags/", 1)[1] for line in refs if "refs/tags/" in line]
    return sorted((n for n in names if parse_name(n)), key=parse_name)


def write_bundle(repo: Path, bundle: Path) -> None:
    """A git bundle of ``repo``'s branches and version tags: the history the wheel carries."""
    git(repo, "bundle", "create", str(bundle), "--all")


def changelog(text: str) -> dict[str, str]:
    """``## 0.2.0`` sections of a CHANGELOG -> {"v0.2.0": "its first line"}."""
    entries: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        heading = re.match(r"^##\s+v?(\d+(?:\.\d+)*)\b", line)
        if heading:
            current = f"v{heading[1]}"
        elif current and line.strip() and current not in entries:
            entries[current] = line.strip().removeprefix("- ")
    return entries


def main(argv: list[str] | None = None) -> int:
    """``python -m flaskscale_gen.history tag``: tag this checkout's versions, for publishing.

    Plain ``copier update`` reads the versions as tags of the canonical repository; push them
    there with ``git push --tags`` after this.
    """
    import sys

    args = sys.argv[1:] if argv is None else argv
    if args != ["tag"]:
        print("usage: python -m flaskscale_gen.history tag", file=sys.stderr)
        return 2
    repo = Path.cwd()
    try:
        existing = set(git(repo, "tag", "--list").split())
        for version in versions(repo):
            if version.name not in existing:
                git(repo, "tag", version.name, version.commit)
                print(f"{version.name} {version.commit[:12]}")
    except HistoryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
