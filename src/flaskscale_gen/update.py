"""Updating a generated project to another template version, without losing the owner's edits.

Copier does the three-way merge: it renders the project's recorded version and the target
version with the project's answers, and replays the project's own changes on top. Everything
that could make it fail halfway is checked first, so a refusal touches nothing.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flaskscale_gen.errors import FlaskscaleError
from flaskscale_gen.history import git_env, parse_name, tag_names
from flaskscale_gen.template_source import (
    CANONICAL_URL,
    is_canonical,
    running_copier,
    template_source,
    translated_history_errors,
)

ANSWERS_FILE = ".copier-answers.yml"
CONFLICT_MARKERS = ("<<<<<<< before updating", ">>>>>>> after updating")


@dataclass
class Plan:
    project: Path
    from_commit: str
    to_ref: str | None  # a version name; None: Copier's newest tag (a source of the user's own)
    env: dict[str, str]
    data: dict[str, Any]


@dataclass
class Outcome:
    plan: Plan
    changed: list[str] = field(default_factory=list)  # "M path", "A path", "D path"
    conflicts: list[str] = field(default_factory=list)
    rejects: list[str] = field(default_factory=list)
    to_commit: str = ""


def git(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["git", *args], cwd=project, env=git_env(), capture_output=True, text=True
    )
    if check and proc.returncode:
        detail = proc.stderr.strip().splitlines()
        raise FlaskscaleError(
            f"git {args[0]} failed in {project}: {detail[-1] if detail else proc.returncode}"
        )
    return proc


def read_answers(answers_file: Path) -> dict[str, Any]:
    fix = f"restore it from git (git log -p {ANSWERS_FILE})"
    try:
        answers = yaml.safe_load(answers_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        reason = "not valid YAML" if isinstance(exc, yaml.YAMLError) else "unreadable"
        raise FlaskscaleError(f"{answers_file} is broken ({reason}): {fix}") from None
    if not isinstance(answers, dict):
        raise FlaskscaleError(f"{answers_file} is broken (not a mapping): {fix}")
    for key in ("_src_path", "_commit"):
        if not isinstance(answers.get(key), str) or not answers[key].strip():
            raise FlaskscaleError(f"{answers_file} is broken (no {key}): {fix}")
    return answers


def version_name(version: str) -> str:
    """``0.2.0`` or ``v0.2.0.post3`` -> ``v0.2.0`` / ``v0.2.0.post3``."""
    return "v" + version.strip().removeprefix("v")


def check_project(project: Path) -> dict[str, Any]:
    """The checks that need no template: a generated project in a clean git work tree."""
    if not project.is_dir():
        raise FlaskscaleError(f"{project} is not a folder: pass the folder of a project")
    answers_file = project / ANSWERS_FILE
    if not answers_file.is_file():
        raise FlaskscaleError(
            f"{project} is not a generated project (no {ANSWERS_FILE}): "
            "run this in a folder made by 'flaskscale new'"
        )
    answers = read_answers(answers_file)
    if shutil.which("git") is None:
        raise FlaskscaleError("git is not installed: install git to update a project")
    if git(project, "rev-parse", "--is-inside-work-tree", check=False).returncode:
        raise FlaskscaleError(
            f"{project} is not a git repository: run 'git init && git add -A && "
            "git commit -m Initial' there first, so that the update can be reviewed and undone"
        )
    if git(project, "status", "--porcelain").stdout.strip():
        raise FlaskscaleError(
            f"{project} has uncommitted changes: commit or stash them first (see git status)"
        )
    return answers


def choose_target(
    project: Path, from_commit: str, to: str | None, names: list[str], default: str | None
) -> str | None:
    """The version to update to: ``to``, else ``default``; refuse unknown ones and downgrades."""
    target = version_name(to) if to else default
    if target is not None and target not in names:
        known = ", ".join(names[-8:]) or "none"
        raise FlaskscaleError(
            f"unknown version {to or target}: the template has {known}"
            f"{' (and older)' if len(names) > 8 else ''}: pass one of those to --to "
            "(flaskscale versions lists them)"
        )
    current, wanted = parse_name(from_commit), parse_name(target or "")
    if current and wanted and wanted < current:
        raise FlaskscaleError(
            f"{project} is at {from_commit}, newer than {target}: downgrades are not supported; "
            f"pass --to {from_commit} or later"
        )
    return target


@contextmanager
def planned_update(path: Path, *, to: str | None, data: Mapping[str, Any]) -> Iterator[Plan]:
    """Check everything an update needs; raise FlaskscaleError naming the first problem.

    The plan is valid inside the ``with`` block: the template's history is there meanwhile.
    """
    project = path.expanduser().absolute()
    answers = check_project(project)
    src_path, from_commit = answers["_src_path"].strip(), answers["_commit"].strip()
    if is_canonical(src_path):
        with template_source() as source:
            target = choose_target(project, from_commit, to, source.versions, source.installed)
            yield Plan(project, from_commit, target, source.env, dict(data))
        return
    # A template source of the owner's own (a fork): its tags, as Copier reads them.
    local = "://" not in src_path and not src_path.startswith("git@")
    if local and not Path(src_path).exists():
        raise FlaskscaleError(
            f"the template source {src_path} recorded in {ANSWERS_FILE} is not on this machine: "
            f"set '_src_path: {CANONICAL_URL}' there (keep _commit), commit, and run again"
        )
    with translated_history_errors():
        names = tag_names(src_path)
    target = choose_target(project, from_commit, to, names, None)
    yield Plan(project, from_commit, target, {}, dict(data))


def run_copier_update(plan: Plan, project: Path, *, conflict: str, defaults: bool) -> None:
    import copier

    with running_copier(
        plan.env,
        prefix="the update failed: ",
        git_failure=lambda detail: f"the update failed: {detail}",
    ):
        copier.run_update(
            str(project),
            data=plan.data,
            defaults=defaults,
            vcs_ref=plan.to_ref,
            conflict=conflict,
            overwrite=True,
            unsafe=True,
            quiet=True,
        )


def restore(project: Path) -> None:
    """Put a project that was clean before the update back exactly as it was."""
    top = Path(git(project, "rev-parse", "--show-toplevel").stdout.strip())
    git(top, "reset", "--quiet", "--hard", "HEAD", check=False)
    git(top, "clean", "--quiet", "-fd", check=False)


def collect(plan: Plan, project: Path, conflict: str) -> Outcome:
    outcome = Outcome(plan)
    status = git(project, "status", "--porcelain", "--untracked-files=all", "--", ".").stdout
    prefix = git(project, "rev-parse", "--show-prefix").stdout.strip()
    for line in status.splitlines():
        code, name = line[:2], line[3:].strip('"')
        name = name.split(" -> ")[-1].removeprefix(prefix)
        if name.endswith(".rej"):
            outcome.rejects.append(name)
            continue
        unmerged = "U" in code or code in ("AA", "DD")
        if unmerged or ((project / name).is_file() and has_markers(project / name)):
            outcome.conflicts.append(name)
        kind = "A" if code == "??" or "A" in code else "D" if "D" in code else "M"
        outcome.changed.append(f"{kind} {name}")
    answers = read_answers(project / ANSWERS_FILE)
    outcome.to_commit = answers["_commit"]
    return outcome


def has_markers(path: Path) -> bool:
    try:
        lines = path.read_bytes().decode("utf-8", "replace").splitlines()
    except OSError:
        return False
    return any(line.rstrip() in CONFLICT_MARKERS for line in lines)


def apply_update(plan: Plan, *, conflict: str, defaults: bool, pretend: bool) -> Outcome:
    """Run the update in place, or (pretend) in a throwaway clone of the project's repo."""
    if not pretend:
        try:
            run_copier_update(plan, plan.project, conflict=conflict, defaults=defaults)
        except BaseException:
            restore(plan.project)
            raise
        return collect(plan, plan.project, conflict)

    top = Path(git(plan.project, "rev-parse", "--show-toplevel").stdout.strip())
    subdir = plan.project.relative_to(top) if plan.project.is_relative_to(top) else Path()
    with tempfile.TemporaryDirectory(prefix="flaskscale-pretend-") as tmp:
        clone = Path(tmp) / "project"
        git(Path(tmp), "clone", "--quiet", "--no-hardlinks", str(top), str(clone))
        run_copier_update(plan, clone / subdir, conflict=conflict, defaults=defaults)
        return collect(plan, clone / subdir, conflict)
