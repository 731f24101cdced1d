"""Ingestion stage: `raw_orders` and `raw_customers` per tenant and day, with their quality gates.

One factory builds both assets. A run may cover many tenant-days (single-run backfills batch
them): each partition is fetched, quarantined and gated on its own; the gates report once per
run and name every failing partition.
"""

import warnings
from collections import defaultdict

import dagster as dg

from mlops_assets.core import quality
from mlops_assets.core.ingest import RAW_ASSETS, gate_context, ingest_day, store_quarantine
from mlops_assets.core.registry import Tenant
from mlops_assets.core.shop_client import ShopifyClient
from mlops_assets.partitions import tenant_and_day, tenant_day_partitions
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
        group_name=GROUP,
        partitions_def=tenant_day_partitions,
        io_manager_key="lake_io_manager",
        backfill_policy=dg.BackfillPolicy.single_run(),
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
            context.add_asset_metadata(
                {"tenant": tenant_id, "source": tenant.source_kind, **quarantine_meta, **ingested.stats.as_metadata()},
                partition_key=key,
            )
            frames[key] = ingested.frame
            context.log.info(
                f"[{position}/{len(keys)}] {tenant_id} {day}: {len(ingested.frame)} {resource}, "
                f"{len(ingested.quarantine)} quarantined, {ingested.stats.requests} requests, "
                f"{ingested.stats.rate_limited} x 429, {ingested.stats.retries} retries"
            )
        for client in clients.values():
            client.close()
        yield dg.Output(frames if len(keys) > 1 else frames[keys[0]])
        for gate in gates:
            yield _check_result(gate, outcomes[gate.name])

    return _raw


raw_orders = raw_asset("orders")
raw_customers = raw_asset("customers")
