"""Replay: the daemon's schedules and sensors as one in-process loop over simulated days (no daemon needed)."""

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from mlops_assets.automation.batching import run_in_process
from mlops_assets.automation.decisions import (
    cycle_requests,
    drift_retrain_requests,
    new_records,
    onboarding_requests,
    rollback_requests,
)
from mlops_assets.automation.healing import cycle_retry_requests
from mlops_assets.automation.jobs import STAGE_TAG
from mlops_assets.batching import RUN_KEY_TAG
from mlops_assets.core.tenants.registry import TenantRegistry
from mlops_assets.partitions import TenantDayPartitions
from mlops_assets.resources import MonitoringPolicyResource


class Automation:
    """The daemon's decisions replayed day by day in this process: `mlops backfill`, tests, benchmarks.

    On each simulated `today` it does what the daemon would: onboarding steps, retries of failed cycles,
    the daily cycle for yesterday, the weekly retrain on its day, then drift retrains and rollbacks until
    nothing new is requested. Run keys are honoured as the daemon does, so a replay never runs a request
    twice. Retries follow `clock` (the wall clock unless a test moves it): run times are real.
    """

    def __init__(
        self,
        defs: dg.Definitions,
        instance: dg.DagsterInstance,
        registry: TenantRegistry,
        monitoring: MonitoringPolicyResource | None = None,
        only: list[str] | None = None,
        console_log_level: str = "WARNING",
        on_run: Callable[[dg.RunRequest, dg.ExecuteInProcessResult], None] | None = None,
        weekly_retrain: bool = True,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.defs, self.instance, self.registry, self.weekly_retrain = defs, instance, registry, weekly_retrain
        self.first_day = TenantDayPartitions.of(defs).first_day
        self.monitoring = monitoring or MonitoringPolicyResource()
        self.only, self.log_level, self.on_run, self.clock = only, console_log_level, on_run, clock
        self.cursor = max((r.storage_id for r in new_records(instance, "realized_performance", 0)), default=0)
        self.drift_cursor = self.cursor
        self.notes: list[str] = []
        self.results: list[tuple[dg.RunRequest, dg.ExecuteInProcessResult]] = []

    def execute(self, requests: list[dg.RunRequest]) -> list[dg.ExecuteInProcessResult]:
        done = []
        for request in requests:
            if request.run_key and self.instance.get_runs(dg.RunsFilter(tags={RUN_KEY_TAG: request.run_key}), limit=1):
                continue
            result = run_in_process(
                self.defs.resolve_job_def(request.job_name),
                self.instance,
                {**request.tags, **({RUN_KEY_TAG: request.run_key} if request.run_key else {})},
                self.log_level,
                run_config=request.run_config,
                partition_key=request.partition_key,
            )
            self.results.append((request, result))
            done.append(result)
            if self.on_run:
                self.on_run(request, result)
        return done

    def onboard(self, today: date) -> None:
        while True:
            requests, notes = onboarding_requests(
                self.instance, self.registry, today, self.first_day, self.only, now=self.clock()
            )
            self.notes += notes
            if not self.execute(requests):
                return

    def heal(self) -> None:
        """Retries of failed cycles that are due now (one round: a retry that fails waits for its backoff)."""
        requests, notes = cycle_retry_requests(self.instance, self.registry, self.first_day, self.clock(), self.only)
        self.notes += notes
        self.execute(requests)

    def react(self) -> None:
        """Drift retrains and rollbacks until the sensors ask for nothing new."""
        while True:
            retrains, notes, self.drift_cursor = drift_retrain_requests(
                self.instance, self.registry, self.monitoring, self.drift_cursor
            )
            rollbacks, self.cursor = rollback_requests(self.instance, self.cursor)
            self.notes += notes
            if not self.execute(retrains + rollbacks):
                return

    def day(self, today: date) -> None:
        """Everything the daemon does on `today` (its schedules run for yesterday)."""
        yesterday = today - timedelta(days=1)
        self.onboard(today)
        self.heal()
        self.execute(cycle_requests("daily", self.instance, self.registry, yesterday, self.only))
        if self.weekly_retrain and today.isoweekday() == 7:  # WEEKLY_RETRAIN_CRON fires on Sundays
            self.execute(cycle_requests("weekly", self.instance, self.registry, yesterday, self.only))
        self.react()

    def failures(self) -> list[str]:
        return [f"{request.job_name} {request.run_key}" for request, result in self.results if not result.success]

    def runs_by_stage(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for request, _ in self.results:
            counts[request.tags.get(STAGE_TAG, request.job_name)] += 1
        return dict(counts)
