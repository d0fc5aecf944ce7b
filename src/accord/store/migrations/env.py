"""Alembic environment: runs on the connection ``accord.store.migrate`` hands it."""

from __future__ import annotations

from alembic import context

from accord.store.database import unbounded
from accord.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction(), unbounded(connection):  # a migration may take long
    context.run_migrations()
