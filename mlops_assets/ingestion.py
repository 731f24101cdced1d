"""Ingestion stage: `raw_orders` and `raw_customers` per tenant and day, with their quality gates.

One factory builds both assets. A run may cover many tenant-days (single-run backfills batch
them): each partition is fetched, quarantined and gated on its own; the gates report once per
run and name every failing partition.
"""

import functools
import warnings
from datetime import timedelta

import dagster as dg
import pandas as pd

from mlops_assets.batching import Batch, Check, Partition
from mlops_assets.core.lake import files as lake_files
from mlops_assets.core.sources import quality
from mlops_assets.core.sources.ingest import (
    HISTORY_ASSETS,
    RAW_ASSETS,
    gate_context,
    ingest_day,
    ingest_history,
    store_quarantine,
)
from mlops_assets.core.sources.records import QUARANTINE_SCHEMA, SCHEMAS, to_frame
from mlops_assets.core.sources.shopify import ShopifyClient
from mlops_assets.partitions import TenantDayPartitions, tenant_partitions
from mlops_assets.resources import LakeResource, ShopApiResource, TenantRegistryResource

GROUP = "ingestion"

# The single-run backfill policy is beta in Dagster 1.13; batching tenant-days depends on it on
# purpose (docs/architecture.md, "Runs batch tenant-days"), so its warning is noise to operators.
warnings.filterwarnings("ignore", category=dg.BetaWarning)

# What reads a tenant's whole order history depends on both order assets, the history by tenant.
HISTORY_DEPS = [
    dg.AssetDep(RAW_ASSETS["orders"]),
    dg.AssetDep(HISTORY_ASSETS["orders"], partition_mapping=dg.MultiToSingleDimensionPartitionMapping("tenant")),
]


def _checks(gates: list[quality.Gate]) -> list[Check]:
    return [Check(gate.name, gate.description, gate.blocking) for gate in gates]


def _evaluate_gates(
    part: Partition, gates: list[quality.Gate], frame: pd.DataFrame, gate_ctx: quality.PartitionContext, label=None
) -> None:
    for gate in gates:
        outcome = gate.evaluate(frame, gate_ctx)
        part.check(gate.name, None if outcome.passed else outcome.description, outcome.metadata, label)


def raw_asset(resource: str, partitions: TenantDayPartitions) -> dg.AssetsDefinition:
    name = RAW_ASSETS[resource]
    gates = quality.gates_for(resource)
    checks = _checks(gates)

    @dg.asset(
        name=name,
        **partitions.asset(GROUP),
        kinds={"python", "parquet"},
        check_specs=[check.spec(name) for check in checks],
        description=f"Shop {resource} updated on the partition's day (tenant's timezone), latest version per id; "
        "malformed records go to the lake's quarantine/.",
    )
    def _raw(
        context: dg.AssetExecutionContext,
        lake: LakeResource,
        tenants: TenantRegistryResource,
        shop_api: ShopApiResource,
    ):
        root, tenant_of = lake.root(), functools.cache(tenants.registry().get)
        clients: dict[str, ShopifyClient] = {}

        def ingest(part: Partition) -> pd.DataFrame:
            tenant = tenant_of(part.tenant_id)
            client = None
            if tenant.source_kind == "shopify":
                client = clients.get(part.tenant_id) or clients.setdefault(part.tenant_id, shop_api.client(tenant))
            ingested = ingest_day(tenant, resource, part.day, client)
            quarantine_meta = store_quarantine(root, resource, part.tenant_id, part.day, ingested)
            quarantined = len(ingested.quarantine)
            gate_ctx = gate_context(root, tenant, resource, part.day, ingested.frame, quarantined)
            _evaluate_gates(part, gates, ingested.frame, gate_ctx)
            stats = ingested.stats.as_metadata()
            part.add_metadata({"tenant": part.tenant_id, "source": tenant.source_kind, **quarantine_meta, **stats})
            part.log(
                f"{part.tenant_id} {part.day}: {len(ingested.frame)} {resource}, {quarantined} quarantined, "
                f"{ingested.stats.requests} requests, {ingested.stats.rate_limited} x 429, "
                f"{ingested.stats.retries} retries",
                notable=bool(quarantined or ingested.stats.retries),
            )
            return ingested.frame

        batch = Batch(context, checks)
        try:
            batch.run(ingest)
        finally:
            for client in clients.values():
                client.close()
        yield from batch.results()

    return _raw


def history_asset(resource: str, partitions: TenantDayPartitions) -> dg.AssetsDefinition:
    """Everything a tenant's source holds from before the partition window, in one sweep, by day."""
    name = HISTORY_ASSETS[resource]
    gates = [gate for gate in quality.gates_for(resource) if gate.name != "row_count_in_range"]
    checks = _checks(gates)

    @dg.asset(
        name=name,
        group_name=GROUP,
        partitions_def=tenant_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"python", "parquet"},
        check_specs=[check.spec(name) for check in checks],
        description=f"Shop {resource} updated before the first day of the `date` partition window, one file per "
        "tenant (a tenant's history is read whole; one file instead of hundreds keeps S3 reads cheap); onboarding "
        "fills it once per tenant.",
    )
    def _history(
        context: dg.AssetExecutionContext,
        lake: LakeResource,
        tenants: TenantRegistryResource,
        shop_api: ShopApiResource,
    ):
        registry, root, before = tenants.registry(), lake.root(), partitions.first_day

        def sweep(part: Partition) -> None:
            tenant_id, tenant = part.tenant_id, registry.get(part.tenant_id)
            client = shop_api.client(tenant) if tenant.source_kind == "shopify" else None
            try:
                history = ingest_history(tenant, resource, before, client, tenants.history_start(before))
            finally:
                if client is not None:
                    client.close()
            for day, frame in history.days.items():
                gate_ctx = quality.PartitionContext(resource, tenant_id, day, tenant.timezone, tenant.currency)
                _evaluate_gates(part, gates, frame, gate_ctx, label=f"{tenant_id} {day}")
            days = sorted(history.days)
            frame = pd.concat([history.days[day] for day in days] or [to_frame(resource, [])])
            path = lake_files.history_path(root, name, tenant_id, before - timedelta(days=1))
            written = lake_files.write_frame(path, frame, SCHEMAS[resource])
            lake_files.remove_siblings(path)
            quarantine_path = (
                lake_files.tenant_dir(root / lake_files.QUARANTINE, name, tenant_id) / "undated" / lake_files.PART_FILE
            )
            if len(history.quarantine):
                lake_files.write_frame(quarantine_path, history.quarantine, QUARANTINE_SCHEMA)
            else:
                lake_files.remove(quarantine_path)
            part.add_metadata(
                {
                    "tenant": tenant_id,
                    "before": before.isoformat(),
                    "since": str(tenants.history_start(before)),
                    "days": len(days),
                    "first_day": days[0].isoformat() if days else None,
                    "last_day": days[-1].isoformat() if days else None,
                    "rows": written["rows"],
                    "digest": written["digest"],
                    "path": dg.MetadataValue.path(written["path"]),
                    "quarantined": len(history.quarantine),
                    **history.stats.as_metadata(),
                }
            )
            part.log(
                f"{tenant_id}: {written['rows']} {resource} on {len(days)} days before {before}, "
                f"{len(history.quarantine)} quarantined, {history.stats.requests} requests",
                notable=True,
            )

        batch = Batch(context, checks)
        batch.run(sweep)
        return batch.materialize_result()

    return _history


def build_assets(partitions: TenantDayPartitions) -> list[dg.AssetsDefinition]:
    return [
        *(raw_asset(resource, partitions) for resource in RAW_ASSETS),
        *(history_asset(resource, partitions) for resource in HISTORY_ASSETS),
    ]
