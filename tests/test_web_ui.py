"""The web UI: what ``web_ui`` adds to a project, and the pages working in a real browser.

The browser test renders a project with the default answers (web UI and API), creates its
tables, serves it with ``flask run`` on a free loopback port and drives Debian's Chromium
through Playwright: register, log in, add an item, delete it, log out. It checks that Bootstrap
is applied (computed styles) and that the browser never leaves the app's own origin. A
screenshot of the signed-in home page is left in the test's tmp folder (``items.png``).
"""

from __future__ import annotations

import contextlib
import re
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.commands import project_env, run, run_lint, run_project_tests
from support.processes import Process, wait_for_http
from support.rendering import render
from support.services import E2E_REQUIRED, free_port, require_command

SLUG = "web_shop"
PASSWORD = "correct horse battery"
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WEB_UI_NAMES = re.compile(
    r"flask[-_]?login|flask[-_]?wtf|bootstrap|csrf|login_manager|WTF_"
    r"|render_template",
    re.IGNORECASE,
)


def test_without_web_ui_nothing_of_it_is_left(template_dir: Path, tmp_path: Path) -> None:
    project = render(template_dir, tmp_path / "api_only", {"web_ui": False, "api": True})
    package = project / "api_only"
    for name in ("web", "templates", "static", "forms.py", "auth.py", "main.py"):
        assert not (package / name).exists(), name
    for name in ("test_auth.py", "test_main.py"):
        assert not (project / "tests" / name).exists(), name
    texts = [
        path
        for path in project.rglob("*")
        if path.is_file()
        and (path.suffix in {".py", ".toml", ".md"} or path.name == ".env.example")
    ]
    leftovers = [
        f"{path.relative_to(project)}: {line.strip()}"
        for path in texts
        for line in path.read_text().splitlines()
        if WEB_UI_NAMES.search(line)
    ]
    assert leftovers == []


def test_web_ui_without_api_passes_its_tests_and_lint(template_dir: Path, tmp_path: Path) -> None:
    project = render(template_dir, tmp_path / "pages", {"web_ui": True, "api": False})
    assert not (project / "pages" / "api").exists()
    assert not any("csrf.exempt" in path.read_text() for path in project.rglob("*.py"))
    run_lint(project)
    run_project_tests(project)


@pytest.fixture(scope="module")
def project(template_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("web_ui") / SLUG
    return render(template_dir, dest, {"project_name": "Web Shop", "web_ui": True})


@pytest.fixture
def server_env(project: Path, tmp_path: Path) -> dict[str, str]:
    """The environment of the served project, and of ``flask`` commands on its database."""
    return {
        **project_env(project),
        "FLASK_CONFIG": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "TRUSTED_HOSTS": "shop.example.com",  # the browser uses 127.0.0.1: always trusted
        "DATABASE_URL": f"sqlite:///{tmp_path / 'web.db'}",
    }


@pytest.fixture
def server(
    project: Path, server_env: dict[str, str], tmp_path: Path, started: list[Process]
) -> str:
    """The project served by ``flask run`` on a free loopback port, with its tables created."""
    env = server_env
    flask = [sys.executable, "-m", "flask", "--app", SLUG]
    if (project / "migrations").is_dir():
        run([*flask, "db", "upgrade"], cwd=project, env=env)
    else:
        create_all = (
            f"from {SLUG} import create_app\nfrom {SLUG}.extensions import db\n"
            "with create_app().app_context():\n    db.create_all()\n"
        )
        run([sys.executable, "-c", create_all], cwd=project, env=env)
    port = free_port()
    command = [*flask, "run", "--host", "127.0.0.1", "--port", str(port)]
    server = Process("flask run", command, project, env, tmp_path / "server.log").start()
    started.append(server)
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/healthz", 30, server)
    return url


def import_playwright():
    try:
        from playwright import sync_api
    except ImportError:
        if E2E_REQUIRED:
            pytest.fail("playwright is not installed and FLASKSCALE_E2E=required")
        pytest.skip("playwright is not installed (pip install playwright)")
    return sync_api


@contextlib.contextmanager
def chromium_page() -> Iterator[tuple]:
    """A page of headless Chromium, Playwright's ``expect``, every URL the page requests and
    every part of it the Content-Security-Policy blocked."""
    chromium = require_command("chromium")
    sync_api = import_playwright()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            yield page, sync_api.expect, requested, record_blocked_content(page)
        finally:
            browser.close()


def test_register_log_in_add_an_item_and_log_out_in_a_browser(server: str, tmp_path: Path) -> None:
    with chromium_page() as (page, expect, requested, blocked):
        nav = page.get_by_role("navigation")
        alert = page.get_by_role("alert")

        page.goto(server)
        expect(page).to_have_title("Web Shop")
        register_and_log_in(page, expect, "ada")
        expect(page.get_by_role("heading", name="Your items")).to_be_visible()

        for name in ("telescope", "notebook"):
            page.get_by_label("Name").fill(name)
            page.get_by_label("Description").fill(f"a {name} for the screenshot")
            page.get_by_role("button", name="Add").click()
            expect(alert).to_have_text(f'"{name}" added.')
        items = page.locator(".list-group-item .fw-semibold")
        expect(items).to_have_text(["notebook", "telescope"])

        # Bootstrap's CSS and JS come from the app and are applied.
        navbar_color = page.evaluate(
            "getComputedStyle(document.querySelector('nav.navbar')).backgroundColor"
        )
        assert navbar_color == "rgb(33, 37, 41)"  # .bg-dark
        # The script ends the body: the items can show before it has run.
        page.wait_for_function("typeof bootstrap !== 'undefined'", timeout=10_000)
        assert page.evaluate("typeof bootstrap.Alert") == "function"
        page.screenshot(path=tmp_path / "items.png", full_page=True)

        page.get_by_role("button", name="Delete telescope").click()
        expect(alert).to_have_text('"telescope" deleted.')
        expect(items).to_have_text(["notebook"])

        nav.get_by_role("button", name="Log out").click()
        expect(alert).to_have_text("You are logged out.")
        expect(nav.get_by_role("link", name="Log in")).to_be_visible()
        page.goto(f"{server}/profile")
        expect(page).to_have_url(re.compile(r"/login\?next=%2Fprofile$"))

        assert requested
        assert all(url.startswith(server) for url in requested), requested
        assert blocked == [], "the Content-Security-Policy blocked parts of the pages"


def register_and_log_in(page, expect, username: str) -> None:
    """From the home page, as a visitor: create an account, then log in with it."""
    alert = page.get_by_role("alert")
    page.get_by_role("link", name="Create an account").click()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Email").fill(f"{username}@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat password").fill(PASSWORD)
    page.get_by_role("button", name="Register").click()
    expect(alert).to_have_text("Your account is ready: you can log in now.")
    log_in(page, expect, username)


def log_in(page, expect, username: str) -> None:
    """On the log-in page: log in as ``username``."""
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text(f"Welcome back, {username}!")
    expect(page.get_by_role("navigation").get_by_role("link", name=username)).to_be_visible()


def test_an_admin_deactivates_a_user_whose_open_session_ends_at_the_next_click(
    server: str, server_env: dict[str, str], project: Path, tmp_path: Path
) -> None:
    """Two browsers: a user signed in, and an admin who deactivates them in the admin area."""
    create_admin = ["users", "create-admin", "--username", "root", "--email", "root@example.com"]
    flask = [sys.executable, "-m", "flask", "--app", SLUG]
    run([*flask, *create_admin, "--password", PASSWORD], cwd=project, env=server_env)
    with chromium_page() as (admin, expect, requested, blocked):
        user = admin.context.browser.new_context().new_page()
        user.goto(server)
        register_and_log_in(user, expect, "ada")

        admin.goto(f"{server}/login")
        log_in(admin, expect, "root")
        admin.get_by_role("navigation").get_by_role("link", name="Users").click()
        admin.get_by_role("searchbox", name="Search users").fill("ada")
        admin.get_by_role("button", name="Search").click()
        admin.get_by_role("button", name="Deactivate ada").click()
        expect(admin.get_by_role("alert")).to_have_text(
            "ada is deactivated: signed out everywhere until reactivated."
        )
        expect(admin.get_by_role("button", name="Reactivate ada")).to_be_visible()
        admin.get_by_role("link", name="Audit log").click()
        expect(admin.get_by_role("row").nth(1)).to_contain_text("root deactivate ada")
        admin.screenshot(path=tmp_path / "audit.png", full_page=True)

        user.get_by_role("navigation").get_by_role("link", name="ada").click()
        expect(user).to_have_url(re.compile(r"/login\?next=%2Fprofile$"))
        expect(user.get_by_role("navigation").get_by_role("link", name="Log in")).to_be_visible()

        assert all(url.startswith(server) for url in requested), requested
        assert blocked == [], "the Content-Security-Policy blocked parts of the admin area"


def test_the_api_docs_work_in_a_browser_from_the_app_alone(server: str, tmp_path: Path) -> None:
    """Swagger UI loads from the app under its strict policy, and its "Try it out" works."""
    with chromium_page() as (page, expect, requested, blocked):
        page.goto(f"{server}/api/v1/docs")
        expect(page.get_by_role("heading", name="Web Shop API")).to_be_visible()
        users = page.locator(".opblock-get", has_text="/api/v1/users").first
        users.locator(".opblock-summary").click()
        page.get_by_role("button", name="Try it out").click()
        page.get_by_role("button", name="Execute").click()
        expect(
            users.locator(".live-responses-table .response .response-col_status").first
        ).to_have_text("200")
        page.screenshot(path=tmp_path / "docs.png", full_page=False)

        assert all(url.startswith(server) for url in requested), requested
        assert blocked == [], "the Content-Security-Policy blocked parts of the docs"


def record_blocked_content(page) -> list[str]:
    """The messages Chromium logs when the Content-Security-Policy blocks something."""
    blocked: list[str] = []
    page.on(
        "console",
        lambda message: (
            blocked.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return blocked
