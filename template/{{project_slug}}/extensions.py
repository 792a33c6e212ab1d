"""The extensions every project has, created unbound here and initialised in ``create_app()``.

Optional packages keep their own extensions beside them.
"""

import sqlite3
from typing import TYPE_CHECKING, Any

import flask_sqlalchemy.model
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    # Named constraints, so that migrations can drop and alter them on every database.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


@event.listens_for(Engine, "connect")
def enforce_sqlite_foreign_keys(dbapi_connection: Any, connection_record: Any) -> None:
    """SQLite ignores foreign keys (and ON DELETE CASCADE) unless asked on every connection."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.execute("PRAGMA foreign_keys = ON")


db = SQLAlchemy(model_class=Base)
if TYPE_CHECKING:
    # mypy takes no base class from an attribute (python/mypy#8603): to it, the models derive
    # from what db.Model is made of.
    class Model(Base, flask_sqlalchemy.model.Model): ...
else:
    Model = db.Model  # the base class of the models
migrate = Migrate(render_as_batch=True)  # SQLite alters tables by copying them
