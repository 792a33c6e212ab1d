"""Mail through a real SMTP server: the password reset and address verification links arrive
and work, sent in the request's process, or by the Celery worker with its retries.

aiosmtpd runs as a process on a free loopback port and writes each message it receives into a
Maildir. The project is served by ``flask run`` in production configuration (CSRF checked,
messages never logged) with ``MAIL_SERVER`` pointing at it; with ``celery``, a worker of its
own on a throwaway Redis sends the mail. The clients are plain HTTP: the API asks for the
mails, the links are opened as a browser would, forms with their CSRF tokens.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import mailbox
import re
import secrets
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from support.celery import node_name
from support.commands import project_env, run
from support.processes import Process, wait_for, wait_for_http
from support.redis import throwaway_redis
from support.rendering import render
from support.services import free_port, require_modules

pytestmark = pytest.mark.xdist_group("services")

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"


class SMTPServer:
    """``python -m aiosmtpd`` on a fixed port, storing what it receives in a Maildir."""

    def __init__(self, workdir: Path) -> None:
        require_modules("aiosmtpd")
        self.port, self.workdir = free_port(), workdir
        self.maildir = workdir / "maildir"
        mailbox.Maildir(self.maildir, create=True)
        self.process: Process | None = None
        self.taken: set[str] = set()

    def start(self) -> SMTPServer:
        command = [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{self.port}"]
        command += ["-c", "aiosmtpd.handlers.Mailbox", str(self.maildir)]
        log = self.workdir / "smtp.log"
        self.process = Process("aiosmtpd", command, self.workdir, {}, log).start()
        wait_for(self.answers, 20, lambda: f"aiosmtpd did not start:\n{self.process.output()}")
        return self

    def answers(self) -> bool:
        with socket.socket() as probe:
            probe.settimeout(1)
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    close = stop  # for contextlib.closing

    def messages(self) -> list[email.message.EmailMessage]:
        box = mailbox.Maildir(self.maildir, create=False)
        return [
            email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
            for key in sorted(box.keys())
        ]

    def wait_for_mail_to(self, address: str, timeout: float = 60) -> email.message.EmailMessage:
        """The first message to ``address`` this method has not returned yet; waits for it."""

        def arrived():
            for message in self.messages():
                if message["To"] == address and message["Message-ID"] not in self.taken:
                    return message
            return None

        message = wait_for(arrived, timeout, lambda: f"no mail to {address} in {timeout} s")
        self.taken.add(message["Message-ID"])
        return message


def link_in(message: email.message.EmailMessage) -> str:
    return re.search(r"http://\S+", message.get_content())[0]


@dataclass
class Site:
    url: str
    smtp: SMTPServer
    server: Process
    worker: Process | None


@pytest.fixture(params=["in the request", "by the Celery worker"])
def site(request, template_dir: Path, tmp_path: Path, started: list[Process]) -> Iterator[Site]:
    celery = request.param == "by the Celery worker"
    slug = f"mail_{secrets.token_hex(3)}"
    project = tmp_path / slug
    answers = {"project_name": slug, "web_ui": True, "api": True, "celery": celery}
    render(template_dir, project, {**answers, "socketio": False, "docker": False, "ci": "none"})
    smtp = SMTPServer(tmp_path).start()
    redis = throwaway_redis(tmp_path) if celery else contextlib.nullcontext()
    with redis as redis_url, contextlib.closing(smtp):
        env = {
            **project_env(project),
            "FLASK_CONFIG": "production",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "TRUSTED_HOSTS": "mail.example.com",  # 127.0.0.1 is always trusted
            "SECURE_COOKIES": "false",  # plain HTTP: requests sends no Secure cookie over it
            "DATABASE_URL": f"sqlite:///{tmp_path / 'mail.db'}",
            "MAIL_SERVER": "127.0.0.1",
            "MAIL_PORT": str(smtp.port),
            "MAIL_SECURITY": "none",
            "MAIL_SENDER": "service@mail.example.com",
            "METRICS_PORT": "0",
        }
        if redis_url:
            env["REDIS_URL"] = redis_url
        flask = [sys.executable, "-m", "flask", "--app", slug]
        run([*flask, "db", "upgrade"], cwd=project, env=env)
        worker = None
        if celery:
            command = [sys.executable, "-m", "celery", "-A", "make_celery", "worker", "-c", "1"]
            command += ["-n", node_name("mail"), "--loglevel", "INFO"]
            command += ["--without-gossip", "--without-mingle"]
            worker = Process("worker", command, project, env, tmp_path / "worker.log").start()
            started.append(worker)
            wait_for(lambda: " ready." in worker.output(), 60, worker.output)
        port = free_port()
        server = Process(
            "flask run",
            [*flask, "run", "--host", "127.0.0.1", "--port", str(port)],
            project,
            env,
            tmp_path / "server.log",
        ).start()
        started.append(server)
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/healthz", 30, server)
        yield Site(url, smtp, server, worker)


def csrf_token(page: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)[1]


def test_the_reset_and_verification_mails_arrive_with_links_that_work(site: Site):
    register = {"username": "ada", "email": "ada@example.com", "password": PASSWORD}
    assert requests.post(f"{site.url}/api/v1/users", json=register, timeout=10).status_code == 201
    browser = requests.Session()

    verification = site.smtp.wait_for_mail_to("ada@example.com")
    assert verification["From"] == "service@mail.example.com"
    assert verification["Subject"].startswith("Verify your e-mail address")
    page = browser.get(link_in(verification), timeout=10)
    assert "Your e-mail address is verified." in page.text

    for address in ("nobody@example.com", "ada@example.com"):  # no mail to an unknown address
        answer = requests.post(
            f"{site.url}/api/v1/password-reset", json={"email": address}, timeout=10
        )
        assert answer.status_code == 202
    reset = site.smtp.wait_for_mail_to("ada@example.com")
    assert [m["To"] for m in site.smtp.messages()] == ["ada@example.com", "ada@example.com"]
    form = browser.get(link_in(reset), timeout=10)
    assert "Choose a new password" in form.text
    changed = browser.post(
        link_in(reset),
        data={
            "csrf_token": csrf_token(form.text),
            "password": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
        },
        timeout=10,
    )
    assert "Your password is changed: log in with it." in changed.text
    tokens = requests.post(f"{site.url}/api/v1/tokens", auth=("ada", NEW_PASSWORD), timeout=10)
    assert tokens.status_code == 201
    again = browser.get(link_in(reset), timeout=10)
    assert "This link is not valid any more" in again.text


@pytest.mark.parametrize("site", ["by the Celery worker"], indirect=True)
def test_the_worker_retries_a_mail_until_the_smtp_server_is_back(site: Site):
    site.smtp.stop()
    register = {"username": "grace", "email": "grace@example.com", "password": PASSWORD}
    assert requests.post(f"{site.url}/api/v1/users", json=register, timeout=10).status_code == 201
    assert site.worker is not None
    wait_for(lambda: "Retry in" in site.worker.output(), 30, site.worker.output)
    site.smtp.start()
    message = site.smtp.wait_for_mail_to("grace@example.com", timeout=90)
    assert message["Subject"].startswith("Verify your e-mail address")
