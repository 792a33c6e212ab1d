"""Signed-in sessions (Flask-Login) that the server can end, though their cookies live on.

Flask keeps a session in a signed cookie, so a copied cookie would outlive a logout. Each
cookie therefore names the user *and* a session version (Flask-Login's "alternative tokens"):
raising the version on logout or on a new password turns every older cookie, remember-me
included, into an anonymous one. ``auth.load_user`` compares the two.
"""

from typing import TYPE_CHECKING

from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column


class SignedIn(UserMixin):
    """What Flask-Login needs of the ``User`` model."""

    session_version: Mapped[int] = mapped_column(default=0, server_default="0")
    if TYPE_CHECKING:
        id: Mapped[int]  # the User model's (for mypy only: a mixin must not map a column)

    def get_id(self) -> str:
        """What the session and remember-me cookies keep: ``<user id>:<session version>``."""
        return f"{self.id}:{self.session_version}"

    def end_sessions(self) -> None:
        """Sign the user out everywhere: every cookie now names an older version."""
        self.session_version = (self.session_version or 0) + 1
