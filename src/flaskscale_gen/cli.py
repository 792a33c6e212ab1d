"""The ``flaskscale`` command line: parsing and messages only."""

from __future__ import annotations

import functools
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

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
from flaskscale_gen.template_source import installed_template_version, template_root
from flaskscale_gen.update import apply_update, planned_update
from flaskscale_gen.versions import list_versions

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(
    name="flaskscale",
    help="Generate production-ready Flask projects that scale, and keep them up to date.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


@functools.cache
def console(stderr: bool = False) -> Console:
    """Rich's console on stdout or stderr, made on first use: Rich takes ~0.1 s to import, and
    ``new`` prints plain lines only (``typer.echo``)."""
    from rich.console import Console

    return Console(stderr=True) if stderr else Console(soft_wrap=True)


def fail(message: str) -> typer.Exit:
    console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


class Conflict(StrEnum):
    inline = "inline"
    rej = "rej"


def version_callback(value: bool) -> None:
    if value:
        try:
            template = installed_template_version()
        except FlaskscaleError as exc:
            raise fail(str(exc)) from None
        console().print(f"flaskscale {__version__} (template {template})", highlight=False)
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
        typer.echo(f"Would create {result.dest} with {len(result.files)} files:")
        for name in result.files:
            typer.echo(f"  {name}")
        typer.echo("Nothing was written (--pretend).")
        return
    slug = result.answers["project_slug"]
    repo = ", a git repository with one commit" if result.committed else ""
    typer.echo(
        f"Created {result.answers['project_name']!r} in {result.dest}{repo}, "
        f"from template {result.source.installed}."
    )
    if result.source.uncommitted_in:
        typer.echo(
            f"warning: {result.source.uncommitted_in} has uncommitted template changes: not in "
            f"the project (template {result.source.installed} is its last commit)",
            err=True,
        )
    # uv.lock is there when uv was found at generation (copier.yml's task): uv runs the project.
    locked = (result.dest / "uv.lock").is_file()
    pip = "python -m venv .venv && . .venv/bin/activate && pip install -e '.[dev]'"
    run = "uv run " if locked else ""
    typer.echo("Next steps:")
    for step in (
        f"cd {result.dest}",
        *([] if locked else [pip]),
        f"{run}flask --app {slug} db upgrade",
        f"{run}flask --app {slug} run      # then open http://127.0.0.1:5000/healthz",
        f"{run}pytest",
    ):
        typer.echo(f"  {step}")
    if locked:
        typer.echo(f"Without uv: {pip}, then the same commands without `uv run`.")


@app.command(epilog="[bold]Example[/]\n\n  flaskscale options")
def options() -> None:
    """List every question: type, default, choices, help, and when it is asked."""
    try:
        questions = load_questions(template_root())
    except FlaskscaleError as exc:
        raise fail(str(exc)) from None
    from rich.console import Console
    from rich.table import Table

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
    # Piped output is not cut to 80 columns: wide enough for every help text on one line.
    Console(width=None if sys.stdout.isatty() else 220).print(table)


@app.command(epilog="[bold]Example[/]\n\n  flaskscale versions")
def versions() -> None:
    """List the template versions this flaskscale can update to, with what each changed."""
    try:
        rows = list_versions()
    except FlaskscaleError as exc:
        raise fail(str(exc)) from None
    width = max(len(row.name) for row in rows)
    for row in rows:
        mark = " (installed)" if row.installed else ""
        console().print(f"{row.name:<{width}}  {row.summary}{mark}", markup=False, highlight=False)


@app.command(
    epilog=(
        "[bold]Examples[/]\n\n"
        "  flaskscale update                  # this folder, to this flaskscale's version\n\n"
        "  flaskscale update myapp --to 0.3.0 --pretend\n\n"
        "  flaskscale update --defaults --data celery=true   # turn Celery on, ask nothing"
    )
)
def update(
    path: Annotated[
        Path, typer.Argument(help="The project folder (a git repo with a clean tree).")
    ] = Path("."),
    to: Annotated[
        str | None,
        typer.Option("--to", metavar="VERSION", help="Template version (default: this one)."),
    ] = None,
    data: Annotated[
        list[str],
        typer.Option("--data", "-d", metavar="KEY=VALUE", help="Change one answer (repeatable)."),
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
    conflict: Annotated[
        Conflict,
        typer.Option(help="Conflicts as markers in the file (inline) or beside it (.rej files)."),
    ] = Conflict.inline,
    pretend: Annotated[
        bool, typer.Option("--pretend", help="Show what would change; change nothing.")
    ] = False,
    defaults: Annotated[
        bool,
        typer.Option("--defaults", "-y", help="Keep the previous answers; ask nothing."),
    ] = False,
) -> None:
    """Update a generated project to a newer template version, keeping your edits."""
    say = functools.partial(console().print, soft_wrap=True, highlight=False)
    try:
        questions = load_questions(template_root())
        answers = validate_answers(questions, parse_data_options(data), "--data")
        with planned_update(path, to=to, data=answers) as plan:
            if not defaults and not sys.stdin.isatty():
                raise FlaskscaleError(
                    "no terminal to ask the questions on: pass --defaults (-y) to keep your answers"
                )
            outcome = apply_update(
                plan, conflict=conflict.value, defaults=defaults, pretend=pretend
            )
    except FlaskscaleError as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        raise fail("interrupted: the project was put back as it was") from None

    verb = "Would update" if pretend else "Updated"
    say(
        f"{verb} {plan.project} from {plan.from_commit} to {outcome.to_commit}: "
        f"{len(outcome.changed)} files changed.",
        highlight=False,
    )
    for line in outcome.changed:
        say(f"  {line}", markup=False, highlight=False)
    if pretend:
        if outcome.conflicts or outcome.rejects:
            clashes = ", ".join(outcome.conflicts + outcome.rejects)
            say(f"It would leave conflicts in: {clashes}", markup=False, highlight=False)
        say("Nothing was changed (--pretend).")
        return
    if outcome.conflicts:
        say(f"Conflicts in {len(outcome.conflicts)} files (your lines and the template's):")
        for name in outcome.conflicts:
            say(f"  {name}", markup=False, highlight=False)
        say(
            "Next: in each file keep what you want between '<<<<<<< before updating' and "
            "'>>>>>>> after updating', delete the markers, run the tests, then commit:",
            markup=False,
        )
    elif outcome.rejects:
        say(f"Changes that did not apply, in {len(outcome.rejects)} .rej files:")
        for name in outcome.rejects:
            say(f"  {name}", markup=False, highlight=False)
        say(
            "Next: apply each .rej by hand to the file beside it, delete the .rej files, "
            "run the tests, then commit:",
            markup=False,
        )
    elif outcome.changed:
        say("Next: review with 'git diff', run the tests, then commit:", markup=False)
    else:
        say("Already up to date: nothing changed.")
        return
    say(
        f"  git add -A && git commit -m 'Update to flaskscale template {outcome.to_commit}'",
        markup=False,
        highlight=False,
    )
    say("  (or undo everything with: git reset --hard && git clean -fd)", markup=False)
    # The template never changes uv.lock: the owner's pins stay until they lock again.
    if "M pyproject.toml" in outcome.changed and (plan.project / "uv.lock").is_file():
        say("pyproject.toml changed: run 'make lock' to pin its dependencies in uv.lock.")
