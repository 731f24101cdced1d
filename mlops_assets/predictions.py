"""Prediction stage: `predictions` per tenant and day, the production model applied to that day's snapshot.

The model is loaded once per tenant per run (runs batch many tenant-days). The gates run before
anything is written: a failing tenant-day fails the run and leaves the warehouse as it was.
Storage is the warehouse IO manager's business (PostgreSQL COPY or SQLite), not this module's.
"""

from datetime import UTC, datetime

import dagster as dg

from mlops_assets.partitions import (
    SAME_TENANT_ANY_DAY,
    add_partition_metadata,
    batch_check_result,
    log_progress,
    tenant_and_day,
    tenant_day_asset,
)
from mlops_assets.resources import ModelPolicyResource, ModelRegistryResource

CHECKS = {
    "row_count_matches_snapshot": "One row per customer of the day's feature snapshot",
    "probabilities_in_range": "Every probability in [0, 1]",
    "no_nan": "No NaN probability",
    "model_recorded": "Every row names the model version that scored it",
}


@dg.asset(
    **tenant_day_asset("predictions", io_manager_key="warehouse_io_manager"),
    kinds={"lightgbm", "sql"},
    ins={"customer_features": dg.AssetIn()},
    # The production alias may point at a model trained at any cutoff of the same tenant.
    deps=[dg.AssetDep("production_model", partition_mapping=SAME_TENANT_ANY_DAY)],
    check_specs=[
        dg.AssetCheckSpec(name, asset="predictions", blocking=True, description=description)
        for name, description in CHECKS.items()
    ],
    description="Per customer: probability of ordering again within the tenant's horizon, churn-risk band, rank, "
    "percentile and top reasons, from the `production` model; one warehouse partition per tenant-day.",
)
def predictions(
    context: dg.AssetExecutionContext,
    customer_features,
    models: ModelRegistryResource,
    policy: ModelPolicyResource,
):
    from mlops_assets.core.ml.scoring import NoProductionModel, load_served_model, prediction_problems, score_snapshot

    keys = context.partition_keys
    snapshots = customer_features if len(keys) > 1 else {keys[0]: customer_features}
    registry, served, frames = models.registry(), {}, {}
    failures: dict[str, list[str]] = {name: [] for name in CHECKS}
    created_at = datetime.now(UTC)
    for position, key in enumerate(keys, start=1):
        tenant_id, day = tenant_and_day(key)
        if tenant_id not in served:
            try:
                served[tenant_id] = load_served_model(registry, tenant_id)
            except NoProductionModel as exc:
                raise dg.Failure(str(exc), metadata={"tenant": tenant_id}) from exc
        model, snapshot = served[tenant_id], snapshots[key]
        digest = snapshot.attrs.get("digest", "unknown")
        frame = score_snapshot(model, snapshot, day, str(digest), context.run.run_id, created_at, policy.bands())
        for name, problem in prediction_problems(frame, len(snapshot)).items():
            failures[name].append(f"{key}: {problem}")
        add_partition_metadata(
            context,
            key,
            {
                "tenant": tenant_id,
                "customers": len(frame),
                "model_version": model.version,
                "model_kind": model.kind,
                "feature_version": str(digest),
                **{f"risk_{band}": int((frame["risk_band"] == band).sum()) for band in ("high", "medium", "low")},
            },
        )
        frames[key] = frame
        log_progress(context, position, len(keys), f"{tenant_id} {day}: {len(frame)} customers, model v{model.version}")
    for name, failed in failures.items():
        yield batch_check_result(name, failed, len(keys), CHECKS[name])
    failed = {name: entries for name, entries in failures.items() if entries}
    if failed:
        first = next(iter(failed.values()))[0]
        raise dg.Failure(
            f"predictions gates {', '.join(failed)} failed, nothing written; first: {first}",
            metadata={name: entries[:50] for name, entries in failed.items()},
        )
    yield dg.Output(frames if len(keys) > 1 else frames[keys[0]])
