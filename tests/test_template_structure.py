"""The template reads like the project it makes: options are files and packages, not lines.

- No generated Python file's template has more than four ``{% if %}`` blocks; the factory has
  at most two per optional package (its import and its ``init_app()``).
- The generated README's layout block names exactly the files the project has.
- Deleting the files the README's "Removing the example" paragraph names leaves a project
  whose lint and tests pass.
- No run of six identical lines stands twice outside the tests (repo and rendered projects),
  and the tests define each shared helper once, in ``tests/support``.
"""

from __future__ import annotations

import ast
import re
import shlex
import shutil
import sys
from collections import Counter
from pathlib import Path

import pytest
from support.commands import project_env, run, run_lint, run_project_tests
from support.duplicates import duplicated_runs
from support.rendering import REPO, preset, render

TEMPLATE = REPO / "template"
IF_BLOCK = re.compile(r"\{%-?\s*if\s+(.+?)\s*-?%\}")
CONDITIONAL_NAME = re.compile(r"\{%.*?%\}(.*?)\{%.*?%\}")
FACTORY = TEMPLATE / "{{project_slug}}" / "__init__.py.jinja"


def rendered_name(path: Path) -> str:
    return CONDITIONAL_NAME.sub(r"\1", path.name).removesuffix(".jinja")


def python_templates() -> list[Path]:
    return sorted(
        p for p in TEMPLATE.rglob("*") if p.is_file() and rendered_name(p).endswith(".py")
    )


def test_no_generated_python_file_has_more_than_four_if_blocks():
    crowded = {
        str(path.relative_to(TEMPLATE)): count
        for path in python_templates()
        if path != FACTORY and (count := len(IF_BLOCK.findall(path.read_text()))) > 4
    }
    assert crowded == {}


def test_the_factory_has_at_most_two_if_blocks_per_optional_package():
    conditions = Counter(IF_BLOCK.findall(FACTORY.read_text()))
    assert conditions, "the factory wires the optional packages"
    assert {c: n for c, n in conditions.items() if n > 2} == {}


@pytest.fixture(scope="module")
def projects(template_dir: Path, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("structure")
    answers = {
        "full": preset("full"),
        "minimal": preset("minimal"),
        "web-only": {"web_ui": True, "api": False},
        "api-only": {"web_ui": False, "api": True, "celery": True},
    }
    return {name: render(template_dir, root / name, a) for name, a in answers.items()}


LAYOUT_LINE = re.compile(r"^(?P<indent> *)(?P<names>\S+(?:, \S+)*)(?:\s{2,}.*)?$")


def layout_entries(readme: str) -> list[str]:
    """The paths the README's layout block names (``a.py, b.py`` lines name both)."""
    block = re.search(r"## Layout\n\n```\n(.*?)\n```", readme, re.S)
    assert block, "the README has a layout block"
    parents: list[str] = []
    entries = []
    for line in block[1].splitlines():
        match = LAYOUT_LINE.match(line)
        assert match, f"layout line {line!r}"
        depth = len(match["indent"]) // 4
        parents = parents[:depth]
        for name in match["names"].split(", "):
            entries.append("".join(parents) + name)
        if match["names"].endswith("/"):
            parents.append(match["names"])
    return entries


@pytest.mark.parametrize("name", ["full", "minimal", "web-only", "api-only"])
def test_the_readme_layout_names_exactly_the_projects_files(projects, name):
    project = projects[name]
    entries = layout_entries((project / "README.md").read_text())
    missing = [entry for entry in entries if not (project / entry).exists()]
    assert missing == []
    # Inside the package, every file is listed, or inside a folder listed without its files.
    slug = next(e for e in entries if e.endswith("/") and "/" not in e[:-1] and e != "tests/")
    listed = {e.rstrip("/") for e in entries if e.startswith(slug)}
    wholes = [e for e in listed if (project / e).is_dir() and not any(
        other.startswith(e + "/") for other in listed
    )]  # fmt: skip
    unlisted = [
        rel
        for path in (project / slug).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
        and (rel := path.relative_to(project).as_posix()) not in listed
        and not any(rel.startswith(whole + "/") for whole in wholes)
    ]  # fmt: skip
    assert unlisted == []


def removal_paths(readme: str) -> list[str]:
    section = re.search(r"### Removing the example\n\n(.*?)(?:\n\n|\Z)", readme, re.S)
    assert section, "the README says how to remove the example"
    sentence = section[1].split("; nothing")[0]
    return re.findall(r"`([^`\s]+)`", sentence)


def removal_commands(readme: str) -> list[str]:
    section = readme.split("### Removing the example", 1)[1].split("\n#", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "the README gives the commands that drop the example's table"
    return block[1].splitlines()


def test_removing_the_example_as_the_readme_says_keeps_lint_and_tests_green(
    template_dir: Path, tmp_path: Path
):
    project = render(template_dir, tmp_path / "shop", preset("full"))
    paths = removal_paths((project / "README.md").read_text())
    assert len(paths) >= 5, paths
    for rel in paths:
        target = project / rel
        assert target.exists(), rel
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    leftovers = [
        str(path.relative_to(project))
        for path in project.rglob("*.py")
        if re.search(r"\b(?:shop|api|web)\.example\b|\bItem\b", path.read_text())
    ]
    assert leftovers == []
    # The README's commands write the migration that drops the example's table.
    database = {"FLASK_CONFIG": "development", "DATABASE_URL": f"sqlite:///{tmp_path / 'dev.db'}"}
    for command in removal_commands((project / "README.md").read_text()):
        run(
            [sys.executable, "-m", *shlex.split(command)],
            cwd=project,
            env={**project_env(project), **database},
        )
    [dropping] = (project / "migrations" / "versions").glob("*_remove_the_example.py")
    assert 'drop_table("items")' in dropping.read_text()
    run_lint(project)
    result = run_project_tests(project)
    assert " passed" in result.stdout


def code_files(root: Path) -> list[Path]:
    return sorted(
        path
        for path in root.rglob("*.py")
        if "tests" not in path.relative_to(root).parts and "__pycache__" not in path.parts
    )


def test_no_code_is_written_twice_outside_the_tests(projects):
    ours = [*code_files(REPO / "src"), REPO / "hatch_build.py", *code_files(REPO / "migrations")]
    assert duplicated_runs(ours, REPO) == []
    for name in ("full", "minimal"):
        assert duplicated_runs(code_files(projects[name]), projects[name]) == [], name


SHARED_HELPERS = {"wait_for", "wait_for_http", "http_get", "free_port", "render", "run", "Process"}


def test_the_tests_define_each_shared_helper_once():
    definitions: Counter[str] = Counter()
    for path in (REPO / "tests").rglob("*.py"):
        for node in ast.parse(path.read_text()).body:  # module-level definitions
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name in SHARED_HELPERS:
                definitions[node.name] += 1
    assert {name: n for name, n in definitions.items() if n > 1} == {}
    spawned = [
        path.relative_to(REPO).as_posix()
        for path in (REPO / "tests").rglob("*.py")
        if path != Path(__file__).resolve() and "start_new_session=True" in path.read_text()
    ]
    assert spawned == ["tests/support/processes.py"]


def test_the_duplicate_finder_finds_a_run_written_twice(tmp_path: Path):
    body = "".join(f"    total += values[{n}] * {n}\n" for n in range(6))
    (tmp_path / "a.py").write_text(f"def one(values):\n    total = 0\n{body}    return total\n")
    (tmp_path / "b.py").write_text(f"import os\n\n\ndef two(values):\n{body}")
    (tmp_path / "c.py").write_text(body.replace("* 5", "* 7"))
    found = duplicated_runs(sorted(tmp_path.glob("*.py")), tmp_path)
    assert found == ["a.py:3-8 ~ b.py:5-10"]
