"""Tenant x date partitions.

`tenant` is dynamic (kept in step with the registry by a sensor); `date` is a rolling window of
`MLOPS_PARTITION_WINDOW_DAYS` days ending yesterday, so tenants x days stays inside Dagster's
recommended 100k partitions per asset at 1000 tenants (docs/architecture.md, "Scale").
Multi-partition keys put dimensions in alphabetical order: `2024-01-10|acme`.

The window is built from the settings `definitions.build_defs` is given, never at import time:
importing this module reads no environment.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from mlops_assets.core.tenants.ids import validate_tenant_id
from mlops_assets.settings import Settings

TENANTS = "tenants"
tenant_partitions = dg.DynamicPartitionsDefinition(name=TENANTS)
# The dimensions of a tenant-day key string, in the order Dagster writes them (alphabetical).
KEY_DIMENSIONS = ("date", "tenant")


def date_window_start(window_days: int, today: date | None = None) -> date:
    today = today or datetime.now(UTC).date()
    return today - timedelta(days=window_days)


@dataclass(frozen=True)
class TenantDayPartitions:
    """The partitions of one code location: every tenant x the days of its settings' window."""

    daily: dg.DailyPartitionsDefinition
    tenant_day: dg.MultiPartitionsDefinition

    @classmethod
    def for_window(cls, window_days: int, today: date | None = None) -> TenantDayPartitions:
        daily = dg.DailyPartitionsDefinition(start_date=date_window_start(window_days, today).isoformat())
        return cls(daily, dg.MultiPartitionsDefinition({"date": daily, "tenant": tenant_partitions}))

    @classmethod
    def from_settings(cls, settings: Settings) -> TenantDayPartitions:
        return cls.for_window(settings.partition_window_days)

    @classmethod
    def of(cls, defs: dg.Definitions | dg.RepositoryDefinition | None) -> TenantDayPartitions:
        """The partitions a code location was built with (its sensors, tests and benchmarks read the window here)."""
        if defs is None:
            raise ValueError(
                "no code location to read the partition window from (fix: evaluate the sensor with its "
                "definitions, e.g. `build_sensor_context(definitions=...)`)"
            )
        repository = defs.get_repository_def() if isinstance(defs, dg.Definitions) else defs
        for node in repository.asset_graph.asset_nodes:
            if isinstance(node.partitions_def, dg.MultiPartitionsDefinition):
                daily = node.partitions_def.get_partitions_def_for_dimension("date")
                return cls(daily, node.partitions_def)
        raise ValueError(f"code location {repository.name} has no tenant x date asset")

    @property
    def first_day(self) -> date:
        return self.daily.start.date()

    @property
    def last_day(self) -> date:
        return date.fromisoformat(self.daily.get_last_partition_key())

    def asset(self, group_name: str, **kwargs) -> dict:
        """The settings every lake-persisted tenant x date asset shares (batched runs, Hive lake files)."""
        return {
            "group_name": group_name,
            "partitions_def": self.tenant_day,
            "io_manager_key": "lake_io_manager",
            "backfill_policy": dg.BackfillPolicy.single_run(),
            **kwargs,
        }


# An edge to every day of the same tenant: the production model (any cutoff), predictions H days back.
# MultiPartitionMapping is marked beta since 1.6 and is what DESIGN.md prescribes; its warning is noise
# in every CLI command and run log.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)
    SAME_TENANT_ANY_DAY = dg.MultiPartitionMapping(
        {
            "tenant": dg.DimensionPartitionMapping("tenant", dg.IdentityPartitionMapping()),
            "date": dg.DimensionPartitionMapping("date", dg.AllPartitionMapping()),
        }
    )


def tenant_and_day(partition_key: str | dg.MultiPartitionKey) -> tuple[str, date]:
    if isinstance(partition_key, dg.MultiPartitionKey):
        dims = partition_key.keys_by_dimension
    else:
        parts = partition_key.split("|")
        if len(parts) != len(KEY_DIMENSIONS):
            raise ValueError(f"partition key {partition_key!r} is not a tenant-day key like 2024-01-10|acme")
        dims = dict(zip(KEY_DIMENSIONS, parts, strict=True))
    return validate_tenant_id(dims["tenant"]), date.fromisoformat(dims["date"])


def tenant_day_key(tenant_id: str, day: date) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"tenant": validate_tenant_id(tenant_id), "date": day.isoformat()})
