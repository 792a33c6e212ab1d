"""The API's extensions, created unbound here and initialised in ``init_app()``."""

from flask import current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address


def is_api_request() -> bool:
    return request.path == "/api" or request.path.startswith("/api/")


# API_RATE_LIMIT applies to each API endpoint; pages and health probes are not limited.
limiter = Limiter(
    get_remote_address,
    default_limits=[lambda: current_app.config["API_RATE_LIMIT"]],
    default_limits_exempt_when=lambda: not is_api_request(),
)
