"""The model lifecycle end to end through Dagster and the CLI: history -> window -> train -> promote ->
history of aliases -> reproduce -> rollback, against the shop emulator over HTTP and a real MLflow."""

import json
from datetime import timedelta

import pandas as pd
import pytest

from mlops_assets.definitions import defs
from mlops_assets.partitions import TenantDayPartitions
from mlops_assets.sim.shops import ShopSpec, SyntheticShop
from mlops_assets_tests.helpers import mlops

WINDOW = TenantDayPartitions.of(defs())
LAST = WINDOW.last_day


@pytest.fixture
def registered_shop(mlops_home, emulator_factory, monkeypatch):
    shop = SyntheticShop(
        ShopSpec("acme", customers=2000, seed=5, end=LAST, history_days=450, timezone="Europe/Berlin", currency="EUR")
    )
    emulator = emulator_factory({"acme": shop}, bucket=(400, 1000.0))
    monkeypatch.setenv("ACME_TOKEN", "shpat_test_token")
    added = mlops(
        "tenants",
        "add",
        "acme",
        "--source",
        "shopify",
        "--shop-url",
        emulator.shop_url("acme"),
        "--token-env",
        "ACME_TOKEN",
        "--timezone",
        "Europe/Berlin",
        "--currency",
        "EUR",
    )
    assert added.exit_code == 0, added.output
    return shop


def test_history_window_training_promotion_reproduction(registered_shop, mlops_home):
    first = WINDOW.first_day
    ingested = mlops("ingest", "--history", "--from", first.isoformat(), "--to", LAST.isoformat())
    assert ingested.exit_code == 0, ingested.output
    unscored = mlops("predict", "--from", LAST.isoformat(), "--to", LAST.isoformat())
    assert unscored.exit_code == 2 and "tenant acme has no `production` model" in unscored.output
    (swept,) = (mlops_home / "lake" / "raw_orders_history" / "tenant=acme").iterdir()
    assert swept.name == f"through={first - timedelta(days=1)}"
    history = pd.read_parquet(swept / "part-0.parquet")
    history_days = history["updated_at"].dt.tz_convert("UTC").dt.date
    assert history_days.nunique() > 300 and history_days.max() < first

    trained = mlops("train", "--cutoff", LAST.isoformat())
    assert trained.exit_code == 0, trained.output
    assert (mlops_home / "lake" / "customer_features" / "tenant=acme" / f"date={LAST.isoformat()}").exists()
    card = mlops_home / "lake" / "candidate_model" / "tenant=acme" / f"date={LAST.isoformat()}" / "part-0.parquet"
    assert card.exists()

    history = mlops("models", "history", "acme")
    assert history.exit_code == 0 and "production" in history.output and "promote" in history.output
    check_predictions(mlops_home)

    candidate = pd.read_parquet(card).iloc[0]
    reproduced = mlops("reproduce", "acme", str(candidate["version"]))
    assert reproduced.exit_code == 0, reproduced.output
    assert "bit-identical" in reproduced.output

    refused = mlops("models", "rollback", "acme")
    assert refused.exit_code == 2 and "no version before" in refused.output

    retrained = mlops("train", "--cutoff", (LAST - timedelta(days=7)).isoformat())
    assert retrained.exit_code == 0, retrained.output
    promoted = mlops("models", "promote", "acme", "--to-version", str(candidate["version"]), "--reason", "drill")
    assert promoted.exit_code == 0, promoted.output
    versions = [line for line in mlops("models", "history", "acme").output.splitlines() if "drill" in line]
    assert versions, "the manual promotion is in the promotion log with its reason"

    listed = json.loads(mlops("tenants", "list", "--json").output)
    assert listed["tenant_id"] == "acme"


def check_predictions(home):
    """`mlops predict` over two days: one warehouse row per snapshot customer, lineage recorded, reruns replace."""
    from mlops_assets.core.lake.files import file_digest, lake_root, partition_path, read_frame
    from mlops_assets.core.ml.tracking import PRODUCTION, ModelRegistry
    from mlops_assets.core.warehouse.prediction_store import PredictionReader, read_partition
    from mlops_assets.settings import Settings

    settings = Settings.from_env()
    days = [LAST - timedelta(days=1), LAST]
    predicted = mlops("predict", "--from", days[0].isoformat(), "--to", days[1].isoformat())
    assert predicted.exit_code == 0, predicted.output
    production = ModelRegistry(settings.mlflow_tracking_uri, settings.mlflow_artifact_uri).alias_version(
        "acme", PRODUCTION
    )
    features = partition_path(lake_root(settings.lake_url), "customer_features", "acme", LAST)
    stored = read_partition(settings.warehouse_url, "acme", LAST)
    assert len(stored) == len(read_frame(features)) > 1000
    assert set(stored["model_version"]) == {production.version}
    assert set(stored["feature_version"]) == {file_digest(features)}
    assert len(read_partition(settings.warehouse_url, "acme", days[0])) > 1000
    first_run = set(stored["run_id"])
    again = mlops("predict", "--from", LAST.isoformat(), "--to", LAST.isoformat())
    assert again.exit_code == 0, again.output
    rerun = read_partition(settings.warehouse_url, "acme", LAST)
    assert len(rerun) == len(stored) and set(rerun["run_id"]) != first_run, "a rerun replaces, never duplicates"
    assert [b["as_of_date"] for b in PredictionReader(settings.warehouse_url).batches("acme")] == days
    refused_when_broken(settings, production.version, rerun)


def refused_when_broken(settings, good_version: str, stored):
    """A production model that answers NaN: the gates fail the tenant-day before the write; its rows stay."""
    import math

    from mlops_assets.core.ml.baselines import BaselineModel, RecencyFrequencyBaseline
    from mlops_assets.core.ml.tracking import PRODUCTION, FallbackModel, ModelRegistry, model_name
    from mlops_assets.core.warehouse.prediction_store import read_partition

    registry = ModelRegistry(settings.mlflow_tracking_uri, settings.mlflow_artifact_uri)
    mlflow = registry._activate()
    broken = BaselineModel("recency_frequency", RecencyFrequencyBaseline([math.nan] * 4, 0.0))
    with mlflow.start_run(experiment_id=registry.experiment_id("acme")):
        logged = mlflow.pyfunc.log_model(name="model", python_model=FallbackModel(broken), pip_requirements=[])
    planted = mlflow.register_model(logged.model_uri, model_name("acme"), tags={"model_kind": "fallback"})
    registry.set_alias("acme", PRODUCTION, planted.version)
    try:
        failed = mlops("predict", "--from", LAST.isoformat(), "--to", LAST.isoformat())
        output = " ".join(failed.output.split())
        assert failed.exit_code == 2 and "tenant acme is blocked:" in output, output
        assert f"predictions {LAST}|acme blocked by gate no_nan:" in output
        assert "NaN in repurchase_probability" in output
        kept = read_partition(settings.warehouse_url, "acme", LAST)
        assert kept.equals(stored), "the failed run left the previous predictions exactly as they were"
    finally:
        registry.set_alias("acme", PRODUCTION, good_version)
