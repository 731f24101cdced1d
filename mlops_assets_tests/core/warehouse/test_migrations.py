"""The warehouse schema under Alembic, on SQLite and PostgreSQL: fresh and pre-Alembic warehouses end at
the tables of `engine.py` with their rows intact, upgrades are idempotent and safe when processes start
together, and the API never migrates."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from mlops_assets.core.warehouse.engine import TARGET_COLUMNS, metadata, read_engine
from mlops_assets.core.warehouse.schema import (
    LEGACY_LEDGER,
    SchemaNotCurrent,
    alembic_config,
    head_revision,
    upgrade_schema,
)

NOW = datetime(2026, 11, 1, 6, tzinfo=UTC)
DAY = date(2026, 10, 31)


def legacy_tables(with_monitoring: bool) -> sa.MetaData:
    """The tables as the hand-written migrations (commit a02c504) created them, frozen here: the code of
    ledger versions 1-5 had no `tenants.monitoring`, which version 6 added."""
    legacy = sa.MetaData()
    monitoring = sa.Column("monitoring", sa.JSON, nullable=False, server_default=sa.text("'{}'"))
    sa.Table(
        "tenants", legacy,
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
        *([monitoring] if with_monitoring else []),
        sa.CheckConstraint("source_kind in ('shopify', 'file')", name="tenants_source_kind"),
        sa.CheckConstraint("status in ('active', 'paused')", name="tenants_status"),
        sa.CheckConstraint("horizon_days between 1 and 365", name="tenants_horizon_days"),
    )  # fmt: skip
    sa.Table(
        "model_promotions", legacy,
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
    )  # fmt: skip
    sa.Table(
        "predictions", legacy,
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
    )  # fmt: skip
    sa.Table(
        "prediction_batches", legacy,
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
    )  # fmt: skip
    sa.Table(
        "api_keys", legacy,
        sa.Column("key_id", sa.String(16), primary_key=True),
        sa.Column("tenant_id", sa.String(63), nullable=False, index=True),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
    )  # fmt: skip
    sa.Table(
        "monitoring_days", legacy,
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
    )  # fmt: skip
    sa.Table(
        LEGACY_LEDGER, legacy,
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("description", sa.String(200), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
    )  # fmt: skip
    return legacy


# The ledger's versions: the table each created (6 added `tenants.monitoring`), and a row to keep.
LEDGER = {
    1: ("tenants", dict(
        tenant_id="acme", display_name="Acme", source_kind="file", source_settings={"path": "orders.csv"},
        timezone="UTC", currency="USD", horizon_days=30, status="active", created_at=NOW, updated_at=NOW,
    )),
    2: ("model_promotions", dict(
        tenant_id="acme", model_name="acme-repurchase", alias="production", version="2", previous_version="1",
        action="promote", reason="beats production", metrics={"auc": 0.81}, run_id="r1", actor="test", created_at=NOW,
    )),
    3: ("predictions", dict(
        tenant_id="acme", customer_id="c-1", as_of_date=DAY, repurchase_probability=0.42, risk_band="medium", rank=1,
        percentile=100.0, model_name="acme-repurchase", model_version="2", feature_version="f1", run_id="r2",
        created_at=NOW, top_reasons="recency_days",
    )),
    4: ("prediction_batches", dict(
        tenant_id="acme", as_of_date=DAY, customers=1, mean_probability=0.42, band_counts={"medium": 1},
        histogram=[0, 1], model_name="acme-repurchase", model_version="2", model_kind="lightgbm",
        model_metrics={"auc": 0.81}, feature_version="f1", run_id="r2", created_at=NOW,
    )),
    5: ("api_keys", dict(key_id="0123456789ab", tenant_id="acme", key_hash="0" * 64, label="crm", created_at=NOW)),
    6: (None, None),
    7: ("monitoring_days", dict(tenant_id="acme", as_of_date=DAY, drifted_share=0.1, updated_at=NOW)),
}  # fmt: skip


def legacy_warehouse(url: str, last_version: int) -> None:
    """A warehouse the hand-written migrations brought to `last_version`, with one row in each table."""
    legacy = legacy_tables(with_monitoring=last_version >= 6)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        legacy.tables[LEGACY_LEDGER].create(conn)
        for version in range(1, last_version + 1):
            name, row = LEDGER[version]
            if name:
                legacy.tables[name].create(conn)
                conn.execute(legacy.tables[name].insert().values(**row))
            conn.execute(
                legacy.tables[LEGACY_LEDGER].insert().values(version=version, description=f"v{version}", applied_at=NOW)
            )
    engine.dispose()


def contents(url: str) -> tuple[set[str], dict[str, list[dict]]]:
    """The warehouse's table names, and the rows of those `engine.py` defines."""
    engine = sa.create_engine(url)
    found = {}
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        names = set(inspector.get_table_names())
        for name in names & set(metadata.tables):
            present = {column["name"] for column in inspector.get_columns(name)}
            query = sa.select(*(c for c in metadata.tables[name].columns if c.name in present))
            found[name] = [dict(row) for row in conn.execute(query).mappings()]
    engine.dispose()
    return names, found


def schema_differences(url: str) -> list:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    return differences


def _comparable(row: dict) -> dict:
    """SQLite hands timestamps back without their zone."""
    return {key: value.replace(tzinfo=None) if isinstance(value, datetime) else value for key, value in row.items()}


def test_a_fresh_warehouse_is_the_tables_and_upgrading_again_changes_nothing(warehouse_url):
    assert upgrade_schema(warehouse_url) == (None, head_revision())
    assert upgrade_schema(warehouse_url) == (head_revision(), head_revision())
    assert schema_differences(warehouse_url) == []


@pytest.mark.parametrize("last_version", [1, 5, 7])
def test_a_warehouse_from_before_alembic_upgrades_in_place(warehouse_url, last_version):
    legacy_warehouse(warehouse_url, last_version)
    assert upgrade_schema(warehouse_url) == (f"{last_version:04d}", head_revision())
    assert schema_differences(warehouse_url) == []
    names, kept = contents(warehouse_url)
    assert LEGACY_LEDGER not in names and "monitoring_days" in names
    for name, written in (LEDGER[version] for version in range(1, last_version + 1)):
        if name:
            assert [_comparable({key: row[key] for key in written}) for row in kept[name]] == [_comparable(written)]
    assert kept["tenants"][0]["monitoring"] == {}
    if last_version >= 3:
        assert {kept["predictions"][0][name] for name in TARGET_COLUMNS} == {None}, "no targets before 0009"


def test_a_ledger_that_old_code_recreated_beside_alembic_is_retired(warehouse_url):
    """Releases side by side: the old one finds every table and only records its versions again."""
    upgrade_schema(warehouse_url)
    ledger = legacy_tables(with_monitoring=True).tables[LEGACY_LEDGER]
    engine = sa.create_engine(warehouse_url)
    with engine.begin() as conn:
        ledger.create(conn)
        conn.execute(ledger.insert(), [dict(version=v, description=f"v{v}", applied_at=NOW) for v in LEDGER])
    engine.dispose()
    assert upgrade_schema(warehouse_url) == (head_revision(), head_revision())
    assert LEGACY_LEDGER not in contents(warehouse_url)[0]


def test_downgrades_lead_back_to_an_empty_warehouse(warehouse_url):
    upgrade_schema(warehouse_url)
    engine = sa.create_engine(warehouse_url)
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "base")
    engine.dispose()
    assert contents(warehouse_url)[0] == {"alembic_version"}
    assert upgrade_schema(warehouse_url) == (None, head_revision())
    assert schema_differences(warehouse_url) == []


def test_processes_starting_together_apply_each_revision_once(warehouse_url):
    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(lambda _: upgrade_schema(warehouse_url), range(4)))
    assert sorted(before or "" for before, _ in outcomes) == ["", *[head_revision()] * 3]
    assert {after for _, after in outcomes} == {head_revision()}


def test_the_api_never_migrates_and_names_the_command_that_does(warehouse_url):
    from mlops_assets.serving.app import create_app

    legacy_warehouse(warehouse_url, 7)
    with pytest.raises(SchemaNotCurrent, match=r"before Alembic.*needs revision \d+: run `mlops db upgrade`"):
        create_app(warehouse_url, "test-secret")
    assert LEGACY_LEDGER in contents(warehouse_url)[0]
    upgrade_schema(warehouse_url)
    reader = create_app(warehouse_url, "test-secret").state.reader
    assert [(batch["run_id"], batch["targets"]) for batch in reader.batches("acme")] == [("r2", None)]


def test_the_api_does_not_create_a_missing_sqlite_warehouse(tmp_path):
    missing = tmp_path / "nowhere" / "warehouse.db"
    with pytest.raises(SchemaNotCurrent, match="empty"):
        read_engine(f"sqlite:///{missing}")
    assert not missing.parent.exists()
