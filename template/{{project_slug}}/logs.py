"""Logging, configured once for the application and its libraries."""

from logging.config import dictConfig

from flask import Flask


def configure_logging(app: Flask) -> None:
    """Send every log record to stderr, one line each, at ``LOG_LEVEL``."""
    dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "default": {"format": "%(asctime)s %(levelname)s [%(name)s] %(message)s"},
            },
            "handlers": {
                "stderr": {
                    "class": "logging.StreamHandler",
                    "stream": "ext://sys.stderr",
                    "formatter": "default",
                },
            },
            "root": {"level": app.config["LOG_LEVEL"], "handlers": ["stderr"]},
        }
    )
