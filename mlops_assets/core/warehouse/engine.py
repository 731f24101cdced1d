"""The warehouse database (SQLite locally, PostgreSQL in production) and its versioned schema.

SQLAlchemy Core gives one code path for both engines. Migrations are an ordered list applied
once each, recorded in `mlops_schema_migrations`, under an advisory lock on PostgreSQL so two
processes starting together cannot apply one twice.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

metadata = sa.MetaData()

tenants_table = sa.Table(
    "tenants",
    metadata,
    sa.Column("tenant_id", sa.String(63), primary_key=True),
    sa.Column("display_name", sa.String(200), nullable=False),
    sa.Column("source_kind", sa.String(16), nullable=False),
    sa.Column("source_settings", sa.JSON, nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("horizon_days", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("monitoring", sa.JSON, nullable=False, server_default=sa.text("'{}'")),
    sa.CheckConstraint("source_kind in ('shopify', 'file')", name="tenants_source_kind"),
    sa.CheckConstraint("status in ('active', 'paused')", name="tenants_status"),
    sa.CheckConstraint("horizon_days between 1 and 365", name="tenants_horizon_days"),
)

promotions_table = sa.Table(
    "model_promotions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(63), nullable=False, index=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("alias", sa.String(32), nullable=False),
    sa.Column("version", sa.String(32)),
    sa.Column("previous_version", sa.String(32)),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("action in ('promote', 'refuse', 'rollback')", name="model_promotions_action"),
)

predictions_table = sa.Table(
    "predictions",
    metadata,
    sa.Column("tenant_id", sa.String(63), primary_key=True),
    sa.Column("customer_id", sa.String(128), primary_key=True),
    sa.Column("as_of_date", sa.Date, primary_key=True),
    sa.Column("repurchase_probability", sa.Float, nullable=False),
    sa.Column("risk_band", sa.String(8), nullable=False),
    sa.Column("rank", sa.Integer, nullable=False),
    sa.Column("percentile", sa.Float, nullable=False),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("feature_version", sa.String(80), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("top_reasons", sa.Text, nullable=False),
    sa.CheckConstraint("repurchase_probability between 0 and 1", name="predictions_probability"),
    sa.CheckConstraint("risk_band in ('high', 'medium', 'low')", name="predictions_risk_band"),
    sa.Index("predictions_by_day_rank", "tenant_id", "as_of_date", "rank"),
)

PREDICTION_COLUMNS = [column.name for column in predictions_table.columns]

prediction_batches_table = sa.Table(
    "prediction_batches",
    metadata,
    sa.Column("tenant_id", sa.String(63), primary_key=True),
    sa.Column("as_of_date", sa.Date, primary_key=True),
    sa.Column("customers", sa.Integer, nullable=False),
    sa.Column("mean_probability", sa.Float, nullable=False),
    sa.Column("band_counts", sa.JSON, nullable=False),
    sa.Column("histogram", sa.JSON, nullable=False),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("model_kind", sa.String(32), nullable=False),
    sa.Column("model_metrics", sa.JSON, nullable=False),
    sa.Column("feature_version", sa.String(80), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

api_keys_table = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String(16), primary_key=True),
    sa.Column("tenant_id", sa.String(63), nullable=False, index=True),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
)

monitoring_days_table = sa.Table(
    "monitoring_days",
    metadata,
    sa.Column("tenant_id", sa.String(63), primary_key=True),
    sa.Column("as_of_date", sa.Date, primary_key=True),
    sa.Column("model_version", sa.String(32)),
    sa.Column("reference_day", sa.String(10)),
    sa.Column("drifted_share", sa.Float),
    sa.Column("drifted_features", sa.Text),
    sa.Column("prediction_psi", sa.Float),
    sa.Column("drift_alarms", sa.Text),
    sa.Column("predicted_on", sa.Date),
    sa.Column("realized_model_version", sa.String(32)),
    sa.Column("realized_auc", sa.Float),
    sa.Column("realized_brier", sa.Float),
    sa.Column("top_decile_precision", sa.Float),
    sa.Column("holdout_auc", sa.Float),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

migrations_table = sa.Table(
    "mlops_schema_migrations",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("description", sa.String(200), nullable=False),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
)

Migration = tuple[int, str, Callable[[sa.Connection], None]]

MIGRATIONS: list[Migration] = [
    (1, "tenant registry", lambda conn: tenants_table.create(conn, checkfirst=True)),
    (2, "model promotion log", lambda conn: promotions_table.create(conn, checkfirst=True)),
    (3, "predictions", lambda conn: predictions_table.create(conn, checkfirst=True)),
    (4, "prediction batch summaries", lambda conn: prediction_batches_table.create(conn, checkfirst=True)),
    (5, "tenant API keys", lambda conn: api_keys_table.create(conn, checkfirst=True)),
    (6, "per-tenant monitoring thresholds", lambda conn: _add_column(conn, tenants_table, "monitoring")),
    (7, "daily monitoring summaries", lambda conn: monitoring_days_table.create(conn, checkfirst=True)),
]


def _add_column(conn: sa.Connection, table: sa.Table, name: str) -> None:
    """For databases created before the column existed (a new one gets it from the table definition)."""
    if name in {column["name"] for column in sa.inspect(conn).get_columns(table.name)}:
        return
    column = table.c[name]
    kind = column.type.compile(dialect=conn.dialect)
    default = column.server_default.arg.text
    conn.execute(sa.text(f"alter table {table.name} add column {name} {kind} not null default {default}"))


_engines: dict[str, sa.Engine] = {}
_engines_lock = threading.Lock()


def engine_for(url: str) -> sa.Engine:
    """One pooled, migrated engine per URL and process; SQLite files get their directory created."""
    with _engines_lock:
        if url not in _engines:
            _engines[url] = _create_engine(url)
        return _engines[url]


class Bindable:
    """Reads through the pooled engine, or through one connection (`using`) so a web request checks
    out a connection once for all its queries instead of once per query."""

    def __init__(self, warehouse_url: str):
        self.engine = engine_for(warehouse_url)
        self._connection: sa.Connection | None = None

    def using(self, connection: sa.Connection):
        bound = copy.copy(self)
        bound._connection = connection
        return bound

    @contextlib.contextmanager
    def _connect(self):
        if self._connection is not None:
            yield self._connection
        else:
            with self.engine.connect() as conn:
                yield conn

    def _rows(self, query) -> list[dict]:
        with self._connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def _scalar(self, query):
        with self._connect() as conn:
            return conn.execute(query).scalar()


def read_engine(url: str) -> sa.Engine:
    """For the API's reads: autocommit (no BEGIN/ROLLBACK round trips) and no pre-ping (one more).

    Disconnects are handled optimistically: a query on a dropped connection fails once, the pool is
    invalidated and refilled, and the API answers that request with 503 (docs/operations.md).
    """
    engine_for(url)  # migrated before anything reads
    with _engines_lock:
        key = f"read:{url}"
        if key not in _engines:
            options = {"pool_size": 10, "max_overflow": 10, "pool_recycle": 600}
            is_sqlite = sa.make_url(url).get_backend_name() == "sqlite"
            _engines[key] = sa.create_engine(
                url, isolation_level="AUTOCOMMIT", **({"connect_args": {"timeout": 30}} if is_sqlite else options)
            )
        return _engines[key]


def dispose_engines() -> None:
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def _create_engine(url: str) -> sa.Engine:
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": 30})
    else:
        engine = sa.create_engine(parsed, pool_pre_ping=True)
    migrate(engine)
    return engine


def migrate(engine: sa.Engine) -> list[int]:
    """Apply pending migrations; returns the versions applied by this call."""
    applied_now = []
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("select pg_advisory_xact_lock(hashtext('mlops_schema_migrations'))"))
        migrations_table.create(conn, checkfirst=True)
        done = set(conn.execute(sa.select(migrations_table.c.version)).scalars())
        for version, description, apply in MIGRATIONS:
            if version in done:
                continue
            apply(conn)
            conn.execute(
                migrations_table.insert().values(version=version, description=description, applied_at=datetime.now(UTC))
            )
            applied_now.append(version)
    return applied_now


def schema_version(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.max(migrations_table.c.version))).scalar_one() or 0
