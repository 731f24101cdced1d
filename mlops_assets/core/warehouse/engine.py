"""The warehouse database (SQLite locally, PostgreSQL in production): its tables and engines.

SQLAlchemy Core gives one code path for both engines. The tables here are the schema's target;
Alembic revisions (`schema.py`) build it. Writers bring the schema up to date on their first
connection; the API's read engine never migrates and refuses a schema behind the code.
"""

from __future__ import annotations

import contextlib
import copy
import threading

import sqlalchemy as sa

from mlops_assets.core.warehouse.schema import require_current_schema, upgrade_schema

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
    sa.Column("risk_band", sa.String(8), nullable=False),  # the churn band (of churn_probability since 0009)
    sa.Column("rank", sa.Integer, nullable=False),
    sa.Column("percentile", sa.Float, nullable=False),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("feature_version", sa.String(80), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("top_reasons", sa.Text, nullable=False),
    # Issue 16's targets (revision 0009): NULL on rows written before it. Amounts in the tenant's currency.
    sa.Column("expected_orders", sa.Float),  # orders in the next horizon_days
    sa.Column("expected_revenue", sa.Float),  # spend in the next horizon_days
    sa.Column("clv_365d", sa.Float),  # spend in the next 365 days
    sa.Column(
        "churn_probability",
        sa.Float,
        sa.CheckConstraint("churn_probability between 0 and 1", name="predictions_churn_probability"),
    ),
    sa.Column("expected_next_order_date", sa.Date),  # NULL also when beyond 365 days
    sa.Column(
        "spend_tier",
        sa.String(8),
        sa.CheckConstraint("spend_tier in ('high', 'medium', 'low')", name="predictions_spend_tier"),
    ),
    sa.CheckConstraint("repurchase_probability between 0 and 1", name="predictions_probability"),
    sa.CheckConstraint("risk_band in ('high', 'medium', 'low')", name="predictions_risk_band"),
    sa.Index("predictions_by_day_rank", "tenant_id", "as_of_date", "rank"),
)

PREDICTION_COLUMNS = [column.name for column in predictions_table.columns]
TARGET_COLUMNS = PREDICTION_COLUMNS[PREDICTION_COLUMNS.index("expected_orders") :]

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
    # Totals, tier counts and the model card's target quality (`scoring.batch_summary`); NULL before 0009.
    sa.Column("targets", sa.JSON),
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

# The targets monitored beside repurchase_probability, with their realized metrics' short names, the ranking
# metric first (probabilities: AUC, Brier; amounts: normalized Gini, MAE, aggregate bias = sum predicted / actual).
MONITORED_TARGETS = {
    "churn_probability": ("auc", "brier"),
    "expected_orders": ("gini", "mae", "bias"),
    "expected_revenue": ("gini", "mae", "bias"),
    "clv_365d": ("gini", "mae", "bias"),
}


def realized_column(target: str, metric: str) -> str:
    """The `monitoring_days` column of a target's realized metric, e.g. realized_clv_365d_gini."""
    return f"realized_{target}_{metric}"


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
    # Every target's monitoring (revision 0011): PSI per target, realized figures per target; NULL when not measured.
    *(sa.Column(f"{name}_psi", sa.Float) for name in MONITORED_TARGETS),
    *(
        sa.Column(realized_column(name, metric), sa.Float)
        for name, metrics in MONITORED_TARGETS.items()
        for metric in metrics
    ),
    sa.Column("year_predicted_on", sa.Date),  # the day clv_365d and churn_probability were predicted (365 days back)
    sa.Column("year_model_version", sa.String(32)),
    sa.Column("target_alarms", sa.Text),  # failing targets of target_floor, "none" when every measured one passed
)

# What each raw partition read, wrote and quarantined (by reason): the operator's quarantine view and
# the "far above usual" alert read this instead of every tenant's quarantine files.
ingestion_days_table = sa.Table(
    "ingestion_days",
    metadata,
    sa.Column("tenant_id", sa.String(63), primary_key=True),
    sa.Column("asset", sa.String(63), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("rows_read", sa.Integer, nullable=False),
    sa.Column("rows_written", sa.Integer, nullable=False),
    sa.Column("quarantined", sa.Integer, nullable=False),
    sa.Column("by_reason", sa.JSON, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# Quarantined orders an operator confirmed as real: screening lets them through on the next run.
released_orders_table = sa.Table(
    "released_orders",
    metadata,
    sa.Column("tenant_id", sa.String(63), primary_key=True),
    sa.Column("order_id", sa.String(128), primary_key=True),
    sa.Column("reason", sa.String(63), nullable=False),
    sa.Column("released_by", sa.String(200), nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("released_at", sa.DateTime(timezone=True), nullable=False),
)

# Each customer's orders for the dashboard and the API (revision 0010), which read the warehouse, never the lake:
# the latest version of every order the lake's raw order assets hold, quarantined ones excepted.
customer_orders_table = sa.Table(
    "customer_orders",
    metadata,
    sa.Column("tenant_id", sa.String(63), primary_key=True),
    sa.Column("order_id", sa.String(128), primary_key=True),
    sa.Column("customer_id", sa.String(128), nullable=False),
    sa.Column("ordered_at", sa.DateTime(timezone=True), nullable=False),  # the order's created_at
    sa.Column("total", sa.Float, nullable=False),  # total_price, in the tenant's currency
    sa.Column("refunded", sa.Float, nullable=False),  # total_refunded so far
    sa.Column("cancelled_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),  # the version: a newer one replaces it
    sa.Column("lake_day", sa.Date),  # the day partition holding this version; NULL: the history sweep
    sa.Index("customer_orders_by_customer", "tenant_id", "customer_id", "ordered_at"),
    sa.Index("customer_orders_by_lake_day", "tenant_id", "lake_day"),
)

_engines: dict[str, sa.Engine] = {}
_engines_lock = threading.Lock()


def engine_for(url: str) -> sa.Engine:
    """One pooled engine per URL and process for writers. Its creation brings the schema up to date
    (`upgrade_schema`: once per process, a no-op where `mlops db upgrade` already ran)."""
    with _engines_lock:
        if url not in _engines:
            upgrade_schema(url)
            is_sqlite = sa.make_url(url).get_backend_name() == "sqlite"
            options = {"connect_args": {"timeout": 30}} if is_sqlite else {"pool_pre_ping": True}
            _engines[url] = sa.create_engine(url, **options)
        return _engines[url]


class Bindable:
    """Reads through a pooled engine, or through one connection (`using`) so a web request checks
    out a connection once for all its queries instead of once per query. `read_only` (the API) reads
    through `read_engine`, which never migrates."""

    def __init__(self, warehouse_url: str, read_only: bool = False):
        self.engine = read_engine(warehouse_url) if read_only else engine_for(warehouse_url)
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
    It never migrates: a schema behind the code fails its creation (`SchemaNotCurrent`).
    """
    with _engines_lock:
        key = f"read:{url}"
        if key not in _engines:
            require_current_schema(url)
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
