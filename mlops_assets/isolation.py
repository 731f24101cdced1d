"""A failure of one tenant stays with that tenant (issue 15): how a failed partition is recorded, read back and
reported, for the partition loop (`batching.Batch`), the IO managers and the run's verdict.

A failed tenant-day is an `AssetObservation` with `failure` metadata on that partition, logged by the step
that failed it (an error, a failed blocking gate, an input that could not be read, a failed write). Steps
downstream read the run's failures once, skip the partitions whose upstream failed and load only the
others; one check step, `run_verdict`, fails the run naming every failed tenant-day, so Dagster shows
exactly those partitions FAILED and backfills and the healing sensor retry exactly those.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from mlops_assets.core.tenants.ids import validate_tenant_id
from mlops_assets.core.tenants.retries import FailureKind, failure_kind
from mlops_assets.partitions import tenant_and_day

# A check result or verdict names at most this many failing partitions; its counts are always complete.
NAMED_FAILURES = 50
FAILURE_KIND, FAILED_TENANT, FAILED_TENANTS, FAILURE = "failure_kind", "tenant", "failed_tenants", "failure"
# On the verdict: each failed tenant's own first cause, so fleet health and retry notes name it, not another's.
TENANT_CAUSES = "tenant_causes"
# On a partition skipped because an upstream asset failed for it in this run: that asset.
FAILED_UPSTREAM = "failed_upstream"
# On a partition withheld by blocking checks: each check's name and its first problem, for the operator's CLI.
BLOCKING_GATES = "blocking_gates"
VERDICT = "tenant_days_succeeded"
# A tenant's cause on the verdict is cut here: 250 tenants of a run must not make its failure event huge.
CAUSE_CHARS = 300


@dataclass(frozen=True)
class PartitionFailure:
    """Why one partition of an asset failed in a run, as its failure observation records it."""

    tenant_id: str
    reason: str
    kind: FailureKind
    upstream: str | None = None
    gates: Mapping[str, str] = field(default_factory=dict)  # blocking check -> its problem (names ids and the fix)


def tenant_of(key: str) -> str:
    """The tenant of a tenant-day key or of a tenant key."""
    return tenant_and_day(key)[0] if "|" in key else validate_tenant_id(key)


def failure_observation(
    asset_key: dg.AssetKey, key: str, reason: str, kind: FailureKind, upstream: str | None = None, gates=None
) -> dg.AssetObservation:
    """The event that marks a partition failed in this run; the step, its downstream steps, the verdict and the
    CLI read it."""
    metadata = {FAILURE: reason, FAILED_TENANT: tenant_of(key), FAILURE_KIND: kind.value}
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


@functools.lru_cache(maxsize=1)
def _failed_before_step(
    instance: dg.DagsterInstance, run_id: str, step_key: str
) -> dict[dg.AssetKey, dict[str, PartitionFailure]]:
    # Keyed by step: the steps upstream of it are done when it loads its inputs, so what they failed cannot change.
    return failures_in_run(instance, run_id)


def upstream_failures(step: Any, asset_keys: Iterable[dg.AssetKey]) -> dict[dg.AssetKey, dict[str, PartitionFailure]]:
    """The failures of the step's upstream assets in its run, read once per step (every input and the partition
    loop share the one query); `step` is Dagster's step execution context."""
    failed = _failed_before_step(step.instance, step.run_id, step.step.key)
    return {asset_key: failed[asset_key] for asset_key in asset_keys if asset_key in failed}


def failed_upstream(key: str, upstream: Mapping[dg.AssetKey, Mapping[str, PartitionFailure]]) -> str | None:
    """The upstream asset that failed for this partition (the same tenant-day, or the tenant of a per-tenant asset)."""
    tenant_id = tenant_of(key)
    for asset_key, failures in sorted(upstream.items()):
        if key in failures or tenant_id in failures:
            return asset_key.to_user_string()
    return None


class UnreadableInput(Exception):
    """An input partition that could not be read: its tenant-day fails alone, with this reason."""

    def __init__(self, reason: str, kind: FailureKind):
        super().__init__(reason)
        self.permanent = kind is FailureKind.PERMANENT  # what `failure_kind` reads


class PartitionInputs(Mapping):
    """An input's partitions by key, each read when the step asks for it and not kept (a step holds one tenant-day's
    input, not the run's); the partitions failed upstream in this run are absent. One that cannot be read (a missing
    or corrupt file, a lost connection) raises `UnreadableInput`, which fails only its tenant-day
    (`batching.Batch`)."""

    def __init__(self, asset: str, keys: Iterable[str], read: Callable[[str], Any]):
        self.asset, self._keys, self._read = asset, dict.fromkeys(keys), read

    def __getitem__(self, key: str) -> Any:
        if key not in self._keys:
            raise KeyError(key)
        try:
            return self._read(key)
        except Exception as exc:
            tenant_id, day = tenant_and_day(key)
            reason = (
                f"tenant {tenant_id} {key}: input `{self.asset}` could not be read ({type(exc).__name__}: {exc}) (fix: "
                f"it is written again when the healing sensor retries the tenant-day, or `mlops backfill {tenant_id} "
                f"--from {day}`)"
            )
            raise UnreadableInput(reason, failure_kind(exc)) from exc

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def load_partitions(context: dg.InputContext, read: Callable[[str], Any]) -> PartitionInputs:
    """The partitions of an input whose upstream did not fail in this run, each `read(key)` on access."""
    upstream = upstream_failures(context.step_context, [context.asset_key])
    keys = [key for key in context.asset_partition_keys if failed_upstream(key, upstream) is None]
    return PartitionInputs(context.asset_key.to_user_string(), keys, read)


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
    after them), each tenant's failure kind and first cause as metadata."""
    kinds: dict[str, str] = {}
    tenant_causes: dict[str, str] = {}
    causes, skipped = [], 0
    for asset_key, failures in sorted(failed.items()):
        for key, failure in sorted(failures.items()):
            if failure.upstream is None:
                causes.append(f"{asset_key.to_user_string()} {key}: {failure.reason}")
                tenant_causes.setdefault(failure.tenant_id, causes[-1][:CAUSE_CHARS])
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
        metadata={
            FAILED_TENANTS: dg.MetadataValue.json(kinds),
            TENANT_CAUSES: dg.MetadataValue.json(tenant_causes),
            "failed_partitions": keys[:NAMED_FAILURES],
        },
        allow_retries=False,
    )
