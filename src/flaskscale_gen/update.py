"""Updating a generated project to another template version, without losing the owner's edits.

Copier does the three-way merge: it renders the project's recorded version and the target
version with the project's answers, and replays the project's own changes on top. Everything
that could make it fail halfway is checked first, so a refusal touches nothing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from packaging.version import InvalidVersion, Version

from flaskscale_gen.errors import FlaskscaleError
from flaskscale_gen.template_source import (
    MIRROR_ENV,
    git_clean_env,
    git_describe,
    git_environment,
    installed_version,
    is_canonical,
    mirror,
    record_source,
    redirect_env,
    running_copier,
    version_tag,
)

ANSWERS_FILE = ".copier-answers.yml"
CONFLICT_MARKERS = ("<<<<<<< before updating", ">>>>>>> after updating")
_DESCRIBE = re.compile(r"^(?P<tag>v\d+(?:\.\d+)*\S*?)(?:-(?P<distance>\d+)-g[0-9a-f]+)?$")


@dataclass
class Plan:
    project: Path
    answers_file: Path
    src_path: str
    from_commit: str
    to_ref: str  # a tag, or HEAD for a development checkout
    env: dict[str, str]
    data: dict[str, Any]
    dev_checkout: Path | None = None  # the recorded source is a local checkout

    @property
    def from_label(self) -> str:
        return self.from_commit

    @property
    def to_label(self) -> str:
        if self.dev_checkout and self.to_ref == "HEAD":
            return f"{git_describe(self.dev_checkout)} (development checkout)"
        return self.to_ref


@dataclass
class Outcome:
    plan: Plan
    changed: list[str] = field(default_factory=list)  # "M path", "A path", "D path"
    conflicts: list[str] = field(default_factory=list)
    rejects: list[str] = field(default_factory=list)
    to_commit: str = ""


def git(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["git", *args], cwd=project, env=git_clean_env(), capture_output=True, text=True
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


def parse_version(commit: str) -> tuple[Version, int] | None:
    """``v0.2.0`` -> (0.2.0, 0); ``v0.2.0-3-gabc1234`` -> (0.2.0, 3); a bare sha -> None."""
    match = _DESCRIBE.match(commit.strip())
    if not match:
        return None
    try:
        return Version(match["tag"]), int(match["distance"] or 0)
    except InvalidVersion:
        return None


def list_tags(src: str, env: Mapping[str, str]) -> list[str]:
    """Release tags (``vX.Y.Z``) of a template source, oldest first."""
    with git_environment(env):
        proc = subprocess.run(
            ["git", "ls-remote", "--tags", "--refs", src],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    if proc.returncode:
        detail = proc.stderr.strip().splitlines()
        raise FlaskscaleError(
            f"cannot read the template's versions from {src} "
            f"({detail[-1] if detail else proc.returncode}): check the network, "
            f"or set {MIRROR_ENV} to a copy of the template repository"
        )
    tags = [line.split("refs/tags/", 1)[1] for line in proc.stdout.splitlines() if line]
    versions = {t: parse_version(t) for t in tags if t.startswith("v")}
    return sorted((t for t, v in versions.items() if v), key=lambda t: versions[t])


def plan_update(path: Path, *, to: str | None, data: Mapping[str, Any]) -> Plan:
    """Check everything an update needs; raise FlaskscaleError naming the first problem."""
    project = path.expanduser().absolute()
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

    src_path, from_commit = answers["_src_path"].strip(), answers["_commit"].strip()
    env: dict[str, str] = {}
    dev_checkout = None
    if is_canonical(src_path):
        env = redirect_env(mirror())
    elif "://" not in src_path and not src_path.startswith("git@"):
        dev_checkout = Path(src_path)
        if not (dev_checkout / ".git").exists():
            raise FlaskscaleError(
                f"the template checkout {src_path} recorded in {ANSWERS_FILE} is not on this "
                "machine (the project was made by a development build): clone flaskscale "
                "there, or see 'Updating a project' in the README"
            )

    tags = list_tags(src_path, env)
    if to:
        to_ref = version_tag(to)
        if to_ref not in tags:
            known = ", ".join(tags) or "none"
            raise FlaskscaleError(
                f"unknown version {to}: the template at {src_path} has {known}: "
                "pass one of those to --to"
            )
    elif dev_checkout:
        to_ref = "HEAD"
    else:
        to_ref = version_tag(installed_version())
        if to_ref not in tags:
            known = ", ".join(tags) or "none"
            raise FlaskscaleError(
                f"this flaskscale ({installed_version()}) is not a released template version "
                f"(known: {known}): pass --to VERSION"
            )

    current, target = parse_version(from_commit), parse_version(to_ref)
    if current and target and target < current:
        raise FlaskscaleError(
            f"{project} is at {from_commit}, newer than {to_ref}: downgrades are not supported; "
            f"pass --to {from_commit.split('-')[0]} or later"
        )
    return Plan(project, answers_file, src_path, from_commit, to_ref, env, dict(data), dev_checkout)


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
        if plan.dev_checkout and plan.to_ref == "HEAD":
            # Copier names uncommitted template changes after a throwaway commit.
            record_source(
                plan.project / ANSWERS_FILE, plan.src_path, git_describe(plan.dev_checkout)
            )
        return collect(plan, plan.project, conflict)

    top = Path(git(plan.project, "rev-parse", "--show-toplevel").stdout.strip())
    subdir = plan.project.relative_to(top) if plan.project.is_relative_to(top) else Path()
    with tempfile.TemporaryDirectory(prefix="flaskscale-pretend-") as tmp:
        clone = Path(tmp) / "project"
        git(Path(tmp), "clone", "--quiet", "--no-hardlinks", str(top), str(clone))
        run_copier_update(plan, clone / subdir, conflict=conflict, defaults=defaults)
        return collect(plan, clone / subdir, conflict)
