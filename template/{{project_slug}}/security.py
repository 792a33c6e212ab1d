"""What every response tells the browser, and what no request body may do to the app.

The headers follow the OWASP secure headers project: the Content-Security-Policy lets a page
load scripts, styles, fonts and data from this origin only, so injected markup can neither
run a script nor send anything elsewhere. An inline script runs only if it carries its
response's nonce: ``csp_nonce()`` in a template.
"""

import secrets
from typing import Any

from flask import Flask, Response, current_app, g
from flask.json.provider import DefaultJSONProvider

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        # Stylesheets draw small icons (checkboxes, arrows) as data: images.
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # frame-ancestors, for older browsers
    "Referrer-Policy": "strict-origin-when-cross-origin",
}


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON, where a document nested too deeply is malformed like any other.

    ``json.loads`` raises RecursionError on ``[[[[...`` a thousand levels deep: a 500 (and a
    stack trace in the logs) for one short request. As a ValueError it is the 400 that
    ``request.get_json()`` answers to every body it cannot read.
    """

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("the JSON document is nested too deeply") from None


def csp_nonce() -> str:
    """The nonce of this response: the Content-Security-Policy lets inline scripts with it run."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    nonce: str = g.csp_nonce
    return nonce


def add_security_headers(response: Response) -> Response:
    """The headers every response gets; a view that set one of them keeps its own."""
    policy = CONTENT_SECURITY_POLICY
    # Only a page that asked for a nonce may run inline scripts. Popped: a request served in
    # an application context that outlives it (a test's) must not reuse it.
    if nonce := g.pop("csp_nonce", None):
        policy = f"{policy}; script-src 'self' 'nonce-{nonce}'"
    wanted = {"Content-Security-Policy": policy, **SECURITY_HEADERS}
    if hsts := current_app.config["STRICT_TRANSPORT_SECURITY"]:
        wanted["Strict-Transport-Security"] = hsts
    # One pass over the response's headers rather than a setdefault() each, which reads them
    # all every time: this runs on every response (a tenth of a /healthz, by benchmarks/).
    present = {name.lower() for name, _ in response.headers}
    for name, value in wanted.items():
        if name.lower() not in present:
            response.headers.add(name, value)
    return response


def init_app(app: Flask) -> None:
    app.json = JSONProvider(app)
    app.add_template_global(csp_nonce)
    app.after_request(add_security_headers)
