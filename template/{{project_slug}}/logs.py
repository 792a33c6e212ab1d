"""Logging, configured once for the application and its libraries, and the request id.

``LOG_FORMAT`` picks the format: ``json`` (production's default) writes one JSON object per
line, for a log collector; ``text`` (development's and the tests') one readable line.

Every line logged while a request (or a task it started) runs carries the request's id:
the ``X-Request-ID`` the proxy in front sent, or a new one. The response echoes it, so a
client's report, nginx's access log and the app's lines can be matched.
"""

import logging
import re
import uuid
from contextvars import ContextVar
from logging.config import dictConfig

from flask import Flask, Response, request

LOG_FORMATS = ("json", "text")
# A request id from outside is kept only if it looks like one (nginx's $request_id is 32 hex
# digits): anything else might be a client's attempt to forge or split log lines.
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

# The id of the request (or task) running in this thread or greenlet; None outside of one.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


class RequestIdFilter(logging.Filter):
    """Gives each record the running request's id, when there is one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (current := request_id.get()) is not None:
            record.request_id = current
        return True


def formatters() -> dict:
    """The two formats: JSON lines named as log collectors expect them, or text."""
    return {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": ["levelname", "name", "message"],
            "rename_fields": {"levelname": "level", "name": "logger", "exc_info": "exception"},
            "timestamp": True,
        },
        "text": {
            "()": "logging.Formatter",
            "fmt": "%(asctime)s %(levelname)s [%(name)s] %(request_id)s %(message)s",
            "defaults": {"request_id": "-"},
        },
    }


def configure_logging(app: Flask) -> None:
    """Send every log record to stderr, one line each, at ``LOG_LEVEL``, in ``LOG_FORMAT``."""
    log_format = app.config["LOG_FORMAT"]
    if log_format not in LOG_FORMATS:
        choices = ", ".join(LOG_FORMATS)
        raise RuntimeError(f"unknown LOG_FORMAT {log_format!r}: use one of {choices}")
    dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": formatters(),
            "filters": {"request_id": {"()": RequestIdFilter}},
            "handlers": {
                "stderr": {
                    "class": "logging.StreamHandler",
                    "stream": "ext://sys.stderr",
                    "formatter": log_format,
                    "filters": ["request_id"],
                },
            },
            "root": {"level": app.config["LOG_LEVEL"], "handlers": ["stderr"]},
        }
    )
    # First of the request hooks, so that the others' lines carry the id.
    app.before_request(start_request)
    app.after_request(echo_request_id)
    app.teardown_request(end_request)


def new_request_id() -> str:
    return uuid.uuid4().hex


def start_request() -> None:
    """Take the request's id from ``X-Request-ID`` if it is valid, else make one.

    A request that a task replays (an asynchronous request, run by a worker) keeps the
    task's id: it is the request that started the task.
    """
    incoming = request.headers.get("X-Request-ID", "")
    if request_id.get() is not None:
        current = request_id.get()
    elif VALID_REQUEST_ID.fullmatch(incoming):
        current = incoming
    else:
        current = new_request_id()
    request.environ["request_id.token"] = request_id.set(current)


def echo_request_id(response: Response) -> Response:
    if (current := request_id.get()) is not None:
        response.headers["X-Request-ID"] = current
    return response


def end_request(error: BaseException | None) -> None:
    """Forget the id: the thread serves another request next."""
    if token := request.environ.pop("request_id.token", None):
        request_id.reset(token)
