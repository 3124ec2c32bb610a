"""Alembic environment: runtrack always hands Alembic an open connection
(``config.attributes["connection"]``) and Alembic never opens or closes one of
its own, so migrating can never close the connection a caller goes on using."""

from __future__ import annotations

from alembic import context

from runtrack.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "runtrack migrations run through runtrack.store.migrate "
        "(or `runtrack migrate`), which passes the connection"
    )

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
