"""The README's main job end to end, and what its users then open: `mlops demo` in a subprocess on a private
local profile, then `dagster dev` and the MLflow UI on its state, checked in Debian's Chromium through
Playwright. Screenshots go to $MLOPS_SCREENSHOT_DIR when set (docs/*.png are made that way), else to tmp.

The calendar is the demo's default of 10 days, inside the tests' 14-day partition window: the drift event
(the first Sunday from sign-up on), its alarm and the retrain it triggers fall inside it.
"""

import os
import re
import signal
import subprocess
import sys
import urllib.parse
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import requests

from mlops_assets.sim.demo_shops import DEMO_CALENDAR_DAYS
from mlops_assets_tests.helpers import CHROMIUM, CHROMIUM_ARGS, EXPECTED_CHECKS, free_port, wait_until

DAYS = DEMO_CALENDAR_DAYS
TENANTS = ["acme-outdoor", "globex-beauty", "initech-books", "cdnow-music"]
DRIFTING = "globex-beauty"


def _mlops(env: dict, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlops_assets.cli", *args], env=env, capture_output=True, text=True, timeout=timeout,
        check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing (fix: apt-get install chromium; .ci/run does)")
    home = tmp_path_factory.mktemp("demo") / "mlops"  # `mlops` puts the shipped dagster.yaml in its instance
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("MLOPS_PROFILE", "MLOPS_LAKE_URL", "MLOPS_WAREHOUSE_URL", "MLOPS_S3_ENDPOINT_URL")
    }
    env.update(MLOPS_HOME=str(home), DAGSTER_HOME=str(home / "dagster"), COLUMNS="200")
    first = _mlops(env, "demo", "--days", str(DAYS), "--port", str(free_port()))
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    again = _mlops(env, "demo", "--days", str(DAYS), "--port", str(free_port()))
    os.environ["DAGSTER_HOME"], previous = str(home / "dagster"), os.environ.get("DAGSTER_HOME")
    try:
        with dg.DagsterInstance.get() as instance:
            yield {"home": home, "env": env, "first": first, "again": again, "instance": instance}
    finally:
        if previous is None:
            os.environ.pop("DAGSTER_HOME")
        else:
            os.environ["DAGSTER_HOME"] = previous


def test_demo_replays_the_calendar_for_every_tenant(demo):
    from mlops_assets.automation.jobs import TENANT_TAG, TRIGGER_TAG
    from mlops_assets.core.ml.tracking import PRODUCTION, ModelRegistry
    from mlops_assets.core.warehouse.prediction_store import PredictionReader

    home, instance, out = demo["home"], demo["instance"], demo["first"].stdout
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    first = yesterday - timedelta(days=DAYS - 1)
    assert f"{len(TENANTS)} tenants sign up on {first}" in out
    failed = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
    assert failed == [], [run.tags for run in failed]
    reader = PredictionReader(f"sqlite:///{home / 'warehouse.db'}")
    models = ModelRegistry(f"sqlite:///{home / 'mlflow.db'}", (home / "mlartifacts").as_uri())
    for tenant in TENANTS:
        days = [b["as_of_date"] for b in reader.batches(tenant)]
        assert days[-DAYS:] == [first + timedelta(days=k) for k in range(DAYS)], f"{tenant}: every calendar day scored"
        assert reader.batch(tenant)["customers"] == reader.count(tenant, yesterday) > 500, tenant
        assert models.alias_version(tenant, PRODUCTION) is not None, tenant
        assert re.search(rf"{tenant}\W+\d+\W+v\d+ (lightgbm|fallback)", out), f"{tenant} is in the summary"
    assert reader.batch("cdnow-music")["customers"] == 2357, "the whole CDNOW sample is scored"
    drift_runs = instance.get_runs(dg.RunsFilter(tags={TRIGGER_TAG: "drift", TENANT_TAG: DRIFTING}))
    assert drift_runs and all(run.status == dg.DagsterRunStatus.SUCCESS for run in drift_runs), "drift -> retrain"
    assert re.search(rf"{DRIFTING}\W.*\d from \d\d-\d\d\W+[1-9]", out), "alarm days and the retrain are summarized"
    assert "mlops dev" in out and "mlflow ui --backend-store-uri" in out and "/dashboard" in out
    rerun = demo["again"]
    assert rerun.returncode == 0 and "none (everything was already done)" in rerun.stdout, rerun.stdout[-2000:]


@contextmanager
def _server(command: list[str], env: dict, ready_url: str, timeout: float = 120):
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )

    def up():
        try:
            return requests.get(ready_url, timeout=2).ok
        except requests.ConnectionError:
            return False

    try:
        assert wait_until(up, timeout=timeout, interval=0.5), f"{command[:4]} answered at {ready_url}"
        yield
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


@contextmanager
def _browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1600, "height": 1000})
        finally:
            browser.close()


def _shots(tmp_path) -> Path:
    shots = Path(os.environ.get("MLOPS_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    return shots


def test_lineage_ui_shows_every_asset_check_and_materialized_partition(demo, tmp_path):
    from playwright.sync_api import expect

    instance, shots, port = demo["instance"], _shots(tmp_path), free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "mlops_assets.cli", "dev", "--port", str(port)]
    with _server(command, demo["env"], f"{base}/server_info"), _browser() as page:
        page.goto(f"{base}/asset-groups", wait_until="networkidle")
        page.get_by_role("button", name="settings", exact=True).click()  # the graph's menu, bottom right
        page.get_by_role("menuitem", name="Expand all groups").click()
        expect(page.get_by_text("customer_features").first).to_be_visible()
        page.get_by_text("Global asset lineage").click()
        expect(page.get_by_role("menuitem", name="Collapse all groups")).to_have_count(0)
        page.screenshot(path=str(shots / "lineage-graph.png"))

        for asset, checks in EXPECTED_CHECKS.items():
            materialized = len(instance.get_materialized_partitions(dg.AssetKey(asset)))
            assert materialized > 0, f"the demo materialized {asset}"
            page.goto(f"{base}/assets/{asset}?view=partitions", wait_until="networkidle")
            expect(page.get_by_text(f"Materialized ({materialized})")).to_be_visible()
            page.goto(f"{base}/assets/{asset}?view=checks", wait_until="networkidle")
            expect(page.get_by_text(f"Checks ({len(checks)})")).to_be_visible()
            for check in checks:
                expect(page.locator("body")).to_contain_text(check)

        records = instance.fetch_materializations(dg.AssetKey("drift_report"), limit=1000).records
        alarm = next(r for r in records if r.asset_materialization.metadata["alarms"].value != "none")
        page.goto(
            f"{base}/assets/drift_report?view=events&time={int(alarm.timestamp * 1000)}", wait_until="networkidle"
        )
        # The events view loads the asset's whole event history first: slow on a loaded machine.
        expect(page.get_by_text("feature_drift").first).to_be_visible(timeout=30_000)
        page.screenshot(path=str(shots / "lineage-drift-alarm.png"))
        link = page.get_by_text(re.compile(r"drift_reports/tenant=.*/report\.html"))
        report = link.inner_text().strip()
        assert report == alarm.asset_materialization.metadata["report"].value
        page.goto(Path(report).as_uri(), wait_until="load")
        expect(page.get_by_text("Dataset Drift is detected")).to_be_visible(timeout=30_000)
        page.screenshot(path=str(shots / "drift-report.png"))


def test_mlflow_ui_lists_every_model_with_its_aliases(demo, tmp_path):
    from playwright.sync_api import expect

    from mlops_assets.core.ml.tracking import PRODUCTION, ModelRegistry, model_name

    home, shots, port = demo["home"], _shots(tmp_path), free_port()
    base, tracking = f"http://127.0.0.1:{port}", f"sqlite:///{home / 'mlflow.db'}"
    models = ModelRegistry(tracking, (home / "mlartifacts").as_uri())
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking, "--host", "127.0.0.1",
               "--port", str(port)]  # fmt: skip
    with _server(command, demo["env"], f"{base}/health"), _browser() as page:
        page.goto(f"{base}/#/models", wait_until="load")
        for tenant in TENANTS:
            expect(page.get_by_text(model_name(tenant), exact=True)).to_be_visible(timeout=30_000)
        page.keyboard.press("Escape")  # MLflow's first-visit announcement of its registry UI
        expect(page.get_by_role("dialog")).to_have_count(0)
        page.screenshot(path=str(shots / "mlflow-models.png"), animations="disabled")
        for tenant in TENANTS:
            production = models.alias_version(tenant, PRODUCTION).version
            page.goto("about:blank")  # a new document: hash routes alone keep the previous model's rows
            page.goto(f"{base}/#/models/{urllib.parse.quote(model_name(tenant))}", wait_until="load")
            row = page.get_by_role("row").filter(has_text="@ production")
            expect(row, f"{tenant}: one version is production").to_have_count(1, timeout=30_000)
            expect(row.get_by_role("cell", name=f"Version {production}", exact=True)).to_have_count(1)
            if tenant == DRIFTING:
                page.screenshot(path=str(shots / "mlflow-model-versions.png"), animations="disabled")
