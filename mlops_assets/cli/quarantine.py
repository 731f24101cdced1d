"""`mlops quarantine ...`: a tenant's quarantined records, and the release of an order a person confirmed is real.

A release is a row of the quarantine ledger (who, when, why), which ingestion reads to let the order through.
The partition that held the order is then ingested again in this process, as `mlops ingest` runs stages, so the
order is in the lake when the command returns and the next run's features include it.
"""

from __future__ import annotations

import getpass
from collections import Counter
from datetime import date
from typing import TYPE_CHECKING, Annotated

import typer

from mlops_assets.cli.common import (
    RUN_LOG_LEVEL,
    console,
    fail,
    instance,
    print_table,
    registry,
    settings,
    sync_partitions,
)
from mlops_assets.cli.outcomes import report_failures
from mlops_assets.core.sources.reasons import REASONS, RELEASABLE
from mlops_assets.core.tenants.ids import InvalidTenantId
from mlops_assets.core.tenants.registry import RegistryError, Tenant

if TYPE_CHECKING:
    from mlops_assets.core.lake.quarantine import QuarantinedRecord

app = typer.Typer(no_args_is_help=True, help="Quarantined records: what was held back and why; release real orders.")


def _tenant(tenant_id: str) -> Tenant:
    try:
        return registry().get(tenant_id)
    except (InvalidTenantId, RegistryError) as exc:
        fail(str(exc))
        raise


def _root():
    from mlops_assets.core.lake.files import lake_root

    current = settings()
    return lake_root(current.lake_url, current.s3_endpoint_url)


def _ledger():
    from mlops_assets.core.warehouse.quarantine_ledger import QuarantineLedger

    return QuarantineLedger(settings().warehouse_url)


def _assets():
    """The lake's raw assets by resource (imported on use: ingestion loads pandas, `mlops --help` stays quick)."""
    from mlops_assets.core.sources.ingest import HISTORY_ASSETS, RAW_ASSETS

    return RAW_ASSETS, HISTORY_ASSETS


def _order_assets() -> tuple[str, str]:
    raw, history = _assets()
    return raw["orders"], history["orders"]


def _where(record: QuarantinedRecord) -> str:
    return str(record.day) if record.day else "history" if record.asset in _assets()[1].values() else "undated"


def _amount(record: QuarantinedRecord, fields: tuple[str, ...]) -> str:
    amount = record.amount(fields)
    return "" if amount is None else f"{amount:,.2f}"


@app.command("list")
def quarantine_list(
    tenant_id: str,
    reason: Annotated[str | None, typer.Option(help="only this reason code (see the counts below)")] = None,
    from_date: Annotated[str | None, typer.Option("--from", help="only days from this one (YYYY-MM-DD)")] = None,
    limit: Annotated[int, typer.Option(help="at most this many records")] = 50,
):
    """The tenant's quarantined records, newest day first (the history sweep's and undated ones last), and the
    ledger's counts by reason with what each means and how to fix it."""
    from mlops_assets.core.lake.quarantine import amount_fields, read_quarantine
    from mlops_assets.core.monitoring.quarantine import reasons_text

    tenant = _tenant(tenant_id)
    if reason is not None and reason not in REASONS:
        fail(f"--reason {reason!r} is not a reason code; they are: {', '.join(REASONS)}")
    try:
        first = date.fromisoformat(from_date) if from_date else None
    except ValueError:
        fail(f"--from {from_date!r} is not a date like 2026-01-31")
    ledger = _ledger()
    released, fields = ledger.released(tenant_id), amount_fields(tenant)
    records = [r for r in read_quarantine(_root(), tenant_id, first) if reason is None or r.reason == reason]
    print_table(
        ("day", "asset", "record id", "reason", "amount", "error"),
        (
            (
                _where(r), r.asset, r.record_id or "-", r.reason + (" (released)" if r.record_id in released else ""),
                _amount(r, fields), r.error[:100],
            )
            for r in records[:limit]
        ),
        title=f"{tenant_id}: {len(records)} quarantined records" + (f", first {limit}" if len(records) > limit else ""),
    )  # fmt: skip
    days = ledger.days(tenant_id, first)
    counts = Counter()
    for day in days:
        counts.update(day["by_reason"] or {})
    if counts:
        read = sum(day["rows_read"] for day in days)
        print_table(
            ("reason", "records", "meaning and fix"),
            ((code, str(count), REASONS.get(code, "")) for code, count in counts.most_common()),
            title=f"ledger since {days[0]['day']}: {reasons_text(counts)} of {read} records read",
        )


@app.command("releases")
def quarantine_releases(tenant_id: str):
    """The orders released from the tenant's quarantine: who, when and why."""
    _tenant(tenant_id)
    print_table(
        ("order id", "reason", "released by", "at", "note"),
        (
            (row["order_id"], row["reason"], row["released_by"], row["released_at"].strftime("%Y-%m-%d %H:%M"),
             row["note"] or "")
            for row in _ledger().releases(tenant_id)
        ),
        title=f"{tenant_id}: released orders",
    )  # fmt: skip


def _ingest_again(tenant: Tenant, record: QuarantinedRecord) -> tuple[str, list]:
    """Ingest the partition that held the record again: its day of the window, else the history sweep (which
    covers every day before the window). A file tenant's customers come from its orders: they are run too."""
    from mlops_assets.automation.batching import materialize_tenant_days, materialize_tenants
    from mlops_assets.cli.runs import asset_job, asset_keys
    from mlops_assets.partitions import TenantDayPartitions

    raw, history = _assets()
    window = TenantDayPartitions.from_settings(settings())
    resources = ("orders", "customers") if tenant.source_kind == "file" else ("orders",)
    sync_partitions()
    with instance() as dagster_instance:
        if record.day is not None and window.first_day <= record.day <= window.last_day:
            assets = [raw[resource] for resource in resources]
            results = materialize_tenant_days(
                asset_job(), dagster_instance, [tenant.tenant_id], record.day, record.day, asset_keys(assets),
                console_log_level=RUN_LOG_LEVEL, stage="release",
            )  # fmt: skip
            return f"{' and '.join(assets)} of {record.day}", results
        assets = [history[resource] for resource in resources]
        results = materialize_tenants(
            asset_job(), dagster_instance, [tenant.tenant_id], asset_keys(assets), RUN_LOG_LEVEL, stage="release"
        )
        return " and ".join(assets), results


def _in_lake(tenant_id: str, order_id: str) -> bool:
    from mlops_assets.core.lake.history import history_files, read_records

    return order_id in set(read_records(history_files(_root(), tenant_id), ["order_id"])["order_id"])


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        fail("this process runs as no named user (fix: say who releases it with --by NAME)")
        raise


@app.command("release")
def quarantine_release(
    tenant_id: str,
    order_id: str,
    note: Annotated[str | None, typer.Option(help="why it is real, e.g. 'confirmed with the shop'")] = None,
    by: Annotated[str | None, typer.Option(help="who releases it (default: the OS user)")] = None,
):
    """Let a quarantined order through: one a person confirmed is real (an extreme outlier that was a real order).
    Records the release, ingests its partition again in this process, and checks the order is in the lake."""
    from mlops_assets.core.lake.quarantine import find_quarantined

    tenant = _tenant(tenant_id)
    record = find_quarantined(_root(), tenant_id, order_id, _order_assets())
    if record is None:
        fail(
            f"tenant {tenant_id}: order {order_id} is not in its quarantine (fix: `mlops quarantine list {tenant_id}` "
            "shows the quarantined records and their ids)"
        )
    if record.reason not in RELEASABLE:
        fail(
            f"tenant {tenant_id}: order {order_id} was quarantined as {record.reason}: "
            f"{REASONS.get(record.reason, record.error)}. Only {', '.join(sorted(RELEASABLE))} can be released; "
            "this one is fixed at the source, then the next run ingests it"
        )
    released_by = by or _os_user()
    if _ledger().release(tenant_id, order_id, record.reason, released_by, note):
        console.print(f"{tenant_id}: released order {order_id} ({record.reason}) by {released_by}", highlight=False)
    else:
        console.print(f"{tenant_id}: order {order_id} was released before; ingesting it again", highlight=False)
    partition, results = _ingest_again(tenant, record)
    if report_failures(results):
        fail(f"tenant {tenant_id}: the release is recorded, but ingesting {partition} again failed (above)")
    if find_quarantined(_root(), tenant_id, order_id, _order_assets()) is not None:
        fail(
            f"tenant {tenant_id}: ingested {partition} again, yet order {order_id} is still quarantined (fix: "
            "ingestion must read the ledger's released orders; report this)"
        )
    if not _in_lake(tenant_id, order_id):
        fail(
            f"tenant {tenant_id}: ingested {partition} again, and order {order_id} is neither quarantined nor in "
            "the lake: the source no longer has it there (fix: `mlops ingest` the days it was updated on)"
        )
    console.print(
        f"{tenant_id}: order {order_id} is in the lake ({partition}); the next run's features include it",
        highlight=False,
    )
