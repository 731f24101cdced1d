"""Self-healing over real components: the shop emulator over HTTP, a Dagster instance, the replay and the CLI.

One tenant signs up with a wrong token (onboarding fails and is held as permanent, then the documented
commands bring it up to date), then meets a 5xx storm past its client's retry budget (the day heals by
itself once the backoff has passed) and a storm that outlasts every retry (capped: "needs attention").
The retry clock is moved by the test; run times are real.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from mlops_assets.automation.healing import cycle_retry_requests
from mlops_assets.automation.jobs import ATTEMPT_TAG, DAILY_ASSETS, ONBOARDING_TAG, STAGE_TAG
from mlops_assets.core.tenants.retries import DEFAULT_POLICY
from mlops_assets.definitions import defs
from mlops_assets.partitions import TenantDayPartitions
from mlops_assets_tests.helpers import mlops

WINDOW = TenantDayPartitions.of(defs())
LAST = WINDOW.last_day
TENANT, TOKEN = "healco", "shpat_right"


class Clock:
    """The wall clock moved forward by `ahead`: the decisions' `now`."""

    def __init__(self):
        self.ahead = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.ahead


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    import mlops_assets.cli.common as cli
    from mlops_assets.automation.replay import Automation
    from mlops_assets.core.tenants.registry import Tenant, shopify_settings
    from mlops_assets.definitions import build_defs
    from mlops_assets.resources import ShopApiResource
    from mlops_assets.settings import Settings
    from mlops_assets.sim.shop_emulator import EmulatedShop, LeakyBucket, ShopApiEmulator
    from mlops_assets.sim.shops import ShopSpec, SyntheticShop

    home = tmp_path_factory.mktemp("healing") / "mlops"
    (home / "dagster").mkdir(parents=True)
    (home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    synthetic = SyntheticShop(ShopSpec(TENANT, customers=600, seed=3, end=LAST, history_days=400))
    emulator = ShopApiEmulator({TENANT: EmulatedShop(synthetic, TOKEN, LeakyBucket(400, 1000.0), True)}).start()
    with pytest.MonkeyPatch.context() as env:
        for name in ("MLOPS_PROFILE", "MLOPS_LAKE_URL", "MLOPS_WAREHOUSE_URL", "MLOPS_S3_ENDPOINT_URL"):
            env.delenv(name, raising=False)
        env.setenv("MLOPS_HOME", str(home))
        env.setenv("DAGSTER_HOME", str(home / "dagster"))
        env.setenv("HEALCO_TOKEN", "shpat_wrong")
        settings = Settings.from_env()
        cli.registry().add(
            Tenant(TENANT, "Heal Co", "shopify", shopify_settings(emulator.shop_url(TENANT), "HEALCO_TOKEN"))
        )
        with cli.instance() as instance:
            instance.add_dynamic_partitions("tenants", [TENANT])
            built = build_defs(settings)
            # Two failures per request exhaust the client's budget in half a second (eight take half a minute).
            quick = dg.Definitions(
                assets=built.assets, jobs=built.jobs, sensors=built.sensors, executor=built.executor,
                resources={**built.resources, "shop_api": ShopApiResource(max_failures=2)},
            )  # fmt: skip
            clock = Clock()
            automation = Automation(quick, instance, cli.registry(), only=[TENANT], weekly_retrain=False, clock=clock)
            yield {
                "instance": instance, "automation": automation, "clock": clock, "emulator": emulator, "env": env,
                "warehouse_url": settings.warehouse_url,
            }  # fmt: skip
    emulator.stop()


def _runs(instance, **tags) -> list[dg.DagsterRun]:
    return list(reversed(instance.get_runs(dg.RunsFilter(tags=tags))))


def _daily_runs(instance, day) -> list[dg.DagsterRun]:
    return [run for run in _runs(instance, **{STAGE_TAG: "daily"}) if f"daily-{day}-" in run.tags["dagster/run_key"]]


def _materialized(instance, day) -> dict[str, bool]:
    key = f"{day.isoformat()}|{TENANT}"
    return {asset: key in instance.get_materialized_partitions(dg.AssetKey(asset)) for asset in DAILY_ASSETS}


def _fail_the_daily_cycle(shop, day):
    from mlops_assets.automation.decisions import cycle_requests

    automation = shop["automation"]
    results = automation.execute(cycle_requests("daily", shop["instance"], automation.registry, day, [TENANT]))
    assert [result.success for result in results] == [False]


def test_a_rejected_token_is_held_then_backfill_onboards_the_tenant_after_the_fix(shop):
    from mlops_assets.automation.sensors import onboarding_sensor
    from mlops_assets.core.warehouse.prediction_store import read_partition
    from mlops_assets.resources import TenantRegistryResource

    instance, automation, clock = shop["instance"], shop["automation"], shop["clock"]
    automation.onboard(LAST + timedelta(days=1))
    history = _runs(instance, **{ONBOARDING_TAG: TENANT})
    assert [run.status for run in history] == [dg.DagsterRunStatus.FAILURE]
    held = [note for note in automation.notes if "failed permanently" in note]
    assert held and "401" in held[0] and "mlops tenants retry healco" in held[0], automation.notes

    # No retry spam: a week later, with the token fixed but the tenant unchanged, nothing runs.
    clock.ahead = timedelta(days=7)
    shop["env"].setenv("HEALCO_TOKEN", TOKEN)
    automation.onboard(LAST + timedelta(days=1))
    registry = TenantRegistryResource(warehouse_url=shop["warehouse_url"])
    with dg.build_sensor_context(instance=instance, resources={"tenants": registry}, definitions=defs()) as context:
        tick = onboarding_sensor(context)
    assert isinstance(tick, dg.SkipReason) and "failed permanently" in tick.skip_message
    assert len(_runs(instance, **{ONBOARDING_TAG: TENANT})) == 1
    clock.ahead = timedelta(0)

    result = mlops("backfill", TENANT, "--from", LAST.isoformat())
    assert result.exit_code == 0, result.output
    steps = [
        (run.tags[STAGE_TAG], run.tags.get(ATTEMPT_TAG), run.status)
        for run in _runs(instance, **{ONBOARDING_TAG: TENANT})
    ]
    assert steps == [
        ("history", "1", dg.DagsterRunStatus.FAILURE),
        ("history", "2", dg.DagsterRunStatus.SUCCESS),
        ("days", "1", dg.DagsterRunStatus.SUCCESS),
        ("retrain", "1", dg.DagsterRunStatus.SUCCESS),
    ]
    assert all(_materialized(instance, LAST).values())
    assert len(read_partition(shop["warehouse_url"], TENANT, LAST)) > 100


def test_a_5xx_storm_heals_by_itself_once_the_backoff_has_passed(shop):
    from mlops_assets.automation.sensors import healing_sensor
    from mlops_assets.resources import TenantRegistryResource

    instance, automation, clock, emulator = shop["instance"], shop["automation"], shop["clock"], shop["emulator"]
    day = LAST - timedelta(days=1)
    emulator.faults.server_error_rate = 1.0
    _fail_the_daily_cycle(shop, day)
    emulator.faults.server_error_rate = 0.0

    with dg.build_sensor_context(
        instance=instance,
        resources={"tenants": TenantRegistryResource(warehouse_url=shop["warehouse_url"])},
        definitions=defs(),
    ) as context:  # the daemon's view, on the wall clock: the backoff has not passed
        tick = healing_sensor(context)
    assert isinstance(tick, dg.SkipReason) and f"daily cycle of {day} failed 1x" in tick.skip_message
    clock.ahead = timedelta(minutes=5)
    automation.heal()
    assert len(_daily_runs(instance, day)) == 1, "the backoff has not passed yet"
    assert any("next retry at" in note and "still failing after 2 attempts" in note for note in automation.notes)

    clock.ahead = DEFAULT_POLICY.delays[0] + timedelta(seconds=30)
    automation.heal()
    retry = _daily_runs(instance, day)[-1]
    assert retry.status == dg.DagsterRunStatus.SUCCESS and retry.tags[ATTEMPT_TAG] == "2"
    assert retry.tags["dagster/run_key"] == f"daily-{day}-{TENANT}-{TENANT}-attempt2"
    assert all(_materialized(instance, day).values())
    automation.heal()
    assert len(_daily_runs(instance, day)) == 2, "a healed day is not run again"
    clock.ahead = timedelta(0)


def test_retries_are_capped_then_tenants_retry_runs_the_day_again(shop):
    instance, automation, clock, emulator = shop["instance"], shop["automation"], shop["clock"], shop["emulator"]
    day = LAST - timedelta(days=2)
    emulator.faults.server_error_rate = 1.0
    _fail_the_daily_cycle(shop, day)
    clock.ahead = timedelta(days=2)  # past every delay after each failure
    for _ in range(DEFAULT_POLICY.cap + 2):
        automation.heal()
    of_day = _daily_runs(instance, day)
    assert [run.tags[ATTEMPT_TAG] for run in of_day] == [str(n) for n in range(1, DEFAULT_POLICY.cap + 2)]
    assert all(run.status == dg.DagsterRunStatus.FAILURE for run in of_day)
    assert any(f"needs attention after {DEFAULT_POLICY.cap + 1} failed attempts" in note for note in automation.notes)

    emulator.faults.server_error_rate = 0.0
    clock.ahead = timedelta(0)
    assert mlops("tenants", "retry", TENANT).exit_code == 0
    automation.heal()
    assert all(_materialized(instance, day).values())


def test_a_canceled_cycle_is_no_failure_of_the_tenant_and_runs_again_after_the_shortest_delay(shop):
    from mlops_assets.automation.decisions import cycle_requests
    from mlops_assets.automation.health import fleet_states
    from mlops_assets.batching import RUN_KEY_TAG

    instance, automation, clock = shop["instance"], shop["automation"], shop["clock"]
    day = LAST - timedelta(days=3)
    [request] = cycle_requests("daily", instance, automation.registry, day, [TENANT])
    job = automation.defs.resolve_job_def(request.job_name)
    run = instance.create_run_for_job(job, tags={**request.tags, RUN_KEY_TAG: request.run_key})
    instance.report_run_canceled(run, "canceled from the UI")  # an operator stopped it before it started
    [state] = [s for s in fleet_states(instance, automation.registry, shop["warehouse_url"]) if s.tenant_id == TENANT]
    assert state.state not in ("failing", "needs_attention"), state

    clock.ahead = timedelta(minutes=5)
    automation.heal()
    assert [r.status for r in _daily_runs(instance, day)] == [dg.DagsterRunStatus.CANCELED]
    assert f"{TENANT}: daily cycle of {day} was canceled; next retry at" in automation.notes[-1], automation.notes
    clock.ahead = DEFAULT_POLICY.delays[0] + timedelta(seconds=30)
    automation.heal()
    retry = _daily_runs(instance, day)[-1]
    assert retry.status == dg.DagsterRunStatus.SUCCESS and retry.tags[ATTEMPT_TAG] == "2"
    assert all(_materialized(instance, day).values())
    clock.ahead = timedelta(0)


def test_retries_run_oldest_day_first_so_a_retried_retrain_scores_the_days_after_it(shop):
    from mlops_assets.automation.batching import tenant_range_request
    from mlops_assets.automation.decisions import CYCLES
    from mlops_assets.batching import RUN_KEY_TAG

    instance, automation = shop["instance"], shop["automation"]
    cutoff, day = LAST - timedelta(days=5), LAST - timedelta(days=4)
    for cycle, when in (("daily", day), ("weekly", cutoff)):  # the later day failed first
        job_name, tags = CYCLES[cycle]
        request = tenant_range_request(job_name, when, when, TENANT, TENANT, f"{cycle}-{when}-test", tags)
        run = instance.create_run_for_job(
            automation.defs.resolve_job_def(job_name), tags={**request.tags, RUN_KEY_TAG: request.run_key}
        )
        instance.report_run_failed(run, "a transient failure")
    retries, notes = cycle_retry_requests(
        instance, automation.registry, automation.first_day, datetime.now(UTC) + DEFAULT_POLICY.delays[0] * 2
    )
    assert [(r.job_name, r.tags["dagster/asset_partition_range_start"]) for r in retries] == [
        ("retrain", f"{cutoff}|{TENANT}"), ("daily_cycle", f"{day}|{TENANT}"),
    ], notes  # fmt: skip
