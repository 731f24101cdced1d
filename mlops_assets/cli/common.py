"""What every command group shares: this profile's settings, registry, Dagster instance and automation,
the console, and how a command fails and prints a table."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from mlops_assets.core.tenants.registry import TenantRegistry
from mlops_assets.settings import Settings, SettingsError

# Dagster's console logger prints a failed step with its stack trace; commands print the cause instead (outcomes.py).
RUN_LOG_LEVEL = "CRITICAL"
# Logs and pipes get 160 columns (Rich would wrap the fleet table at 80); a terminal keeps its width.
console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160)


def fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(2)


def print_table(columns: Sequence[str], rows: Iterable[Sequence[str]], title: str | None = None) -> None:
    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        fail(str(exc))
        raise


def registry() -> TenantRegistry:
    return TenantRegistry(settings().warehouse_url)


def instance():
    """The Dagster instance of this profile: $DAGSTER_HOME, or $MLOPS_HOME/dagster for local use."""
    import dagster as dg

    from mlops_assets.core.warehouse.local_sqlite import keep_wal_databases_open

    keep_wal_databases_open()
    home = settings().dagster_home
    home.mkdir(parents=True, exist_ok=True)
    instance_yaml = home / "dagster.yaml"
    shipped = Path(__file__).resolve().parents[2] / "dagster.yaml"
    if not instance_yaml.exists() and shipped.exists():
        instance_yaml.write_text(shipped.read_text())
    os.environ["DAGSTER_HOME"] = str(home)
    dagster_instance = dg.DagsterInstance.get()
    # On PostgreSQL Dagster opens a connection per storage call (NullPool): 3,926 connections, 29 s of a
    # 100-tenant daily cycle run from this process. The webserver's pooled engines serve a long-lived
    # process like this one; run workers started by the daemon want PgBouncer (docs/operations.md).
    dagster_instance.optimize_for_webserver(statement_timeout=0, pool_recycle=3600, max_overflow=4)
    return dagster_instance


def sync_partitions() -> tuple[list[str], list[str]]:
    from mlops_assets.automation.decisions import sync_tenant_partitions

    with instance() as dagster_instance:
        return sync_tenant_partitions(dagster_instance, registry())


def build_automation(only: list[str] | None, dagster_instance, on_run=None, weekly_retrain: bool = True):
    """The daemon's decisions, replayed in this process on this profile's definitions and registry."""
    from mlops_assets.automation.replay import Automation
    from mlops_assets.definitions import build_defs

    return Automation(
        build_defs(settings()), dagster_instance, registry(), only=only, console_log_level=RUN_LOG_LEVEL,
        on_run=on_run, weekly_retrain=weekly_retrain,
    )  # fmt: skip
