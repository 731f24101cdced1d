"""Monitoring stage: `drift_report` and `realized_performance` per tenant and day.

Their checks warn instead of block (drift does not make a day's data wrong); the retrain and
rollback sensors in automation.py read the per-partition metadata these assets write (`alarms`,
`regressed`), since a check result covers a whole run of many tenant-days.
"""

from datetime import date, timedelta

import dagster as dg
import numpy as np
import pandas as pd

from mlops_assets.batching import Batch, Check, Partition
from mlops_assets.core.lake.files import partition_path, read_frame, write_atomic
from mlops_assets.core.ml.training_data import stored_holdout_sample
from mlops_assets.core.monitoring.events import OperatorEvent
from mlops_assets.core.warehouse.engine import MONITORED_TARGETS, realized_column
from mlops_assets.core.warehouse.prediction_store import record_monitoring
from mlops_assets.ingestion import HISTORY_DEPS
from mlops_assets.partitions import SAME_TENANT_ANY_DAY, TenantDayPartitions
from mlops_assets.resources import (
    LakeResource,
    ModelRegistryResource,
    MonitoringPolicyResource,
    TenantRegistryResource,
    WebhookResource,
)

GROUP = "monitoring"
REPORTS = "drift_reports"
REALIZED_COLUMNS = [
    "tenant_id", "as_of_date", "predicted_on", "model_version", "customers", "positives", "base_rate", "auc", "brier",
    "top_decile_precision", "holdout_auc", "predecessor_version", "predecessor_auc",
]  # fmt: skip
REALIZED_TARGET_COLUMNS = [
    *(realized_column(name, metric) for name, metrics in MONITORED_TARGETS.items() for metric in metrics),
    "year_predicted_on", "target_alarms",
]  # fmt: skip
DRIFT_CHECKS = [
    Check(
        "feature_drift",
        "Share of features whose normed Wasserstein distance to the model's reference reaches the threshold stays "
        "below the tenant's limit",
    ),
    Check(
        "prediction_drift",
        "PSI of each served target's day scores against the same model's scores on its reference stays below the "
        "limit (a failure names the targets)",
    ),
]
PERFORMANCE_CHECKS = [
    Check(
        "performance_floor",
        "Realized AUC of the predictions made H days earlier is above the floor and not far below the model's "
        "holdout AUC",
    ),
    Check(
        "target_floor",
        "Realized churn AUC and normalized Gini of expected orders, revenue and CLV (once their labels mature) are "
        "above their floors and not far below their holdout figures (a failure names the targets)",
    ),
    Check(
        "beats_predecessor",
        "A newly promoted version does at least as well as the version it replaced, on the same customers and "
        "outcomes (else: automatic rollback)",
    ),
]


def _report_path(root, tenant_id: str, day):
    return partition_path(root, REPORTS, tenant_id, day).with_name("report.html")


def reference_snapshot(root, tenant_id: str, cutoff: str | None) -> pd.DataFrame:
    """The feature snapshot of the model's training cutoff; the holdout snapshot if that day is gone."""
    if cutoff:
        path = partition_path(root, "customer_features", tenant_id, cutoff)
        if path.exists():
            return read_frame(path)
        holdout = stored_holdout_sample(root, tenant_id, cutoff)
        if holdout is not None:
            return holdout
    raise dg.Failure(
        f"tenant {tenant_id}: no drift reference for the model trained at cutoff {cutoff} (neither "
        f"customer_features nor training_set of that day is in the lake; fix: retrain the tenant)",
        metadata={"tenant": tenant_id},
    )


def scored_reference(
    root, warehouse_url: str, model_registry, tenant_id: str, version: str
) -> tuple[pd.DataFrame, str]:
    """The version's drift reference with its scores of every target it serves, and its training cutoff.

    The scores are the warehouse's predictions of the cutoff day when that version wrote them (a retrain
    run scores its cutoff with the model it promotes); only otherwise is the model loaded to score again.
    In a run of many tenants this spares a second model load per tenant after the predictions step. A
    version registered before the value model (no `value_model_digest` tag) served each day a baseline
    refitted on that day: no model of its own scored the reference, so only its repurchase score is.
    """
    from mlops_assets.core.ml.scoring import load_served_model
    from mlops_assets.core.monitoring.drift import DRIFT_TARGETS, PREDICTION
    from mlops_assets.core.warehouse.prediction_store import read_partition

    tags = model_registry.version(tenant_id, version).tags
    cutoff = tags.get("cutoff")
    served = list(DRIFT_TARGETS) if "value_model_digest" in tags else [PREDICTION]
    reference = reference_snapshot(root, tenant_id, cutoff)
    stored = read_partition(
        warehouse_url, tenant_id, date.fromisoformat(cutoff), ["customer_id", "model_version", *served]
    )
    if len(stored) == len(reference) and set(stored["model_version"].astype(str)) == {version}:
        scores = stored.set_index("customer_id")[served].astype(float)
        if scores.index.is_unique and set(scores.index) == set(reference["customer_id"]) and scores.notna().all().all():
            ordered = scores.loc[reference["customer_id"]]
            return reference.assign(**{name: ordered[name].to_numpy() for name in served}), cutoff
    model = load_served_model(model_registry, tenant_id, version)
    scored = reference.assign(**{PREDICTION: model.predict(reference)})
    if model.value is not None:
        values = model.value.predict(reference, date.fromisoformat(cutoff))
        scored = scored.assign(**{name: values[name].to_numpy(float) for name in served if name != PREDICTION})
    return scored, cutoff


def drift_report(
    context: dg.AssetExecutionContext,
    customer_features,
    predictions,
    lake: LakeResource,
    tenants: TenantRegistryResource,
    models: ModelRegistryResource,
    monitoring: MonitoringPolicyResource,
    webhook: WebhookResource,
):
    from mlops_assets.core.monitoring.charts import score_histogram_markdown
    from mlops_assets.core.monitoring.drift import DRIFT_TARGETS, PREDICTION, drift_report_html, measure_drift

    root, registry, model_registry = lake.root(), tenants.registry(), models.registry()
    batch = Batch(context, DRIFT_CHECKS)
    snapshots, scored = batch.inputs(customer_features), batch.inputs(predictions)

    @batch.per_tenant
    def reference(tenant_id: str, version: str) -> tuple[pd.DataFrame, str]:
        return scored_reference(root, tenants.warehouse_url, model_registry, tenant_id, version)

    def measure(part: Partition) -> pd.DataFrame:
        tenant_id, day, rows = part.tenant_id, part.day, scored[part.key]
        if rows.empty:
            raise dg.Failure(f"tenant {tenant_id} {day}: no predictions to compare (fix: materialize predictions)")
        tenant, version = registry.get(tenant_id), str(rows["model_version"].iloc[0])
        reference_rows, cutoff = reference(tenant_id, version)
        targets = rows[["customer_id"]].assign(**{name: rows[name].astype(float) for name in DRIFT_TARGETS})
        current = snapshots[part.key].merge(targets, on="customer_id", validate="one_to_one")
        thresholds = monitoring.thresholds(tenant)
        result = measure_drift(reference_rows, current, thresholds)
        problems = result.problems(thresholds)
        path = _report_path(root, tenant_id, day)
        if problems:
            write_atomic(path, drift_report_html(reference_rows, current, thresholds).encode())
        for check in DRIFT_CHECKS:
            part.check(check.name, problems.get(check.name))
        delivery = "none"
        if problems:
            delivery = webhook.announce(
                context.log,
                OperatorEvent(
                    "drift_detected", tenant_id, day.isoformat(), "; ".join(problems.values()),
                    {"model_version": version, "report": str(path), **{k: True for k in problems}},
                ),
            )  # fmt: skip
        part.add_metadata(
            {
                "tenant": tenant_id,
                "model_version": version,
                "reference_day": str(cutoff),
                "reference_rows": result.reference_rows,
                "current_rows": result.current_rows,
                "drifted_share": round(result.drifted_share, 4),
                "drifted_features": ", ".join(result.drifted_features) or "none",
                "unmeasured_features": ", ".join(result.unmeasured) or "none",
                "prediction_psi": round(result.prediction_psi, 4),
                "target_psi": dg.MetadataValue.json({k: round(v, 4) for k, v in result.target_psi.items()}),
                "drifted_targets": ", ".join(result.drifted_targets(thresholds)) or "none",
                "unmeasured_targets": ", ".join(result.unmeasured_targets) or "none",
                "alarms": ", ".join(problems) or "none",
                "event": delivery,
                "feature_scores": dg.MetadataValue.json({k: round(v, 4) for k, v in result.feature_scores.items()}),
                **({"report": dg.MetadataValue.path(str(path))} if problems else {}),
                "scores": dg.MetadataValue.md(
                    score_histogram_markdown(
                        reference_rows[PREDICTION].to_numpy(),
                        current[PREDICTION].to_numpy(),
                        f"{tenant_id} {day} scores",
                    )
                ),
            }
        )
        record_monitoring(
            tenants.warehouse_url, tenant_id, day, model_version=version, reference_day=str(cutoff),
            drifted_share=result.drifted_share, drifted_features=", ".join(result.drifted_features),
            prediction_psi=result.prediction_psi, drift_alarms=", ".join(problems) or "none",
            **{f"{name}_psi": result.target_psi.get(name) for name in MONITORED_TARGETS},
        )  # fmt: skip
        part.log(
            f"{tenant_id} {day}: drifted share {result.drifted_share:.2f}, score PSI {result.prediction_psi:.3f}"
            f"{'; ' + '; '.join(problems.values()) if problems else ''}",
            notable=bool(problems),
        )
        return result.frame()

    yield from batch.results(measure)


def _trend(reader, tenant_id: str, day: date, days: int = 60) -> tuple[list[str], dict[str, list[float]]]:
    """Realized and holdout AUC of the tenant's earlier days, from the warehouse's monitoring summaries."""
    earlier = [
        row for row in reader.monitoring(tenant_id, limit=days + 1)
        if row["as_of_date"] < day and row["realized_auc"] is not None
    ]  # fmt: skip
    return [row["as_of_date"].isoformat() for row in earlier], {
        "realized": [row["realized_auc"] for row in earlier],
        "holdout": [float("nan") if row["holdout_auc"] is None else row["holdout_auc"] for row in earlier],
    }


def realized_performance(
    context: dg.AssetExecutionContext,
    lake: LakeResource,
    tenants: TenantRegistryResource,
    models: ModelRegistryResource,
    monitoring: MonitoringPolicyResource,
    webhook: WebhookResource,
):
    from mlops_assets.core.lake.history import history_files, read_orders
    from mlops_assets.core.ml.promotion import PromotionLog
    from mlops_assets.core.ml.scoring import load_served_model
    from mlops_assets.core.ml.targets import target_labels
    from mlops_assets.core.monitoring.charts import trend_markdown
    from mlops_assets.core.monitoring.performance import performance_problem, realized_metrics, regressed
    from mlops_assets.core.monitoring.targets import (
        HORIZON_TARGETS,
        holdouts,
        monitoring_fields,
        realized_targets,
        retraining,
        target_problems,
        year_targets,
    )
    from mlops_assets.core.warehouse.prediction_store import PredictionReader, read_partition

    root, registry, warehouse = lake.root(), tenants.registry(), tenants.warehouse_url
    log, reader, model_registry = PromotionLog(warehouse), PredictionReader(warehouse), models.registry()

    def evaluate(part: Partition) -> pd.DataFrame:
        tenant_id, day, tenant = part.tenant_id, part.day, registry.get(part.tenant_id)
        thresholds, predicted_on = monitoring.thresholds(tenant), day - timedelta(days=tenant.horizon_days)
        scored = read_partition(warehouse, tenant_id, predicted_on)
        files = history_files(root, tenant_id, through=day)
        if scored.empty or files.through is None or files.through < day:
            reason = f"no predictions on {predicted_on}" if scored.empty else f"orders only through {files.through}"
            part.add_metadata({"tenant": tenant_id, "status": f"not evaluated: {reason}"})
            return pd.DataFrame(columns=[*REALIZED_COLUMNS, *REALIZED_TARGET_COLUMNS])
        history = read_orders(files)
        outcomes = target_labels(
            history, scored["customer_id"], predicted_on, tenant.timezone, tenant.horizon_days, day
        )
        outcome = outcomes["repurchased"].to_numpy(float).astype(bool)  # one row per scored customer, in order
        metrics = realized_metrics(scored["repurchase_probability"].to_numpy(float), outcome)
        version, batch = str(scored["model_version"].iloc[0]), reader.batch(tenant_id, predicted_on) or {}
        holdout_auc = float(batch.get("model_metrics", {}).get("holdout_auc", "nan"))
        targets = realized_targets(scored, outcomes, HORIZON_TARGETS)
        year = year_targets(warehouse, reader, history, tenant, day)
        targets.update(year.realized)
        expected = {**holdouts(batch, HORIZON_TARGETS), **year.holdouts}
        failing = target_problems(targets, expected, thresholds)
        predecessor, predecessor_auc = log.promoted_over(tenant_id, version), float("nan")
        cutoff = model_registry.version(tenant_id, version).tags.get("cutoff") if predecessor else None
        if predecessor and cutoff and (predicted_on - pd.Timestamp(cutoff).date()).days <= thresholds.probation_days:
            replaced = load_served_model(model_registry, tenant_id, predecessor)
            snapshot = read_frame(partition_path(root, "customer_features", tenant_id, predicted_on))
            snapshot = snapshot.set_index("customer_id").loc[scored["customer_id"]].reset_index()
            predecessor_auc = realized_metrics(replaced.predict(snapshot), outcome)["auc"]
        problem = performance_problem(metrics["auc"], holdout_auc, thresholds)
        regression = regressed(metrics["auc"], predecessor_auc, thresholds)
        part.check("performance_floor", problem)
        part.check("target_floor", "; ".join(failing.values()) or None)
        part.check(
            "beats_predecessor",
            f"version {version} realized AUC {metrics['auc']:.3f} < version {predecessor} {predecessor_auc:.3f} on "
            "the same customers"
            if regression
            else None,
        )
        alarms = [name for name, on in (("performance_floor", problem), ("target_floor", retraining(failing))) if on]
        delivery = "none"
        if problem or failing:
            delivery = webhook.announce(
                context.log,
                OperatorEvent(
                    "performance_below_floor", tenant_id, day.isoformat(),
                    "; ".join(filter(None, [problem, *failing.values()])),
                    {"model_version": version, "targets": sorted(failing)},
                ),
            )  # fmt: skip
        days, series = _trend(reader, tenant_id, day)
        fields = monitoring_fields(targets)
        row = {
            "tenant_id": tenant_id, "as_of_date": day, "predicted_on": predicted_on, "model_version": version,
            **{k: metrics[k] for k in ("customers", "positives", "base_rate", "auc", "brier", "top_decile_precision")},
            "holdout_auc": holdout_auc, "predecessor_version": predecessor, "predecessor_auc": predecessor_auc,
            **fields, "year_predicted_on": year.predicted_on, "target_alarms": ", ".join(failing) or "none",
        }  # fmt: skip
        part.add_metadata(
            {
                "tenant": tenant_id,
                "status": "evaluated",
                "predicted_on": predicted_on.isoformat(),
                "serving_version": version,
                "customers": metrics["customers"],
                "positives": metrics["positives"],
                "realized_auc": metrics["auc"],
                "realized_brier": metrics["brier"],
                "top_decile_precision": metrics["top_decile_precision"],
                "holdout_auc": holdout_auc,
                "predecessor_version": predecessor or "none",
                "predecessor_auc": predecessor_auc,
                "regressed": regression,
                "realized_targets": dg.MetadataValue.json(
                    {
                        name: {k: round(v, 4) for k, v in found.items() if np.isfinite(v)}
                        for name, found in targets.items()
                    }
                ),
                "year_predicted_on": year.status,
                "target_problems": "; ".join(failing.values()) or "none",
                "alarms": ", ".join(alarms) or "none",
                "event": delivery,
                "trend": dg.MetadataValue.md(
                    trend_markdown(
                        [*days, day.isoformat()],
                        {
                            "realized AUC": [*series["realized"], metrics["auc"]],
                            "holdout AUC": [*series["holdout"], holdout_auc],
                        },
                        thresholds.auc_floor,
                        f"{tenant_id}: realized AUC of predictions made {tenant.horizon_days} days earlier",
                    )
                ),
            }
        )
        record_monitoring(
            warehouse, tenant_id, day, predicted_on=predicted_on, realized_model_version=version,
            realized_auc=metrics["auc"], realized_brier=metrics["brier"],
            top_decile_precision=metrics["top_decile_precision"], holdout_auc=holdout_auc, **fields,
            year_predicted_on=year.predicted_on, year_model_version=year.version,
            target_alarms=", ".join(failing) or "none",
        )  # fmt: skip
        part.log(
            f"{tenant_id} {day}: predictions of {predicted_on} by v{version}: realized AUC {metrics['auc']:.3f} "
            f"(holdout {holdout_auc:.3f}){f', v{predecessor} {predecessor_auc:.3f}' if predecessor else ''}",
            notable=bool(problem or regression or failing),
        )
        return pd.DataFrame([row], columns=[*REALIZED_COLUMNS, *REALIZED_TARGET_COLUMNS])

    batch = Batch(context, PERFORMANCE_CHECKS)
    yield from batch.results(evaluate)


def build_assets(partitions: TenantDayPartitions) -> list[dg.AssetsDefinition]:
    return [
        dg.asset(
            **partitions.asset(GROUP),
            kinds={"evidently", "parquet"},
            ins={"customer_features": dg.AssetIn(), "predictions": dg.AssetIn()},
            check_specs=[check.spec("drift_report") for check in DRIFT_CHECKS],
            description="Evidently data drift of the day's feature snapshot and every served target's scores "
            "against the reference kept with the model that scored them (its training cutoff's snapshot); "
            "per-feature scores and per-target PSI in metadata, and on alarm days Evidently's HTML report in the "
            "lake (`report`).",
        )(drift_report),
        dg.asset(
            **partitions.asset(GROUP),
            kinds={"python", "parquet"},
            deps=[*HISTORY_DEPS, dg.AssetDep("predictions", partition_mapping=SAME_TENANT_ANY_DAY)],
            check_specs=[check.spec("realized_performance") for check in PERFORMANCE_CHECKS],
            description="Once labels mature: AUC, Brier and top-decile precision of the predictions made H days "
            "before this day against what customers did; during probation also of the replaced version on the "
            "same snapshot. Beside it every target's: normalized Gini, MAE and bias of expected orders and revenue "
            "(H days), churn AUC/Brier and CLV Gini/MAE/bias of the predictions made 365 days before.",
        )(realized_performance),
    ]
