"""Prediction stage: `predictions` per tenant and day, the production model applied to that day's snapshot.

The model is loaded once per tenant per run (runs batch many tenant-days) and dropped at the next
tenant. The gates run before anything is written: a tenant-day that fails one is not written (its
warehouse rows stay as they were) and the run's verdict fails it; the other tenant-days are written.
Storage is the warehouse IO manager's business (PostgreSQL COPY or SQLite), not this module's.
"""

from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from mlops_assets.batching import Batch, Check, Partition
from mlops_assets.partitions import SAME_TENANT_ANY_DAY, TenantDayPartitions
from mlops_assets.resources import ModelPolicyResource, ModelRegistryResource

CHECKS = [
    Check("row_count_matches_snapshot", "One row per customer of the day's feature snapshot", blocking=True),
    Check("probabilities_in_range", "Every repurchase and churn probability in [0, 1]", blocking=True),
    Check("no_nan", "No NaN probability, expected orders, revenue or CLV", blocking=True),
    Check("amounts_in_range", "Expected orders, revenue and CLV finite and >= 0", blocking=True),
    Check("model_recorded", "Every row names the model version that scored it", blocking=True),
]


def predictions(
    context: dg.AssetExecutionContext,
    customer_features,
    models: ModelRegistryResource,
    policy: ModelPolicyResource,
):
    from mlops_assets.core.ml.scoring import NoProductionModel, load_served_model, prediction_problems, score_snapshot
    from mlops_assets.core.ml.tracking import PRODUCTION

    registry, created_at = models.registry(), datetime.now(UTC)
    batch = Batch(context, CHECKS)
    snapshots = batch.inputs(customer_features)

    @batch.per_tenant
    def served(tenant_id: str):
        try:
            return load_served_model(registry, tenant_id)
        except NoProductionModel as exc:
            raise dg.Failure(str(exc), metadata={"tenant": tenant_id}) from exc
        except Exception as exc:
            version = registry.alias_version(tenant_id, PRODUCTION).version
            raise dg.Failure(
                f"tenant {tenant_id}: the production model v{version} could not be loaded ({exc}) "
                f"(fix: `mlops models rollback {tenant_id}`, or retrain with `mlops train --tenant {tenant_id}`)",
                metadata={"tenant": tenant_id},
            ) from exc

    def score(part: Partition) -> pd.DataFrame:
        model, snapshot = served(part.tenant_id), snapshots[part.key]
        digest = str(snapshot.attrs.get("digest", "unknown"))
        frame = score_snapshot(model, snapshot, part.day, digest, context.run.run_id, created_at, policy.bands())
        problems = prediction_problems(frame, len(snapshot))
        for check in CHECKS:
            part.check(check.name, problems.get(check.name))
        part.add_metadata(
            {
                "tenant": part.tenant_id,
                "customers": len(frame),
                "model_version": model.version,
                "model_kind": model.kind,
                "feature_version": digest,
                **{f"risk_{band}": int((frame["risk_band"] == band).sum()) for band in ("high", "medium", "low")},
                **{f"tier_{tier}": int((frame["spend_tier"] == tier).sum()) for tier in ("high", "medium", "low")},
                "expected_revenue_total": float(frame["expected_revenue"].sum()),
                "clv_365d_total": float(frame["clv_365d"].sum()),
            }
        )
        part.log(f"{part.tenant_id} {part.day}: {len(frame)} customers, model v{model.version}")
        return frame

    yield from batch.results(score)


def build_assets(partitions: TenantDayPartitions) -> list[dg.AssetsDefinition]:
    return [
        dg.asset(
            **partitions.asset("predictions", io_manager_key="warehouse_io_manager"),
            kinds={"lightgbm", "sql"},
            ins={"customer_features": dg.AssetIn()},
            # The production alias may point at a model trained at any cutoff of the same tenant.
            deps=[dg.AssetDep("production_model", partition_mapping=SAME_TENANT_ANY_DAY)],
            check_specs=[check.spec("predictions") for check in CHECKS],
            description="Per customer: probability of ordering again within the tenant's horizon, rank, percentile "
            "and top reasons; expected orders and revenue in the horizon, CLV over 365 days, churn probability and "
            "its risk band, the next order's date and the spend tier; all from the `production` model version. "
            "One warehouse partition per tenant-day.",
        )(predictions)
    ]
