"""The embedded default's SQLite files: commits without an fsync each, closes without a checkpoint each."""

import sqlite3

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from mlops_assets.core.warehouse import local_sqlite


def _write_like_dagster(path, rows: int) -> None:
    """Dagster's SQLite storage: a new NullPool engine, connection and commit per event."""
    for value in range(rows):
        engine = sa.create_engine(f"sqlite:///{path}", poolclass=NullPool)
        with engine.connect() as conn, conn.begin():
            conn.execute(sa.text("INSERT INTO events VALUES (:v)"), {"v": value})
        engine.dispose()


def _database(path, journal: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA journal_mode={journal}")
    conn.execute("CREATE TABLE events (v INTEGER)")
    conn.commit()
    conn.close()


def test_wal_databases_stay_open_and_commit_at_normal_sync_others_are_untouched(tmp_path, monkeypatch):
    monkeypatch.setattr(local_sqlite, "_held", local_sqlite.OrderedDict())
    wal, journal = tmp_path / "run.db", tmp_path / "journal.db"
    _database(wal, "WAL")
    _database(journal, "DELETE")
    installed = sa.event.contains(sa.engine.Engine, "connect", local_sqlite._on_connect)
    local_sqlite.keep_wal_databases_open()
    local_sqlite.keep_wal_databases_open()
    try:
        _write_like_dagster(wal, 20)
        _write_like_dagster(journal, 3)
        # No checkpoint on each close: the WAL holds the events until SQLite's own autocheckpoint.
        assert (tmp_path / "run.db-wal").stat().st_size > 0
        assert [str(wal)] == list(local_sqlite._held)
        engine = sa.create_engine(f"sqlite:///{wal}", poolclass=NullPool)
        with engine.connect() as conn:
            assert conn.execute(sa.text("PRAGMA synchronous")).scalar() == 1  # NORMAL
            assert conn.execute(sa.text("SELECT count(*) FROM events")).scalar() == 20
        engine.dispose()
        engine = sa.create_engine(f"sqlite:///{journal}", poolclass=NullPool)
        with engine.connect() as conn:
            assert conn.execute(sa.text("PRAGMA synchronous")).scalar() == 2  # FULL, SQLite's default
        engine.dispose()
    finally:
        if not installed:  # the suite installs it for every test (conftest)
            sa.event.remove(sa.engine.Engine, "connect", local_sqlite._on_connect)
        for _, holder in local_sqlite._held.values():
            holder.close()


def test_a_database_made_again_at_the_same_path_gets_a_new_holder_and_old_ones_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(local_sqlite, "_held", local_sqlite.OrderedDict())
    monkeypatch.setattr(local_sqlite, "HELD_DATABASES", 2)
    installed = sa.event.contains(sa.engine.Engine, "connect", local_sqlite._on_connect)
    local_sqlite.keep_wal_databases_open()
    try:
        path = tmp_path / "index.db"
        _database(path, "WAL")
        _write_like_dagster(path, 2)
        first = local_sqlite._held[str(path)][1]
        for suffix in ("", "-wal", "-shm"):
            (tmp_path / f"index.db{suffix}").unlink(missing_ok=True)
        _database(path, "WAL")
        _write_like_dagster(path, 1)
        assert local_sqlite._held[str(path)][1] is not first
        engine = sa.create_engine(f"sqlite:///{path}", poolclass=NullPool)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM events")).scalar() == 1
        engine.dispose()
        for name in ("a.db", "b.db"):
            _database(tmp_path / name, "WAL")
            _write_like_dagster(tmp_path / name, 1)
        assert list(local_sqlite._held) == [str(tmp_path / "a.db"), str(tmp_path / "b.db")]
    finally:
        if not installed:  # the suite installs it for every test (conftest)
            sa.event.remove(sa.engine.Engine, "connect", local_sqlite._on_connect)
        for _, holder in local_sqlite._held.values():
            holder.close()
