"""Training stage: `training_set` -> `candidate_model` -> `production_model`, per tenant and cutoff day.

The date of a partition is the training cutoff: the holdout is the snapshot H days before it, so
every label used has matured by the cutoff. Candidates are tracked and registered in MLflow; the
promotion gates (baseline, production on the same holdout, serving checks) move the `staging` and
`production` aliases and write every decision to the promotion log.
"""

import dagster as dg
import pandas as pd

from mlops_assets.core.lake.files import partition_path
from mlops_assets.core.lake.history import history_files, read_orders
from mlops_assets.core.ml.training_data import SPLITS, TrainingSet, build_training_set
from mlops_assets.core.monitoring.events import OperatorEvent
from mlops_assets.ingestion import HISTORY_DEPS
from mlops_assets.partitions import (
    add_partition_metadata,
    batch_check_result,
    latest_partition_metadata,
    tenant_and_day,
    tenant_day_asset,
)
from mlops_assets.resources import (
    LakeResource,
    ModelPolicyResource,
    ModelRegistryResource,
    TenantRegistryResource,
    WebhookResource,
)

GROUP = "training"


def _outputs(frames: dict, keys):
    return frames if len(keys) > 1 else frames[keys[0]]


@dg.asset(
    **tenant_day_asset(GROUP),
    kinds={"python", "parquet"},
    deps=HISTORY_DEPS,
    check_specs=[
        dg.AssetCheckSpec(
            "labels_matured",
            asset="training_set",
            blocking=True,
            description="Every label window ends on or before the cutoff's data",
        ),
        dg.AssetCheckSpec(
            "splits_in_time_order",
            asset="training_set",
            blocking=True,
            description="Train labels end before validation starts; validation's before the holdout",
        ),
        dg.AssetCheckSpec(
            "enough_history",
            asset="training_set",
            blocking=False,
            description="Enough customers, days and positives for a model (else: flagged fallback)",
        ),
    ],
    description="Feature snapshots with labels (any order within the tenant's horizon) for train, validation "
    "and holdout days before the cutoff, built from the lake as it stood at the cutoff.",
)
def training_set(
    context: dg.AssetExecutionContext, lake: LakeResource, tenants: TenantRegistryResource, policy: ModelPolicyResource
):
    registry, root = tenants.registry(), lake.root()
    frames, failures = {}, {"labels_matured": [], "splits_in_time_order": [], "enough_history": []}
    for key in context.partition_keys:
        tenant_id, cutoff = tenant_and_day(key)
        tenant = registry.get(tenant_id)
        files = history_files(root, tenant_id, through=cutoff)
        plan = policy.plan(cutoff, tenant.horizon_days)
        built = build_training_set(read_orders(files), plan, tenant.timezone, files.through, policy.thresholds())
        snapshots = built.frame.groupby("split")["snapshot"].agg(["min", "max"])
        horizon = pd.Timedelta(days=plan.horizon_days)
        if len(built.frame) and built.frame["snapshot"].max() + horizon > pd.Timestamp(files.through):
            failures["labels_matured"].append(f"{key}: labels reach past {files.through}")
        ordered = [s for s in SPLITS if s in snapshots.index]
        for earlier, later in zip(ordered, ordered[1:], strict=False):
            if snapshots.loc[earlier, "max"] + horizon > snapshots.loc[later, "min"]:
                failures["splits_in_time_order"].append(f"{key}: {earlier} labels overlap {later}")
        if built.cold_start_reasons:
            failures["enough_history"].append(f"{key}: {'; '.join(built.cold_start_reasons)}")
        add_partition_metadata(
            context,
            key,
            {
                "tenant": tenant_id,
                "cutoff": cutoff.isoformat(),
                **built.summary(),
                "snapshots": built.frame["snapshot"].nunique(),
                "history_digest": files.digest(),
                "history_files": len(files.files),
                "history_through": files.through.isoformat() if files.through else None,
                "cold_start": bool(built.cold_start_reasons),
                "cold_start_reasons": "; ".join(built.cold_start_reasons) or "none",
                **plan.as_params(),
            },
        )
        frames[key] = built.frame
        context.log.info(f"{tenant_id} cutoff {cutoff}: {built.summary()}")
    yield dg.Output(_outputs(frames, context.partition_keys))
    keys = context.partition_keys
    yield batch_check_result(
        "labels_matured", failures["labels_matured"], len(keys), "all labels matured by the cutoff"
    )
    yield batch_check_result(
        "splits_in_time_order", failures["splits_in_time_order"], len(keys), "train < valid < holdout in time"
    )
    yield batch_check_result(
        "enough_history", failures["enough_history"], len(keys), "enough data for a model", dg.AssetCheckSeverity.WARN
    )


@dg.asset(
    **tenant_day_asset(GROUP),
    kinds={"lightgbm", "mlflow"},
    check_specs=[
        dg.AssetCheckSpec(
            "holdout_metrics_finite",
            asset="candidate_model",
            blocking=True,
            description="AUC, Brier and log loss on the holdout are numbers",
        ),
        dg.AssetCheckSpec(
            "beats_baseline",
            asset="candidate_model",
            blocking=False,
            description="Holdout AUC at least the better of recency/frequency and BG/NBD",
        ),
    ],
    description="A deterministic LightGBM (early stopping on the validation snapshot) or, with too little data, "
    "the flagged recency/frequency fallback; tracked and registered in MLflow. The output is the model card.",
)
def candidate_model(
    context: dg.AssetExecutionContext,
    training_set,
    lake: LakeResource,
    tenants: TenantRegistryResource,
    models: ModelRegistryResource,
    policy: ModelPolicyResource,
):
    from mlops_assets.core.ml.candidates import train_candidate

    registry, model_registry = tenants.registry(), models.registry()
    keys = context.partition_keys
    inputs = training_set if len(keys) > 1 else {keys[0]: training_set}
    cards, not_finite, below = {}, [], []
    for key in keys:
        tenant_id, cutoff = tenant_and_day(key)
        tenant = registry.get(tenant_id)
        upstream = latest_partition_metadata(context, "training_set", key)
        plan = policy.plan(cutoff, tenant.horizon_days)
        built = TrainingSet(inputs[key], plan)
        reasons = [] if upstream.get("cold_start_reasons", "none") == "none" else [upstream["cold_start_reasons"]]
        built.cold_start_reasons = reasons
        card = train_candidate(
            model_registry,
            tenant_id,
            built,
            data_digest=upstream.get("history_digest", "unknown"),
            data_through=upstream.get("history_through"),
            timezone=tenant.timezone,
            training_source=str(partition_path(lake.root(), "training_set", tenant_id, cutoff)),
            tags={"dagster_run_id": context.run.run_id, "dagster_partition": key, "cutoff": cutoff.isoformat()},
        )
        if not card.metrics_finite:
            not_finite.append(f"{key}: {card.metrics}")
        if card.kind == "lightgbm" and not card.beats_baseline:
            below.append(f"{key}: AUC {card.holdout_auc:.4f} < baseline {card.baseline_auc:.4f}")
        add_partition_metadata(context, key, card.metadata())
        cards[key] = card.frame()
        context.log.info(
            f"{tenant_id} cutoff {cutoff}: {card.kind} version {card.version}, holdout AUC "
            f"{card.holdout_auc:.4f} vs baseline {card.baseline_auc:.4f}"
        )
    yield dg.Output(_outputs(cards, keys))
    yield batch_check_result("holdout_metrics_finite", not_finite, len(keys), "holdout metrics are numbers")
    yield batch_check_result(
        "beats_baseline", below, len(keys), "every candidate beats the baseline", dg.AssetCheckSeverity.WARN
    )


@dg.asset(
    **tenant_day_asset(GROUP),
    kinds={"mlflow"},
    check_specs=[
        dg.AssetCheckSpec(
            "promotion_gates",
            asset="production_model",
            blocking=False,
            description="The candidate beat the baseline and production on the same holdout",
        ),
        dg.AssetCheckSpec(
            "serving_checks",
            asset="production_model",
            blocking=False,
            description="Single-row p99 < 100 ms, 10k batch, peak memory, no NaN, [0,1], schema",
        ),
    ],
    description="Promotion: `staging` when the candidate beats the baseline and production on the same holdout, "
    "`production` after serving checks; every decision is in the promotion log (`mlops models history`).",
)
def production_model(
    context: dg.AssetExecutionContext,
    candidate_model,
    training_set,
    lake: LakeResource,
    tenants: TenantRegistryResource,
    models: ModelRegistryResource,
    policy: ModelPolicyResource,
    webhook: WebhookResource,
):
    from mlops_assets.core.ml.candidates import promote_candidate, train_candidate

    registry = tenants.registry()
    keys = context.partition_keys
    cards = candidate_model if len(keys) > 1 else {keys[0]: candidate_model}
    sets = training_set if len(keys) > 1 else {keys[0]: training_set}
    decisions, refused, serving_failed = {}, [], []
    trigger = context.run.tags.get("mlops/trigger", "manual")
    for key in keys:
        tenant_id, cutoff = tenant_and_day(key)
        upstream = latest_partition_metadata(context, "training_set", key)

        def register_fallback(reason: str, tenant_id=tenant_id, cutoff=cutoff, key=key, upstream=upstream):
            built = TrainingSet(sets[key], policy.plan(cutoff, registry.get(tenant_id).horizon_days), [reason])
            return train_candidate(
                models.registry(),
                tenant_id,
                built,
                data_digest=upstream.get("history_digest", "unknown"),
                data_through=upstream.get("history_through"),
                timezone=registry.get(tenant_id).timezone,
                training_source=str(partition_path(lake.root(), "training_set", tenant_id, cutoff)),
                tags={"dagster_run_id": context.run.run_id, "dagster_partition": key, "cutoff": cutoff.isoformat()},
            )

        outcome = promote_candidate(
            models.registry(),
            tenants.warehouse_url,
            tenant_id,
            cards[key].iloc[0],
            sets[key],
            policy.promotion(after_drift=trigger == "drift"),
            register_fallback,
        )
        if not outcome.staged or outcome.candidate_version != str(cards[key].iloc[0]["version"]):
            refused.append(f"{key}: {outcome.reason}")
        if outcome.serving_problems:
            serving_failed.append(f"{key}: {'; '.join(outcome.serving_problems)}")
        event = None
        if outcome.promoted:
            kind = "onboarded" if trigger == "onboarding" else "promoted"
            event = OperatorEvent(
                kind, tenant_id, cutoff.isoformat(), f"{trigger}: {outcome.reason}", outcome.metadata()
            )
        elif trigger == "drift":
            event = OperatorEvent("refused", tenant_id, cutoff.isoformat(), f"drift retrain: {outcome.reason}")
        delivery = webhook.announce(context.log, event) if event else "none"
        add_partition_metadata(context, key, {**outcome.metadata(), "trigger": trigger, "event": delivery})
        decisions[key] = outcome.frame()
        context.log.info(f"{tenant_id}: {outcome.reason}; production is version {outcome.production_version}")
    yield dg.Output(_outputs(decisions, keys))
    yield batch_check_result(
        "promotion_gates", refused, len(keys), "every candidate passed the gates", dg.AssetCheckSeverity.WARN
    )
    yield batch_check_result("serving_checks", serving_failed, len(keys), "serving checks passed")
