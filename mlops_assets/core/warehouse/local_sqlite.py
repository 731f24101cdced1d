"""Cheaper commits for the embedded default's SQLite files (Dagster's run and event storage above all).

Dagster's SQLite storage opens and closes a connection for every event it stores (an engine with
`NullPool` per call). In WAL mode each commit then costs an fsync, and each close of the last
connection a checkpoint with two more: 1.7 ms per event here, 8,000 events and 29,000 connections
in `make demo`. Holding one idle connection per WAL database turns those closes into plain
closes (the 16 databases used last: Dagster writes one file per run, and a long backfill must not
run out of file handles), and `synchronous=NORMAL` drops the commit's fsync; SQLite's WAL
stays consistent after a power loss at NORMAL (the last commits may roll back, nothing corrupts),
and checkpoints still run every 1,000 pages. Databases in rollback-journal mode are left as they are.
PostgreSQL deployments are unaffected.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections import OrderedDict

import sqlalchemy as sa

HELD_DATABASES = 16
_held: OrderedDict[str, tuple[int, sqlite3.Connection]] = OrderedDict()
_lock = threading.Lock()


def _on_connect(dbapi_connection, _record) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    path = next((row[2] for row in dbapi_connection.execute("PRAGMA database_list") if row[1] == "main"), "")
    if not path:
        return
    inode = os.stat(path).st_ino
    with _lock:
        if path in _held and _held[path][0] == inode:  # WAL mode is a property of the file: known already
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")
            _held.move_to_end(path)
            return
    if dbapi_connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        return
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")
    with _lock:
        if path in _held:  # the file was deleted and made again (`mlops demo --reset`): the old handle goes
            _held.pop(path)[1].close()
        _held[path] = (inode, _holder(path))
        if len(_held) > HELD_DATABASES:
            _held.popitem(last=False)[1][1].close()


def _holder(path: str) -> sqlite3.Connection:
    """A connection that has read the database, so it holds the WAL index open like a live reader."""
    holder = sqlite3.connect(path, check_same_thread=False)
    holder.execute("SELECT count(*) FROM sqlite_master").fetchall()
    return holder


def keep_wal_databases_open() -> None:
    """Install the connect hook for every SQLAlchemy engine of this process (idempotent)."""
    if not sa.event.contains(sa.engine.Engine, "connect", _on_connect):
        sa.event.listen(sa.engine.Engine, "connect", _on_connect)
