"""`mlops demo`: the demo tenants sign up on a local shop emulator, the daemon's days are replayed, and the
fleet is summarized."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from mlops_assets.cli.common import console, fail, instance, print_table, registry, settings
from mlops_assets.cli.emulator import DEMO_TOKEN, EMULATOR_TOKEN_ENV, start_background_emulator, wait_for_emulator
from mlops_assets.cli.runs import fail_on_failed_runs, print_notes, replay_days
from mlops_assets.core.tenants.registry import Tenant, file_settings, shopify_settings
from mlops_assets.settings import Settings
from mlops_assets.sim.demo_shops import DEMO_CALENDAR_DAYS


def demo(
    port: Annotated[int, typer.Option(help="port of the demo shop emulator")] = 8765,
    days: Annotated[int, typer.Option(help="days of the simulated calendar, ending yesterday")] = DEMO_CALENDAR_DAYS,
    reset: Annotated[bool, typer.Option("--reset", help="delete the local state first and start clean")] = False,
):
    """The main job on the embedded default: demo tenants sign up, then the daemon's days are replayed.

    Three Shopify-shaped shops (served by a local emulator) and one file tenant built from the real CDNOW
    log sign up on the calendar's first day; onboarding, the daily cycle, the weekly retrain, drift
    retrains and rollbacks then run exactly as the daemon would run them, day by day, until yesterday.
    A rerun continues where the last one stopped (run keys); --reset starts from nothing.
    """
    from mlops_assets.sim.demo_shops import CDNOW_COLUMNS, CDNOW_TENANT, calendar_start, cdnow_export, demo_shops

    current = settings()
    if reset:
        _reset_local_state(current)
    console.print(f"profile [bold]{current.profile}[/bold]; state under {current.home}")
    last = datetime.now(UTC).date() - timedelta(days=1)
    first = calendar_start(last, days)
    shops = demo_shops(last, days)
    os.environ.setdefault(EMULATOR_TOKEN_ENV, DEMO_TOKEN)
    emulator_log = current.home / "shop-emulator.log"
    emulator = start_background_emulator(port, days, emulator_log)
    try:
        export_path = current.home / "exports" / f"{CDNOW_TENANT}.csv"
        export_path.parent.mkdir(parents=True, exist_ok=True)
        cdnow_export(last).to_csv(export_path, index=False)
        tenants_registry = registry()
        for shop in shops:
            tenants_registry.upsert(
                Tenant(
                    shop.spec.name, shop.display_name, "shopify",
                    shopify_settings(f"http://127.0.0.1:{port}/shops/{shop.spec.name}", EMULATOR_TOKEN_ENV),
                    shop.spec.timezone, shop.spec.currency, horizon_days=shop.horizon_days,
                )
            )  # fmt: skip
        tenants_registry.upsert(
            Tenant(
                CDNOW_TENANT, "CDNOW Music (real log)", "file", file_settings(str(export_path), "csv", CDNOW_COLUMNS)
            )
        )
        tenant_ids = [shop.spec.name for shop in shops] + [CDNOW_TENANT]
        console.print(f"{len(tenant_ids)} tenants sign up on {first}; replaying the daemon's days {first} .. {last}")
        wait_for_emulator(emulator, port, emulator_log)
        automation = replay_days(tenant_ids, first, last)
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)
    _print_fleet(automation, tenant_ids, first, last)
    console.print(
        f"lineage: `.venv/bin/mlops dev` (Dagster UI on http://127.0.0.1:3000); to materialize shop partitions "
        f"from it, keep `.venv/bin/mlops shop-emulator --port {port} --as-of-request --calendar-days {days}` running\n"
        f"models: `.venv/bin/mlops models history {tenant_ids[0]}`; MLflow UI: "
        f"`.venv/bin/mlflow ui --backend-store-uri {current.mlflow_tracking_uri}` (http://127.0.0.1:5000)\n"
        f"dashboard and API: `.venv/bin/mlops tenants api-key create {tenant_ids[0]}`, then `.venv/bin/mlops serve` "
        "and sign in with the key at http://127.0.0.1:8000/dashboard"
    )
    fail_on_failed_runs(automation)


def _reset_local_state(current: Settings) -> None:
    """Delete $MLOPS_HOME and the Dagster home, refusing when a store lives elsewhere (never a server's data)."""
    import shutil

    outside = [
        name
        for name, where in (
            ("MLOPS_LAKE_URL", current.lake_url),
            ("MLOPS_WAREHOUSE_URL", current.warehouse_url.removeprefix("sqlite:///")),
            ("MLOPS_MLFLOW_TRACKING_URI", current.mlflow_tracking_uri.removeprefix("sqlite:///")),
            ("DAGSTER_HOME", str(current.dagster_home)),
        )
        if not Path(where).resolve().is_relative_to(current.home)
    ]
    if current.profile != "local" or outside:
        fail(
            f"--reset only deletes local state under {current.home}, and {', '.join(outside) or 'MLOPS_PROFILE'} "
            "points elsewhere (fix: clear that store by hand, or unset the variable)"
        )
    shutil.rmtree(current.home, ignore_errors=True)
    console.print(f"reset: deleted {current.home}")


def _print_fleet(automation, tenant_ids: list[str], first: date, last: date) -> None:
    """Per tenant: customers, serving model and its holdout AUC against the baseline, promotions, drift, rows."""
    import dagster as dg

    from mlops_assets.automation.jobs import TENANT_TAG, TRIGGER_TAG
    from mlops_assets.core.ml.promotion import PromotionLog
    from mlops_assets.core.warehouse.prediction_store import PredictionReader
    from mlops_assets.partitions import tenant_day_key

    reader, log = PredictionReader(settings().warehouse_url), PromotionLog(settings().warehouse_url)
    rows = []
    dagster_instance = instance()
    for tenant_id in tenant_ids:
        batches = [b for b in reader.batches(tenant_id, limit=3660) if first <= b["as_of_date"] <= last]
        latest = batches[-1] if batches else {}
        metrics = latest.get("model_metrics", {})
        keys = [tenant_day_key(tenant_id, first + timedelta(days=k)) for k in range((last - first).days + 1)]
        reports = dagster_instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("drift_report"), asset_partitions=keys), limit=10 * len(keys)
        ).records
        alarms = sorted(
            {r.partition_key[:10] for r in reports if r.asset_materialization.metadata["alarms"].value != "none"}
        )
        retrains = len(dagster_instance.get_runs(dg.RunsFilter(tags={TRIGGER_TAG: "drift", TENANT_TAG: tenant_id})))
        moves = [(row["alias"], row["action"]) for row in log.history(tenant_id)]
        rows.append(
            (
                tenant_id,
                str(latest.get("customers", "-")),
                f"v{latest['model_version']} {latest['model_kind']}" if latest else "-",
                f"{metrics.get('holdout_auc', float('nan')):.3f}",
                f"{metrics.get('baseline_auc', float('nan')):.3f}",
                str(moves.count(("production", "promote"))),
                f"{len(alarms)} from {alarms[0][5:]}" if alarms else "0",
                str(retrains),
                f"{sum(b['customers'] for b in batches):,}",
            )
        )
    dagster_instance.dispose()
    print_table(
        (
            "tenant", "customers", "model", "AUC", "baseline", "promoted", "drift days", "drift retrains",
            "predictions",
        ),
        rows,
        title=f"{first} .. {last}",
    )  # fmt: skip
    launched = ", ".join(f"{stage} {count}" for stage, count in sorted(automation.runs_by_stage().items()))
    console.print(f"runs this time: {launched or 'none (everything was already done)'}")
    print_notes(automation)
