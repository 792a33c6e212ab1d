"""The template's questions, read from ``copier.yml``, and validation of answers given up front.

Copier checks answers too, but only as it reaches each question; checking keys, types and
choices here first means a typo fails at once, before anything is asked or written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flaskscale_gen.errors import FlaskscaleError

PRESETS_DIR = Path(__file__).resolve().parent / "presets"
# libyaml's loader when PyYAML has it: copier.yml takes ~40 ms in the pure-Python one, on
# every run of `flaskscale new`, before Copier reads it again.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TRUE = {"true", "yes", "y", "on", "1"}
_FALSE = {"false", "no", "n", "off", "0"}


@dataclass(frozen=True)
class Question:
    name: str
    type: str
    help: str
    default: Any
    choices: dict[str, Any] = field(default_factory=dict)  # label -> value
    when: Any = True

    @property
    def computed(self) -> bool:
        """A value derived from other answers, never asked and never set."""
        return self.when is False

    @property
    def condition(self) -> str:
        """The answer that makes this question apply, for people to read."""
        if self.when is True:
            return "always"
        if self.when is False:
            return "never (computed)"
        return str(self.when).replace("{{", "").replace("}}", "").strip() + " is true"

    def parse(self, raw: Any, source: str) -> Any:
        """Cast a raw answer to this question's type, or explain what is wrong with it."""
        value: Any = raw
        if self.type == "bool":
            if isinstance(raw, bool):
                value = raw
            elif str(raw).strip().lower() in _TRUE:
                value = True
            elif str(raw).strip().lower() in _FALSE:
                value = False
            else:
                raise FlaskscaleError(
                    f"{source}: {self.name}={raw} is not a boolean: use {self.name}=true or false"
                )
        elif self.type == "int":
            try:
                value = int(raw)
            except (TypeError, ValueError):
                raise FlaskscaleError(
                    f"{source}: {self.name}={raw} is not a whole number"
                ) from None
        else:
            value = "" if raw is None else str(raw)
        if self.choices and value not in self.choices.values():
            allowed = ", ".join(str(v) for v in self.choices.values())
            raise FlaskscaleError(f"{source}: {self.name}={raw} is not one of: {allowed}")
        return value


def _choices(raw: Any) -> dict[str, Any]:
    if isinstance(raw, Mapping):
        return {str(label): value for label, value in raw.items()}
    if isinstance(raw, list):
        return {str(value): value for value in raw}
    return {}


def load_questions(template_root: Path) -> dict[str, Question]:
    """Every question in ``copier.yml``, in order (settings starting with ``_`` left out)."""
    config = yaml.load((template_root / "copier.yml").read_text(encoding="utf-8"), _YAML_LOADER)
    questions = {}
    for name, spec in config.items():
        if name.startswith("_"):
            continue
        questions[name] = Question(
            name=name,
            type=spec.get("type", "str"),
            help=spec.get("help", ""),
            default=spec.get("default"),
            choices=_choices(spec.get("choices")),
            when=spec.get("when", True),
        )
    return questions


def parse_data_options(pairs: Iterable[str]) -> dict[str, str]:
    """``KEY=VALUE`` strings from ``--data`` as a dict."""
    data = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise FlaskscaleError(
                f"--data {pair!r} is not KEY=VALUE: write e.g. --data celery=true"
            )
        data[key.strip()] = value
    return data


def validate_answers(
    questions: Mapping[str, Question], answers: Mapping[str, Any], source: str
) -> dict[str, Any]:
    """Answers cast to their questions' types; unknown or computed keys are refused."""
    valid = {}
    for key, raw in answers.items():
        question = questions.get(key)
        if question is None:
            raise FlaskscaleError(
                f"{source}: unknown question {key!r}: "
                "run 'flaskscale options' to list the questions"
            )
        if question.computed:
            raise FlaskscaleError(
                f"{source}: {key!r} is computed from other answers and cannot be set: drop it"
            )
        valid[key] = question.parse(raw, source)
    return valid


def preset_names() -> list[str]:
    return sorted(path.stem for path in PRESETS_DIR.glob("*.yml"))


def load_yaml_answers(path: Path, source: str) -> dict[str, Any]:
    """A YAML mapping of answers (a preset or an ``--answers-file``)."""
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), _YAML_LOADER)
    except OSError as exc:
        raise FlaskscaleError(f"{source}: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise FlaskscaleError(
            f"{source}: {path} is not valid YAML{where}: fix the file's syntax"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise FlaskscaleError(f"{source}: {path} must hold a mapping of question: answer")
    # Copier's own answers files carry private keys (_src_path, _commit): ignore them.
    return {str(k): v for k, v in data.items() if not str(k).startswith("_")}


def load_preset(name: str) -> dict[str, Any]:
    path = PRESETS_DIR / f"{name}.yml"
    if not path.is_file():
        known = ", ".join(preset_names())
        raise FlaskscaleError(f"unknown preset {name!r}: use one of {known}")
    return load_yaml_answers(path, f"preset {name}")
