"""Feature stage: `customer_features` per tenant and day, from the tenant's whole order history.

The history is read once per tenant per run, and kept only while the run is at that tenant, as one
pyarrow dataset over both raw order assets (not as hundreds of Dagster inputs); the lineage edges to
them are declared with `deps`.
"""

import dagster as dg
import pandas as pd

from mlops_assets.batching import Batch, Check, Partition
from mlops_assets.core.lake.history import history_files, read_orders
from mlops_assets.core.ml.features import cutoff_utc, feature_problems, orders_as_of
from mlops_assets.core.ml.features import feature_snapshot as snapshot
from mlops_assets.ingestion import HISTORY_DEPS
from mlops_assets.partitions import TenantDayPartitions
from mlops_assets.resources import LakeResource, TenantRegistryResource

CHECKS = [
    Check(
        "no_leakage",
        "The snapshot is unchanged when every order placed after the cutoff is removed",
        blocking=True,
    ),
    Check("no_unexpected_nan", "No NaN or infinite values where none may be; no negative recency", blocking=True),
    Check(
        "customer_count_matches_history",
        "One row per customer with a (non-cancelled) order before the cutoff",
        blocking=True,
    ),
]


def customer_features(context: dg.AssetExecutionContext, lake: LakeResource, tenants: TenantRegistryResource):
    registry, root = tenants.registry(), lake.root()
    batch = Batch(context, CHECKS)

    @batch.per_tenant
    def history(tenant_id: str):
        files = history_files(root, tenant_id)
        return files, read_orders(files)

    def build(part: Partition) -> pd.DataFrame:
        tenant = registry.get(part.tenant_id)
        files, orders = history(part.tenant_id)
        features = snapshot(orders, part.day, tenant.timezone, tenant.horizon_days)
        cutoff = cutoff_utc(part.day, tenant.timezone)
        earlier_only = snapshot(orders[orders["created_at"] < cutoff], part.day, tenant.timezone, tenant.horizon_days)
        part.check("no_leakage", None if features.equals(earlier_only) else "orders after the cutoff change it")
        problems = feature_problems(features)
        part.check("no_unexpected_nan", "; ".join(problems) or None)
        known = orders_as_of(orders, cutoff)
        expected = known.loc[known["cancelled_at"].isna(), "customer_id"].nunique()
        part.check(
            "customer_count_matches_history",
            None if expected == len(features) else f"{len(features)} rows, history has {expected}",
        )
        part.add_metadata(
            {
                "tenant": part.tenant_id,
                "customers": len(features),
                "history_files": len(files.files),
                "history_through": files.through.isoformat() if files.through else None,
            }
        )
        part.log(f"{part.tenant_id} {part.day}: {len(features)} customers")
        return features

    yield from batch.results(build)


def build_assets(partitions: TenantDayPartitions) -> list[dg.AssetsDefinition]:
    return [
        dg.asset(
            **partitions.asset("features"),
            kinds={"python", "parquet"},
            deps=HISTORY_DEPS,
            check_specs=[check.spec("customer_features") for check in CHECKS],
            description="One row per customer known at the end of the day (tenant's timezone): RFM, trailing "
            "windows, gaps, refunds and cancellations, trend, and a BG/NBD probability over the tenant's horizon.",
        )(customer_features)
    ]
