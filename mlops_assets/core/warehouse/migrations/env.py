"""Alembic's environment for the warehouse, run by `upgrade_schema` on the connection it passes: that
connection's transaction (and the lock taken in it) covers every revision of one upgrade."""

from alembic import context

from mlops_assets.core.warehouse.engine import metadata

context.configure(connection=context.config.attributes["connection"], target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
