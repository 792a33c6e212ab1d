"""Pages for some users only: ``@permission_required("users.manage")`` (see ``roles.py``)."""

from collections.abc import Callable
from functools import wraps

from flask import abort
from flask_login import AnonymousUserMixin, current_user, login_required


class Visitor(AnonymousUserMixin):
    """Whoever is not signed in: they hold no role, so a template may ask any visitor
    ``current_user.can("...")`` to show or hide a control."""

    def can(self, permission: str) -> bool:
        return False


def permission_required(permission: str) -> Callable:
    """The view serves users whose roles grant ``permission``; visitors are sent to log in,
    other users get a 403 page."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args, **kwargs):
            if not current_user.can(permission):
                abort(403)
            return view(*args, **kwargs)

        return login_required(wrapper)

    return decorator
