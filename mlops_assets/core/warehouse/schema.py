"""The warehouse schema under Alembic: an explicit upgrade for writers and deploys, a check for the API.

Revisions (`migrations/versions`) are explicit operations with the columns of their day, so an empty
database and an old one end at the same schema. An upgrade runs in one transaction that first takes a
lock (an advisory lock on PostgreSQL, the write lock by `BEGIN IMMEDIATE` on SQLite): processes starting
together apply each revision once. Databases from before Alembic carry the hand-written ledger
`mlops_schema_migrations`, whose versions 1-7 revisions 0001-0007 repeat: such a database is stamped at
its last recorded version, the ledger is dropped, and the upgrade goes on from there.

A new revision: copy the latest file in `migrations/versions`, chain `down_revision`, write explicit
`op` calls; `test_migrations.py` checks that every path ends at the tables in `engine.py`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import sqlalchemy as sa

if TYPE_CHECKING:  # Alembic loads on first use: every run process imports this module, few migrate
    from alembic.config import Config
    from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).parent / "migrations"
LEGACY_LEDGER = "mlops_schema_migrations"
UPGRADE_COMMAND = "mlops db upgrade"


class SchemaNotCurrent(RuntimeError):
    """The warehouse's schema is not the one this code needs, and this process must not migrate it."""


class SchemaUpgrade(NamedTuple):
    before: str | None
    after: str


def upgrade_schema(url: str) -> SchemaUpgrade:
    """Bring the warehouse at `url` to the latest revision (an empty one is created); a no-op at head."""
    engine = _upgrade_engine(url)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # The key the hand-written ledger locked on: old and new code starting together exclude each other.
                conn.execute(sa.text(f"select pg_advisory_xact_lock(hashtext('{LEGACY_LEDGER}'))"))
            _adopt_legacy_ledger(conn)
            before = _revision(conn)
            from alembic import command

            command.upgrade(alembic_config(conn), "head")
            return SchemaUpgrade(before, _revision(conn))
    finally:
        engine.dispose()


def require_current_schema(url: str) -> None:
    """For processes that never migrate (the API): refuse to start on a warehouse behind this code."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or ":memory:").exists():
        current = None  # connecting would create an empty file
    else:
        engine = sa.create_engine(parsed, poolclass=sa.NullPool)
        try:
            with engine.connect() as conn:
                current = _revision(conn)
        finally:
            engine.dispose()
    head = head_revision()
    if current != head:
        found = f"schema revision {current}" if current else "no schema revision (empty, or from before Alembic)"
        raise SchemaNotCurrent(
            f"warehouse {parsed.render_as_string(hide_password=True)} has {found}; this release needs "
            f"revision {head}: run `{UPGRADE_COMMAND}` (with this release) first"
        )


def alembic_config(connection: sa.Connection) -> Config:
    """For `alembic.command` calls on this connection (no alembic.ini: the environment ships in the package)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    return _scripts().get_current_head()


@functools.cache
def _scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS))


def _revision(conn: sa.Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def _adopt_legacy_ledger(conn: sa.Connection) -> None:
    """Stamp a database migrated by the hand-written ledger at its last version, and retire the ledger
    (also when code from before Alembic recreated it beside `alembic_version`)."""
    if not sa.inspect(conn).has_table(LEGACY_LEDGER):
        return
    ledger = sa.table(LEGACY_LEDGER, sa.column("version", sa.Integer))
    last = conn.execute(sa.select(sa.func.max(ledger.c.version))).scalar()
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(conn)
    if last and context.get_current_revision() is None:
        context.stamp(_scripts(), f"{last:04d}")
    conn.execute(sa.text(f"drop table {LEGACY_LEDGER}"))


def _upgrade_engine(url: str) -> sa.Engine:
    """A one-off engine (the upgrade holds its only connection). On SQLite its transactions begin with
    `BEGIN IMMEDIATE`, so the upgrade reads the revision already holding the write lock, and its DDL is
    transactional (the sqlite3 driver would otherwise autocommit each statement)."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(parsed, poolclass=sa.NullPool)
    if parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(parsed, poolclass=sa.NullPool, connect_args={"timeout": 30})
    sa.event.listen(engine, "connect", _leave_transactions_to_sqlalchemy)
    sa.event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    return engine


def _leave_transactions_to_sqlalchemy(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None
