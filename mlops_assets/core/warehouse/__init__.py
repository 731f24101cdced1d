"""The warehouse database: tables and engines, the Alembic schema, the predictions store."""
