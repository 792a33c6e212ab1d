"""Where the Copier template lives, and the versions Copier can check out from it.

Every project's ``.copier-answers.yml`` records ``_src_path: CANONICAL_URL`` and a version name
``_commit: v0.2.0`` or ``v0.2.0.post3`` (see ``history``): names computed from the commit
history, so they resolve on any machine, for any build, whether or not tags exist. While
flaskscale runs Copier, git's ``url.<repo>.insteadOf`` sends the canonical URL to a repository
that carries those names as tags:

* an installed wheel: the git bundle inside it (``_template.bundle``, made by ``hatch_build.py``),
  so nothing is downloaded;
* a source checkout (an editable install): a bare clone of the checkout, tagged on the fly. Its
  last commit is rendered; uncommitted template changes never are;
* ``FLASKSCALE_TEMPLATE_MIRROR``: any other copy of the repository (a path or URL), tagged the
  same way, e.g. a company mirror.

``flaskscale new`` needs only the installed version: from a checkout or a mirror it renders
that commit's files as a plain folder (``installed_template``) and records the same
``_src_path`` and ``_commit`` itself.

Plain ``copier update`` elsewhere fetches the canonical URL, which carries the same names as
tags once they are published (``python -m flaskscale_gen.history tag``).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from flaskscale_gen import __version__, history
from flaskscale_gen.errors import FlaskscaleError

PACKAGE_DIR = Path(__file__).resolve().parent
CANONICAL_URL = "https://github.com/flaskscale/flaskscale.git"
BUNDLE = PACKAGE_DIR / "_template.bundle"
BUILD_INFO = PACKAGE_DIR / "_build.json"
MIRROR_ENV = "FLASKSCALE_TEMPLATE_MIRROR"
# What a rendered project depends on: a change elsewhere in a checkout does not matter.
TEMPLATE_PATHS = ("copier.yml", "template", "migrations", "extensions")


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


def build_info() -> dict:
    try:
        return json.loads(BUILD_INFO.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def installed_template_version() -> str:
    """The version this flaskscale renders: its checkout's HEAD, or what its wheel recorded."""
    root = template_root()
    if is_checkout(root):
        with translated_history_errors():
            return history.versions(root)[-1].name
    return build_info().get("version") or f"v{__version__}"


def is_canonical(src_path: str) -> bool:
    def norm(url: str) -> str:
        return url.strip().rstrip("/").removesuffix(".git").lower()

    return norm(src_path) == norm(CANONICAL_URL)


@contextmanager
def translated_history_errors() -> Iterator[None]:
    try:
        yield
    except history.HistoryError as exc:
        raise FlaskscaleError(str(exc)) from None


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


@dataclass(frozen=True)
class Source:
    """The template's versions, and how Copier reaches them."""

    versions: list[str]  # oldest first
    installed: str  # what this flaskscale renders by default
    env: dict[str, str] = field(default_factory=dict)  # git redirection for Copier
    plain_folder: Path | None = None  # no history at all: render these files as they are
    uncommitted_in: Path | None = None  # a checkout whose uncommitted changes are left out

    @property
    def render_from(self) -> str:
        return str(self.plain_folder) if self.plain_folder else CANONICAL_URL


@contextmanager
def template_source() -> Iterator[Source]:
    """Where the template's versions are, for as long as Copier runs (see the docstring)."""
    root = template_root()
    override = os.environ.get(MIRROR_ENV, "").strip()
    with tempfile.TemporaryDirectory(prefix="flaskscale-history-") as tmp:
        tagged = Path(tmp) / "template.git"
        with translated_history_errors():
            if override:
                names = [v.name for v in history.tagged_repository(override, tagged)]
                yield Source(names, installed_template_version(), redirect_env(str(tagged)))
            elif is_checkout(root):
                names = [v.name for v in history.tagged_repository(root, tagged)]
                dirty = root if history.is_dirty(root, *TEMPLATE_PATHS) else None
                yield Source(names, names[-1], redirect_env(str(tagged)), uncommitted_in=dirty)
            elif BUNDLE.is_file():
                names = history.tag_names(BUNDLE)
                yield Source(names, installed_template_version(), redirect_env(str(BUNDLE)))
            else:  # a wheel from a plain export: its files are the release it names
                version = installed_template_version()
                yield Source([version], version, plain_folder=root)


@contextmanager
def installed_template() -> Iterator[Source]:
    """The version ``flaskscale new`` renders, as a plain folder of its files where that is quicker.

    A new project needs one version, not the history: from a checkout (or a mirror) its files
    are written out with ``git restore`` and Copier renders that folder, with no tags to create
    and no repository for Copier to clone and check out (most of the time ``new`` spent beyond
    bare ``copier copy``). ``new`` records the canonical source and the version name in the
    answers file itself (``record_source``), so the project is the one Copier would render
    from the tagged repository. A wheel's bundle is rendered through git as before.
    """
    root = template_root()
    override = os.environ.get(MIRROR_ENV, "").strip()
    if not override and not is_checkout(root):
        with template_source() as source:
            yield source
        return
    with tempfile.TemporaryDirectory(prefix="flaskscale-template-") as tmp:
        files = Path(tmp) / "template"
        with translated_history_errors():
            if override:
                named = history.cloned_versions(override, Path(tmp) / "template.git")
                repo: Path | str = Path(tmp) / "template.git"
                installed = installed_template_version()
                dirty = None
            else:
                named, repo = history.versions(root), root
                installed = named[-1].name
                dirty = root if history.is_dirty(root, *TEMPLATE_PATHS) else None
            commits = {v.name: v.commit for v in named}
            if installed not in commits:
                raise FlaskscaleError(
                    f"template {installed} is not in {override or root}: reinstall flaskscale-gen"
                )
            history.export(repo, commits[installed], TEMPLATE_PATHS, files)
        yield Source(list(commits), installed, plain_folder=files, uncommitted_in=dirty)


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


def copier_settings_path() -> Path:
    """The user settings file Copier reads on every run (it may not exist)."""
    from platformdirs import user_config_path

    configured = os.environ.get("COPIER_SETTINGS_PATH", "").strip()
    if configured:
        return Path(configured)
    return user_config_path("copier", appauthor=False) / "settings.yml"


def check_copier_settings() -> None:
    """Name Copier's settings file, and the fix, when Copier would reject it."""
    import yaml

    path = copier_settings_path()
    if not path.is_file():
        return
    try:
        data = yaml.safe_load(path.read_bytes())
        problem = "it is empty" if data is None else None
        if data is not None:
            from copier._settings import SettingsModel  # Copier's own rules for the file

            SettingsModel.model_validate(data)
    except OSError as exc:
        problem = f"it cannot be read: {exc.strerror}"
    except yaml.YAMLError:
        problem = "it is not valid YAML"
    except ImportError:
        problem = None  # a Copier without that model: let Copier judge
    except ValueError as exc:  # pydantic's ValidationError
        errors = getattr(exc, "errors", lambda: [])()
        where = ".".join(str(part) for part in errors[0]["loc"]) if errors else ""
        problem = f"{where or 'its content'}: {errors[0]['msg'] if errors else exc}".lower()
    if problem:
        raise FlaskscaleError(
            f"Copier's settings file {path} is not valid ({problem}): fix it (a YAML mapping, "
            "e.g. {}), delete it, or set COPIER_SETTINGS_PATH to a valid file"
        )


@contextmanager
def running_copier(
    env: Mapping[str, str], *, prefix: str, git_failure: Callable[[str], str]
) -> Iterator[None]:
    """Run Copier with ``env`` for git; its errors become one-line ``FlaskscaleError``s.

    Copier's own errors read ``prefix`` + their first line; a failing git command reads
    ``git_failure(<git's last line of output>)``.
    """
    from copier.errors import CopierError
    from plumbum import ProcessExecutionError

    check_copier_settings()
    with git_environment(env):
        try:
            yield
        except KeyboardInterrupt:
            raise  # Ctrl-C at a question is a CopierError too: let the caller clean up
        except (CopierError, ValueError, TypeError) as exc:
            raise FlaskscaleError(prefix + copier_message(exc)) from None
        except ProcessExecutionError as exc:
            lines = (exc.stderr or "").strip().splitlines()
            raise FlaskscaleError(git_failure(lines[-1] if lines else str(exc.retcode))) from None


def record_source(answers_file: Path, src_path: str, commit: str) -> None:
    """Set ``_src_path`` and ``_commit`` in a Copier answers file, keeping everything else."""
    import yaml

    lines = answers_file.read_text(encoding="utf-8").splitlines(keepends=True)
    header = [line for line in lines if line.startswith("#")]
    body = [line for line in lines if not line.startswith(("#", "_commit:", "_src_path:"))]
    recorded = yaml.safe_dump({"_commit": commit, "_src_path": src_path}, sort_keys=False)
    answers_file.write_text("".join([*header, recorded, *body]), encoding="utf-8")
