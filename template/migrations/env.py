"""Alembic's entry point for ``flask db``: the application's engine and models."""

from alembic import context
from flask import current_app

migrate = current_app.extensions["migrate"]
db = migrate.db


def skip_empty_revisions(migration_context, revision, directives) -> None:
    """``flask db migrate`` writes no file when the models have not changed."""
    autogenerate = getattr(migration_context.config.cmd_opts, "autogenerate", False)
    if autogenerate and directives[0].upgrade_ops.is_empty():
        directives[:] = []


def run_migrations_offline() -> None:
    """Print the SQL (``flask db upgrade --sql``) instead of running it."""
    context.configure(
        url=db.engine.url.render_as_string(hide_password=False),
        target_metadata=db.metadata,
        literal_binds=True,
        **migrate.configure_args,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    with db.engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=db.metadata,
            process_revision_directives=skip_empty_revisions,
            **migrate.configure_args,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
