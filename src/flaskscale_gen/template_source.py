"""Where the Copier template lives, and what a generated project records about it.

Every project's ``.copier-answers.yml`` names a template source (``_src_path``) and a version
(``_commit``) that Copier can resolve later, on any machine:

* a release build records ``CANONICAL_URL`` and the tag ``v<version>``. The installed wheel
  carries a git bundle of every released version (``_template.bundle``, made by
  ``hatch_build.py``); while flaskscale runs Copier, git's ``url.<bundle>.insteadOf`` sends the
  canonical URL to that bundle, so nothing is downloaded. Plain ``copier update`` elsewhere
  fetches the same URL from the network.
* a development build (a source checkout, or a wheel built from an untagged or modified one)
  records the checkout's path and ``git describe`` of its HEAD: such a project updates from that
  checkout, on the machine that has it.

``FLASKSCALE_TEMPLATE_MIRROR`` (a path or URL of a git repository or bundle holding the tags)
replaces the bundled history, e.g. for a company mirror, and forces release mode.
"""

from __future__ import annotations

import json
import os
import subprocess
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flaskscale_gen import __version__
from flaskscale_gen.errors import FlaskscaleError

PACKAGE_DIR = Path(__file__).resolve().parent
CANONICAL_URL = "https://github.com/flaskscale/flaskscale.git"
BUNDLE = PACKAGE_DIR / "_template.bundle"
BUILD_INFO = PACKAGE_DIR / "_build.json"
MIRROR_ENV = "FLASKSCALE_TEMPLATE_MIRROR"


def template_root() -> Path:
    """The folder holding ``copier.yml`` and ``template/``."""
    for candidate in (PACKAGE_DIR / "_template", PACKAGE_DIR.parents[1]):
        if (candidate / "copier.yml").is_file() and (candidate / "template").is_dir():
            return candidate
    raise FlaskscaleError(
        f"the project template is missing from {PACKAGE_DIR}: reinstall flaskscale-gen"
    )


def is_checkout(root: Path) -> bool:
    """True for a git source checkout (development), False for an installed wheel."""
    return (root / ".git").exists()


def installed_version() -> str:
    return __version__


def version_tag(version: str) -> str:
    """``0.2.0`` or ``v0.2.0`` -> ``v0.2.0``."""
    return "v" + version.strip().removeprefix("v")


def is_canonical(src_path: str) -> bool:
    def norm(url: str) -> str:
        return url.strip().rstrip("/").removesuffix(".git").lower()

    return norm(src_path) == norm(CANONICAL_URL)


def mirror() -> str | None:
    """Where the canonical URL is redirected to: the env override, else the bundled history."""
    override = os.environ.get(MIRROR_ENV, "").strip()
    if override:
        return override
    return str(BUNDLE) if BUNDLE.is_file() else None


def git_clean_env() -> dict[str, str]:
    """The environment without variables that point git at some other repository."""
    redirecting = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE")
    return {k: v for k, v in os.environ.items() if k not in redirecting}


def git_describe(checkout: Path) -> str:
    """A commit name git can resolve in ``checkout`` (never a ``-dirty`` one)."""
    proc = subprocess.run(
        ["git", "describe", "--tags", "--always"],
        cwd=checkout,
        env=git_clean_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
        raise FlaskscaleError(f"git cannot describe {checkout}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def redirect_env(target: str | None) -> dict[str, str]:
    """Git config, through the environment, that sends ``CANONICAL_URL`` to ``target``."""
    if not target:
        return {}
    count = int(os.environ.get("GIT_CONFIG_COUNT", "0") or 0)
    return {
        "GIT_CONFIG_COUNT": str(count + 1),
        f"GIT_CONFIG_KEY_{count}": f"url.{target}.insteadOf",
        f"GIT_CONFIG_VALUE_{count}": CANONICAL_URL,
    }


@contextmanager
def git_environment(extra: Mapping[str, str]) -> Iterator[None]:
    """``extra`` in the environment of every git run, from here and from Copier (plumbum).

    Copier's plumbum copies the environment once, at import; migrations and tasks get
    plumbum's environment, other subprocesses ``os.environ``: set both, restore both.
    """
    from plumbum import local

    saved = {key: os.environ.get(key) for key in extra}
    os.environ.update(extra)
    try:
        with local.env(**extra):
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def copier_message(exc: Exception) -> str:
    """The first line of a Copier error, without Copier's "Validation error for question" prefix."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if message.startswith("Validation error for question"):
        message = message.split(": ", 1)[-1]
    return message


@contextmanager
def running_copier(
    env: Mapping[str, str], *, prefix: str, git_failure: Callable[[str], str]
) -> Iterator[None]:
    """Run Copier with ``env`` for git; its errors become one-line ``FlaskscaleError``s.

    Copier's own errors read ``prefix`` + their first line; a failing git command reads
    ``git_failure(<git's last line of output>)``.
    """
    from copier.errors import CopierError, DirtyLocalWarning
    from plumbum import ProcessExecutionError

    with warnings.catch_warnings(), git_environment(env):
        warnings.simplefilter("ignore", DirtyLocalWarning)
        try:
            yield
        except KeyboardInterrupt:
            raise  # Ctrl-C at a question is a CopierError too: let the caller clean up
        except (CopierError, ValueError, TypeError) as exc:
            raise FlaskscaleError(prefix + copier_message(exc)) from None
        except ProcessExecutionError as exc:
            lines = (exc.stderr or "").strip().splitlines()
            raise FlaskscaleError(git_failure(lines[-1] if lines else str(exc.retcode))) from None


@dataclass(frozen=True)
class Origin:
    """How ``flaskscale new`` renders, and what the project records."""

    render_from: str  # what Copier renders
    vcs_ref: str | None  # the git ref to render (None: a plain folder)
    src_path: str  # recorded as _src_path
    commit: str  # recorded as _commit
    env: dict[str, str]  # git redirection while rendering

    @property
    def release(self) -> bool:
        return is_canonical(self.src_path)


def build_info() -> dict:
    try:
        return json.loads(BUILD_INFO.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def origin() -> Origin:
    """Where ``flaskscale new`` renders from (see the module docstring)."""
    root = template_root()
    tag = version_tag(installed_version())
    override = os.environ.get(MIRROR_ENV, "").strip()
    if override:
        return Origin(CANONICAL_URL, tag, CANONICAL_URL, tag, redirect_env(override))
    if is_checkout(root):
        # Copier includes uncommitted changes and names them after a throwaway commit:
        # record HEAD instead, which the checkout can resolve later.
        return Origin(str(root), "HEAD", str(root), git_describe(root), {})
    info = build_info()
    if info.get("release") is False:
        return Origin(str(root), None, info["checkout"], info["commit"], {})
    if BUNDLE.is_file():
        return Origin(CANONICAL_URL, tag, CANONICAL_URL, tag, redirect_env(str(BUNDLE)))
    # No history at all (a wheel from a plain export): the files are the release they name.
    return Origin(str(root), None, CANONICAL_URL, tag, {})


def record_source(answers_file: Path, src_path: str, commit: str) -> None:
    """Set ``_src_path`` and ``_commit`` in a Copier answers file, keeping everything else."""
    import yaml

    lines = answers_file.read_text(encoding="utf-8").splitlines(keepends=True)
    header = [line for line in lines if line.startswith("#")]
    body = [line for line in lines if not line.startswith(("#", "_commit:", "_src_path:"))]
    recorded = yaml.safe_dump({"_commit": commit, "_src_path": src_path}, sort_keys=False)
    answers_file.write_text("".join([*header, recorded, *body]), encoding="utf-8")
