"""Rendering a new project: into a staging folder first, moved into place only when complete.

Whatever happens (a rejected answer, a failing render, Ctrl-C), the destination is either
the finished project or exactly what it was before.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flaskscale_gen.errors import FlaskscaleError
from flaskscale_gen.template_source import (
    CANONICAL_URL,
    Source,
    installed_template,
    record_source,
    running_copier,
)


@dataclass
class Result:
    dest: Path
    answers: dict[str, Any]
    files: list[str]
    committed: bool
    source: Source


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_destination(dest: Path) -> None:
    """Refuse a destination that holds anything, or that cannot be written."""
    if dest.exists() and not dest.is_dir():
        raise FlaskscaleError(f"{dest} exists and is a file: choose a new folder for the project")
    if dest.is_dir() and any(dest.iterdir()):
        raise FlaskscaleError(
            f"{dest} exists and is not empty: choose a new folder, or empty this one first"
        )
    parent = next(p for p in (dest, *dest.parents) if p.exists())
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise FlaskscaleError(f"cannot write to {parent}: choose a folder you can write to")


def render(
    staging: Path,
    answers: Mapping[str, Any],
    *,
    defaults: bool,
    name_default: str,
) -> tuple[dict[str, Any], Source]:
    """Run Copier into ``staging``; return the recorded answers and the template source.

    The answers file records the canonical source and a version name that ``copier update``
    resolves later, on any machine (see template_source).
    """
    import copier

    with installed_template() as source:
        vcs_ref = None if source.plain_folder else source.installed
        with running_copier(
            source.env,
            prefix="",
            git_failure=lambda detail: (
                f"git could not read template {vcs_ref} ({detail}): reinstall flaskscale-gen"
            ),
        ):
            worker = copier.run_copy(
                source.render_from,
                str(staging),
                data=dict(answers),
                user_defaults={"project_name": name_default},
                defaults=defaults,
                vcs_ref=vcs_ref,
                unsafe=True,
                quiet=True,
                overwrite=True,
                cleanup_on_error=False,
            )
    answers_file = staging / worker.answers_relpath
    if source.plain_folder and answers_file.is_file():
        record_source(answers_file, CANONICAL_URL, source.installed)
    recorded = {k: v for k, v in worker.answers.combined.items() if not k.startswith("_")}
    return recorded, source


def list_files(root: Path) -> list[str]:
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and ".git" not in path.relative_to(root).parts
    )


def git_init(project: Path, author_name: str, author_email: str) -> None:
    """Make the project a git repository with one commit, so that it can be updated later."""

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=project, check=True, capture_output=True, text=True)

    identity = []
    for key, fallback in (("user.name", author_name), ("user.email", author_email)):
        configured = subprocess.run(
            ["git", "config", "--get", key], cwd=project, capture_output=True, text=True
        ).stdout.strip()
        if not configured:
            identity += ["-c", f"{key}={fallback}"]
    try:
        git("init", "--quiet", "--initial-branch=main")
        git("add", "--all")
        git(*identity, "commit", "--quiet", "--no-verify", "-m", "Initial project from flaskscale")
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or "").strip().splitlines()
        raise FlaskscaleError(
            f"git failed ({detail[-1] if detail else exc}): fix git, or pass --no-git"
        ) from None


def new_project(
    dest: Path,
    answers: Mapping[str, Any],
    *,
    defaults: bool,
    git: bool = True,
    pretend: bool = False,
) -> Result:
    """Render a project into ``dest`` (or, with ``pretend``, only say what it would hold)."""
    dest = dest.expanduser().absolute()
    check_destination(dest)
    if git and not pretend and shutil.which("git") is None:
        raise FlaskscaleError("git is not installed: install git, or pass --no-git")

    if pretend:
        with tempfile.TemporaryDirectory(prefix="flaskscale-pretend-") as tmp:
            staging = Path(tmp) / dest.name
            recorded, source = render(staging, answers, defaults=defaults, name_default=dest.name)
            return Result(dest, recorded, list_files(staging), False, source)

    created_parents = [p for p in reversed(dest.parents) if not p.exists()]
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.flaskscale-", dir=dest.parent))
        staging.chmod(0o777 & ~current_umask())
    except OSError as exc:
        if created_parents:
            shutil.rmtree(created_parents[0], ignore_errors=True)
        raise FlaskscaleError(
            f"cannot write to {dest.parent} ({exc.strerror}): choose a folder you can write to"
        ) from None
    try:
        recorded, source = render(staging, answers, defaults=defaults, name_default=dest.name)
        if git:
            git_init(staging, recorded["author_name"], recorded["author_email"])
        files = list_files(staging)
        if dest.exists():
            dest.rmdir()  # checked empty above
        staging.rename(dest)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if created_parents:
            shutil.rmtree(created_parents[0], ignore_errors=True)
        if isinstance(exc, OSError):
            raise FlaskscaleError(
                f"writing the project failed ({exc}): check the disk and permissions, then retry"
            ) from None
        raise
    return Result(dest, recorded, files, git, source)
