"""Tracking, registration, promotion gates, rollback and reproduction against a real MLflow registry."""

import numpy as np
import pandas as pd
import pytest

from mlops_assets.core.lake import files as lake
from mlops_assets.core.lake.history import history_files, read_orders
from mlops_assets.core.ml.candidates import promote_candidate, set_production, train_candidate
from mlops_assets.core.ml.promotion import PromotionLog, PromotionPolicy
from mlops_assets.core.ml.reproduction import reproduce
from mlops_assets.core.ml.tracking import PRODUCTION, STAGING, ModelRegistry
from mlops_assets.core.ml.training_data import TrainingPlan, TrainingSet, build_training_set
from mlops_assets.sim.shops import ShopSpec, SyntheticShop
from mlops_assets_tests.helpers import TEST_END, write_history

TENANT = "acme"


@pytest.fixture(scope="module")
def shop():
    return SyntheticShop(ShopSpec(TENANT, customers=2500, seed=9, end=TEST_END, history_days=550))


@pytest.fixture(scope="module")
def shared_lake(tmp_path_factory, shop):
    """The shop's history in a lake, and the training set built from it once for the module."""
    root = lake.lake_root(str(tmp_path_factory.mktemp("lake")))
    write_history(root, TENANT, shop)
    files = history_files(root, TENANT, through=TEST_END)
    built = build_training_set(read_orders(files), TrainingPlan(TEST_END), "UTC", files.through)
    return root, files.digest(), str(files.through), built


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request, tmp_path, shared_lake):
    """MLflow on SQLite or PostgreSQL, a warehouse for the promotion log, and the shared lake."""
    root, digest, through, built = shared_lake
    if request.param == "sqlite":
        tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    else:
        tracking = request.getfixturevalue("postgres_url").replace("postgresql+psycopg://", "postgresql+psycopg2://")
    registry = ModelRegistry(tracking, (tmp_path / "artifacts").as_uri())
    return {
        "root": root,
        "registry": registry,
        "warehouse": f"sqlite:///{tmp_path / 'w.db'}",
        "digest": digest,
        "through": through,
        "built": built,
    }


def train(world, *, shuffle_labels=False, cold_start=None):
    built = world["built"]
    built = TrainingSet(built.frame.copy(), built.plan, [cold_start] if cold_start else [])
    if shuffle_labels:
        rng = np.random.default_rng(0)
        train_rows = built.frame["split"].isin(["train", "valid"])
        built.frame.loc[train_rows, "label"] = rng.permutation(built.frame.loc[train_rows, "label"].to_numpy())
    card = train_candidate(
        world["registry"],
        TENANT,
        built,
        data_digest=world["digest"],
        data_through=world["through"],
        timezone="UTC",
        training_source=str(world["root"].path),
        tags={"cutoff": str(TEST_END)},
    )
    return card, built


def promote(world, card, built, policy=None):
    """As the production_model asset does: a tenant with no production model gets the flagged fallback."""
    return promote_candidate(
        world["registry"],
        world["warehouse"],
        TENANT,
        card.frame().iloc[0],
        built.frame,
        policy or PromotionPolicy(),
        lambda reason: train(world, cold_start=reason)[0],
    )


def test_a_training_run_is_fully_tracked(world):
    card, _ = train(world)
    run = world["registry"].run(card.run_id)
    metrics, params, tags = run.data.metrics, run.data.params, run.data.tags
    assert {
        "holdout_auc",
        "baseline_auc",
        "holdout_pr_auc",
        "holdout_brier",
        "holdout_log_loss",
        "holdout_precision_top_decile",
        "holdout_lift_top_decile",
    } <= set(metrics)
    assert params["plan_cutoff"] == str(TEST_END) and params["lgbm_deterministic"] == "True"
    assert params["training_window"].startswith("20") and int(params["features"]) > 20
    assert (
        tags["data_digest"].startswith("sha256:")
        and len(tags["git_commit"]) in (40, 7)
        or tags["git_commit"] == "unknown"
    )
    assert tags["git_dirty"] in ("true", "false", "unknown") and tags["version_lightgbm"].startswith("4.")
    assert run.inputs.dataset_inputs and run.inputs.dataset_inputs[0].dataset.name == f"training_set-{TENANT}"
    artifacts = {a.path for a in world["registry"].client.list_artifacts(card.run_id)}
    assert {"features.json", "plots", "holdout_predictions.npy", "value_model"} <= artifacts
    assert {"expected_orders_holdout_normalized_gini", "expected_orders_baseline_normalized_gini",
            "churn_probability_baseline_auc", "clv_365d_baseline_normalized_gini"} <= set(metrics)  # fmt: skip
    assert tags["target_expected_revenue_served"] in ("lightgbm", "baseline") and tags["value_model_digest"]
    value = world["registry"].value_model(card.run_id)
    served = {name for name, entry in value.quality.items() if entry["served"] == "lightgbm"}
    assert set(value.learned) == served - {"repurchase_probability"}
    version = world["registry"].version(TENANT, card.version)
    assert version.version == card.version and version.tags["model_kind"] == "lightgbm"
    model = world["registry"].load(TENANT, card.version)
    assert model.metadata.get_input_schema().input_names()[:2] == ["recency_days", "frequency"]


def test_worse_candidate_is_refused_and_production_stays(world):
    good, built = train(world)
    first = promote(world, good, built)
    assert first.promoted, "the candidate, or the flagged fallback when it did not beat the baseline, serves"
    serving = world["registry"].alias_version(TENANT, PRODUCTION).version
    bad, bad_built = train(world, shuffle_labels=True)
    outcome = promote(world, bad, bad_built)
    assert not outcome.promoted and "does not beat" in outcome.reason
    assert world["registry"].alias_version(TENANT, PRODUCTION).version == serving
    log = PromotionLog(world["warehouse"]).history(TENANT)
    assert log[-1]["action"] == "refuse" and log[-1]["version"] == bad.version
    assert log[-1]["metrics"]["candidate_auc"] < 0.7


def test_cold_start_fallback_is_flagged_and_never_replaces_a_model(world):
    fallback, built = train(world, cold_start="120 days of history, needs 180")
    outcome = promote(world, fallback, built)
    assert outcome.promoted and "cold start" in outcome.reason
    production = world["registry"].alias_version(TENANT, PRODUCTION)
    assert production.tags["fallback"] == "true" and production.tags["cold_start_reasons"].startswith("120 days")
    scores = world["registry"].load(TENANT, production.version).predict(built.split("holdout"))
    assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()
    real, real_built = train(world)
    lenient = PromotionPolicy(baseline_margin=-1.0)
    replaced = promote(world, real, real_built, lenient)
    assert replaced.promoted, "a real model that passes the gates replaces the fallback"
    assert world["registry"].alias_version(TENANT, PRODUCTION).tags["fallback"] == "false"
    again = promote(world, *train(world, cold_start="pretend"), lenient)
    assert not again.promoted and "never replaces" in again.reason


def test_rollback_restores_the_previous_version(world):
    first, built = train(world)
    promote(world, first, built)
    before = world["registry"].alias_version(TENANT, PRODUCTION).version
    second, _ = train(world)
    moved = set_production(
        world["registry"],
        world["warehouse"],
        TENANT,
        second.version,
        "promote",
        "manual",
        "test",
        built.split("holdout"),
    )
    assert moved.promoted and world["registry"].alias_version(TENANT, PRODUCTION).version == second.version
    log = PromotionLog(world["warehouse"])
    previous = log.previous_production(TENANT, second.version)
    assert previous == before
    set_production(world["registry"], world["warehouse"], TENANT, previous, "rollback", "drill", "test")
    assert world["registry"].alias_version(TENANT, PRODUCTION).version == before
    assert log.history(TENANT)[-1]["action"] == "rollback"


def test_a_production_model_that_cannot_be_loaded_does_not_block_its_replacement(world, tmp_path):
    from mlops_assets.core.ml.tracking import model_name

    registry = world["registry"]
    first, built = train(world)
    promote(world, first, built)
    serving = registry.version(TENANT, registry.alias_version(TENANT, PRODUCTION).version)
    gone = registry.client.create_model_version(model_name(TENANT), f"{tmp_path.as_uri()}/gone", serving.run_id)
    registry.set_alias(TENANT, PRODUCTION, gone.version)
    replacement, _ = train(world)
    outcome = promote(world, replacement, built, PromotionPolicy(baseline_margin=-1.0))
    assert outcome.promoted and registry.alias_version(TENANT, PRODUCTION).version == replacement.version
    assert f"production v{gone.version} could not be loaded" in outcome.reason, outcome.reason


def test_staging_alias_follows_the_gates(world):
    card, built = train(world)
    outcome = promote(world, card, built)
    staging = world["registry"].alias_version(TENANT, STAGING)
    assert staging is not None and staging.version == outcome.candidate_version


def test_reproduce_is_bit_identical_and_names_what_changed(tmp_path, shop):
    root = lake.lake_root(str(tmp_path / "lake"))
    write_history(root, TENANT, shop)
    files = history_files(root, TENANT, through=TEST_END)
    built = build_training_set(read_orders(files), TrainingPlan(TEST_END), "UTC", files.through)
    world = {
        "root": root,
        "registry": ModelRegistry(f"sqlite:///{tmp_path / 'mlflow.db'}", (tmp_path / "a").as_uri()),
        "digest": files.digest(),
        "through": str(files.through),
        "built": built,
    }
    card, _ = train(world)
    report = reproduce(world["registry"], world["root"], TENANT, card.version)
    assert report.identical, report.differences
    assert not [d for d in report.differences if d.startswith(("data", "package", "model"))]
    history_file = history_files(world["root"], TENANT).files[0]
    frame = lake.read_frame(history_file)
    from mlops_assets.core.sources.records import ORDERS_SCHEMA

    lake.write_frame(history_file, frame.iloc[1:], ORDERS_SCHEMA)
    changed = reproduce(world["registry"], world["root"], TENANT, card.version)
    assert any(d.startswith("data digest") for d in changed.differences)


def test_unknown_tenant_ids_never_reach_mlflow(world):
    from mlops_assets.core.tenants.ids import InvalidTenantId

    with pytest.raises(InvalidTenantId):
        world["registry"].alias_version("../etc", PRODUCTION)
    assert isinstance(pd.DataFrame(), pd.DataFrame)
