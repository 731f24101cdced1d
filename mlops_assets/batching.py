"""Runs over many partitions: the partition loop, one-or-many values, per-partition metadata, check results.

A run covers many tenant-days (single-run backfills batch them; docs/architecture.md, "Runs batch
tenant-days"), yet Dagster hands a step one partition's value bare and many partitions' as a dict,
and takes one result per check and run. `Batch` turns that into one step call per partition for the
stage modules, and `check_result` is the one shape of a check's result: `partitions_checked`,
`partitions_failed`, `failed_partitions` (keys to re-run) and `failures` (each with its problem).

A failure of one tenant stays with that tenant (issue 15, `isolation`): the partition loop records a failed
partition and skips the partitions whose upstream failed in this run or whose input could not be read;
only the healthy ones are written, the IO managers log one materialization per written partition, and
the run's verdict names every failed tenant-day.

A step holds one tenant-day at a time, not the run's sum (issue 15: a tenant with 10x its orders must not
push a run of 250 past its memory budget): the loop visits a tenant's days together, inputs are read when
the step asks for a partition (`isolation.PartitionInputs`), the step's value is the loop itself
(`PartitionValues`), run by the IO manager as it writes each partition and drops it, and per-tenant caches
(`Batch.per_tenant`) are cleared when the loop moves to the next tenant.

This is the only module that touches private Dagster APIs (the run tags of partition ranges, the
output metadata key that suppresses automatic materializations, the data version tags);
mlops_assets_tests/test_batching.py names the Dagster version and the attribute when an upgrade
moves one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
from dagster._core.definitions.data_version import DATA_VERSION_IS_USER_PROVIDED_TAG, DATA_VERSION_TAG
from dagster._core.definitions.source_asset import SYSTEM_METADATA_KEY_SOURCE_ASSET_OBSERVATION

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
from mlops_assets.core.tenants.retries import FailureKind, failure_kind
from mlops_assets.isolation import (
    NAMED_FAILURES,
    PartitionInputs,
    failed_upstream,
    failure_observation,
    tenant_of,
    upstream_failures,
)
from mlops_assets.partitions import tenant_and_day


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


def by_partition(keys: Sequence[str], value: Any, owner: str) -> Mapping[str, Any]:
    """A step's input as `{partition key: value}`: Dagster passes one partition's bare, many as a dict; the
    IO managers hand over the partitions that did not fail upstream in this run, each read on access."""
    if isinstance(value, PartitionInputs):
        return value
    if isinstance(value, Mapping) and set(value) <= set(keys):
        return dict(value)
    if len(keys) == 1:
        return {keys[0]: value}
    raise dg.DagsterInvariantViolationError(
        f"{owner}: a run over {len(keys)} partitions needs a dict with one value per partition key"
    )


class PartitionValues:
    """What a step hands its IO manager: the healthy partitions' values, each computed when the IO manager asks
    for the next one (so it is written and dropped before the next partition's step runs), with its metadata.

    Read once: Dagster keeps the object itself (in-process runs capture every output until the run ends), never
    the values that went through it.
    """

    def __init__(self, values: Iterable[tuple[str, Any]], metadata: Mapping[str, Mapping[str, Any]]):
        self._values, self.metadata, self.consumed = iter(values), metadata, False

    def items(self) -> Iterator[tuple[str, Any]]:
        yield from self._values
        self.consumed = True


def materialization(asset_key: dg.AssetKey, key: str, metadata: Mapping[str, Any]) -> dg.AssetMaterialization:
    """One partition's materialization; the content digest, when there is one, is its data version."""
    digest = metadata.get("digest")
    tags = {DATA_VERSION_TAG: str(digest), DATA_VERSION_IS_USER_PROVIDED_TAG: "true"} if digest else None
    return dg.AssetMaterialization(asset_key=asset_key, partition=key, metadata=dict(metadata), tags=tags)


def write_partitions(
    context: dg.OutputContext, values: PartitionValues, write: Callable[[str, Any], Mapping[str, Any]]
) -> None:
    """`write(key, value)` per partition as the step hands it over, then that partition's materialization; a
    failed write fails only its tenant-day (the verdict names it), the other partitions are still written."""
    for key, value in values.items():
        event = _written(context, key, value, write, values.metadata.get(key, {}))
        del value  # gone before the next partition's step runs
        context.log_event(event)


def _written(
    context: dg.OutputContext, key: str, value: Any, write: Callable[[str, Any], Mapping[str, Any]], metadata
) -> dg.AssetMaterialization | dg.AssetObservation:
    try:
        written = write(key, value)
    except Exception as exc:
        reason = f"tenant {tenant_of(key)} {key}: writing {context.asset_key.to_user_string()} failed: {exc}"
        return failure_observation(context.asset_key, key, reason, failure_kind(exc))
    return materialization(context.asset_key, key, {**metadata, **written})


def suppressed_materializations() -> dict[str, Any]:
    """Output metadata that keeps Dagster from materializing every partition of the run, failed ones included:
    the IO managers log each written partition's materialization instead."""
    return {SYSTEM_METADATA_KEY_SOURCE_ASSET_OBSERVATION: True}


class Partition:
    """One partition of a batch, as its step sees it: tenant, day, checks, metadata and progress."""

    def __init__(self, batch: Batch, key: str, position: int):
        self.batch, self.key, self.position = batch, key, position
        if "|" in key:
            self.tenant_id, self.day = tenant_and_day(key)
        else:
            self.tenant_id, self.day = validate_tenant_id(key), None
        self.blocked: dict[str, list[str]] = {}  # blocking check -> its problems (a sweep checks many days)

    @property
    def where(self) -> str:
        """How messages name it: the tenant, and the key of a tenant-day."""
        return f"tenant {self.tenant_id} {self.key}" if self.day else f"tenant {self.tenant_id}"

    @property
    def gates(self) -> dict[str, str]:
        """Each failed blocking check and its first problem (a sweep checks many days)."""
        return {
            name: problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
            for name, problems in self.blocked.items()
        }

    def check(
        self,
        name: str,
        problem: str | None,
        metadata: Mapping[str, Any] | None = None,
        label: str | None = None,
    ) -> None:
        """Record a check of this partition (`problem` None: passed); `label` names a part of it. A failed
        blocking check keeps this partition from being written."""
        self.batch.findings[name].append(Finding(label or self.key, problem, metadata or {}))
        if problem is not None and self.batch.checks[name].blocking:
            self.blocked.setdefault(name, []).append(problem)

    def add_metadata(self, metadata: Mapping[str, Any]) -> None:
        self.batch.metadata.setdefault(self.key, {}).update(metadata)

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


_FAILED = object()  # what the loop's call of a step returns for a failed partition (None is a value)


def _reason(partition: Partition, error: Exception) -> str:
    """The error's message (it names the cause and the fix), prefixed by the tenant-day unless it names the tenant."""
    message = (error.description if isinstance(error, dg.Failure) else str(error)) or type(error).__name__
    return message if partition.tenant_id in message else f"{partition.where}: {message}"


class Batch:
    """The partitions of one asset in one run, and what its step reports about them."""

    def __init__(self, context: dg.AssetExecutionContext, checks: Sequence[Check] = ()):
        self.context = context
        # A tenant's days together (Dagster orders a range by day): per-tenant caches then hold one tenant.
        self.keys: list[str] = sorted(context.partition_keys, key=tenant_of)
        self.checks = {check.name: check for check in checks}
        self.findings: dict[str, list[Finding]] = {check.name: [] for check in checks}
        self.metadata: dict[str, dict[str, Any]] = {}
        self.failed: dict[str, str] = {}
        self._tenant_caches: list[dict] = []
        self._values: PartitionValues | None = None

    def inputs(self, value: Any) -> Mapping[str, Any]:
        """An input for this run's partitions, by partition key, without those failed upstream; a partition is read
        when the step asks for it, and one that cannot be read fails its tenant-day with the reason."""
        return by_partition(self.keys, value, self.context.asset_key.to_user_string())

    def per_tenant(self, load: Callable[..., Any]) -> Callable[..., Any]:
        """`load(tenant_id, *args)` cached while the loop is at that tenant (its history, its model) and dropped when
        it moves on: a run holds one tenant's, not every tenant's."""
        cache: dict[tuple, Any] = {}
        self._tenant_caches.append(cache)

        def cached(tenant_id: str, *args) -> Any:
            if (tenant_id, *args) not in cache:
                cache[(tenant_id, *args)] = load(tenant_id, *args)
            return cache[(tenant_id, *args)]

        return cached

    def fail(self, partition: Partition, reason: str, kind: FailureKind, upstream: str | None = None) -> None:
        """Mark a partition failed: not written, its reason on the partition, named by the run's verdict."""
        self.failed[partition.key] = reason
        event = failure_observation(self.context.asset_key, partition.key, reason, kind, upstream, partition.gates)
        self.context.log_event(event)
        partition.log(f"FAILED {reason}", notable=True)

    def _loop(self, step: Callable[[Partition], Any]) -> Iterator[tuple[str, Any]]:
        """`step` once per partition, a tenant's days together; yields each healthy partition's value.

        A failure is confined to its partition: an error (an unreadable input among them), or a failed blocking
        check, marks it failed, and a partition whose upstream failed in this run is skipped without calling `step`.
        """
        # Read here, in the step's own code, not lazily inside the IO manager.
        upstream_keys = self.context.assets_def.asset_deps[self.context.asset_key]
        upstream = upstream_failures(self.context.get_step_execution_context(), upstream_keys)
        return self._partitions(step, upstream)

    def _partitions(self, step, upstream) -> Iterator[tuple[str, Any]]:
        tenant_id = None
        for position, key in enumerate(self.keys, start=1):
            partition = Partition(self, key, position)
            if partition.tenant_id != tenant_id:
                tenant_id = partition.tenant_id
                for cache in self._tenant_caches:
                    cache.clear()
            value = self._call(partition, step, upstream)
            if value is not _FAILED:
                yield key, value
            del value  # written (or failed) by now: the next partition's step must not find it held

    def _call(self, partition: Partition, step: Callable[[Partition], Any], upstream) -> Any:
        failed = failed_upstream(partition.key, upstream)
        if failed is not None:
            reason = f"{partition.where}: upstream `{failed}` failed (fix: see its failure)"
            self.fail(partition, reason, FailureKind.TRANSIENT, failed)
            return _FAILED
        try:
            value = step(partition)
        except Exception as exc:
            self.fail(partition, _reason(partition, exc), failure_kind(exc))
            return _FAILED
        if partition.blocked:
            listed = "; ".join(f"{name}: {problem}" for name, problem in partition.gates.items())
            self.fail(partition, f"{partition.where}: blocking gate failed: {listed}", FailureKind.TRANSIENT)
            return _FAILED
        return value

    def output(self, step: Callable[[Partition], Any]) -> dg.Output:
        """The step's output: the partition loop itself, run by the IO manager as it writes each partition."""
        self._values = PartitionValues(self._loop(step), self.metadata)
        return dg.Output(self._values, metadata=suppressed_materializations())

    def results(self, step: Callable[[Partition], Any]) -> Iterator[dg.Output | dg.AssetCheckResult]:
        """What a step over a batch yields: the output (`step` runs per partition as it is written), then every
        check's result."""
        yield self.output(step)
        yield from self.check_results()

    def materialize_result(self, step: Callable[[Partition], Any]) -> dg.MaterializeResult:
        """For a step that writes its own files: the loop, each healthy partition's materialization, the checks."""
        for _ in self._loop(step):
            pass
        for key in self.keys:
            if key not in self.failed:
                self.context.log_event(materialization(self.context.asset_key, key, self.metadata.get(key, {})))
        return dg.MaterializeResult(check_results=self.check_results(), metadata=suppressed_materializations())

    def check_results(self) -> list[dg.AssetCheckResult]:
        """One result per check; a failed blocking check is reported as a warning: its partitions were
        withheld (the verdict fails them), the step goes on for the others."""
        if self._values is not None and not self._values.consumed:
            raise dg.DagsterInvariantViolationError(
                f"{self.context.asset_key.to_user_string()}: its IO manager did not write the step's partitions "
                "(fix: write them with `batching.write_partitions`, as the lake and warehouse IO managers do)"
            )
        return [
            check_result(
                dataclasses.replace(check, severity=dg.AssetCheckSeverity.WARN) if check.blocking else check,
                self.findings[name],
            )
            for name, check in self.checks.items()
        ]
