"""The option space: which answer combinations the matrix renders, all derived from ``copier.yml``.

The combinations: the defaults, all off, all on, each preset, each boolean toggled alone, and
a greedy pairwise-covering set; plus the combinations the validators must reject.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from jinja2.sandbox import SandboxedEnvironment

from flaskscale_gen.questions import Question, load_preset, load_questions, preset_names
from support.rendering import REPO, template_extension

# String answers are fixed: the matrix varies what can be switched, not free text.
FIXED_ANSWERS = {"project_name": "Matrix Demo", "project_slug": "matrix_demo"}
SLUG = FIXED_ANSWERS["project_slug"]

CHECKS = (
    "render", "jinja", "leftovers", "secrets", "ruff", "bandit", "deptry", "tests", "deploy",
    "repro", "lock", "mypy", "pre-commit",
)  # fmt: skip

# Free-text answers the matrix varies all the same: one language, and several.
SAMPLED = {"languages": ("en", "en,es,de")}


def _environment() -> SandboxedEnvironment:
    """Jinja with the template's own filters (extensions/), as Copier loads them."""
    environment = SandboxedEnvironment()
    template_extension("slugs").SlugExtension(environment)
    template_extension("languages").LanguagesExtension(environment)
    return environment


_jinja = _environment()


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
        return SAMPLED.get(self.name) or tuple(self.question.choices.values())

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
        elif question.type == "bool" or question.choices or name in SAMPLED:
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
