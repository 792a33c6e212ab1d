"""The quality gates every rendered combination must pass (besides ruff, bandit, deptry, its tests).

The only hand-kept knowledge is ``FEATURE_MARKERS``: the imports, dependencies and words that
betray a feature, which must be absent when it is off. Everything else comes from the file
names under ``template/``.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from support.options import SLUG, evaluate, render_value
from support.rendering import REPO, template_extension

# --------------------------------------------------------------------------- fingerprints


@dataclass(frozen=True)
class Markers:
    """What betrays a feature in a generated project; none of it may remain when it is off."""

    condition: str  # Jinja expression over the answers (computed ones included)
    imports: tuple[str, ...] = ()  # top-level module names
    deps: tuple[str, ...] = ()  # distribution names (extras count: gunicorn[gevent] -> gevent)
    words: tuple[str, ...] = ()  # regexes, case-insensitive, in any text file


FEATURE_MARKERS = (
    Markers(
        "web_ui",
        imports=("flask_bootstrap", "flask_login", "flask_wtf", "wtforms"),
        deps=("bootstrap-flask", "flask-login", "flask-wtf", "wtforms"),
        words=(r"bootstrap", r"flask[-_]login", r"flask[-_]wtf", r"login_manager"),
    ),
    # Accounts that log in (the web UI's or the API's): roles, permissions, ``flask users``,
    # the audit log, mail, password reset and address verification.
    Markers(
        "web_ui or api",
        imports=("email_validator", "smtplib"),
        deps=("email-validator",),
        words=(
            r"permission_required",
            r"create-admin",
            r"user_roles",
            r"audit_log",
            r"MAIL_SERVER",
            r"mailpit",
            r"password[-_ ]reset",
            r"email_verified",
        ),
    ),
    # Translation (languages with more than one code): Flask-Babel, catalogues, marked strings.
    Markers(
        "i18n",
        imports=("flask_babel", "babel"),
        deps=("flask-babel", "babel"),
        words=(r"babel", r"gettext", r"\btranslations\b", r"(?<![\w.])_l?\(\s*[\"']", r"locale"),
    ),
    Markers(
        "api",
        imports=("flask_smorest", "marshmallow", "apispec", "webargs", "flask_swagger_ui"),
        deps=("flask-smorest", "marshmallow", "apispec", "webargs", "flask-swagger-ui"),
        words=(r"smorest", r"marshmallow", r"openapi", r"/api\b", r"swagger"),
    ),
    Markers("api and api_versions == 'v1+v2'", words=(r"/api/v2\b", r"\bapi[._]v2\b")),
    Markers(
        "database == 'postgresql'",
        imports=("psycopg", "psycopg2"),
        deps=("psycopg", "psycopg2", "psycopg2-binary"),
        words=(r"postgres", r"psycopg", r"pgbouncer", r"replica_?urls", r"read[- ]your[- ]writes"),
    ),
    Markers("celery", imports=("celery", "kombu"), deps=("celery", "kombu"), words=(r"celery",)),
    Markers("celery and celery_broker == 'rabbitmq'", words=(r"rabbitmq",)),
    Markers(
        "socketio",
        imports=("flask_socketio", "socketio", "engineio"),
        deps=("flask-socketio", "python-socketio", "python-engineio", "simple-websocket"),
        words=(r"socket\.?io",),
    ),
    Markers(
        "socketio and socketio_async_mode == 'gevent'",
        imports=("gevent", "geventwebsocket"),
        deps=("gevent", "gevent-websocket"),
        words=(r"gevent",),
    ),
    # Redis may be named as an optional store (rate limits); its URL and client may not.
    Markers("redis", imports=("redis",), deps=("redis",), words=(r"\bREDIS_URL\b",)),
    Markers("docker", words=(r"docker",)),
    Markers("docker and kubernetes", words=(r"kubernetes", r"kubectl", r"kustomiz", r"\bk8s\b")),
    Markers("ci == 'github'", words=(r"github actions", r"\.github\b")),
)

_CONDITIONAL = re.compile(r"\{%-?\s*if\s+(.+?)\s*-?%\}(.*?)\{%-?\s*endif\s*-?%\}")


@dataclass(frozen=True)
class ConditionalPath:
    """A template path whose existence hangs on conditions in its name (all must hold)."""

    template_path: str  # relative to template/
    conditions: tuple[str, ...]


@cache
def conditional_paths(template_root: Path = REPO / "template") -> tuple[ConditionalPath, ...]:
    """Every file and folder of ``template/`` named with ``{% if cond %}name{% endif %}``."""
    found = []
    for path in sorted(template_root.rglob("*")):
        rel = path.relative_to(template_root).as_posix()
        name = path.name
        if _CONDITIONAL.search(name):
            parts = rel.split("/")
            conditions = tuple(m.group(1) for part in parts for m in _CONDITIONAL.finditer(part))
            found.append(ConditionalPath(rel, conditions))
    return tuple(found)


def _reference_patterns(rel: str, is_dir: bool) -> list[str]:
    """How other files would refer to a conditional file, as regexes."""
    parts = rel.split("/")
    name = parts[-1]
    if name.endswith(".py") and not is_dir:
        stem = name.removesuffix(".py")
        if parts[0] == SLUG:
            module = ".".join([*parts[:-1], stem])
            return [rf"\b{re.escape(module)}\b", rf"from \.{re.escape(stem)}\b"]
        if parts[0] == "tests":
            return []
        return [rf"\b{re.escape(stem)}\b"]
    if len(parts) == 1:
        return [rf"(?<![\w.-]){re.escape(name)}(?![\w-])"]
    return [rf"(?<![\w.-]){re.escape('/'.join(parts[-2:]))}(?![\w-])"]


# --------------------------------------------------------------------------- reading a project

# Flask's own templates are copied verbatim and are Jinja by design.
FLASK_TEMPLATES = re.compile(rf"^{SLUG}/(?:web|api)/templates/.+\.html$")
_JINJA = re.compile(r"\{\{|\{%|\{#")
# Not Jinja: GitHub Actions expressions, Go templates (docker inspect, helm), Prometheus's alert
# templates (Go templates of $value and $labels), Grafana's legends ({{label}}).
_LEGIT_JINJA_LIKE = {
    re.compile(r"^\.github/workflows/[^/]+\.ya?ml$"): re.compile(r"\$\{\{.*?\}\}"),
    re.compile(r"^deploy/(prometheus|k8s/overlays/monitoring)/[^/]+\.ya?ml$"): re.compile(
        r"\{\{\s*\$[a-z].*?\}\}"
    ),
    re.compile(r"^deploy/grafana/[^/]+\.json$"): re.compile(r"\{\{[a-z_]+\}\}"),
}
_GO_TEMPLATE = re.compile(r"\{\{-?\s*\.[A-Za-z].*?\}\}")


def project_files(project: Path) -> dict[str, bytes]:
    skip = {".git", "__pycache__", ".pytest_cache", ".ruff_cache", "instance"}
    files = {}
    for path in sorted(project.rglob("*")):
        if path.is_file() and not skip.intersection(path.relative_to(project).parts):
            files[path.relative_to(project).as_posix()] = path.read_bytes()
    return files


def text_files(project: Path) -> dict[str, str]:
    texts = {}
    for rel, data in project_files(project).items():
        try:
            texts[rel] = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return texts


def _without_fstrings(source: str) -> str:
    """Python source with f-strings blanked: ``{{`` in them is an escaped brace."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return source
    lines = source.splitlines(keepends=True)
    for tok in reversed(tokens):
        is_fstring = tok.type == tokenize.STRING and re.match(r"(?i)[rb]*f", tok.string)
        if is_fstring and tok.start[0] == tok.end[0]:
            row = tok.start[0] - 1
            line = lines[row]
            lines[row] = (
                line[: tok.start[1]] + " " * (tok.end[1] - tok.start[1]) + line[tok.end[1] :]
            )
    return "".join(lines)


# --------------------------------------------------------------------------- the checks


class CheckFailed(Exception):
    pass


def check_jinja(project: Path, template_root: Path) -> None:
    problems = []
    for rel in project_files(project):
        if _JINJA.search(rel) or rel.endswith(".jinja"):
            problems.append(f"{rel}: unrendered file name")
    for rel, text in text_files(project).items():
        if FLASK_TEMPLATES.match(rel):
            continue
        if rel.endswith(".py"):
            text = _without_fstrings(text)
        for path_re, legit in _LEGIT_JINJA_LIKE.items():
            if path_re.match(rel):
                text = legit.sub("", text)
        text = _GO_TEMPLATE.sub("", text)
        for number, line in enumerate(text.splitlines(), 1):
            if _JINJA.search(line):
                problems.append(f"{rel}:{number}: {line.strip()[:100]}")
    # Flask's templates must arrive byte for byte (never rendered by Copier); those with strings
    # to translate (*.html.jinja) as extensions/languages.py writes them, marked or not.
    languages = template_extension("languages")
    several = (project / SLUG / "i18n.py").exists()
    source = {}
    for path in [*template_root.rglob("*.html"), *template_root.rglob("*.html*.jinja")]:
        rel = path.relative_to(template_root).as_posix()
        rel = re.sub(r"\{%.*?%\}(.*?)\{%.*?%\}", r"\1", rel).replace("{{project_slug}}", SLUG)
        data = path.read_bytes()
        if rel.endswith(".jinja"):
            rel, text = rel.removesuffix(".jinja"), data.decode("utf-8")
            data = (languages.marked_html(text) if several else languages.plain_html(text)).encode()
        source[rel] = data
    for rel, data in project_files(project).items():
        if FLASK_TEMPLATES.match(rel) and source.get(rel) != data:
            problems.append(f"{rel}: differs from the template's copy (was it rendered?)")
    if problems:
        raise CheckFailed("unrendered Jinja:\n  " + "\n  ".join(problems[:20]))


def _imports(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_dependencies(project: Path) -> set[str]:
    """Distribution names in pyproject.toml, extras included (``celery[redis]`` -> redis too)."""
    data = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    project_table = data.get("project", {})
    specs = list(project_table.get("dependencies", []))
    for extra in project_table.get("optional-dependencies", {}).values():
        specs.extend(extra)
    names = set()
    for spec in specs:
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?", spec)
        if match:
            names.add(_normalise(match.group(1)))
            names.update(_normalise(e) for e in (match.group(2) or "").split(",") if e.strip())
    return names


def check_leftovers(project: Path, context: Mapping[str, Any]) -> None:
    """Nothing of a disabled option remains: files, references, imports, deps, words."""
    problems = []
    files = project_files(project)
    texts = {k: v for k, v in text_files(project).items() if k != ".copier-answers.yml"}
    imports = {rel: _imports(text) for rel, text in texts.items() if rel.endswith(".py")}
    deps = declared_dependencies(project)

    for conditional in conditional_paths():
        if all(evaluate(c, context) for c in conditional.conditions):
            continue
        # The path with the false conditions' names kept, to name what must not exist.
        full = {**context}
        rel = re.sub(
            r"\{%-?\s*if\s+(.+?)\s*-?%\}(.*?)\{%-?\s*endif\s*-?%\}",
            r"\2",
            conditional.template_path,
        )
        rel = render_value(rel.removesuffix(".jinja"), full)
        is_dir = (REPO / "template" / conditional.template_path).is_dir()
        if rel in files or any(f.startswith(rel + "/") for f in files):
            problems.append(f"{rel} exists though {' and '.join(conditional.conditions)} is false")
        for pattern in _reference_patterns(rel, is_dir):
            for name, text in texts.items():
                if re.search(pattern, text):
                    problems.append(
                        f"{name} refers to {rel} ({' and '.join(conditional.conditions)} is false)"
                    )

    for markers in FEATURE_MARKERS:
        if evaluate(markers.condition, context):
            continue
        why = f"({markers.condition} is false)"
        for rel, names in imports.items():
            for name in sorted(names.intersection(markers.imports)):
                problems.append(f"{rel} imports {name} {why}")
        for name in sorted(deps.intersection(_normalise(d) for d in markers.deps)):
            problems.append(f"pyproject.toml depends on {name} {why}")
        for word in markers.words:
            pattern = re.compile(word, re.IGNORECASE)
            for rel, text in texts.items():
                for number, line in enumerate(text.splitlines(), 1):
                    if pattern.search(line):
                        problems.append(f"{rel}:{number}: {line.strip()[:90]!r} {why}")
    if problems:
        unique = list(dict.fromkeys(problems))
        raise CheckFailed(
            f"{len(unique)} leftover(s) of disabled options:\n  " + "\n  ".join(unique[:25])
        )


# --------------------------------------------------------------------------- placeholder secrets

# What examples, tutorials and images' defaults put where a secret belongs: a deployment that
# keeps one is open to anyone who read the same example.
PLACEHOLDER_SECRETS = frozenset(
    {"change-me", "changeme", "change_me", "dev-only-not-secret", "secret", "password",
     "postgres", "guest", "admin", "root"}
)  # fmt: skip
# The one placeholder a project may hold: the development key, which production refuses (the
# generated tests/test_config.py proves it).
ALLOWED_PLACEHOLDERS = {(f"{SLUG}/config.py", "dev-only-not-secret")}
# NAME=value, NAME: value, "name": "value", where the name says it holds a secret.
_SECRET_SETTING = re.compile(
    r"(?i)\b(\w*(?:secret|passw(?:or)?d|_pass|token)\w*)[\"']?\s*[:=]\s*[\"']?([^\s\"'#,)}\]]*)"
)
# ${NAME:-default} or ${NAME-default}: compose or a shell fills in the default when unset.
_SECRET_DEFAULT = re.compile(r"(?i)\$\{(\w*(?:secret|passw(?:or)?d|_pass|token)\w*):?-([^}]*)\}")
_VARIABLE = re.compile(r"\$\{[^}]*\}")
_URL_CREDENTIALS = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://([^:/@\s]+):([^@/\s]+)@")


def placeholder_secrets(rel: str, text: str) -> list[str]:
    """The lines of ``rel`` that give a secret a well-known value, or a default at all."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{rel}:{number}: {line.strip()[:90]!r}"
        for name, default in _SECRET_DEFAULT.findall(line):
            found.append(f"{where}: {name} defaults to {default!r}")
        for name, value in _SECRET_SETTING.findall(line):
            placeholder = value.lower() in PLACEHOLDER_SECRETS
            if placeholder and (rel, value.lower()) not in ALLOWED_PLACEHOLDERS:
                found.append(f"{where}: {name} is the placeholder {value!r}")
        for user, password in _URL_CREDENTIALS.findall(_VARIABLE.sub("$VAR", line)):
            if password.startswith(("$", "<")):  # a variable, or <password> in an example
                continue
            if password.lower() in PLACEHOLDER_SECRETS or password == user:
                found.append(f"{where}: the URL's password is {password!r}")
    return found


def check_secrets(project: Path) -> None:
    """No file gives a secret a placeholder value or a default: empty, required, or random.

    The generated tests are not checked: their credentials are made up for them.
    """
    problems = [
        problem
        for rel, text in text_files(project).items()
        if not rel.startswith("tests/")
        for problem in placeholder_secrets(rel, text)
    ]
    if problems:
        listed = "\n  ".join(problems[:25])
        raise CheckFailed(f"{len(problems)} placeholder secret(s):\n  {listed}")


_SECRET_LINE = re.compile(r"(?i)((?:secret|token|password|passwd|key)\w*\s*[:=]\s*)\S+")


# Made by resolving against the package index when the project is generated, not rendered: two
# resolutions a minute apart differ as the index's answers do (seen in CI: one had filelock 4.3.1,
# the other 4.3.2). Both renders must have one; the matrix's lock check checks what it pins.
RESOLVED = {"uv.lock"}


def check_reproducible(first: Path, second: Path) -> None:
    a, b = project_files(first), project_files(second)
    problems = [f"only in one render: {rel}" for rel in sorted(set(a) ^ set(b))]
    for rel in sorted(set(a) & set(b)):
        if a[rel] == b[rel] or rel in RESOLVED:
            continue
        masked = [
            _SECRET_LINE.sub(r"\1<secret>", x.decode("utf-8", "replace")) for x in (a[rel], b[rel])
        ]
        if masked[0] != masked[1]:
            problems.append(f"differs between two renders: {rel}")
    for rel in sorted(set(a) & set(b)):
        if (first / rel).stat().st_mode != (second / rel).stat().st_mode:
            problems.append(f"file mode differs between two renders: {rel}")
    if problems:
        raise CheckFailed("\n".join(problems[:20]))
