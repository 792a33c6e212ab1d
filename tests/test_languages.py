"""Languages: the template's catalogues are current and translated, a project's catalogues
work with its own `make` targets, and one source writes both kinds of project.

The generated projects' own suites (the matrix) test the translated pages, forms and API
errors; tests/test_container_image.py tests the image's compiled catalogues.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from babel.support import Translations
from support.commands import run
from support.rendering import REPO, render, template_extension

TRANSLATED = ("es", "de")  # the catalogues the template ships


languages = template_extension("languages")


def messages(path: Path) -> dict[str, str]:
    with path.open(encoding="utf-8") as file:
        return {m.id: m.string for m in read_po(file) if m.id}


def test_the_template_catalogue_holds_exactly_the_marked_strings(tmp_path, monkeypatch):
    """Fails until `python extensions/languages.py` has run after a string changed."""
    monkeypatch.setattr(languages, "CATALOGUES", tmp_path)
    for locale in TRANSLATED:
        (tmp_path / f"{locale}.po").write_bytes(
            (REPO / "extensions/catalogues" / f"{locale}.po").read_bytes()
        )
    languages.update()
    committed = REPO / "extensions" / "catalogues"
    assert messages(tmp_path / "messages.pot").keys() == messages(committed / "messages.pot").keys()
    assert (tmp_path / "messages.pot").read_text() == (committed / "messages.pot").read_text()


@pytest.mark.parametrize("locale", TRANSLATED)
def test_every_string_is_translated_with_its_placeholders(locale):
    path = REPO / "extensions" / "catalogues" / f"{locale}.po"
    with path.open(encoding="utf-8") as file:
        catalogue = read_po(file, locale=locale)
    assert [m.id for m in catalogue if m.id and not m.string] == []
    assert [m.id for m in catalogue if m.id and m.fuzzy] == []
    assert [(m.id, str(e)) for m, errors in catalogue.check() for e in errors] == []


WRITTEN_OUT = {
    'flash(_("Saved."), "success")': 'flash("Saved.", "success")',
    'flash(_("Hi %(name)s!", name=user.name))': 'flash(f"Hi {user.name}!")',
    "error=_l(\"Use '_' or '-'.\")": "error=\"Use '_' or '-'.\"",
    'x = _("{a} %(n)s", n=count)': 'x = f"{{a}} {count}"',
    '    _(\n        "one %(n)s "\n        "two",\n        n=n,\n    ),': (
        '    f"one {n} "\n    "two",'
    ),
    "from flask_babel import gettext as _\nimport os": "import os",
    '"""``_()`` in prose."""': '"""``_()`` in prose."""',
}


@pytest.mark.parametrize("marked,plain", WRITTEN_OUT.items(), ids=range(len(WRITTEN_OUT)))
def test_one_language_writes_python_marks_out(marked, plain):
    assert languages.plain_python(marked) == plain


def test_one_language_writes_page_marks_out():
    page = (
        '<html lang="{{ current_locale() }}">  {# i18n #}\n'
        '<html lang="en">  {# one language #}\n'
        "<p>{{ _(\"Ada's & Bob's\") }}</p>\n"
        '<a aria-label="{{ _("Delete %(name)s", name=item.name) }}">x</a>\n'
        '{{ _("on") if on else _("off") }}\n'
    )
    assert languages.plain_html(page) == (
        '<html lang="en">\n'
        "<p>Ada's &amp; Bob's</p>\n"
        '<a aria-label="Delete {{ item.name }}">x</a>\n'
        '{{ "on" if on else "off" }}\n'
    )
    assert languages.marked_html(page).splitlines()[0] == '<html lang="{{ current_locale() }}">'


def test_a_mark_that_cannot_be_written_out_is_refused():
    with pytest.raises(ValueError, match="not a string literal"):
        languages.plain_python("flash(_(message))")


def test_make_translations_works_in_a_fresh_checkout(template_dir, tmp_path):
    answers = {"project_slug": "polyglot", "languages": "en,es,de,fr", "docker": False}
    project = render(template_dir, tmp_path / "polyglot", answers)
    catalogues = project / "polyglot" / "translations"
    shipped = {
        locale: messages(catalogues / locale / "LC_MESSAGES/messages.po") for locale in ("es", "fr")
    }
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    run([*git, "init", "-q"], cwd=project)
    run([*git, "add", "-A"], cwd=project)
    run([*git, "commit", "-qm", "generated"], cwd=project)
    checkout = tmp_path / "checkout"
    run(["git", "clone", "-q", str(project), str(checkout)], cwd=tmp_path)
    assert not list(checkout.rglob("*.mo")), "compiled catalogues are not committed"

    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    run(["make", "translations"], cwd=checkout, env=env)
    run(["make", "compile-translations"], cwd=checkout, env=env)

    catalogues = checkout / "polyglot" / "translations"
    # The generated catalogues were current: extracting again changes no string.
    for locale, before in shipped.items():
        assert messages(catalogues / locale / "LC_MESSAGES/messages.po") == before
    assert all(not text for text in shipped["fr"].values()), "French is not shipped: empty"
    spanish = Translations.load(catalogues, ["es"])
    assert spanish.gettext("Log in") == shipped["es"]["Log in"] != "Log in"
    french = Translations.load(catalogues, ["fr"])
    assert french.gettext("Log in") == "Log in"  # untranslated: English
