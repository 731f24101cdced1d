"""Runs over many partitions: the partition loop, one-or-many values, per-partition metadata, check results.

A run covers many tenant-days (single-run backfills batch them; docs/architecture.md, "Runs batch
tenant-days"), yet Dagster hands a step one partition's value bare and many partitions' as a dict,
and takes one result per check and run. `Batch` turns that into one step call per partition for the
stage modules, and `check_result` is the one shape of a check's result: `partitions_checked`,
`partitions_failed`, `failed_partitions` (keys to re-run) and `failures` (each with its problem).

This is the only module that touches private Dagster APIs (the step's metadata accumulator, the run
tags of partition ranges); mlops_assets_tests/test_batching.py names the Dagster version and the
attribute when an upgrade moves one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

# Dagster keeps these run tags in a private module; the rest of the project imports them from here.
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG as ASSET_PARTITION_RANGE_END_TAG,
)
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_START_TAG as ASSET_PARTITION_RANGE_START_TAG,
)
from dagster._core.storage.tags import (
    PARTITION_NAME_TAG as PARTITION_NAME_TAG,
)
from dagster._core.storage.tags import (
    RUN_KEY_TAG as RUN_KEY_TAG,
)

from mlops_assets.core.tenants.ids import validate_tenant_id
from mlops_assets.core.tenants.retries import failure_kind
from mlops_assets.partitions import tenant_and_day

# A check result names at most this many failing partitions; its counts are always complete.
NAMED_FAILURES = 50


@dataclass(frozen=True)
class Check:
    """A check of every partition a run covers, reported once per run."""

    name: str
    description: str
    blocking: bool = False
    # ERROR for blocking checks, WARN for the rest, unless set.
    severity: dg.AssetCheckSeverity | None = None

    def spec(self, asset: str) -> dg.AssetCheckSpec:
        return dg.AssetCheckSpec(self.name, asset=asset, blocking=self.blocking, description=self.description)

    @property
    def result_severity(self) -> dg.AssetCheckSeverity:
        if self.severity is not None:
            return self.severity
        return dg.AssetCheckSeverity.ERROR if self.blocking else dg.AssetCheckSeverity.WARN


@dataclass(frozen=True)
class Finding:
    """One check of one partition (or of one labelled part of it); `problem` is None when it passed."""

    label: str
    problem: str | None
    metadata: Mapping[str, Any] = field(default_factory=dict)


def check_result(check: Check, findings: Sequence[Finding]) -> dg.AssetCheckResult:
    """A check's result over a run: a failure names the first failing partition and its problem.

    The metadata of the first failure (or of the only finding) comes along, e.g. a sample of offending ids.
    """
    failed = [finding for finding in findings if finding.problem is not None]
    shown = failed[0] if failed else findings[0] if len(findings) == 1 else None
    if not failed:
        description = check.description
    elif len(findings) == 1:
        description = f"{shown.label}: {shown.problem}"
    else:
        description = f"{len(failed)} of {len(findings)} partitions failed; first: {shown.label}: {shown.problem}"
    return dg.AssetCheckResult(
        check_name=check.name,
        passed=not failed,
        severity=check.result_severity,
        description=description,
        metadata={
            **(shown.metadata if shown else {}),
            "partitions_checked": len(findings),
            "partitions_failed": len(failed),
            "failed_partitions": [finding.label for finding in failed[:NAMED_FAILURES]],
            "failures": [f"{finding.label}: {finding.problem}" for finding in failed[:NAMED_FAILURES]],
        },
    )


def by_partition(keys: Sequence[str], value: Any, owner: str) -> dict[str, Any]:
    """A step's value as `{partition key: value}`: Dagster passes one partition's bare, many as a dict."""
    if len(keys) == 1:
        return {keys[0]: value}
    if not isinstance(value, Mapping) or set(value) != set(keys):
        raise dg.DagsterInvariantViolationError(
            f"{owner}: a run over {len(keys)} partitions needs a dict with one value per partition key"
        )
    return dict(value)


def one_or_many(keys: Sequence[str], values: Mapping[str, Any]) -> Any:
    """What Dagster expects for these keys: the bare value of one partition, the dict of many."""
    return values[keys[0]] if len(keys) == 1 else dict(values)


def add_partition_metadata(
    context: dg.AssetExecutionContext | dg.OutputContext, partition_key: str, metadata: Mapping[str, Any]
) -> None:
    """Metadata of one partition of a run over many (an asset's context or its IO manager's output context).

    Dagster's `add_asset_metadata(partition_key=...)` validates the key by listing the run's partition
    range: three storage queries per call, each O(tenants) (43 ms a call at 10 tenants on PostgreSQL,
    6 of every 42 s of a daily cycle). The keys here come from the run's own range, so the step's
    metadata accumulator takes them directly.
    """
    step = (
        context.step_context
        if isinstance(context, dg.OutputContext)
        else context.op_execution_context._step_execution_context
    )
    step._metadata_accumulator = step._metadata_accumulator.with_additional_asset_metadata(
        asset_key=context.asset_key, metadata=metadata, partition_key=partition_key
    )


class Partition:
    """One partition of a batch, as its step sees it: tenant, day, checks, metadata and progress."""

    def __init__(self, batch: Batch, key: str, position: int):
        self.batch, self.key, self.position = batch, key, position
        if "|" in key:
            self.tenant_id, self.day = tenant_and_day(key)
        else:
            self.tenant_id, self.day = validate_tenant_id(key), None

    def check(
        self,
        name: str,
        problem: str | None,
        metadata: Mapping[str, Any] | None = None,
        label: str | None = None,
    ) -> None:
        """Record a check of this partition (`problem` None: passed); `label` names a part of it."""
        self.batch.findings[name].append(Finding(label or self.key, problem, metadata or {}))

    def add_metadata(self, metadata: Mapping[str, Any]) -> None:
        add_partition_metadata(self.batch.context, self.key, metadata)

    def upstream_metadata(self, asset: str) -> dict:
        """The latest materialization metadata of this partition of an upstream asset (e.g. its data digest)."""
        records = self.batch.context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[self.key]), limit=1
        ).records
        if not records:
            return {}
        return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}

    def log(self, message: str, notable: bool = False) -> None:
        """About ten lines per step and every notable partition: each log line is an event-log write."""
        total = len(self.batch.keys)
        if notable or self.position == total or self.position % max(1, total // 10) == 0:
            self.batch.context.log.info(f"[{self.position}/{total}] {message}")


FAILURE_KIND, FAILED_TENANT = "failure_kind", "tenant"


def partition_failure(partition: Partition, error: Exception) -> dg.Failure:
    """The step's failure with the tenant, the partition and the failure's kind (transient or permanent) as
    metadata: the retry decisions read them from the step's failure event instead of parsing messages."""
    metadata = dict(error.metadata) if isinstance(error, dg.Failure) else {}
    description = error.description if isinstance(error, dg.Failure) else str(error)
    return dg.Failure(
        description=description or type(error).__name__,
        metadata={
            **metadata,
            FAILED_TENANT: partition.tenant_id,
            "partition": partition.key,
            FAILURE_KIND: failure_kind(error).value,
        },
    )


class Batch:
    """The partitions of one asset in one run, and what its step reports about them."""

    def __init__(self, context: dg.AssetExecutionContext, checks: Sequence[Check] = ()):
        self.context = context
        self.keys: list[str] = list(context.partition_keys)
        self.checks = {check.name: check for check in checks}
        self.findings: dict[str, list[Finding]] = {check.name: [] for check in checks}
        self.values: dict[str, Any] = {}

    def inputs(self, value: Any) -> dict[str, Any]:
        """An input loaded for this run's partitions, by partition key."""
        return by_partition(self.keys, value, self.context.asset_key.to_user_string())

    def run(self, step: Callable[[Partition], Any]) -> dict[str, Any]:
        """The partition loop: `step` once per partition in key order; it returns that partition's value.

        Every partition passes through here, so this is where a failure of one tenant can be confined
        to that tenant's partitions.
        """
        for position, key in enumerate(self.keys, start=1):
            partition = Partition(self, key, position)
            try:
                self.values[key] = step(partition)
            except Exception as exc:
                raise partition_failure(partition, exc) from exc
        return self.values

    def output(self) -> dg.Output:
        return dg.Output(one_or_many(self.keys, self.values))

    def check_results(self) -> list[dg.AssetCheckResult]:
        return [check_result(check, self.findings[name]) for name, check in self.checks.items()]

    def failures(self) -> dict[str, list[str]]:
        """`label: problem` of every failed finding, by check (only checks that failed)."""
        failed = {
            name: [f"{finding.label}: {finding.problem}" for finding in findings if finding.problem is not None]
            for name, findings in self.findings.items()
        }
        return {name: entries for name, entries in failed.items() if entries}

    def results(self) -> Iterator[dg.Output | dg.AssetCheckResult]:
        """The output, then every check's result: what a step over a batch yields."""
        yield self.output()
        yield from self.check_results()
