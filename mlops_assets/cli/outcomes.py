"""What went wrong in the runs a command started, said so a person can act: per tenant, the asset and partition
that failed, the blocking gate and its problem (which names the offending orders and the fix), never a stack trace.

Commands run Dagster with its console quiet (`common.RUN_LOG_LEVEL`): a failed step would print Dagster's stack trace,
while the cause the operator needs is on the failed partition's observation (`batching.failures_in_run`). The
full logs stay in each run's event log (`mlops dev`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from mlops_assets.cli.common import console, instance

if TYPE_CHECKING:
    from mlops_assets.isolation import PartitionFailure

VERDICT_STEP = "run_verdict"


def _failed_partitions(results: list) -> dict[tuple[str, str], PartitionFailure]:
    """(asset, partition) -> its failure, the latest run's where one failed twice."""
    from mlops_assets.isolation import failures_in_run

    failed = {}
    with instance() as dagster_instance:
        for result in results:
            if result.success:
                continue
            for asset_key, failures in failures_in_run(dagster_instance, result.run_id).items():
                for key, failure in failures.items():
                    failed[(asset_key.to_user_string(), key)] = failure
    return failed


def _other_step_failures(results: list) -> list[str]:
    """Failed steps that are not the verdict (an error outside any partition's step): their first line."""
    return [
        f"{event.step_key} failed: {event.step_failure_data.error.message.strip().splitlines()[0][:300]}"
        for result in results
        if not result.success
        for event in result.all_events
        if event.is_step_failure and event.step_key != VERDICT_STEP
    ]


def report_failures(results: list) -> bool:
    """Print every failed tenant-day of these runs, grouped by tenant; True when there was any failure."""
    failed = _failed_partitions(results)
    by_tenant: dict[str, list[str]] = defaultdict(list)
    skipped: dict[str, int] = defaultdict(int)
    blocked: set[str] = set()
    for (asset, key), failure in sorted(failed.items()):
        if failure.upstream is not None:
            skipped[failure.tenant_id] += 1
        elif failure.gates:
            blocked.add(failure.tenant_id)
            for gate, problem in failure.gates.items():
                by_tenant[failure.tenant_id].append(f"{asset} {key} blocked by gate {gate}: {problem}")
        else:
            by_tenant[failure.tenant_id].append(f"{asset} {key} failed: {failure.reason}")
    for tenant_id in sorted(set(by_tenant) | set(skipped)):
        outcome = "is blocked" if tenant_id in blocked else "failed"
        console.print(f"[red]tenant {tenant_id} {outcome}:[/red]", highlight=False)
        for line in by_tenant[tenant_id]:
            console.print(f"  {line}", highlight=False, soft_wrap=True)
        if skipped[tenant_id]:
            console.print(f"  ({skipped[tenant_id]} downstream partitions skipped for it)", highlight=False)
    others = _other_step_failures(results)
    for line in others:
        console.print(f"[red]{line}[/red] (its logs: `mlops dev`)", highlight=False, soft_wrap=True)
    unexplained = [r.run_id for r in results if not r.success] if not (failed or others) else []
    for run_id in unexplained:
        console.print(f"[red]run {run_id} failed[/red] (its logs: `mlops dev`)", highlight=False)
    return bool(failed or others or unexplained)
