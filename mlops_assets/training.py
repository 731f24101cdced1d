"""Training stage: `training_set` -> `candidate_model` -> `production_model`, per tenant and cutoff day.

The date of a partition is the training cutoff: the holdout is the snapshot H days before it, so
every label used has matured by the cutoff. Candidates are tracked and registered in MLflow; the
promotion gates (baseline, production on the same holdout, serving checks) move the `staging` and
`production` aliases and write every decision to the promotion log.
"""

import dagster as dg
import pandas as pd

from mlops_assets.batching import Batch, Check, Partition
from mlops_assets.core.lake.files import partition_path
from mlops_assets.core.lake.history import history_files, read_orders
from mlops_assets.core.ml.clv import CLV_DAYS
from mlops_assets.core.ml.training_data import SPLITS, YEAR_HOLDOUT, TrainingSet, build_training_set
from mlops_assets.core.monitoring.events import OperatorEvent
from mlops_assets.core.tenants.registry import Tenant
from mlops_assets.ingestion import HISTORY_DEPS
from mlops_assets.partitions import TenantDayPartitions
from mlops_assets.resources import (
    LakeResource,
    ModelPolicyResource,
    ModelRegistryResource,
    TenantRegistryResource,
    WebhookResource,
)

GROUP = "training"
TRAINING_SET_CHECKS = [
    Check("labels_matured", "Every label window ends on or before the cutoff's data", blocking=True),
    Check(
        "splits_in_time_order",
        "Train labels end before validation starts; validation's before the holdout",
        blocking=True,
    ),
    Check("enough_history", "Enough customers, days and positives for a model (else: flagged fallback)"),
]
CANDIDATE_CHECKS = [
    Check("holdout_metrics_finite", "AUC, Brier and log loss on the holdout are numbers", blocking=True),
    Check("beats_baseline", "Holdout AUC at least the better of recency/frequency and BG/NBD"),
]
PRODUCTION_CHECKS = [
    Check("promotion_gates", "The candidate beat the baseline and production on the same holdout"),
    # Not blocking (the run carries on to predictions with the model in production), yet an error to look at.
    Check(
        "serving_checks",
        "Single-row p99 < 100 ms, 10k batch, peak memory, no NaN, [0,1], schema",
        severity=dg.AssetCheckSeverity.ERROR,
    ),
]


def training_set(
    context: dg.AssetExecutionContext, lake: LakeResource, tenants: TenantRegistryResource, policy: ModelPolicyResource
):
    registry, root = tenants.registry(), lake.root()

    def build(part: Partition) -> pd.DataFrame:
        tenant = registry.get(part.tenant_id)
        files = history_files(root, part.tenant_id, through=part.day)
        plan = policy.plan(part.day, tenant.horizon_days)
        built = build_training_set(read_orders(files), plan, tenant.timezone, files.through, policy.thresholds())
        snapshots = built.frame.groupby("split")["snapshot"].agg(["min", "max"])
        horizon = pd.Timedelta(days=plan.horizon_days)
        windows = {**dict.fromkeys(SPLITS, horizon), YEAR_HOLDOUT: pd.Timedelta(days=CLV_DAYS)}
        immature = [
            split
            for split, window in windows.items()
            if split in snapshots.index and snapshots.loc[split, "max"] + window > pd.Timestamp(files.through)
        ]
        part.check("labels_matured", f"{', '.join(immature)} labels reach past {files.through}" if immature else None)
        overlaps = [
            f"{earlier} labels overlap {later}"
            for earlier, later in built.ordered_splits()
            if {earlier, later} <= set(snapshots.index)
            and snapshots.loc[earlier, "max"] + horizon > snapshots.loc[later, "min"]
        ]
        part.check("splits_in_time_order", "; ".join(overlaps) or None)
        part.check("enough_history", "; ".join(built.cold_start_reasons) or None)
        part.add_metadata(
            {
                "tenant": part.tenant_id,
                "cutoff": part.day.isoformat(),
                **built.summary(),
                "snapshots": built.frame["snapshot"].nunique(),
                "validation": built.validation,
                "history_digest": files.digest(),
                "history_files": len(files.files),
                "history_through": files.through.isoformat() if files.through else None,
                "cold_start": bool(built.cold_start_reasons),
                "cold_start_reasons": "; ".join(built.cold_start_reasons) or "none",
                **plan.as_params(),
            }
        )
        part.log(f"{part.tenant_id} cutoff {part.day}: {built.summary()}", notable=True)
        return built.frame

    batch = Batch(context, TRAINING_SET_CHECKS)
    yield from batch.results(build)


def _train(
    part: Partition,
    tenant: Tenant,
    frame: pd.DataFrame,
    lake: LakeResource,
    models: ModelRegistryResource,
    policy: ModelPolicyResource,
    fallback_reason: str | None = None,
):
    """Train, track and register the candidate of one tenant and cutoff; its data version is the training set's.

    Cold start is the training set's verdict (its materialization), unless a refused candidate is
    being replaced by the flagged fallback for `fallback_reason`.
    """
    from mlops_assets.core.ml.candidates import train_candidate

    upstream = part.upstream_metadata("training_set")
    recorded = upstream.get("cold_start_reasons", "none")
    reasons = [fallback_reason] if fallback_reason else ([] if recorded == "none" else [recorded])
    return train_candidate(
        models.registry(),
        part.tenant_id,
        TrainingSet(frame, policy.plan(part.day, tenant.horizon_days), reasons),
        data_digest=upstream.get("history_digest", "unknown"),
        data_through=upstream.get("history_through"),
        timezone=tenant.timezone,
        training_source=str(partition_path(lake.root(), "training_set", part.tenant_id, part.day)),
        tags={
            "dagster_run_id": part.batch.context.run.run_id,
            "dagster_partition": part.key,
            "cutoff": part.day.isoformat(),
        },
    )


def candidate_model(
    context: dg.AssetExecutionContext,
    training_set,
    lake: LakeResource,
    tenants: TenantRegistryResource,
    models: ModelRegistryResource,
    policy: ModelPolicyResource,
):
    registry = tenants.registry()
    batch = Batch(context, CANDIDATE_CHECKS)
    frames = batch.inputs(training_set)

    def train(part: Partition) -> pd.DataFrame:
        card = _train(part, registry.get(part.tenant_id), frames[part.key], lake, models, policy)
        part.check("holdout_metrics_finite", None if card.metrics_finite else str(card.metrics))
        below = card.kind == "lightgbm" and not card.beats_baseline
        auc = f"AUC {card.holdout_auc:.4f} < baseline {card.baseline_auc:.4f}"
        part.check("beats_baseline", auc if below else None)
        part.add_metadata(card.metadata())
        part.log(
            f"{part.tenant_id} cutoff {part.day}: {card.kind} version {card.version}, holdout AUC "
            f"{card.holdout_auc:.4f} vs baseline {card.baseline_auc:.4f}",
            notable=True,
        )
        return card.frame()

    yield from batch.results(train)


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
    from mlops_assets.core.ml.candidates import promote_candidate

    registry = tenants.registry()
    batch = Batch(context, PRODUCTION_CHECKS)
    cards, frames = batch.inputs(candidate_model), batch.inputs(training_set)
    trigger = context.run.tags.get("mlops/trigger", "manual")

    def promote(part: Partition) -> pd.DataFrame:
        tenant, card, frame = registry.get(part.tenant_id), cards[part.key].iloc[0], frames[part.key]
        outcome = promote_candidate(
            models.registry(),
            tenants.warehouse_url,
            part.tenant_id,
            card,
            frame,
            policy.promotion(after_drift=trigger == "drift"),
            lambda reason: _train(part, tenant, frame, lake, models, policy, fallback_reason=reason),
        )
        refused = not outcome.staged or outcome.candidate_version != str(card["version"])
        part.check("promotion_gates", outcome.reason if refused else None)
        part.check("serving_checks", "; ".join(outcome.serving_problems) or None)
        event = None
        if outcome.promoted:
            kind = "onboarded" if trigger == "onboarding" else "promoted"
            event = OperatorEvent(
                kind, part.tenant_id, part.day.isoformat(), f"{trigger}: {outcome.reason}", outcome.metadata()
            )
        elif trigger == "drift":
            event = OperatorEvent("refused", part.tenant_id, part.day.isoformat(), f"drift retrain: {outcome.reason}")
        delivery = webhook.announce(context.log, event) if event else "none"
        part.add_metadata({**outcome.metadata(), "trigger": trigger, "event": delivery})
        part.log(f"{part.tenant_id}: {outcome.reason}; production is v{outcome.production_version}", notable=True)
        return outcome.frame()

    yield from batch.results(promote)


def build_assets(partitions: TenantDayPartitions) -> list[dg.AssetsDefinition]:
    return [
        dg.asset(
            **partitions.asset(GROUP),
            kinds={"python", "parquet"},
            deps=HISTORY_DEPS,
            check_specs=[check.spec("training_set") for check in TRAINING_SET_CHECKS],
            description="Feature snapshots with every target's labels for train, validation and holdout days "
            "before the cutoff, the year holdout (365-day labels) and the cutoff itself (the value model's "
            "baseline), built from the lake as it stood at the cutoff.",
        )(training_set),
        dg.asset(
            **partitions.asset(GROUP),
            kinds={"lightgbm", "mlflow"},
            check_specs=[check.spec("candidate_model") for check in CANDIDATE_CHECKS],
            description="A deterministic LightGBM (early stopping on the validation snapshot) or, with too little "
            "data, the flagged recency/frequency fallback; tracked and registered in MLflow. The output is the "
            "model card.",
        )(candidate_model),
        dg.asset(
            **partitions.asset(GROUP),
            kinds={"mlflow"},
            check_specs=[check.spec("production_model") for check in PRODUCTION_CHECKS],
            description="Promotion: `staging` when the candidate beats the baseline and production on the same "
            "holdout, `production` after serving checks; every decision is in the promotion log "
            "(`mlops models history`).",
        )(production_model),
    ]
