"""Ingestion stage: `raw_orders` and `raw_customers` per tenant and day, with their quality gates.

One factory builds both assets. A run may cover many tenant-days (single-run backfills batch
them): each partition is fetched, screened (records that break a rule are quarantined with their
reason) and gated on its own; the gates report once per run and name every failing partition.
Every partition's rows balance (read = written + quarantined) in its metadata and in the
warehouse's quarantine ledger.
"""

import functools
import warnings
from collections import Counter
from datetime import datetime, timedelta

import dagster as dg
import pandas as pd

from mlops_assets.batching import Batch, Check, Partition
from mlops_assets.core.lake import files as lake_files
from mlops_assets.core.sources import quality
from mlops_assets.core.sources.ingest import (
    HISTORY_ASSETS,
    RAW_ASSETS,
    ScreenedHistory,
    gate_context,
    ingest_day,
    ingest_history,
    screen_history,
    store_history_quarantine,
    store_quarantine,
)
from mlops_assets.core.sources.records import SCHEMAS
from mlops_assets.core.sources.screening import PartitionContext, Screened, screen
from mlops_assets.core.sources.shopify import ShopifyClient
from mlops_assets.core.warehouse.customer_orders import write_orders
from mlops_assets.core.warehouse.quarantine_ledger import IngestionDay, QuarantineLedger
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


def _evaluate_gates(part: Partition, gates: list[quality.Gate], screened: Screened, ctx: PartitionContext) -> None:
    for gate in gates:
        outcome = gate.evaluate(screened, ctx)
        part.check(gate.name, None if outcome.passed else outcome.description, outcome.metadata)


def _balance(screened: Screened) -> dict[str, object]:
    """A partition's rows: read = written + quarantined (older versions of an id are superseded, not dropped)."""
    return {
        "rows_read": screened.rows_read,
        "rows_written": len(screened.frame),
        "quarantined": len(screened.quarantine),
        "quarantined_by_reason": dg.MetadataValue.json(screened.by_reason),
        "superseded": screened.superseded,
    }


def _sweep_ledger(tenant_id: str, asset: str, before, screened: ScreenedHistory) -> list[IngestionDay]:
    """One ledger row per swept day, and the records of no day on the window's first day, which no swept day
    (all before it) and no row of the day partitions (another asset) can hold."""
    outside = dict(Counter(screened.out_of_window["reason"]))
    return [
        IngestionDay(tenant_id, asset, day, rows + sum(reasons.values()), rows, reasons)
        for day, (rows, reasons) in screened.days().items()
    ] + [IngestionDay(tenant_id, asset, before, sum(outside.values()), 0, outside)]


def _released(ledger: QuarantineLedger, resource: str):
    """Order ids an operator released from the quarantine, read once per tenant and run."""
    return functools.cache(lambda tenant_id: ledger.released(tenant_id) if resource == "orders" else frozenset())


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
        "records that break a rule go to the lake's quarantine/ with their reason.",
    )
    def _raw(
        context: dg.AssetExecutionContext,
        lake: LakeResource,
        tenants: TenantRegistryResource,
        shop_api: ShopApiResource,
    ):
        root, tenant_of = lake.root(), functools.cache(tenants.registry().get)
        ledger = QuarantineLedger(tenants.warehouse_url)
        released = _released(ledger, resource)
        clients: dict[str, ShopifyClient] = {}
        recorded: list[IngestionDay] = []  # the ledger's rows, written once after the loop

        def ingest(part: Partition) -> pd.DataFrame:
            tenant = tenant_of(part.tenant_id)
            client = None
            if tenant.source_kind == "shopify":
                client = clients.get(part.tenant_id) or clients.setdefault(part.tenant_id, shop_api.client(tenant))
            ingested = ingest_day(tenant, resource, part.day, client)
            ctx = gate_context(root, tenant, resource, part.day, ingested.frame)
            screened = screen(ingested.frame, ctx, released(part.tenant_id), ingested.quarantine)
            _evaluate_gates(part, gates, screened, ctx)
            meta = {"tenant": part.tenant_id, "source": tenant.source_kind, **_balance(screened)}
            if not part.blocked:  # a blocked partition keeps its last written state: lake file, quarantine, ledger
                meta.update(store_quarantine(root, name, part.tenant_id, part.day, screened.quarantine))
                if resource == "orders":  # the dashboard's and API's copy, as the lake file will hold them
                    meta["customer_orders"] = write_orders(tenants.warehouse_url, part.tenant_id, screened.frame,
                                                           part.day)  # fmt: skip
                recorded.append(IngestionDay(part.tenant_id, name, part.day, screened.rows_read,
                                             len(screened.frame), screened.by_reason))  # fmt: skip
            part.add_metadata({**meta, **ingested.stats.as_metadata()})
            part.log(
                f"{part.tenant_id} {part.day}: {len(screened.frame)} {resource}, {len(screened.quarantine)} "
                f"quarantined {screened.by_reason or ''}, {ingested.stats.requests} requests, "
                f"{ingested.stats.rate_limited} x 429, {ingested.stats.retries} retries",
                notable=bool(len(screened.quarantine) or ingested.stats.retries),
            )
            return screened.frame

        batch = Batch(context, checks)
        try:
            yield batch.output(ingest)  # the IO manager runs `ingest` per partition as it writes them
        finally:
            for client in clients.values():
                client.close()
        ledger.record(*recorded)
        yield from batch.check_results()

    return _raw


def history_asset(resource: str, partitions: TenantDayPartitions) -> dg.AssetsDefinition:
    """Everything a tenant's source holds from before the partition window, in one sweep, by day."""
    name = HISTORY_ASSETS[resource]
    # The sweep is one partition, judged whole: one bad day in two years is not an unusable history, and a
    # history has no trailing volume to compare with.
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
        ledger = QuarantineLedger(tenants.warehouse_url)
        released = _released(ledger, resource)

        def sweep(part: Partition) -> None:
            tenant_id, tenant = part.tenant_id, registry.get(part.tenant_id)
            client = shop_api.client(tenant) if tenant.source_kind == "shopify" else None
            since, today = tenants.history_start(before), datetime.now(tenant.zone).date()
            try:
                history = ingest_history(tenant, resource, before, today, client, since)
            finally:
                if client is not None:
                    client.close()
            screened = screen_history(history, tenant, resource, before, released(tenant_id))
            whole, days = screened.whole(), screened.days()
            _evaluate_gates(part, gates, whole, screened.context)
            meta = {"tenant": tenant_id, "before": before.isoformat(), "since": str(since), **_balance(whole)}
            meta["out_of_window"] = len(history.out_of_window)
            if not part.blocked:
                path = lake_files.history_path(root, name, tenant_id, before - timedelta(days=1))
                written = lake_files.write_frame(path, whole.frame, SCHEMAS[resource])
                lake_files.remove_siblings(path)
                meta.update(store_history_quarantine(root, name, tenant_id, whole.quarantine))
                meta.update(rows=written["rows"], digest=written["digest"], path=dg.MetadataValue.path(written["path"]))
                ledger.replace(tenant_id, name, _sweep_ledger(tenant_id, name, before, screened))
                if resource == "orders":
                    meta["customer_orders"] = write_orders(tenants.warehouse_url, tenant_id, whole.frame, None)
            part.add_metadata(
                {
                    **meta,
                    "days": len(days),
                    "first_day": min(days).isoformat() if days else None,
                    "last_day": max(days).isoformat() if days else None,
                    **history.stats.as_metadata(),
                }
            )
            part.log(
                f"{tenant_id}: {len(whole.frame)} {resource} on {len(days)} days before {before}, "
                f"{len(whole.quarantine)} quarantined {whole.by_reason or ''}, {history.stats.requests} requests",
                notable=True,
            )

        return Batch(context, checks).materialize_result(sweep)

    return _history


def build_assets(partitions: TenantDayPartitions) -> list[dg.AssetsDefinition]:
    return [
        *(raw_asset(resource, partitions) for resource in RAW_ASSETS),
        *(history_asset(resource, partitions) for resource in HISTORY_ASSETS),
    ]
