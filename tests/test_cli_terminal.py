"""The questionnaire in a real terminal (a pty), through the installed console script."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pexpect
import yaml

# The console script that `pip install -e .` put beside this interpreter, whatever PATH says.
FLASKSCALE = Path(sys.executable).parent / "flaskscale"


def spawn(dest: Path) -> pexpect.spawn:
    return pexpect.spawn(
        str(FLASKSCALE), ["new", str(dest)], encoding="utf-8", timeout=30, dimensions=(50, 200)
    )


def answer(child: pexpect.spawn, question: str, text: str | None = None) -> None:
    child.expect(question)
    time.sleep(0.2)  # let the prompt finish drawing before typing
    if text is not None:
        child.sendcontrol("u")  # clear the pre-filled default
        child.send(text)
    child.send("\r")


def test_questions_are_asked_and_answered_in_a_terminal(tmp_path):
    dest = tmp_path / "shop"
    child = spawn(dest)
    answer(child, "Human-readable name", "Shop Front")
    answer(child, "Python package name")  # default derived from the name
    child.expect("One-line description")
    for _ in range(40):  # accept every remaining default
        time.sleep(0.2)
        child.send("\r")
        if child.expect([r"\?", "Created", pexpect.EOF], timeout=20) != 0:
            break
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    answers = yaml.safe_load((dest / ".copier-answers.yml").read_text())
    assert answers["project_name"] == "Shop Front"
    assert answers["project_slug"] == "shop_front"
    assert (dest / "shop_front" / "__init__.py").is_file()


def test_ctrl_c_during_the_questions_leaves_nothing_behind(tmp_path):
    dest = tmp_path / "shop"
    child = spawn(dest)
    answer(child, "Human-readable name", "Shop")
    answer(child, "Python package name")
    child.expect("One-line description")
    child.sendcontrol("c")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 2
    assert "interrupted: nothing was written" in child.before
    assert list(tmp_path.iterdir()) == []
