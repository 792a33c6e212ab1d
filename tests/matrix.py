"""The option matrix: which answer combinations to render, and the quality gates each must pass.

Everything here is derived from ``copier.yml`` (through the CLI's own question loader) and from
the file names under ``template/``; the only hand-kept knowledge is ``FEATURE_MARKERS``, the
imports, dependencies and words that betray a feature, which must be absent when it is off.

Also a pytest plugin (registered in ``conftest.py``): it collects each combination's check
results from the reports (``user_properties`` travel through pytest-xdist) and prints the
combination x check table at the end of the run.
"""

from __future__ import annotations

import ast
import io
import itertools
import json
import re
import tokenize
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from jinja2.sandbox import SandboxedEnvironment

from flaskscale_gen.questions import Question, load_preset, load_questions, preset_names

REPO = Path(__file__).resolve().parents[1]

# String answers are fixed: the matrix varies what can be switched, not free text.
FIXED_ANSWERS = {"project_name": "Matrix Demo", "project_slug": "matrix_demo"}
SLUG = FIXED_ANSWERS["project_slug"]

CHECKS = ("render", "jinja", "leftovers", "ruff", "bandit", "deptry", "tests", "deploy", "repro")

_jinja = SandboxedEnvironment()


def cast_to_bool(value: Any) -> bool:
    """How Copier reads a rendered ``when``: numbers, YAML booleans, then truthiness."""
    try:
        return bool(float(value))
    except (TypeError, ValueError):
        pass
    if isinstance(value, str):
        lower = value.strip().lower()
        return lower not in {"", "n", "no", "f", "false", "off", "~", "null", "none"}
    return bool(value)


@cache
def _compiled(template: str):
    return _jinja.from_string(template)


def render_value(template: Any, context: Mapping[str, Any]) -> Any:
    if not isinstance(template, str):
        return template
    if "{" not in template:
        return template
    return _compiled(template).render(**context)


def evaluate(expression: str, context: Mapping[str, Any]) -> bool:
    """A Jinja expression (``celery and celery_broker == 'rabbitmq'``) on the answers."""
    return cast_to_bool(render_value("{{ " + expression + " }}", context))


# --------------------------------------------------------------------------- the option space


@dataclass(frozen=True)
class Option:
    """A question the matrix varies: a bool, or a str with choices."""

    question: Question
    validator: str | None

    @property
    def name(self) -> str:
        return self.question.name

    @property
    def values(self) -> tuple[Any, ...]:
        if self.question.type == "bool":
            return (False, True)
        return tuple(self.question.choices.values())

    @property
    def default(self) -> Any:
        return self.question.default

    @property
    def is_bool(self) -> bool:
        return self.question.type == "bool"

    def active(self, context: Mapping[str, Any]) -> bool:
        when = self.question.when
        if isinstance(when, bool):
            return when
        return cast_to_bool(render_value(when, context))


@dataclass(frozen=True)
class OptionSpace:
    options: tuple[Option, ...]
    computed: tuple[Question, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(option.name for option in self.options)

    def defaults(self) -> dict[str, Any]:
        return {option.name: option.default for option in self.options}

    def context(self, raw: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(full render context, answers that matter) for raw answers.

        Options whose ``when`` is false take their default, as Copier gives them, and are left
        out of the answers that matter: two combinations differing only there are one.
        """
        context: dict[str, Any] = {**FIXED_ANSWERS, **self.defaults(), **raw}
        relevant = {}
        for option in self.options:
            if option.active(context):
                relevant[option.name] = context[option.name]
            else:
                context[option.name] = option.default
        for question in self.computed:
            value = render_value(question.default, context)
            context[question.name] = cast_to_bool(value) if question.type == "bool" else value
        return context, relevant

    def validation_errors(self, raw: Mapping[str, Any]) -> list[str]:
        """Messages of the option validators that reject ``raw`` (as given, before defaults)."""
        context = {**FIXED_ANSWERS, **self.defaults(), **raw}
        errors = []
        for option in self.options:
            if option.validator:
                message = render_value(option.validator, context).strip()
                if message:
                    errors.append(message)
        return errors


@cache
def option_space(root: Path = REPO) -> OptionSpace:
    config = _copier_config(root)
    options, computed = [], []
    for name, question in load_questions(root).items():
        if question.computed:
            computed.append(question)
        elif question.type == "bool" or question.choices:
            options.append(Option(question, config[name].get("validator")))
    return OptionSpace(tuple(options), tuple(computed))


def _copier_config(root: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load((root / "copier.yml").read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- combinations


@dataclass
class Combination:
    answers: dict[str, Any]  # only the answers that matter, in question order
    sources: list[str] = field(default_factory=list)  # defaults, preset:full, toggle:celery, ...

    @property
    def key(self) -> tuple[tuple[str, Any], ...]:
        return tuple(self.answers.items())

    @property
    def id(self) -> str:
        return combination_id(self.answers)

    def context(self) -> dict[str, Any]:
        return option_space().context(self.answers)[0]

    def render_answers(self) -> dict[str, Any]:
        return {**FIXED_ANSWERS, **self.answers}


@dataclass
class Rejected:
    raw: dict[str, Any]
    messages: list[str]
    source: str

    @property
    def deviations(self) -> dict[str, Any]:
        defaults = option_space().defaults()
        return {k: v for k, v in self.raw.items() if v != defaults.get(k)}

    @property
    def id(self) -> str:
        return "reject:" + "+".join(f"{k}={_short(v)}" for k, v in self.deviations.items())


_NAME_ALIAS = {"web_ui": "web", "socketio": "sio", "kubernetes": "k8s", "python_version": "py"}
_VALUE_ALIAS = {"postgresql": "pg", "github": "gh", "v1+v2": "v1v2", True: "on", False: "off"}


def _short(value: Any) -> str:
    return str(_VALUE_ALIAS.get(value, value)).lower()


def combination_id(answers: Mapping[str, Any]) -> str:
    """``py311+web+api:v1v2+pg+celery:rabbitmq+sio:gevent+docker+k8s+gh``.

    A bool shows when on; a choice asked only when a bool is on joins that bool's token; other
    choices always show (``none`` as ``no<name>``, numbers after the name: ``py311``).
    """
    space = option_space()
    tokens: dict[str, str] = {}
    for option in space.options:
        if option.name not in answers:
            continue
        value = answers[option.name]
        alias = _NAME_ALIAS.get(option.name, option.name)
        parent = _parent_bool(option)
        if option.is_bool:
            if value:
                tokens[option.name] = alias
        elif parent and parent in tokens:
            tokens[parent] += ":" + _short(value)
        elif value == "none":
            tokens[option.name] = "no" + alias
        elif re.fullmatch(r"[\d.]+", str(value)):
            tokens[option.name] = alias + str(value).replace(".", "")
        else:
            tokens[option.name] = _short(value)
    return "+".join(tokens.values())


def _parent_bool(option: Option) -> str | None:
    match = re.fullmatch(r"\{\{\s*(\w+)\s*\}\}", str(option.question.when))
    return match.group(1) if match else None


def _enumerate(space: OptionSpace) -> Iterator[dict[str, Any]]:
    """Every combination of the answers that matter (inactive sub-options not branched on)."""

    def walk(index: int, partial: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if index == len(space.options):
            yield dict(partial)
            return
        option = space.options[index]
        context = {**FIXED_ANSWERS, **space.defaults(), **partial}
        if not option.active(context):
            yield from walk(index + 1, partial)
            return
        for value in option.values:
            partial[option.name] = value
            yield from walk(index + 1, partial)
            del partial[option.name]

    yield from walk(0, {})


def _pairs(answers: Mapping[str, Any]) -> Iterator[tuple[tuple[str, Any], tuple[str, Any]]]:
    yield from itertools.combinations(answers.items(), 2)


@dataclass
class Matrix:
    valid: list[Combination]
    rejected: list[Rejected]
    universe: set  # every pair of values of two questions that some valid combination has


@cache
def build_matrix() -> Matrix:
    space = option_space()
    chosen: dict[tuple, Combination] = {}
    rejected: dict[str, Rejected] = {}

    def reject(raw: Mapping[str, Any], errors: list[str], source: str) -> None:
        # One example per message: the one closest to the defaults.
        candidate = Rejected(dict(raw), errors, source)
        key = " | ".join(errors)
        known = rejected.get(key)
        if known is None or len(candidate.deviations) < len(known.deviations):
            rejected[key] = candidate

    def add(raw: Mapping[str, Any], source: str) -> None:
        errors = space.validation_errors(raw)
        if errors:
            reject(raw, errors, source)
            return
        combination = Combination(space.context(raw)[1])
        chosen.setdefault(combination.key, combination).sources.append(source)

    defaults = space.defaults()
    add({}, "defaults")
    # All off / all on: every bool off / on; choices at their default ("none" for all off, not
    # "none" for all on), or as close to it as the validators allow (e.g. kubernetes needs
    # postgresql).
    for source, flag in (("all-off", False), ("all-on", True)):
        preferred = {}
        for o in space.options:
            if o.is_bool:
                preferred[o.name] = [flag]
            else:
                first = "none" if (not flag and "none" in o.values) else o.default
                if flag and first == "none":
                    first = next(v for v in o.values if v != "none")
                preferred[o.name] = [first, *(v for v in o.values if v != first)]
        candidates = [
            dict(zip(preferred, values, strict=True))
            for values in itertools.product(*preferred.values())
        ]
        candidates.sort(key=lambda raw: sum(raw[k] != preferred[k][0] for k in raw))
        valid = next((raw for raw in candidates if not space.validation_errors(raw)), None)
        add(valid or candidates[0], source)
    for name in preset_names():
        add(load_preset(name), f"preset:{name}")
    for option in space.options:
        if option.is_bool:
            add({option.name: not defaults[option.name]}, f"toggle:{option.name}")

    # Every valid combination, and combinations the validators reject.
    pool: list[dict[str, Any]] = []
    for answers in _enumerate(space):
        errors = space.validation_errors(answers)
        if errors:
            reject(answers, errors, "enumerated")
        else:
            pool.append(answers)
    # An answer given for a question that does not apply is still validated by Copier.
    for answers in [dict(c.answers) for c in chosen.values()] + pool:
        context = space.context(answers)[0]
        for option in space.options:
            if option.name in answers or option.active(context):
                continue
            for value in option.values:
                if value != option.default:
                    raw = {**answers, option.name: value}
                    errors = space.validation_errors(raw)
                    if errors:
                        reject(raw, errors, "forced")

    # Greedy pairwise cover over the valid pool, starting from what the named ones cover.
    index: dict[tuple, int] = {}
    masks = []
    for answers in pool:
        mask = 0
        for pair in _pairs(answers):
            mask |= 1 << index.setdefault(pair, len(index))
        masks.append(mask)
    covered = 0
    for combination in chosen.values():
        for pair in _pairs(combination.answers):
            covered |= 1 << index[pair]
    everything = (1 << len(index)) - 1
    number = 0
    while covered != everything:
        best = max(range(len(pool)), key=lambda i: (masks[i] & ~covered).bit_count())
        covered |= masks[best]
        number += 1
        combination = Combination(dict(pool[best]))
        chosen.setdefault(combination.key, combination).sources.append(f"pairwise#{number}")
    return Matrix(list(chosen.values()), list(rejected.values()), set(index))


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
        deps=("bootstrap-flask", "email-validator", "flask-login", "flask-wtf", "wtforms"),
        words=(r"bootstrap", r"flask[-_]login", r"flask[-_]wtf", r"login_manager"),
    ),
    Markers(
        "api",
        imports=("flask_smorest", "marshmallow", "apispec"),
        deps=("flask-smorest", "marshmallow", "apispec"),
        words=(r"smorest", r"marshmallow", r"openapi", r"/api\b"),
    ),
    Markers("api and api_versions == 'v1+v2'", words=(r"/api/v2\b", r"\bapi[._]v2\b")),
    Markers(
        "database == 'postgresql'",
        imports=("psycopg", "psycopg2"),
        deps=("psycopg", "psycopg2", "psycopg2-binary"),
        words=(r"postgres", r"psycopg"),
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
FLASK_TEMPLATES = re.compile(rf"^{SLUG}/templates/.+\.html$")
_JINJA = re.compile(r"\{\{|\{%|\{#")
# Not Jinja: GitHub Actions expressions, Go templates (docker inspect, helm).
_LEGIT_JINJA_LIKE = {
    re.compile(r"^\.github/workflows/[^/]+\.ya?ml$"): re.compile(r"\$\{\{.*?\}\}"),
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
    # Flask's templates must arrive byte for byte (never rendered by Copier).
    source = {}
    for path in template_root.rglob("*.html"):
        rel = path.relative_to(template_root).as_posix()
        source[re.sub(r"\{%.*?%\}(.*?)\{%.*?%\}", r"\1", rel).replace("{{project_slug}}", SLUG)] = (
            path.read_bytes()
        )
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


_SECRET_LINE = re.compile(r"(?i)((?:secret|token|password|passwd|key)\w*\s*[:=]\s*)\S+")


def check_reproducible(first: Path, second: Path) -> None:
    a, b = project_files(first), project_files(second)
    problems = [f"only in one render: {rel}" for rel in sorted(set(a) ^ set(b))]
    for rel in sorted(set(a) & set(b)):
        if a[rel] == b[rel]:
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


# --------------------------------------------------------------------------- summary plugin

_results: dict[str, dict[str, str]] = {}


def record(user_properties: list, combination: str, results: Mapping[str, str]) -> None:
    user_properties.append(("matrix", json.dumps({"id": combination, "checks": dict(results)})))


def pytest_runtest_logreport(report) -> None:
    for name, value in getattr(report, "user_properties", ()):
        if name == "matrix":
            data = json.loads(value)
            _results[data["id"]] = data["checks"]


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not _results or hasattr(config, "workerinput"):
        return
    columns = [*CHECKS, "secs"]
    width = max(len(i) for i in _results)
    tr = terminalreporter
    tr.section(f"option matrix: {len(_results)} combinations x {len(CHECKS)} checks")
    tr.write_line(" " * width + "  " + " ".join(f"{c:>9}" for c in columns))
    order = {c.id: n for n, c in enumerate(build_matrix().valid)}
    for combination in sorted(_results, key=lambda i: order.get(i, len(order))):
        checks = _results[combination]
        cells = [checks.get(c, "-") for c in columns]
        tr.write_line(f"{combination:<{width}}  " + " ".join(f"{c:>9}" for c in cells))
    failed = sum(any(v == "FAIL" for v in c.values()) for c in _results.values())
    tr.write_line(f"{len(_results) - failed} green, {failed} with failures")
