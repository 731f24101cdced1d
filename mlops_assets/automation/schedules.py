"""The daily cycle and the weekly retrain: each tick asks `cycle_requests` for yesterday's runs."""

from datetime import timedelta

import dagster as dg

from mlops_assets.automation.decisions import FRESH_MODEL_DAYS, cycle_requests
from mlops_assets.automation.jobs import daily_cycle_job, retrain_job
from mlops_assets.resources import TenantRegistryResource

WEEKLY_RETRAIN_CRON = "0 13 * * 0"
# 11:00 UTC: yesterday has ended in every timezone from UTC-11 to UTC+14.
DAILY_CRON = "0 11 * * *"


def _cycle_schedule(name: str, cycle: str, cron: str, job, description: str) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=name, cron_schedule=cron, job=job, execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING, description=description,
    )  # fmt: skip
    def _schedule(context: dg.ScheduleEvaluationContext, tenants: TenantRegistryResource):
        day = context.scheduled_execution_time.date() - timedelta(days=1)
        requests = cycle_requests(cycle, context.instance, tenants.registry(), day)
        if requests:
            return requests
        fresh = f" whose model is at least {FRESH_MODEL_DAYS} days old" if cycle == "weekly" else ""
        return dg.SkipReason(f"no onboarded active tenant{fresh}")

    return _schedule


daily_cycle_schedule = _cycle_schedule(
    "daily_cycle_schedule", "daily", DAILY_CRON, daily_cycle_job,
    "Yesterday's ingest, features, predictions, drift and realized performance for every onboarded tenant.",
)  # fmt: skip
weekly_retrain_schedule = _cycle_schedule(
    "weekly_retrain_schedule", "weekly", WEEKLY_RETRAIN_CRON, retrain_job,
    "Every Sunday: retrain at yesterday's cutoff, gate, promote, re-predict, for every onboarded tenant.",
)  # fmt: skip
