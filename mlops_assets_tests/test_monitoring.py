"""Autonomous operation end to end: a registry row onboards itself, a drift event triggers a retrain that is
promoted, a planted bad model is rolled back, and the sensors keep their cooldown and run keys. One simulated
calendar (the daemon's decisions replayed day by day by `Automation`), shared by the tests of this module."""

from datetime import date, timedelta

import dagster as dg
import pytest

from mlops_assets.definitions import defs
from mlops_assets.partitions import TenantDayPartitions
from mlops_assets.sim.scenarios import LevelShift
from mlops_assets.sim.shops import ShopSpec, SyntheticShop
from mlops_assets_tests.helpers import WebhookReceiver

# The tests' partition window is 14 days: onboarding on its first day, drift two days later, a bad model
# planted a horizon (7 days) before the end. Weekly retrains are off so the sensors alone act.
WINDOW = TenantDayPartitions.of(defs())
LAST, START = WINDOW.last_day, WINDOW.first_day
DRIFT_DAY = START + timedelta(days=2)
PLANTED_ON = LAST - timedelta(days=7)
TENANT = "driftco"


def _plant_bad_model(settings):
    """A recency/frequency model with its signs flipped: it ranks the likeliest customers last."""
    from mlops_assets.core.ml.baselines import BaselineModel, RecencyFrequencyBaseline
    from mlops_assets.core.ml.candidates import set_production
    from mlops_assets.core.ml.tracking import FallbackModel, ModelRegistry, model_name

    registry = ModelRegistry(settings.mlflow_tracking_uri, settings.mlflow_artifact_uri)
    mlflow = registry._activate()
    inverted = BaselineModel("recency_frequency", RecencyFrequencyBaseline([1.0, -1.0, -0.5, 0.0], -3.0))
    with mlflow.start_run(experiment_id=registry.experiment_id(TENANT)):
        logged = mlflow.pyfunc.log_model(name="model", python_model=FallbackModel(inverted), pip_requirements=[])
    tags = {"model_kind": "fallback", "cutoff": PLANTED_ON.isoformat()}
    planted = mlflow.register_model(logged.model_uri, model_name(TENANT), tags=tags)
    outcome = set_production(
        registry, settings.warehouse_url, TENANT, planted.version, "promote", "planted by the test", "test"
    )
    assert outcome.promoted, outcome.reason
    return str(planted.version)


@pytest.fixture(scope="module")
def calendar(tmp_path_factory):
    import mlops_assets.cli.common as cli
    from mlops_assets.core.tenants.registry import Tenant, shopify_settings
    from mlops_assets.settings import Settings
    from mlops_assets.sim.shop_emulator import EmulatedShop, LeakyBucket, ShopApiEmulator

    home = tmp_path_factory.mktemp("calendar") / "mlops"
    (home / "dagster").mkdir(parents=True)
    (home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    hooks = WebhookReceiver()
    drift = LevelShift(DRIFT_DAY, rate_factor=0.4, value_factor=10.0)
    shop = SyntheticShop(ShopSpec(TENANT, customers=2000, seed=7, end=LAST, history_days=450, scenario=drift))
    emulator = ShopApiEmulator(
        {TENANT: EmulatedShop(shop, "shpat_test", LeakyBucket(400, 1000.0), as_of_request=True)}
    ).start()
    with pytest.MonkeyPatch.context() as env:
        for name in ("MLOPS_PROFILE", "MLOPS_LAKE_URL", "MLOPS_WAREHOUSE_URL", "MLOPS_S3_ENDPOINT_URL"):
            env.delenv(name, raising=False)
        env.setenv("MLOPS_HOME", str(home))
        env.setenv("DAGSTER_HOME", str(home / "dagster"))
        env.setenv("DRIFTCO_TOKEN", "shpat_test")
        env.setenv("MLOPS_WEBHOOK_URL", hooks.url)
        settings = Settings.from_env()
        cli.registry().add(
            Tenant(TENANT, "Drift Co", "shopify", shopify_settings(emulator.shop_url(TENANT), "DRIFTCO_TOKEN"),
                   horizon_days=7)
        )  # fmt: skip
        with cli.instance() as instance:
            from mlops_assets.automation.sensors import onboarding_sensor, tenant_registry_sensor
            from mlops_assets.definitions import build_defs
            from mlops_assets.resources import TenantRegistryResource

            resources = {"tenants": TenantRegistryResource(warehouse_url=settings.warehouse_url)}
            first_tick = {}
            for sensor in (tenant_registry_sensor, onboarding_sensor):
                with dg.build_sensor_context(
                    instance=instance, resources=resources, definitions=build_defs(settings)
                ) as context:
                    first_tick[sensor.name] = sensor(context)
                if sensor is tenant_registry_sensor:
                    instance.add_dynamic_partitions("tenants", [TENANT])
            automation = cli.build_automation([TENANT], instance, weekly_retrain=False)
            automation.onboard(START + timedelta(days=1))
            onboarded = dict(runs=automation.runs_by_stage(), events=list(hooks.events))
            planted = None
            day = START
            while day <= LAST:
                if day == PLANTED_ON:
                    planted = _plant_bad_model(settings)
                automation.day(day + timedelta(days=1))
                day += timedelta(days=1)
            yield {
                "settings": settings, "instance": instance, "automation": automation, "first_tick": first_tick,
                "onboarded": onboarded, "planted": planted, "events": hooks.events, "resources": resources,
            }  # fmt: skip
    emulator.stop()
    hooks.stop()


def _history(instance, asset: str) -> list[tuple[str, dict]]:
    """(day, metadata) of every materialization, oldest first."""
    records = instance.fetch_materializations(dg.AssetKey(asset), limit=1000, ascending=True).records
    return [
        (r.partition_key.split("|")[0], {k: v.value for k, v in r.asset_materialization.metadata.items()})
        for r in records
    ]


def _metadata(instance, asset: str) -> dict[str, dict]:
    """Per partition day, the latest materialization's metadata."""
    return dict(_history(instance, asset))


def test_a_registry_row_onboards_itself_to_predictions(calendar):
    from mlops_assets.core.warehouse.prediction_store import read_partition

    ticks = calendar["first_tick"]
    assert ticks["tenant_registry_sensor"].dynamic_partitions_requests[0].partition_keys == [TENANT]
    first = ticks["onboarding_sensor"][0]
    assert first.job_name == "ingest_history" and first.partition_key == TENANT
    assert calendar["onboarded"]["runs"] == {"history": 1, "days": 1, "retrain": 1}
    assert len(read_partition(calendar["settings"].warehouse_url, TENANT, START)) > 1000
    assert [e["kind"] for e in calendar["onboarded"]["events"]] == ["onboarded"]
    assert calendar["automation"].failures() == []


def test_drift_is_caught_within_two_days_and_a_promoted_retrain_follows(calendar):
    history = _history(calendar["instance"], "drift_report")
    drift = dict(history)
    alarms = sorted(day for day, meta in history if meta["alarms"] != "none")
    shares = [(day, meta["model_version"], meta["drifted_share"], meta["prediction_psi"]) for day, meta in history]
    assert alarms and DRIFT_DAY.isoformat() <= alarms[0] <= (DRIFT_DAY + timedelta(days=2)).isoformat(), shares
    retrains = calendar["instance"].get_runs(dg.RunsFilter(tags={"mlops/trigger": "drift"}))
    assert retrains and all(run.status == dg.DagsterRunStatus.SUCCESS for run in retrains)
    retrained_on = min(run.tags["dagster/asset_partition_range_start"].split("|")[0] for run in retrains)
    assert retrained_on == alarms[0], "the retrain followed the first alarm on its own"
    decision = _metadata(calendar["instance"], "production_model")[retrained_on]
    assert decision["trigger"] == "drift" and decision["promoted"], decision["reason"]
    assert drift[retrained_on]["alarms"] == "none", "the promoted model's reference already knows the new regime"
    kinds = [event["kind"] for event in calendar["events"]]
    assert "drift_detected" in kinds and "promoted" in kinds


def test_realized_performance_after_the_retrain_is_no_worse_than_the_replaced_model(calendar):
    """Every matured day is evaluated; on the same customers and outcomes the drift-retrained version does at
    least as well as the version it replaced, and the planted one far worse."""
    realized = _metadata(calendar["instance"], "realized_performance")
    evaluated = {day: meta for day, meta in realized.items() if meta.get("status") == "evaluated"}
    assert sorted(evaluated) == [(START + timedelta(days=7 + k)).isoformat() for k in range((LAST - START).days - 6)]
    retrained = [
        m
        for m in evaluated.values()
        if m["predecessor_version"] != "none" and m["serving_version"] != calendar["planted"]
    ]
    assert retrained, evaluated
    new = sum(m["realized_auc"] for m in retrained) / len(retrained)
    old = sum(m["predecessor_auc"] for m in retrained) / len(retrained)
    assert new >= old - 0.01 and new > 0.7, (new, old)
    planted = [m for m in evaluated.values() if m["serving_version"] == calendar["planted"]]
    assert planted and planted[0]["realized_auc"] < 0.5 < planted[0]["predecessor_auc"]
    assert planted[0]["regressed"] and "realized AUC" in realized[LAST.isoformat()]["trend"]
    from mlops_assets.core.warehouse.prediction_store import PredictionReader

    summaries = PredictionReader(calendar["settings"].warehouse_url).monitoring(TENANT)
    assert len(summaries) == (LAST - START).days + 1, "the dashboard gets a drift summary for every day"
    assert [s["as_of_date"].isoformat() for s in summaries if s["realized_auc"] is not None] == sorted(evaluated)


def test_a_planted_bad_model_is_rolled_back(calendar):
    from mlops_assets.core.ml.promotion import PromotionLog
    from mlops_assets.core.ml.tracking import PRODUCTION, ModelRegistry

    settings = calendar["settings"]
    rollbacks = [r for r in PromotionLog(settings.warehouse_url).history(TENANT) if r["action"] == "rollback"]
    assert [r["previous_version"] for r in rollbacks] == [calendar["planted"]]
    assert rollbacks[0]["actor"] == "automation:rollback_sensor" and "automatic rollback" in rollbacks[0]["reason"]
    production = ModelRegistry(settings.mlflow_tracking_uri, settings.mlflow_artifact_uri).alias_version(
        TENANT, PRODUCTION
    )
    assert production.version == rollbacks[0]["version"] != calendar["planted"]
    assert "rolled_back" in [event["kind"] for event in calendar["events"]]


def test_cooldown_and_run_keys_keep_retrains_to_one(calendar):
    from mlops_assets.automation.sensors import drift_retrain_sensor, rollback_sensor
    from mlops_assets.resources import MonitoringPolicyResource

    instance, automation = calendar["instance"], calendar["automation"]
    drift_runs = instance.get_runs(dg.RunsFilter(tags={"mlops/trigger": "drift"}))
    days = sorted(date.fromisoformat(r.tags["dagster/asset_partition_range_start"].split("|")[0]) for r in drift_runs)
    assert all((b - a).days >= 7 for a, b in zip(days, days[1:], strict=False)), days
    assert any("cooldown" in note for note in automation.notes), automation.notes
    resources = {**calendar["resources"], "monitoring": MonitoringPolicyResource()}
    before = len(instance.get_runs())
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        replayed = drift_retrain_sensor(context).run_requests
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        replayed += rollback_sensor(context).run_requests
    automation.execute(replayed)
    assert len(instance.get_runs()) == before, "replaying every alarm from the start launches nothing twice"


def test_backfill_cli_onboards_and_runs_every_day(mlops_home, emulator_factory, monkeypatch):
    from typer.testing import CliRunner

    from mlops_assets.cli import app
    from mlops_assets.core.warehouse.prediction_store import read_partition
    from mlops_assets.settings import Settings

    shop = SyntheticShop(ShopSpec("smallco", customers=600, seed=3, end=LAST, history_days=400))
    emulator = emulator_factory({"smallco": shop}, bucket=(400, 1000.0), as_of_request=True)
    monkeypatch.setenv("SMALLCO_TOKEN", "shpat_test_token")
    runner = CliRunner()
    added = runner.invoke(
        app, ["tenants", "add", "smallco", "--shop-url", emulator.shop_url("smallco"), "--token-env", "SMALLCO_TOKEN"]
    )
    assert added.exit_code == 0, added.output
    first = LAST - timedelta(days=2)
    done = runner.invoke(app, ["backfill", "smallco", "--from", first.isoformat(), "--to", LAST.isoformat()])
    assert done.exit_code == 0, done.output
    assert "smallco:" in done.output and "predictions for" in done.output
    for stage in ("history", "days", "retrain", "daily"):
        assert stage in done.output
    assert len(read_partition(Settings.from_env().warehouse_url, "smallco", LAST)) > 300
    again = runner.invoke(app, ["backfill", "smallco", "--from", first.isoformat(), "--to", LAST.isoformat()])
    assert again.exit_code == 0 and "history" not in again.output, "run keys: nothing runs twice"
    unknown = runner.invoke(app, ["backfill", "nobody", "--from", first.isoformat()])
    assert unknown.exit_code == 2 and "tenant nobody is not registered" in unknown.output


def test_schedules_request_batched_runs_for_onboarded_tenants(calendar):
    from datetime import UTC, datetime, time

    from mlops_assets.automation.decisions import FRESH_MODEL_DAYS
    from mlops_assets.automation.schedules import daily_cycle_schedule, weekly_retrain_schedule

    def evaluate(schedule, day):
        tick = datetime.combine(day + timedelta(days=1), time(11), UTC)
        with dg.build_schedule_context(
            instance=calendar["instance"], scheduled_execution_time=tick, resources=calendar["resources"]
        ) as context:
            return schedule(context)

    weekly_day = LAST + timedelta(days=FRESH_MODEL_DAYS)
    for schedule, job_name, day in (
        (daily_cycle_schedule, "daily_cycle", LAST), (weekly_retrain_schedule, "retrain", weekly_day)
    ):  # fmt: skip
        (request,) = evaluate(schedule, day)
        assert request.job_name == job_name and request.run_key.endswith(f"{day}-{TENANT}-{TENANT}")
        assert request.tags["dagster/asset_partition_range_start"] == f"{day}|{TENANT}"
        assert request.tags["dagster/asset_partition_range_end"] == f"{day}|{TENANT}"
    skipped = evaluate(weekly_retrain_schedule, LAST)
    assert isinstance(skipped, dg.SkipReason) and f"at least {FRESH_MODEL_DAYS} days old" in skipped.skip_message


def test_every_target_is_monitored_and_a_failing_year_target_is_named_without_a_retrain(calendar):
    """Drift and realized figures per target from the calendar's runs; then predictions planted 365 days before
    the last day (churn a constant 0.5) give churn and CLV realized figures, and churn fails `target_floor` by
    name without asking for a retrain (that version is a year old)."""
    from mlops_assets.automation.batching import run_in_process, tenant_days_tags
    from mlops_assets.core.ml.scoring import batch_summary
    from mlops_assets.core.monitoring.drift import DRIFT_TARGETS
    from mlops_assets.core.warehouse.prediction_store import PredictionReader, read_partition, write_partition
    from mlops_assets.definitions import build_defs

    instance, settings, url = calendar["instance"], calendar["settings"], calendar["settings"].warehouse_url
    drift = _metadata(instance, "drift_report")
    served = {day: meta for day, meta in drift.items() if meta["model_version"] != calendar["planted"]}
    assert served and all(set(meta["target_psi"]) == set(DRIFT_TARGETS) for meta in served.values()), served
    assert {meta["unmeasured_targets"] for meta in served.values()} == {"none"}
    planted = [meta for meta in drift.values() if meta["model_version"] == calendar["planted"]]
    assert all(meta["unmeasured_targets"].startswith("churn_probability") for meta in planted), "no value model"
    realized = {day: m for day, m in _metadata(instance, "realized_performance").items() if m["status"] == "evaluated"}
    assert all({"expected_orders", "expected_revenue"} <= set(m["realized_targets"]) for m in realized.values())
    summaries = PredictionReader(url).monitoring(TENANT)
    evaluated = [s for s in summaries if s["realized_auc"] is not None]
    assert evaluated and all(s["realized_expected_revenue_gini"] is not None for s in evaluated)
    assert all(s["expected_revenue_psi"] is not None for s in summaries if s["model_version"] != calendar["planted"])
    assert {s["year_predicted_on"] for s in summaries} == {None}, "nobody predicted a year before the window"

    year_day = LAST - timedelta(days=365)
    frame = read_partition(url, TENANT, LAST - timedelta(days=7)).assign(as_of_date=year_day, churn_probability=0.5)
    write_partition(url, TENANT, year_day, frame, batch_summary(frame), "planted-by-test")
    job = build_defs(settings).resolve_implicit_global_asset_job_def()
    result = run_in_process(
        job, instance, tenant_days_tags(LAST, LAST, TENANT, TENANT), "WARNING",
        asset_selection=[dg.AssetKey("realized_performance")],
    )  # fmt: skip
    assert result.success
    meta = _metadata(instance, "realized_performance")[LAST.isoformat()]
    assert meta["year_predicted_on"] == year_day.isoformat()
    assert meta["realized_targets"]["churn_probability"]["auc"] == 0.5
    assert meta["target_problems"] == "churn_probability: realized AUC 0.500 is below the floor 0.6"
    assert "target_floor" not in meta["alarms"], "a year-old version's miss asks for no retrain"
    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "target_floor"]
    assert not check.passed and "churn_probability" in str(check.metadata["failures"].value)
    row = {s["as_of_date"]: s for s in PredictionReader(url).monitoring(TENANT)}[LAST]
    assert row["year_predicted_on"] == year_day and row["realized_churn_probability_auc"] == 0.5
    assert row["realized_clv_365d_gini"] is not None and row["target_alarms"] == "churn_probability"
    assert any(e["kind"] == "performance_below_floor" and e["details"].get("targets") == ["churn_probability"]
               for e in calendar["events"])  # fmt: skip
