"""Alembic environment: runs inside the Flask app (via Flask-Migrate) on its engine."""
from __future__ import annotations

from alembic import context
from flask import current_app

from app.extensions import db

config = context.config
target_metadata = db.metadata


def run_offline() -> None:
    context.configure(url=current_app.config["SQLALCHEMY_DATABASE_URI"],
                      target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    with db.engine.connect() as connection:
        # Batch mode lets ALTERs work on SQLite, which rebuilds tables to change them.
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=True, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
