"""Languages: the ``languages`` answer's check, the projects' message catalogues, and one
source for the template's strings whether a project has one language or several.

Loaded through copier-template-extensions (``_jinja_extensions`` in ``copier.yml``).

**One source, two renderings.** The template writes every user-facing string once, marked the
way a Flask-Babel project marks it: ``_("Log in")`` in Python, ``{{ _("Log in") }}`` in a page.
A project with several languages gets that source as it is. A project with one language gets
no trace of translation: :func:`plain_python` and :func:`plain_html` write each mark out to the
string it holds (``_("Hi %(name)s", name=n)`` becomes ``f"Hi {n}"`` in Python and
``Hi {{ n }}`` in a page). In pages, a line ending in ``{# i18n #}`` is kept only with several
languages, one ending in ``{# one language #}`` only with one. A mark neither can write out
fails the render, naming the file.

Pages (``*.html.jinja``) are Flask's Jinja, not Copier's: they are rendered raw.

**Catalogues.** ``catalogues/messages.pot`` holds every string of the template, each with the
template files it appears in; ``catalogues/<locale>.po`` its translations. A project's
catalogue keeps the strings of the files it has (a file's path is rendered to see whether it
exists), so no option that is off leaves a string behind. Regenerate after changing strings:
``python extensions/languages.py`` (extracts, then merges into every ``<locale>.po``).
"""

from __future__ import annotations

import ast
import html
import io
import re
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, TemplateSyntaxError, pass_context
from jinja2.ext import Extension
from jinja2.runtime import Context

CATALOGUES = Path(__file__).resolve().parent / "catalogues"
ROOT = Path(__file__).resolve().parents[1]
SOURCE = "en"  # the language the template's strings are written in
# A fixed date in the projects' catalogue headers: re-rendering one gives the same file, so
# `copier update` shows no change where there is none.
HEADER_DATE = datetime(2026, 12, 1, tzinfo=UTC)

_STRING = r'"(?:[^"\\\n]|\\.)*"' + r"|'(?:[^'\\\n]|\\.)*'"
_STRING_RE = re.compile(_STRING)
_MARK = re.compile(r"(?<![\w.])_l?\(")
_PAGE_MARK = re.compile(
    r"\{\{\s*_\(\s*(?P<text>" + _STRING + r")(?P<args>(?:\s*,\s*\w+\s*=\s*[^,(){}]+?)*)\s*\)\s*\}\}"
)
_PAGE_STRING = re.compile(r"(?<![\w.])_\(\s*(?P<text>" + _STRING + r")\s*\)")
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


# -- the answer ------------------------------------------------------------------------------


def locale_list(languages: str) -> list[str]:
    """``"en, es,de"`` -> ``["en", "es", "de"]``."""
    return [code.strip() for code in str(languages).split(",") if code.strip()]


def locale_problem(languages: str) -> str:
    """What is wrong with the ``languages`` answer, and the fix; empty when nothing."""
    codes = locale_list(languages)
    example = "e.g. --data languages=en,es,de"
    if not codes:
        return f"languages is empty: give comma-separated locale codes, {example}"
    if codes == [SOURCE]:
        return ""
    try:
        from babel.localedata import locale_identifiers
    except ImportError:
        return (
            "languages other than en need Babel beside Copier to check the codes: "
            "pipx inject copier babel (flaskscale installs it)"
        )
    known = set(locale_identifiers())
    for code in codes:
        if code not in known:
            hint = code.replace("-", "_") if code.replace("-", "_") in known else ""
            fix = f'write "{hint}"' if hint else "use a locale Babel knows, such as es, de, pt_BR"
            return f'languages: "{code}" is not a locale code: {fix}, {example}'
    if len(set(codes)) != len(codes):
        return f'languages "{languages}" names a language twice: {example}'
    if SOURCE not in codes:
        return (
            f'languages "{languages}" leaves out en, the language the strings are written in '
            f"and every language falls back to: add it, e.g. --data languages={languages},en"
        )
    return ""


# -- one source, two renderings ----------------------------------------------------------------


def _call_end(source: str, start: int) -> int:
    """The index just past the ``)`` closing the call whose ``(`` is at ``start - 1``."""
    depth, i = 1, start
    while i < len(source):
        char = source[i]
        if char in "\"'":
            match = _STRING_RE.match(source, i)
            if not match:
                raise ValueError("an unterminated string")
            i = match.end()
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        i += 1
        if depth == 0:
            return i
    raise ValueError("an unclosed call")


def _split_arguments(text: str) -> list[str]:
    """Top-level comma-separated parts of ``text`` (the inside of a call)."""
    parts, depth, current, i = [], 0, "", 0
    while i < len(text):
        char = text[i]
        if char in "\"'":
            match = _STRING_RE.match(text, i)
            current += match.group()
            i = match.end()
            continue
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(char, 0)
            current += char
        i += 1
    if current.strip():
        parts.append(current)
    return parts


def _python_string(arguments: str) -> str:
    """The Python that ``_(arguments)`` means in a project with one language."""
    text, *named = _split_arguments(arguments)
    if not re.fullmatch(r"\s*(?:(?:" + _STRING + r")\s*)+", text):
        raise ValueError(f"_({arguments.strip()}): the text is not a string literal")
    if not named:
        return text.strip()
    values = {}
    for part in named:
        key, _, expression = part.partition("=")
        values[key.strip()] = expression.strip()

    def to_fstring(literal: re.Match[str]) -> str:
        piece = literal.group()
        if not _PLACEHOLDER.search(piece):
            return piece
        quote = piece[0]
        body = piece[1:-1].replace("{", "{{").replace("}", "}}")

        def value(match: re.Match[str]) -> str:
            expression = values[match.group(1)]
            if quote in expression:
                raise ValueError(f"{expression}: a quote like the string's own")
            return "{" + expression + "}"

        return "f" + quote + _PLACEHOLDER.sub(value, body).replace("%%", "%") + quote

    return _STRING_RE.sub(to_fstring, text.strip())


def plain_python(source: str) -> str:
    """``source`` with its marks written out to the strings they hold."""
    # A group of flask_babel imports alone goes with the blank line that ended it.
    source = re.sub(r"(?<=\n\n)(?:from flask_babel import .*\n)+\n", "", source)
    source = re.sub(r"^from flask_babel import .*\n", "", source, flags=re.MULTILINE)
    out, position = [], 0
    for match in _MARK.finditer(source):
        if match.start() < position:
            continue  # inside a call already written out
        end = _call_end(source, match.end())
        if not source[match.end() : end - 1].strip():
            continue  # ``_()`` named in prose
        out.append(source[position : match.start()])
        string = _python_string(source[match.end() : end - 1])
        # An exploded call's lines were indented one level more than the call: no longer.
        line_start = source.rfind("\n", 0, match.start()) + 1
        indent = source[line_start : match.start()]
        if not indent.strip():
            string = re.sub(r"\n" + indent + "    ", "\n" + indent, string)
        out.append(string)
        position = end
    out.append(source[position:])
    return "".join(out)


def _page_lines(source: str, keep: str, drop: str) -> str:
    lines = [
        line
        for line in source.splitlines(keepends=True)
        if line.rstrip().endswith(keep) or not line.rstrip().endswith(drop)
    ]
    return "".join(re.sub(r"\s*" + re.escape(keep) + r"(?=\n|$)", "", line) for line in lines)


def plain_html(source: str) -> str:
    """A page's ``source`` with its marks written out, for a project with one language."""
    source = _page_lines(source, "{# one language #}", "{# i18n #}")

    def text(match: re.Match[str]) -> str:
        literal = html.escape(ast.literal_eval(match.group("text")), quote=False)
        pairs = [part.split("=", 1) for part in match.group("args").split(",") if "=" in part]
        values = {key.strip(): value.strip() for key, value in pairs}
        return _PLACEHOLDER.sub(lambda m: "{{ " + values[m.group(1)] + " }}", literal)

    source = _PAGE_MARK.sub(text, source)
    return _PAGE_STRING.sub(lambda match: match.group("text"), source)


def marked_html(source: str) -> str:
    """A page's ``source`` for a project with several languages."""
    return _page_lines(source, "{# i18n #}", "{# one language #}")


# -- catalogues --------------------------------------------------------------------------------


def _exists(path: str, render: Callable[[str], str]) -> str | None:
    """The project path of the template file ``path``, or None when the answers leave it out."""
    parts = [render(part).removesuffix(".jinja") for part in path.split("/")[1:]]  # no template/
    return None if "" in parts else "/".join(parts)


def _holds(message: Any, location: str, render: Callable[[str], str]) -> bool:
    """Whether the Copier condition of a string at ``location`` holds (no condition: yes)."""
    for comment in message.auto_comments:
        if comment.startswith(f"when {location}: "):
            return render("{{ " + comment.split(": ", 1)[1] + " }}") == "True"
    return True


@pass_context
def catalogue(context: Context, locale: str | None = None) -> str:
    """The project's ``messages.pot`` (``locale`` None) or its ``<locale>`` catalogue.

    Only the strings of the files this project has; translations where the template has them
    (``catalogues/<locale>.po``), else empty ones: those strings show in English.
    """
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import read_po, write_po

    answers = context.get_all()

    @cache  # the same folders and conditions come up for string after string
    def render(text: str) -> str:
        return context.environment.from_string(text).render(answers)

    with open(CATALOGUES / "messages.pot", encoding="utf-8") as file:
        template = read_po(file)
    translated_path = CATALOGUES / f"{locale}.po"
    translated = None
    if locale and translated_path.exists():
        with open(translated_path, encoding="utf-8") as file:
            translated = read_po(file)
    name = context.get("project_name")
    project = Catalog(
        locale=locale,
        project=name,
        version="",
        creation_date=HEADER_DATE,
        revision_date=HEADER_DATE,
        fuzzy=False,
        header_comment=f"# {'Translations' if locale else 'Strings'} of {name}.\n",
    )
    project.msgid_bugs_address = ""
    project.last_translator = ""
    project.language_team = ""
    for message in template:
        if not message.id:
            continue
        locations = [
            (rendered, None)
            for source, line in message.locations
            if _holds(message, f"{source}:{line}", render) and (rendered := _exists(source, render))
        ]
        if not locations:
            continue
        string = translated[message.id].string if translated and message.id in translated else ""
        project.add(
            message.id, string, locations=sorted(set(locations)), flags=message.flags - {"fuzzy"}
        )
    out = io.BytesIO()
    write_po(out, project, sort_by_file=True, include_lineno=False, omit_header=locale is None)
    return out.getvalue().decode("utf-8")


class LanguagesExtension(Extension):
    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["locale_list"] = locale_list
        environment.filters["locale_problem"] = locale_problem
        environment.globals["catalogue"] = catalogue

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        if not name:
            return source
        name = re.sub(r"\{%.*?%\}", "", name)  # "{% if i18n %}page.html{% endif %}.jinja"
        try:
            if name.endswith(".html.jinja"):
                return (
                    "{% if i18n %}{% raw %}" + marked_html(source) + "{% endraw %}"
                    "{% else %}{% raw %}" + plain_html(source) + "{% endraw %}{% endif %}"
                )
            if name.endswith(".py.jinja") and _MARK.search(source):
                return (
                    "{% if i18n %}" + source + "{% else %}" + plain_python(source) + "{% endif %}"
                )
        except (ValueError, KeyError) as error:
            raise TemplateSyntaxError(
                f"a translation mark flaskscale cannot write out: {error}", 1, name, filename
            ) from None
        return source


# -- keeping the template's catalogues current --------------------------------------------------


def _python_in_template(fileobj, keywords, comment_tags, options):
    """Babel's Python extraction, on a template of Python: Copier's tags are taken out first
    (a line holding only a tag is left empty, so line numbers stay; an inline one becomes a
    name), so that the tokenizer reads Python."""
    from babel.messages.extract import extract_python

    source = fileobj.read().decode("utf-8")
    conditions = _line_conditions(source)
    source = re.sub(r"^[ \t]*\{[%#].*?[%#]\}[ \t]*$", "", source, flags=re.MULTILINE)
    source = re.sub(r"\{%.*?%\}|\{\{.*?\}\}", "x", source)
    for line, function, message, comments in extract_python(
        io.BytesIO(source.encode()), keywords, comment_tags, options
    ):
        when = conditions[line - 1]
        yield line, function, message, [*comments, f"when: {when}"] if when else comments


_TAG = re.compile(r"\{%-?\s*(if|elif|else|endif)\b(.*?)-?%\}")


def _line_conditions(source: str) -> list[str]:
    """For each line of a template, the Copier condition it is rendered under ("" if always)."""
    stack: list[tuple[list[str], str]] = []  # per open block: earlier branches, this one's
    conditions, line_start = [], 0
    tags = list(_TAG.finditer(source))
    for line in source.splitlines(keepends=True):
        # A tag on this line applies from the next line on (a block's tags stand alone).
        while tags and tags[0].start() < line_start + len(line):
            tag = tags.pop(0)
            kind, expression = tag.group(1), tag.group(2).strip()
            if kind == "if":
                stack.append(([], f"({expression})"))
            elif kind in ("elif", "else") and stack:
                before, current = stack.pop()
                before = [*before, current]
                negated = " and ".join(f"not {c}" for c in before)
                branch = f"({negated} and ({expression}))" if kind == "elif" else f"({negated})"
                stack.append((before, branch))
            elif kind == "endif" and stack:
                stack.pop()
        line_start += len(line)
        conditions.append(" and ".join(current for _, current in stack))
    return conditions


def update() -> None:
    """Extract the template's strings into ``messages.pot``; merge it into each ``<locale>.po``."""
    from babel.messages.catalog import Catalog
    from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
    from babel.messages.pofile import read_po, write_po

    keywords = {**DEFAULT_KEYWORDS, "_l": None}
    methods = [
        (f"**.{kind}{suffix}", method)
        for kind, method in (("py", _python_in_template), ("html", "jinja2"))
        for suffix in (".jinja", "{% endif %}.jinja")  # "{% if x %}name.py{% endif %}.jinja"
    ]
    template = Catalog(project="flaskscale", creation_date=HEADER_DATE)  # no churn in headers
    for path, line, message, comments, context in extract_from_dir(
        str(ROOT / "template"), methods, keywords=keywords
    ):
        location = f"template/{path}"
        comments = [c.replace("when: ", f"when {location}:{line}: ", 1) for c in comments]
        template.add(message, None, [(location, line)], auto_comments=comments, context=context)
    with open(CATALOGUES / "messages.pot", "wb") as file:
        write_po(file, template, omit_header=True, sort_by_file=True, width=10_000)
    for path in sorted(CATALOGUES.glob("*.po")):
        with open(path, encoding="utf-8") as file:
            catalogue = read_po(file, locale=path.stem)
        catalogue.update(template, no_fuzzy_matching=True)
        with open(path, "wb") as file:
            write_po(file, catalogue, ignore_obsolete=True, sort_by_file=True, width=10_000)


if __name__ == "__main__":
    update()
