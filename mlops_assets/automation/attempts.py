"""Attempts of a piece of work as the instance records them: failed runs, when they ended, how they failed
for a tenant, and the run key of the next attempt (so a retry is never blocked by the spent key of the
attempt before it, and the daemon and a replay never run the same attempt twice)."""

from datetime import UTC, datetime

import dagster as dg

from mlops_assets.core.tenants.retries import Failure, FailureKind
from mlops_assets.isolation import CAUSE_CHARS, FAILED_TENANT, FAILED_TENANTS, FAILURE_KIND, TENANT_CAUSES

# How Dagster's code server words the engine event of a run whose worker process died (dagster/_grpc/server.py).
WORKER_DIED = "Run execution process for"
# Runs whose work is tried again: failed, or canceled by an operator (not counted as a failure: `RunFailures.of`).
FAILED = [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


def attempt_run_key(base: str, attempt: int) -> str:
    """The first attempt keeps the plain key (as runs before retries existed); later ones carry their number."""
    return base if attempt == 1 else f"{base}-attempt{attempt}"


def _innermost(data) -> str:
    """The user's exception under Dagster's wrappers: the message that names the tenant and the fix."""
    error = data.error
    while error is not None and error.cause is not None:
        error = error.cause
    return error.message if error else ""


class RunFailures:
    """How failed runs failed, read once per run from its step failure events (cached for one decision)."""

    def __init__(self, instance: dg.DagsterInstance):
        self.instance = instance
        self._by_run: dict[str, tuple[datetime, dict[str, FailureKind], str, dict[str, str]]] = {}

    def _read(self, record: dg.RunRecord) -> tuple[datetime, dict[str, FailureKind], str, dict[str, str]]:
        run_id = record.dagster_run.run_id
        if run_id not in self._by_run:
            ended = datetime.fromtimestamp(record.end_time, UTC) if record.end_time else record.update_timestamp
            kinds: dict[str, FailureKind] = {}
            causes: dict[str, str] = {}
            reasons: list[str] = []
            events = self.instance.all_logs(
                run_id, of_type={dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}
            )
            for event in events:
                dagster_event = event.dagster_event
                if dagster_event.event_type == dg.DagsterEventType.RUN_FAILURE:
                    reasons.append(dagster_event.message or "run failed")
                    continue
                data = dagster_event.step_failure_data
                user = data.user_failure_data
                metadata = {key: value.value for key, value in (user.metadata if user else {}).items()}
                if FAILED_TENANT in metadata:
                    kinds[metadata[FAILED_TENANT]] = FailureKind(metadata.get(FAILURE_KIND, FailureKind.TRANSIENT))
                # The run's verdict: every tenant that failed in the run, with its kind.
                kinds.update(
                    {tenant_id: FailureKind(kind) for tenant_id, kind in metadata.get(FAILED_TENANTS, {}).items()}
                )
                causes.update(metadata.get(TENANT_CAUSES, {}))
                message = (user.description if user else None) or _innermost(data)
                reasons.insert(0, f"{dagster_event.step_key}: {message}")
            if all(event.dagster_event.event_type == dg.DagsterEventType.RUN_FAILURE for event in events):
                reasons[:0] = self._crash(run_id)
            reason = next((r for r in reasons if r), str(record.dagster_run.status.value).lower())
            first_line = reason.strip().splitlines()[0][:CAUSE_CHARS]
            self._by_run[run_id] = (ended.astimezone(UTC), kinds, first_line, causes)
        return self._by_run[run_id]

    def _crash(self, run_id: str) -> list[str]:
        """Why a run failed with no step failure: the code server's note that its worker died (killed, OOM),
        which says more than the run failure's "marked as failed from outside the execution context"."""
        events = self.instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
        return [e.dagster_event.message for e in events if WORKER_DIED in (e.dagster_event.message or "")]

    def failed_tenants(self, record: dg.RunRecord) -> set[str] | None:
        """The tenants that failed in the run, when its failure says (the verdict, a tenant's step failure);
        None when it does not (a dead run worker, a failed launch): then every tenant of the run failed."""
        return set(self._read(record)[1]) or None

    def of(self, record: dg.RunRecord, tenant_id: str) -> Failure:
        """The run's failure for `tenant_id`: permanent only when a step failed permanently for this tenant;
        a tenant that failed because another tenant of its run did is a transient failure; a canceled run
        (an operator stopped it: Dagster's run monitoring fails, never cancels) is no failure of any tenant."""
        ended, kinds, reason, causes = self._read(record)
        if record.dagster_run.status == dg.DagsterRunStatus.CANCELED:
            return Failure(ended, FailureKind.CANCELED, "run canceled by an operator")
        return Failure(ended, kinds.get(tenant_id, FailureKind.TRANSIENT), causes.get(tenant_id, reason))
