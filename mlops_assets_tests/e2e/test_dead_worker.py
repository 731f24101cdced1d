"""A run worker killed mid-cycle (SIGKILL, as the OOM killer or a lost container does): Dagster fails the run, the
healing decision retries its tenants, and the lake and the warehouse end exactly as a clean run leaves them.

The daily cycle is launched as the daemon launches it: through the instance's run launcher (Dagster's default)
into a run worker process of a gRPC code server (`dagster job launch`, with the default run coordinator instead of
the queue the daemon drains), against the shop emulator over HTTP.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.automation.jobs import ATTEMPT_TAG, STAGE_TAG
from mlops_assets.core.tenants.retries import DEFAULT_POLICY
from mlops_assets.definitions import defs
from mlops_assets.partitions import TenantDayPartitions
from mlops_assets_tests.helpers import wait_until

LAST = TenantDayPartitions.of(defs()).last_day
TENANTS = ("deadco", "livelyco")
TOKEN = "shpat_dead_worker"


def _descendants(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        children += [int(child) for child in (task / "children").read_text().split()]
    return children + [grandchild for child in children for grandchild in _descendants(child)]


def _kill_worker(instance: dg.DagsterInstance, run_id: str) -> None:
    """SIGKILL to the run worker and the step processes it started, as when their container is killed."""
    started = [
        record.dagster_event.message
        for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
        if record.dagster_event.message.startswith("Started process for run")
    ]
    worker = int(re.search(r"pid: (\d+)", started[0]).group(1))
    for pid in [*_descendants(worker), worker]:
        os.kill(pid, signal.SIGKILL)


def _state(settings) -> dict:
    """What the cycle leaves: every lake file (digests of the data files; `_compacted/` is a read cache checked
    against the files it covers) and every warehouse row of the day but the run that wrote it."""
    from mlops_assets.core.lake import files as lake
    from mlops_assets.core.warehouse.prediction_store import read_partition

    root = lake.lake_root(settings.lake_url)
    files = {
        str(path.relative_to(root)): lake.file_digest(path) if path.suffix == ".parquet" else "present"
        for path in root.rglob("*")
        if path.is_file() and "_compacted" not in path.parts
    }
    rows = {
        tenant_id: read_partition(settings.warehouse_url, tenant_id, LAST).drop(columns=["run_id", "created_at"])
        for tenant_id in TENANTS
    }
    return {"files": files, "rows": {tenant_id: frame.to_dict("records") for tenant_id, frame in rows.items()}}


@pytest.mark.slow
def test_a_killed_run_worker_is_failed_and_its_tenants_retried_leaving_what_a_clean_run_leaves(
    mlops_home, emulator_factory, monkeypatch
):
    import mlops_assets.cli.common as cli
    from mlops_assets.automation.decisions import cycle_requests
    from mlops_assets.automation.healing import cycle_retry_requests
    from mlops_assets.automation.health import fleet_states
    from mlops_assets.automation.replay import Automation
    from mlops_assets.batching import RUN_KEY_TAG
    from mlops_assets.core.tenants.registry import Tenant, shopify_settings
    from mlops_assets.definitions import build_defs
    from mlops_assets.settings import Settings
    from mlops_assets.sim.shops import ShopSpec, SyntheticShop

    shops = {
        tenant_id: SyntheticShop(ShopSpec(tenant_id, customers=500, seed=seed, end=LAST, history_days=400))
        for seed, tenant_id in enumerate(TENANTS, start=20)
    }
    # Runs launch at once instead of waiting in the queue for the daemon: the same default run launcher.
    (mlops_home / "dagster" / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\nrun_coordinator:\n  module: dagster._core.run_coordinator\n"
        "  class: DefaultRunCoordinator\n"
    )
    emulator = emulator_factory(shops, token=TOKEN, bucket=(400, 1000.0), as_of_request=True)
    monkeypatch.setenv("DEAD_WORKER_TOKEN", TOKEN)
    settings, registry = Settings.from_env(), cli.registry()
    for tenant_id in TENANTS:
        registry.add(
            Tenant(tenant_id, tenant_id, "shopify", shopify_settings(emulator.shop_url(tenant_id), "DEAD_WORKER_TOKEN"))
        )
    with cli.instance() as instance:
        instance.add_dynamic_partitions("tenants", list(TENANTS))
        automation = Automation(build_defs(settings), instance, registry, weekly_retrain=False)
        automation.onboard(LAST)  # the first models at the day before LAST
        assert not automation.failures(), automation.failures()
        [request] = cycle_requests("daily", instance, registry, LAST)

        tags = {**request.tags, RUN_KEY_TAG: request.run_key}
        log = mlops_home / "launch.log"
        with log.open("w") as out:  # the code server it starts outlives it (until its run ends) and keeps `out`
            launch = subprocess.Popen(
                [sys.executable, "-m", "dagster", "job", "launch", "-m", "mlops_assets.definitions", "-a", "defs",
                 "-j", request.job_name, "--tags", json.dumps(tags)],
                env=os.environ, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        assert launch.wait(timeout=120) == 0, log.read_text()[-3000:]
        [run] = instance.get_runs(dg.RunsFilter(tags={RUN_KEY_TAG: request.run_key}))

        def predicting() -> bool:  # raw orders, customers and features are written; predictions under way
            return any(
                record.dagster_event.step_key == "predictions"
                for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)
            )

        assert wait_until(predicting, timeout=180, interval=0.2), instance.get_run_by_id(run.run_id).status
        _kill_worker(instance, run.run_id)
        killed = time.monotonic()
        assert wait_until(lambda: instance.get_run_by_id(run.run_id).is_finished, timeout=60, interval=0.2)
        detected = time.monotonic() - killed
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
        crash = [
            record.dagster_event.message
            for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
            if "terminated by signal" in (record.dagster_event.message or "")
        ]
        assert crash and "signal 9 (SIGKILL)" in crash[0], crash
        assert detected < 10, f"the dead worker was noticed after {detected:.1f} s"

        states = {state.tenant_id: state for state in fleet_states(instance, registry, settings.warehouse_url)}
        assert all("signal 9 (SIGKILL)" in states[t].reason for t in TENANTS), states

        # The healing sensor's decision once the first backoff has passed: every tenant of the run, attempt 2.
        later = datetime.now(UTC) + DEFAULT_POLICY.delays[0] + timedelta(seconds=1)
        retries, notes = cycle_retry_requests(instance, registry, automation.first_day, later)
        assert [(r.tags[ATTEMPT_TAG], r.tags[STAGE_TAG]) for r in retries] == [("2", "daily")], notes
        assert all(result.success for result in automation.execute(retries))
        healed = _state(settings)
        for rows in healed["rows"].values():
            assert rows and len({row["customer_id"] for row in rows}) == len(rows), "one row per customer"
        assert not [name for name in healed["files"] if Path(name).name.startswith(".")], "no temporary file left"

        # A clean run of the day over the healed state rewrites every file and row of it, and changes nothing:
        # the killed run left nothing partial and the retry wrote nothing twice.
        [clean] = cycle_requests("daily", instance, registry, LAST)
        assert all(result.success for result in automation.execute([clean.with_replaced_attrs(run_key=None)]))
    assert _state(settings) == healed
