"""Feature stage: `customer_features` per tenant and day, from the tenant's whole order history.

The history is read once per tenant per run as one pyarrow dataset over both raw order assets (not
as hundreds of Dagster inputs); the lineage edges to them are declared with `deps`.
"""

import dagster as dg

from mlops_assets.core.lake.history import history_files, read_orders
from mlops_assets.core.ml.features import cutoff_utc, feature_problems, orders_as_of
from mlops_assets.core.ml.features import feature_snapshot as snapshot
from mlops_assets.ingestion import HISTORY_DEPS
from mlops_assets.partitions import (
    add_partition_metadata,
    batch_check_result,
    log_progress,
    tenant_and_day,
    tenant_day_asset,
)
from mlops_assets.resources import LakeResource, TenantRegistryResource

CHECKS = {
    "no_leakage": "The snapshot is unchanged when every order placed after the cutoff is removed",
    "no_unexpected_nan": "No NaN or infinite values where none may be; no negative recency",
    "customer_count_matches_history": "One row per customer with a (non-cancelled) order before the cutoff",
}


@dg.asset(
    **tenant_day_asset("features"),
    kinds={"python", "parquet"},
    deps=HISTORY_DEPS,
    check_specs=[
        dg.AssetCheckSpec(name, asset="customer_features", blocking=True, description=description)
        for name, description in CHECKS.items()
    ],
    description="One row per customer known at the end of the day (tenant's timezone): RFM, trailing windows, "
    "gaps, refunds and cancellations, trend, and a BG/NBD probability over the tenant's horizon.",
)
def customer_features(context: dg.AssetExecutionContext, lake: LakeResource, tenants: TenantRegistryResource):
    registry, root = tenants.registry(), lake.root()
    histories, frames, failures = {}, {}, {name: [] for name in CHECKS}
    keys = context.partition_keys
    for position, key in enumerate(keys, start=1):
        tenant_id, day = tenant_and_day(key)
        tenant = registry.get(tenant_id)
        if tenant_id not in histories:
            files = history_files(root, tenant_id)
            histories[tenant_id] = (files, read_orders(files))
        files, history = histories[tenant_id]
        features = snapshot(history, day, tenant.timezone, tenant.horizon_days)
        cutoff = cutoff_utc(day, tenant.timezone)
        earlier_only = snapshot(history[history["created_at"] < cutoff], day, tenant.timezone, tenant.horizon_days)
        if not features.equals(earlier_only):
            failures["no_leakage"].append(key)
        problems = feature_problems(features)
        if problems:
            failures["no_unexpected_nan"].append(f"{key}: {'; '.join(problems)}")
        known = orders_as_of(history, cutoff)
        expected = known.loc[known["cancelled_at"].isna(), "customer_id"].nunique()
        if expected != len(features):
            failures["customer_count_matches_history"].append(f"{key}: {len(features)} rows, history has {expected}")
        add_partition_metadata(
            context,
            key,
            {
                "tenant": tenant_id,
                "customers": len(features),
                "history_files": len(files.files),
                "history_through": files.through.isoformat() if files.through else None,
            },
        )
        frames[key] = features
        log_progress(context, position, len(keys), f"{tenant_id} {day}: {len(features)} customers")
    yield dg.Output(frames if len(keys) > 1 else frames[keys[0]])
    for name, failed in failures.items():
        yield batch_check_result(name, failed, len(keys), CHECKS[name])
