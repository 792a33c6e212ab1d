"""Pages for some users only: ``@permission_required("users.manage")`` (see ``roles.py``)."""

from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from flask import abort
from flask_login import AnonymousUserMixin, current_user, login_required

Params = ParamSpec("Params")
Result = TypeVar("Result")


class Visitor(AnonymousUserMixin):
    """Whoever is not signed in: they hold no role, so a template may ask any visitor
    ``current_user.can("...")`` to show or hide a control."""

    def can(self, permission: str) -> bool:
        return False


def permission_required(
    permission: str,
) -> Callable[[Callable[Params, Result]], Callable[Params, Result]]:
    """The view serves users whose roles grant ``permission``; visitors are sent to log in,
    other users get a 403 page."""

    def decorator(view: Callable[Params, Result]) -> Callable[Params, Result]:
        @wraps(view)
        def wrapper(*args: Params.args, **kwargs: Params.kwargs) -> Result:
            if not current_user.can(permission):
                abort(403)
            return view(*args, **kwargs)

        guarded: Callable[Params, Result] = login_required(wrapper)  # Flask-Login's is untyped
        return guarded

    return decorator
