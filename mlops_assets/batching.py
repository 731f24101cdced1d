"""Runs over many partitions: the partition loop, one-or-many values, per-partition metadata, check results.

A run covers many tenant-days (single-run backfills batch them; docs/architecture.md, "Runs batch
tenant-days"), yet Dagster hands a step one partition's value bare and many partitions' as a dict,
and takes one result per check and run. `Batch` turns that into one step call per partition for the
stage modules, and `check_result` is the one shape of a check's result: `partitions_checked`,
`partitions_failed`, `failed_partitions` (keys to re-run) and `failures` (each with its problem).

A failure of one tenant stays with that tenant (issue 15): `Batch.run` records a failed partition (its
reason as a failure observation on that partition) and skips the partitions whose upstream failed in
this run; the step writes only the healthy ones, the IO managers log one materialization per written
partition, and the `run_verdict` check fails the run naming every failed tenant-day, so Dagster shows
exactly those partitions FAILED and backfills and the healing sensor retry exactly those.

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
    """A step's value as `{partition key: value}`: Dagster passes one partition's bare, many as a dict; the
    IO managers hand over only the partitions that did not fail upstream in this run."""
    if isinstance(value, Mapping) and set(value) <= set(keys):
        return dict(value)
    if len(keys) == 1:
        return {keys[0]: value}
    raise dg.DagsterInvariantViolationError(
        f"{owner}: a run over {len(keys)} partitions needs a dict with one value per partition key"
    )


FAILURE_KIND, FAILED_TENANT, FAILED_TENANTS, FAILURE = "failure_kind", "tenant", "failed_tenants", "failure"
# On a partition skipped because an upstream asset failed for it in this run: that asset.
FAILED_UPSTREAM = "failed_upstream"
# On a partition withheld by blocking checks: each check's name and its first problem, for the operator's CLI.
BLOCKING_GATES = "blocking_gates"


@dataclass(frozen=True)
class PartitionFailure:
    """Why one partition of an asset failed in a run, as its failure observation records it."""

    tenant_id: str
    reason: str
    kind: FailureKind
    upstream: str | None = None
    gates: Mapping[str, str] = field(default_factory=dict)  # blocking check -> its problem (names ids and the fix)


def _tenant_of(key: str) -> str:
    return tenant_and_day(key)[0] if "|" in key else validate_tenant_id(key)


def failure_observation(
    asset_key: dg.AssetKey, key: str, reason: str, kind: FailureKind, upstream: str | None = None, gates=None
) -> dg.AssetObservation:
    """The event that marks a partition failed in this run; the step, its downstream steps, the verdict and the
    CLI read it."""
    metadata = {FAILURE: reason, FAILED_TENANT: _tenant_of(key), FAILURE_KIND: kind.value}
    if upstream is not None:
        metadata[FAILED_UPSTREAM] = upstream
    if gates:
        metadata[BLOCKING_GATES] = dg.MetadataValue.json(dict(gates))
    return dg.AssetObservation(asset_key=asset_key, partition=key, metadata=metadata)


def failures_in_run(
    instance: dg.DagsterInstance, run_id: str, asset_keys: Iterable[dg.AssetKey] | None = None
) -> dict[dg.AssetKey, dict[str, PartitionFailure]]:
    """The partitions of these assets (default: all) that failed in this run, from the run's own event log (one
    query): a missing lake file says nothing, an older version of it may exist."""
    wanted, failed = None if asset_keys is None else set(asset_keys), {}
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_OBSERVATION):
        observation = record.asset_observation
        if observation is None or FAILURE not in observation.metadata:
            continue
        if wanted is not None and observation.asset_key not in wanted:
            continue
        metadata = {key: value.value for key, value in observation.metadata.items()}
        failed.setdefault(observation.asset_key, {})[observation.partition] = PartitionFailure(
            metadata[FAILED_TENANT],
            metadata[FAILURE],
            FailureKind(metadata[FAILURE_KIND]),
            metadata.get(FAILED_UPSTREAM),
            metadata.get(BLOCKING_GATES) or {},
        )
    return failed


def _failed_upstream(key: str, upstream: Mapping[dg.AssetKey, Mapping[str, PartitionFailure]]) -> str | None:
    """The upstream asset that failed for this partition (the same tenant-day, or the tenant of a per-tenant asset)."""
    tenant_id = _tenant_of(key)
    for asset_key, failures in sorted(upstream.items()):
        if key in failures or tenant_id in failures:
            return asset_key.to_user_string()
    return None


def healthy_input_keys(context: dg.InputContext) -> list[str]:
    """The partitions of an input to load: those whose upstream asset did not fail in this run."""
    step = context.step_context
    upstream = failures_in_run(step.instance, step.run_id, [context.asset_key])
    return [key for key in context.asset_partition_keys if _failed_upstream(key, upstream) is None]


class PartitionValues(dict):
    """What a step hands its IO manager: the healthy partitions' values, each with its metadata."""

    def __init__(self, values: Mapping[str, Any], metadata: Mapping[str, Mapping[str, Any]]):
        super().__init__(values)
        self.metadata = metadata


def materialization(asset_key: dg.AssetKey, key: str, metadata: Mapping[str, Any]) -> dg.AssetMaterialization:
    """One partition's materialization; the content digest, when there is one, is its data version."""
    digest = metadata.get("digest")
    tags = {DATA_VERSION_TAG: str(digest), DATA_VERSION_IS_USER_PROVIDED_TAG: "true"} if digest else None
    return dg.AssetMaterialization(asset_key=asset_key, partition=key, metadata=dict(metadata), tags=tags)


def write_partitions(
    context: dg.OutputContext, values: PartitionValues, write: Callable[[str, Any], Mapping[str, Any]]
) -> None:
    """`write(key, value)` per partition, then that partition's materialization; a failed write fails only
    its tenant-day (the verdict names it), the other partitions are still written."""
    for key, value in values.items():
        try:
            written = write(key, value)
        except Exception as exc:
            reason = f"tenant {_tenant_of(key)} {key}: writing {context.asset_key.to_user_string()} failed: {exc}"
            context.log_event(failure_observation(context.asset_key, key, reason, failure_kind(exc)))
            continue
        context.log_event(materialization(context.asset_key, key, {**values.metadata.get(key, {}), **written}))


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


def _reason(partition: Partition, error: Exception) -> str:
    """The error's message (it names the cause and the fix), prefixed by the tenant-day unless it names the tenant."""
    message = (error.description if isinstance(error, dg.Failure) else str(error)) or type(error).__name__
    return message if partition.tenant_id in message else f"{partition.where}: {message}"


class Batch:
    """The partitions of one asset in one run, and what its step reports about them."""

    def __init__(self, context: dg.AssetExecutionContext, checks: Sequence[Check] = ()):
        self.context = context
        self.keys: list[str] = list(context.partition_keys)
        self.checks = {check.name: check for check in checks}
        self.findings: dict[str, list[Finding]] = {check.name: [] for check in checks}
        self.values: dict[str, Any] = {}
        self.metadata: dict[str, dict[str, Any]] = {}
        self.failed: dict[str, str] = {}

    def inputs(self, value: Any) -> dict[str, Any]:
        """An input loaded for this run's partitions, by partition key (without those failed upstream)."""
        return by_partition(self.keys, value, self.context.asset_key.to_user_string())

    def fail(self, partition: Partition, reason: str, kind: FailureKind, upstream: str | None = None) -> None:
        """Mark a partition failed: not written, its reason on the partition, named by the run's verdict."""
        self.failed[partition.key] = reason
        event = failure_observation(self.context.asset_key, partition.key, reason, kind, upstream, partition.gates)
        self.context.log_event(event)
        partition.log(f"FAILED {reason}", notable=True)

    def run(self, step: Callable[[Partition], Any]) -> dict[str, Any]:
        """The partition loop: `step` once per partition in key order; it returns that partition's value.

        A failure is confined to its partition: an error, or a failed blocking check, marks it failed, and a
        partition whose upstream failed in this run is skipped without calling `step`.
        """
        upstream_keys = self.context.assets_def.asset_deps[self.context.asset_key]
        upstream = failures_in_run(self.context.instance, self.context.run.run_id, upstream_keys)
        for position, key in enumerate(self.keys, start=1):
            partition = Partition(self, key, position)
            failed_upstream = _failed_upstream(key, upstream)
            if failed_upstream is not None:
                reason = f"{partition.where}: upstream `{failed_upstream}` failed (fix: see its failure)"
                self.fail(partition, reason, FailureKind.TRANSIENT, failed_upstream)
                continue
            try:
                value = step(partition)
            except Exception as exc:
                self.fail(partition, _reason(partition, exc), failure_kind(exc))
                continue
            if partition.blocked:
                listed = "; ".join(f"{name}: {problem}" for name, problem in partition.gates.items())
                self.fail(partition, f"{partition.where}: blocking gate failed: {listed}", FailureKind.TRANSIENT)
                continue
            self.values[key] = value
        return self.values

    def output(self) -> dg.Output:
        return dg.Output(PartitionValues(self.values, self.metadata), metadata=suppressed_materializations())

    def materialize_result(self) -> dg.MaterializeResult:
        """For a step that writes its own files: each healthy partition's materialization, then the checks."""
        for key in self.keys:
            if key not in self.failed:
                self.context.log_event(materialization(self.context.asset_key, key, self.metadata.get(key, {})))
        return dg.MaterializeResult(check_results=self.check_results(), metadata=suppressed_materializations())

    def check_results(self) -> list[dg.AssetCheckResult]:
        """One result per check; a failed blocking check is reported as a warning: its partitions were
        withheld (the verdict fails them), the step goes on for the others."""
        return [
            check_result(
                dataclasses.replace(check, severity=dg.AssetCheckSeverity.WARN) if check.blocking else check,
                self.findings[name],
            )
            for name, check in self.checks.items()
        ]

    def results(self) -> Iterator[dg.Output | dg.AssetCheckResult]:
        """The output, then every check's result: what a step over a batch yields."""
        yield self.output()
        yield from self.check_results()


VERDICT = "tenant_days_succeeded"


def run_verdict(assets: Iterable[dg.AssetKey]) -> dg.AssetChecksDefinition:
    """One step per run, after the assets it selects: fails the run naming every failed tenant-day, so Dagster
    shows those partitions FAILED (planned, not materialized) while the healthy ones are materialized.

    A check step instead of a failing asset step: downstream steps of a failed step are skipped on every
    executor (only the in-process and multiprocess executors can be told otherwise, not `execute_in_process`
    nor Celery), and one subsettable check adds one step per run, not one per asset.
    """
    specs = [
        dg.AssetCheckSpec(
            VERDICT,
            asset=asset,
            description="Every tenant-day of the run was written; a failure "
            "names each failed tenant-day, its cause and the fix",
        )
        for asset in assets
    ]

    @dg.multi_asset_check(specs=specs, can_subset=True, name="run_verdict")
    def _verdict(context):  # an AssetCheckExecutionContext (a string annotation here, which Dagster rejects)
        selected = sorted(context.selected_asset_check_keys)
        failed = failures_in_run(context.instance, context.run.run_id, [key.asset_key for key in selected])
        for check_key in selected:
            own = failed.get(check_key.asset_key, {})
            yield dg.AssetCheckResult(
                asset_key=check_key.asset_key,
                check_name=VERDICT,
                passed=not own,
                severity=dg.AssetCheckSeverity.ERROR,
                description=f"{len(own)} partitions failed" if own else "every partition of the run was written",
                metadata={
                    "partitions_failed": len(own),
                    "failures": [f"{key}: {failure.reason}" for key, failure in sorted(own.items())[:NAMED_FAILURES]],
                },
            )
        if failed:
            raise verdict_failure(failed)

    return _verdict


def verdict_failure(failed: Mapping[dg.AssetKey, Mapping[str, PartitionFailure]]) -> dg.Failure:
    """The run's failure: every failed tenant-day with its cause (the skipped downstream partitions counted
    after them), each tenant's failure kind as metadata."""
    kinds: dict[str, str] = {}
    causes, skipped = [], 0
    for asset_key, failures in sorted(failed.items()):
        for key, failure in sorted(failures.items()):
            if failure.upstream is None:
                causes.append(f"{asset_key.to_user_string()} {key}: {failure.reason}")
            else:
                skipped += 1
            if kinds.get(failure.tenant_id) != FailureKind.PERMANENT.value:
                kinds[failure.tenant_id] = failure.kind.value
    keys = sorted({key for failures in failed.values() for key in failures})
    downstream = f"; {skipped} downstream partitions skipped" if skipped else ""
    return dg.Failure(
        description=f"{len(keys)} tenant-days failed ({', '.join(keys[:NAMED_FAILURES])}); "
        + "; ".join(causes[:NAMED_FAILURES])
        + downstream,
        metadata={FAILED_TENANTS: dg.MetadataValue.json(kinds), "failed_partitions": keys[:NAMED_FAILURES]},
        allow_retries=False,
    )
