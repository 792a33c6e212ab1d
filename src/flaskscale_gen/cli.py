"""The ``flaskscale`` command line: parsing and messages only."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from flaskscale_gen import __version__
from flaskscale_gen.errors import FlaskscaleError
from flaskscale_gen.generate import new_project
from flaskscale_gen.questions import (
    load_preset,
    load_questions,
    load_yaml_answers,
    parse_data_options,
    preset_names,
    validate_answers,
)
from flaskscale_gen.template_source import template_root

app = typer.Typer(
    name="flaskscale",
    help="Generate production-ready Flask projects that scale, and keep them up to date.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


def version_callback(value: bool) -> None:
    if value:
        out.print(f"flaskscale {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=version_callback, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Generate production-ready Flask projects that scale, and keep them up to date."""


def collect_answers(preset: str | None, answers_file: Path | None, data: list[str]) -> dict:
    """Answers from a preset, then an answers file, then --data: later ones win."""
    questions = load_questions(template_root())
    answers: dict[str, Any] = {}
    if preset:
        answers |= validate_answers(questions, load_preset(preset), f"preset {preset}")
    if answers_file:
        answers |= validate_answers(
            questions, load_yaml_answers(answers_file, "--answers-file"), str(answers_file)
        )
    answers |= validate_answers(questions, parse_data_options(data), "--data")
    return answers


@app.command(
    epilog=(
        "[bold]Examples[/]\n\n"
        "  flaskscale new myapp                       # answer the questions\n\n"
        "  flaskscale new myapp -y                    # take every default\n\n"
        "  flaskscale new myapp --preset full -y --data database=sqlite\n\n"
        "  flaskscale new myapp --answers-file answers.yml --pretend"
    )
)
def new(
    dest: Annotated[Path, typer.Argument(help="Folder to create (must not exist, or be empty).")],
    defaults: Annotated[
        bool, typer.Option("--defaults", "-y", help="Ask nothing: take defaults for the rest.")
    ] = False,
    data: Annotated[
        list[str],
        typer.Option("--data", "-d", metavar="KEY=VALUE", help="Answer one question (repeatable)."),
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
    preset: Annotated[
        str | None,
        typer.Option(
            help=f"A named answer set: {', '.join(preset_names())}. --data overrides it.",
            autocompletion=preset_names,
        ),
    ] = None,
    answers_file: Annotated[
        Path | None,
        typer.Option("--answers-file", help="Answers from a YAML file (question: answer)."),
    ] = None,
    pretend: Annotated[
        bool, typer.Option("--pretend", help="Show what would be written; write nothing.")
    ] = False,
    git: Annotated[
        bool, typer.Option("--git/--no-git", help="Make the project a git repo with one commit.")
    ] = True,
) -> None:
    """Create a new Flask project in DEST."""
    try:
        answers = collect_answers(preset, answers_file, data)
        if not defaults and not sys.stdin.isatty():
            raise FlaskscaleError(
                "no terminal to ask the questions on: pass --defaults (-y), with --data for answers"
            )
        result = new_project(dest, answers, defaults=defaults, git=git, pretend=pretend)
    except FlaskscaleError as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        raise fail("interrupted: nothing was written") from None

    if pretend:
        out.print(f"Would create {result.dest} with {len(result.files)} files:")
        for name in result.files:
            out.print(f"  {name}", markup=False, highlight=False)
        out.print("Nothing was written (--pretend).")
        return
    slug = result.answers["project_slug"]
    repo = ", a git repository with one commit" if result.committed else ""
    out.print(f"Created {result.answers['project_name']!r} in {result.dest}{repo}.")
    out.print("Next steps:", highlight=False)
    for step in (
        f"cd {result.dest}",
        "python -m venv .venv && . .venv/bin/activate",
        "pip install -e '.[dev]'",
        f"flask --app {slug} db upgrade",
        f"flask --app {slug} run      # then open http://127.0.0.1:5000/healthz",
        "pytest",
    ):
        out.print(f"  {step}", markup=False, highlight=False)


@app.command(epilog="[bold]Example[/]\n\n  flaskscale options")
def options() -> None:
    """List every question: type, default, choices, help, and when it is asked."""
    try:
        questions = load_questions(template_root())
    except FlaskscaleError as exc:
        raise fail(str(exc)) from None
    table = Table(title="flaskscale questions (answer with --data KEY=VALUE)")
    for column in ("name", "type", "default", "choices"):
        table.add_column(column, no_wrap=True)
    table.add_column("help", overflow="fold", ratio=1)
    table.add_column("asked when", no_wrap=True)
    for q in questions.values():
        if q.computed:
            continue
        default = str(q.default).strip() if q.default is not None else ""
        if "_copier_conf.dst_path" in default:
            default = "folder name"
        elif "{" in default:
            default = "from project_name"
        table.add_row(
            q.name,
            q.type,
            default,
            ", ".join(str(v) for v in q.choices.values()),
            q.help,
            q.condition,
        )
    out.print(table)
