"""Ingestion stage: `raw_orders` and `raw_customers` per tenant and day, with their quality gates.

One factory builds both assets. A run may cover many tenant-days (single-run backfills batch
them): each partition is fetched, quarantined and gated on its own; the gates report once per
run and name every failing partition.
"""

import warnings
from collections import defaultdict
from datetime import timedelta

import dagster as dg
import pandas as pd

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
from mlops_assets.core.tenants.registry import Tenant
from mlops_assets.partitions import (
    add_partition_metadata,
    daily_partitions,
    log_progress,
    tenant_and_day,
    tenant_day_asset,
    tenant_partitions,
)
from mlops_assets.resources import LakeResource, ShopApiResource, TenantRegistryResource

GROUP = "ingestion"

# The single-run backfill policy is beta in Dagster 1.13; batching tenant-days depends on it on
# purpose (docs/architecture.md, "Runs batch tenant-days"), so its warning is noise to operators.
warnings.filterwarnings("ignore", category=dg.BetaWarning)


def _check_result(gate: quality.Gate, outcomes: list[tuple[str, quality.Outcome]]) -> dg.AssetCheckResult:
    failed = [(key, outcome) for key, outcome in outcomes if not outcome.passed]
    first = failed[0][1] if failed else outcomes[0][1]
    metadata = {**first.metadata, "partitions_checked": len(outcomes), "partitions_failed": len(failed)}
    if failed:
        metadata["failed_partitions"] = [key for key, _ in failed[:50]]
    return dg.AssetCheckResult(
        check_name=gate.name,
        passed=not failed,
        severity=dg.AssetCheckSeverity.ERROR if gate.blocking else dg.AssetCheckSeverity.WARN,
        description=first.description
        if len(outcomes) == 1 or not failed
        else f"{len(failed)} of {len(outcomes)} partitions failed; first: {first.description}",
        metadata=metadata,
    )


def raw_asset(resource: str) -> dg.AssetsDefinition:
    name = RAW_ASSETS[resource]
    gates = quality.gates_for(resource)

    @dg.asset(
        name=name,
        **tenant_day_asset(GROUP),
        kinds={"python", "parquet"},
        check_specs=[
            dg.AssetCheckSpec(gate.name, asset=name, blocking=gate.blocking, description=gate.description)
            for gate in gates
        ],
        description=f"Shop {resource} updated on the partition's day (tenant's timezone), latest version per id; "
        "malformed records go to the lake's quarantine/.",
    )
    def _raw(
        context: dg.AssetExecutionContext,
        lake: LakeResource,
        tenants: TenantRegistryResource,
        shop_api: ShopApiResource,
    ):
        registry, root = tenants.registry(), lake.root()
        known: dict[str, Tenant] = {}
        clients: dict[str, ShopifyClient] = {}
        frames, outcomes = {}, defaultdict(list)
        keys = context.partition_keys
        for position, key in enumerate(keys, start=1):
            tenant_id, day = tenant_and_day(key)
            tenant = known.get(tenant_id) or known.setdefault(tenant_id, registry.get(tenant_id))
            client = None
            if tenant.source_kind == "shopify":
                client = clients.get(tenant_id) or clients.setdefault(tenant_id, shop_api.client(tenant))
            ingested = ingest_day(tenant, resource, day, client)
            quarantine_meta = store_quarantine(root, resource, tenant_id, day, ingested)
            gate_ctx = gate_context(root, tenant, resource, day, ingested.frame, len(ingested.quarantine))
            for gate in gates:
                outcomes[gate.name].append((key, gate.evaluate(ingested.frame, gate_ctx)))
            add_partition_metadata(
                context,
                key,
                {"tenant": tenant_id, "source": tenant.source_kind, **quarantine_meta, **ingested.stats.as_metadata()},
            )
            frames[key] = ingested.frame
            log_progress(
                context, position, len(keys),
                f"{tenant_id} {day}: {len(ingested.frame)} {resource}, {len(ingested.quarantine)} quarantined, "
                f"{ingested.stats.requests} requests, {ingested.stats.rate_limited} x 429, "
                f"{ingested.stats.retries} retries",
                notable=bool(len(ingested.quarantine) or ingested.stats.retries),
            )  # fmt: skip
        for client in clients.values():
            client.close()
        yield dg.Output(frames if len(keys) > 1 else frames[keys[0]])
        for gate in gates:
            yield _check_result(gate, outcomes[gate.name])

    return _raw


def history_asset(resource: str) -> dg.AssetsDefinition:
    """Everything a tenant's source holds from before the partition window, in one sweep, by day."""
    name = HISTORY_ASSETS[resource]
    gates = [gate for gate in quality.gates_for(resource) if gate.name != "row_count_in_range"]

    @dg.asset(
        name=name,
        group_name=GROUP,
        partitions_def=tenant_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"python", "parquet"},
        check_specs=[
            dg.AssetCheckSpec(gate.name, asset=name, blocking=gate.blocking, description=gate.description)
            for gate in gates
        ],
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
        registry, root = tenants.registry(), lake.root()
        before = daily_partitions.start.date()
        outcomes = defaultdict(list)
        for position, tenant_id in enumerate(context.partition_keys, start=1):
            tenant = registry.get(tenant_id)
            client = shop_api.client(tenant) if tenant.source_kind == "shopify" else None
            try:
                history = ingest_history(tenant, resource, before, client, tenants.history_start(before))
            finally:
                if client is not None:
                    client.close()
            for day, frame in history.days.items():
                gate_ctx = quality.PartitionContext(resource, tenant_id, day, tenant.timezone, tenant.currency)
                for gate in gates:
                    outcomes[gate.name].append((f"{tenant_id} {day}", gate.evaluate(frame, gate_ctx)))
            frame = pd.concat([history.days[day] for day in sorted(history.days)] or [to_frame(resource, [])])
            path = lake_files.history_path(root, name, tenant_id, before - timedelta(days=1))
            written = lake_files.write_frame(path, frame, SCHEMAS[resource])
            lake_files.remove_siblings(path)
            quarantine_path = (
                lake_files.tenant_dir(root / lake_files.QUARANTINE, name, tenant_id)
                / "undated"
                / (lake_files.PART_FILE)
            )
            if len(history.quarantine):
                lake_files.write_frame(quarantine_path, history.quarantine, QUARANTINE_SCHEMA)
            else:
                lake_files.remove(quarantine_path)
            days = sorted(history.days)
            add_partition_metadata(
                context,
                tenant_id,
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
                },
            )
            context.log.info(
                f"[{position}/{len(context.partition_keys)}] {tenant_id}: {written['rows']} {resource} on "
                f"{len(days)} days "
                f"before {before}, {len(history.quarantine)} quarantined, {history.stats.requests} requests"
            )
        for gate in gates:
            if not outcomes[gate.name]:
                outcomes[gate.name].append(("none", quality.Outcome(True, "no history before the window")))
        return dg.MaterializeResult(check_results=[_check_result(gate, outcomes[gate.name]) for gate in gates])

    return _history


raw_orders = raw_asset("orders")
raw_customers = raw_asset("customers")
raw_orders_history = history_asset("orders")
raw_customers_history = history_asset("customers")

# What reads a tenant's whole order history depends on both order assets, the history by tenant.
HISTORY_DEPS = [
    raw_orders,
    dg.AssetDep(raw_orders_history, partition_mapping=dg.MultiToSingleDimensionPartitionMapping("tenant")),
]
