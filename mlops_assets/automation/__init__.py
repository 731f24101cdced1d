"""Jobs, schedules and sensors: Dagster's daemon in the role of the seed's Celery Beat and workers.

In the order a reader needs them:
- `jobs`: the jobs the daemon launches, their asset selections, the rollback op and the run tags;
- `batching`: runs of tenant-days (contiguous tenant ranges x day chunks) and in-process execution;
- `decisions`: what to run, as plain functions of the instance and the tenant registry (`*_requests`);
- `schedules`: the daily cycle and the weekly retrain;
- `sensors`: the registry, onboarding, drift-retrain and rollback sensors;
- `replay`: `Automation`, the same decisions replayed day by day in-process (`mlops backfill`, tests).

Importers take names from these modules; this package exports nothing itself.
"""
