"""Scale-out: two Celery workers fed through Redis run a multi-tenant backfill with Dagster, the
warehouse and MLflow on PostgreSQL and the lake on S3, and write the files the default executor
writes; the executor follows `MLOPS_EXECUTOR`; the Kubernetes files validate against Dagster's schemas."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from mlops_assets.automation.decisions import sync_tenant_partitions
from mlops_assets.automation.jobs import INGEST_ASSETS, STAGE_TAG
from mlops_assets.batching import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from mlops_assets.core.tenants.registry import Tenant, TenantRegistry, shopify_settings
from mlops_assets.definitions import build_defs, defs
from mlops_assets.executors import K8S_STEP_RESOURCES, run_executor
from mlops_assets.partitions import TENANTS, TenantDayPartitions
from mlops_assets.settings import LOCAL_CELERY_BROKER, Settings, SettingsError
from mlops_assets.sim.shops import ShopSpec, SyntheticShop
from mlops_assets_tests.helpers import free_port, lake_digests, wait_until

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
LAST = TenantDayPartitions.of(defs()).last_day
DAYS = [LAST - timedelta(days=k) for k in (2, 1, 0)]
SHOPS = {  # tenant: (timezone, currency)
    "acme": ("America/New_York", "USD"),
    "globex": ("Europe/Berlin", "EUR"),
    "initech": ("Asia/Tokyo", "JPY"),
    "umbrella": ("UTC", "GBP"),
}
TOKEN = "shpat_scale_out_token"
WORKERS = ("scale-out-a", "scale-out-b")
LOGS_BUCKET = "dagster-logs"
DAGSTER_PG_VARS = ("MLOPS_DAGSTER_PG_USER", "MLOPS_DAGSTER_PG_PASSWORD", "MLOPS_DAGSTER_PG_HOST", "MLOPS_DAGSTER_PG_DB")
MAX_PROCESS_MEMORY = 2 * 1024**3  # the budget for any one process
# As operators run them (docs/operations.md, "Scale-out"), one process per worker here.
WORKER = "-m celery -A mlops_assets.celery_app worker -c 1 -Q dagster -l INFO --without-gossip --without-mingle"
RUN = "-m dagster job execute -m mlops_assets.definitions -a defs -j ingest_days"


def _start(arguments: list[str], env: dict[str, str] | None, log: Path) -> subprocess.Popen:
    """A process of the test in its own session (so it stops as a group), its output in `log`."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            arguments, env=env, cwd=log.parent, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _logs(directory: Path) -> dict[str, str]:
    return {path.name: path.read_text()[-3000:] for path in directory.glob("*.log")}


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the process group the test started, SIGKILL if it is still there after 20 s."""
    if process.poll() is not None:
        return
    for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture
def redis_url(tmp_path) -> Iterator[str]:
    """A private Redis on loopback: the Celery broker and result backend (MLOPS_TESTS_REDIS_URL names a
    dedicated one instead, such as a CI service container, without a database number; the test empties it)."""
    import redis

    if given := os.environ.get("MLOPS_TESTS_REDIS_URL"):
        redis.Redis.from_url(given).flushall()
        yield given
        return
    binary = shutil.which("redis-server")
    if not binary:
        pytest.fail("no redis-server to start (fix: install Debian's redis-server, as .ci/run does)")
    port = free_port()
    server = _start(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        None,
        tmp_path / "redis.log",
    )
    client = redis.Redis(host="127.0.0.1", port=port)

    def answers() -> bool:
        try:
            return client.ping()
        except redis.ConnectionError:
            return False

    try:
        assert wait_until(answers, timeout=10), "redis-server did not answer"
        yield f"redis://127.0.0.1:{port}"
    finally:
        client.close()
        _stop(server)


@pytest.fixture
def production_env(tmp_path, new_postgres_database, s3_endpoint, s3_lake_url, redis_url) -> dict[str, str]:
    """The environment of a production deployment: lake on S3, PostgreSQL for Dagster (the shipped
    dagster.production.yaml, step logs on S3), the warehouse and MLflow, and the Celery executor on Redis."""
    import boto3

    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=LOGS_BUCKET)
    dagster_db = sa.engine.make_url(new_postgres_database())
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    instance = yaml.safe_load((REPO / "dagster.production.yaml").read_text())
    instance["storage"]["postgres"]["postgres_db"]["port"] = dagster_db.port  # the only value not from env
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(instance))
    return {
        **os.environ,  # the AWS test credentials of the s3_endpoint fixture, the short partition window
        "DAGSTER_HOME": str(dagster_home),
        "MLOPS_DAGSTER_PG_USER": dagster_db.username,
        "MLOPS_DAGSTER_PG_PASSWORD": dagster_db.password or "",  # trust auth on the test server
        "MLOPS_DAGSTER_PG_HOST": dagster_db.host,
        "MLOPS_DAGSTER_PG_DB": dagster_db.database,
        "MLOPS_PROFILE": "production",
        "MLOPS_LAKE_URL": s3_lake_url,
        "MLOPS_S3_ENDPOINT_URL": s3_endpoint,
        "MLOPS_WAREHOUSE_URL": new_postgres_database(),
        # Required by the profile; no ingestion step opens it.
        "MLOPS_MLFLOW_TRACKING_URI": new_postgres_database().replace("+psycopg:", "+psycopg2:"),
        "MLOPS_EXECUTOR": "celery",
        "MLOPS_CELERY_BROKER_URL": f"{redis_url}/0",
        "MLOPS_CELERY_BACKEND_URL": f"{redis_url}/1",
        "SHOP_TOKEN": TOKEN,
        "MLOPS_DAGSTER_LOGS_BUCKET": LOGS_BUCKET,
        "AWS_ENDPOINT_URL_S3": s3_endpoint,
    }


@pytest.fixture
def celery_workers(production_env, tmp_path) -> Iterator[list[str]]:
    """Two workers of one process each, started as in production; their node names once both answer."""
    from celery import Celery

    processes = []
    control = Celery(broker=production_env["MLOPS_CELERY_BROKER_URL"])
    try:
        for name in WORKERS:
            command = [sys.executable, *WORKER.split(), "-n", f"{name}@%h"]
            processes.append(_start(command, production_env, tmp_path / f"{name}.log"))
        answered: set[str] = set()

        def both_answer() -> bool:
            answered.update(name for reply in control.control.ping(timeout=0.5) for name in reply)
            return len(answered) == len(WORKERS)

        assert wait_until(both_answer, timeout=60, interval=0.5), f"workers did not answer: {_logs(tmp_path)}"
        yield sorted(answered)
    finally:
        control.close()
        for process in processes:
            _stop(process)


def register_shops(warehouse_url: str, emulator) -> TenantRegistry:
    registry = TenantRegistry(warehouse_url)
    for tenant_id, (timezone, currency) in SHOPS.items():
        source = shopify_settings(emulator.shop_url(tenant_id), "SHOP_TOKEN")
        registry.upsert(Tenant(tenant_id, tenant_id.title(), "shopify", source, timezone, currency))
    return registry


def range_tags(low: str, high: str) -> dict[str, str]:
    """The tags of a tenants x days rectangle, as the automation's run requests carry them."""
    return {
        ASSET_PARTITION_RANGE_START_TAG: f"{DAYS[0].isoformat()}|{low}",
        ASSET_PARTITION_RANGE_END_TAG: f"{DAYS[-1].isoformat()}|{high}",
        STAGE_TAG: "days",
    }


def test_celery_workers_backfill_tenants_as_the_default_executor_does(
    production_env, celery_workers, emulator_factory, mlops_home, monkeypatch, tmp_path
):
    shops = {
        tenant_id: SyntheticShop(
            ShopSpec(tenant_id, customers=300, seed=seed, end=LAST, history_days=40, timezone=zone, currency=currency)
        )
        for seed, (tenant_id, (zone, currency)) in enumerate(SHOPS.items())
    }
    emulator = emulator_factory(shops, token=TOKEN, bucket=(40, 1000.0))
    registry = register_shops(production_env["MLOPS_WAREHOUSE_URL"], emulator)
    for name in (*DAGSTER_PG_VARS, "MLOPS_DAGSTER_LOGS_BUCKET", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.setenv(name, production_env[name])
    with dg.DagsterInstance.from_config(production_env["DAGSTER_HOME"]) as instance:
        sync_tenant_partitions(instance, registry)
        ordered = instance.get_dynamic_partitions(TENANTS)
        # Two runs of two tenants at once, each orchestrated by its own process as a run worker is:
        # four steps (raw_orders, raw_customers per run) for two workers.
        runs = [
            _start(
                [sys.executable, *RUN.split(), "--tags", json.dumps(range_tags(low, high))],
                production_env,
                tmp_path / f"run-{low}.log",
            )
            for low, high in ((ordered[0], ordered[1]), (ordered[2], ordered[3]))
        ]
        try:
            for run in runs:
                run.wait(timeout=150)
        finally:
            for run in runs:
                _stop(run)
        assert [run.returncode for run in runs] == [0, 0], _logs(tmp_path)

        records = instance.get_runs()
        assert len(records) == 2 and {r.status for r in records} == {dg.DagsterRunStatus.SUCCESS}
        expected = {f"{day.isoformat()}|{tenant_id}" for day in DAYS for tenant_id in SHOPS}
        for asset in INGEST_ASSETS:
            assert instance.get_materialized_partitions(dg.AssetKey(asset)) == expected
        # dagster-celery's task records the worker that took each step in an engine event.
        executed_by = {
            (record.run_id, record.step_key): record.dagster_event.engine_event_data.metadata["Celery worker"].value
            for run in records
            for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
            if "Celery worker" in record.dagster_event.engine_event_data.metadata
        }
        # Two runs, each of the two ingest steps and the run verdict (isolation): on Celery like any step.
        assert len(executed_by) == 2 * (len(INGEST_ASSETS) + 1), executed_by
        assert {step for _, step in executed_by} == {*INGEST_ASSETS, "run_verdict"}, executed_by
        assert sorted(set(executed_by.values())) == celery_workers, executed_by
        # Each step's stdout/stderr reached S3 through dagster-aws, whichever worker ran it.
        import boto3

        listed = boto3.client("s3", endpoint_url=production_env["AWS_ENDPOINT_URL_S3"]).list_objects_v2(
            Bucket=LOGS_BUCKET, Prefix="dagster-compute-logs/"
        )
        logged = {}  # run id -> the capture keys (one per step) whose stdout and stderr were uploaded
        for item in listed.get("Contents", []):
            run_id, capture = re.fullmatch(
                r"dagster-compute-logs/storage/([^/]+)/compute_logs/(\w+)\.(?:out|err)", item["Key"]
            ).groups()
            logged.setdefault(run_id, set()).add(capture)
        steps = {run_id: sum(1 for run, _ in executed_by if run == run_id) for run_id, _ in executed_by}
        assert {run_id: len(captures) for run_id, captures in logged.items()} == steps, listed

    monkeypatch.setenv("SHOP_TOKEN", TOKEN)
    reference_lake = str(tmp_path / "reference-lake")
    defs = build_defs(
        Settings.from_env(
            {
                "MLOPS_HOME": str(mlops_home),
                "MLOPS_LAKE_URL": reference_lake,
                "MLOPS_WAREHOUSE_URL": production_env["MLOPS_WAREHOUSE_URL"],
            }
        )
    )
    assert defs.resolve_job_def("ingest_days").executor_def.name == "multi_or_in_process_executor"
    reference = dg.DagsterInstance.ephemeral()
    reference.add_dynamic_partitions(TENANTS, ordered)
    result = defs.resolve_job_def("ingest_days").execute_in_process(
        instance=reference, tags=range_tags(ordered[0], ordered[-1])
    )
    assert result.success
    celery_files = lake_digests(
        {"url": production_env["MLOPS_LAKE_URL"], "s3_endpoint_url": production_env["MLOPS_S3_ENDPOINT_URL"]}
    )
    assert len(celery_files) >= len(expected) * len(INGEST_ASSETS)
    assert celery_files == lake_digests({"url": reference_lake, "s3_endpoint_url": None})


def test_default_executor_unless_celery_or_k8s_is_chosen():
    assert run_executor(Settings.from_env({})) is None
    assert Settings.from_env({}).celery_broker_url is None
    celery = Settings.from_env({"MLOPS_EXECUTOR": "celery"})
    assert (celery.celery_broker_url, celery.celery_backend_url) == (LOCAL_CELERY_BROKER, LOCAL_CELERY_BROKER)
    assert run_executor(celery).name == "celery"
    assert run_executor(Settings.from_env({"MLOPS_EXECUTOR": "k8s"})).name == "k8s"
    with pytest.raises(SettingsError, match="MLOPS_EXECUTOR"):
        Settings.from_env({"MLOPS_EXECUTOR": "dask"})


def test_the_celery_executor_holds_variable_names_not_broker_urls(monkeypatch):
    """A URL with a password stays out of the definitions: the run reads the variable when it starts."""
    monkeypatch.setenv("MLOPS_CELERY_BROKER_URL", "redis://:old@redis.internal:6379/0")
    job = build_defs(Settings.from_env(dict(os.environ) | {"MLOPS_EXECUTOR": "celery"})).resolve_job_def("daily_cycle")
    rotated = "redis://:rotated@redis.internal:6379/0"
    monkeypatch.setenv("MLOPS_CELERY_BROKER_URL", rotated)
    resolved = dg.validate_run_config(job, {})["execution"]["celery"]
    assert (resolved["broker"], resolved["backend"]) == (rotated, rotated)
    assert resolved["config_source"]["task_acks_late"] and resolved["config_source"]["worker_prefetch_multiplier"] == 1


def chart_instance_config(values: dict) -> dict:
    """The parts of dagster.yaml that Dagster's Helm chart renders from our values
    (helm/dagster/templates/helpers/instance/*.tpl): storage, run coordinator and run launcher."""
    pg = values["postgresql"]
    queued = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    return {
        "storage": {
            "postgres": {
                "postgres_db": {
                    "username": pg["postgresqlUsername"],
                    "password": {"env": "DAGSTER_PG_PASSWORD"},
                    "hostname": pg["postgresqlHost"],
                    "db_name": pg["postgresqlDatabase"],
                    "port": pg["service"]["port"],
                    "scheme": pg["postgresqlScheme"],
                }
            }
        },
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {
                "max_concurrent_runs": queued["maxConcurrentRuns"],
                "tag_concurrency_limits": queued["tagConcurrencyLimits"],
            },
        },
        "run_launcher": {
            "module": "dagster_k8s",
            "class": "K8sRunLauncher",
            "config": {
                "load_incluster_config": True,
                "job_namespace": "dagster",
                "image_pull_policy": launcher["imagePullPolicy"],
                "service_account_name": "dagster",
                "dagster_home": "/opt/dagster/dagster_home",
                "instance_config_map": "dagster-instance",
                "postgres_password_secret": values["global"]["postgresqlSecretName"],
                "run_k8s_config": {"job_spec_config": launcher["runK8sConfig"]["jobSpecConfig"]},
            },
        },
        "telemetry": values["telemetry"],
    }


def test_k8s_values_render_an_instance_dagster_accepts(tmp_path):
    from dagster._config import validate_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_k8s import K8sRunLauncher
    from dagster_postgres import DagsterPostgresStorage

    values = yaml.safe_load((K8S / "values.yaml").read_text())
    rendered = chart_instance_config(values)
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(rendered))
    dagster_instance_config(str(tmp_path))  # raises on anything the instance schema refuses
    for section, configurable in (
        (rendered["storage"]["postgres"], DagsterPostgresStorage),
        (rendered["run_coordinator"]["config"], QueuedRunCoordinator),
        (rendered["run_launcher"]["config"], K8sRunLauncher),
    ):
        checked = validate_config(configurable.config_type(), section)
        assert checked.success, [error.message for error in checked.errors]
    assert rendered["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    assert [limit["key"] for limit in rendered["run_coordinator"]["config"]["tag_concurrency_limits"]] == [STAGE_TAG]


def test_k8s_code_location_secret_and_pod_sizes_fit_together():
    from dagster_k8s.models import k8s_model_from_dict
    from kubernetes.client import V1ResourceRequirements
    from kubernetes.utils import parse_quantity

    values = yaml.safe_load((K8S / "values.yaml").read_text())
    secrets = {
        doc["metadata"]["name"]: doc["stringData"]
        for doc in yaml.safe_load_all((K8S / "secrets.example.yaml").read_text())
    }
    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "mlops_assets.definitions"]
    assert deployment["includeConfigInLaunchedRuns"]["enabled"], "runs and steps need the code location's Secret"
    [env_secret] = deployment["envSecrets"]
    assert set(secrets) == {env_secret["name"], values["global"]["postgresqlSecretName"]}
    settings = Settings.from_env(secrets[env_secret["name"]])
    assert (settings.profile, settings.executor) == ("production", "k8s")

    job = build_defs(settings).resolve_job_def("daily_cycle")
    step_pod = dg.validate_run_config(job, {})["execution"]["k8s"]["step_k8s_config"]["container_config"]
    sized = {
        "step pod": step_pod["resources"],
        "code server and run pods": deployment["resources"],
        "webserver": values["dagsterWebserver"]["resources"],
        "daemon": values["dagsterDaemon"]["resources"],
    }
    for name, resources in sized.items():
        k8s_model_from_dict(V1ResourceRequirements, resources)  # raises on a misspelt field
        assert parse_quantity(resources["limits"]["memory"]) <= MAX_PROCESS_MEMORY, name
        assert parse_quantity(resources["requests"]["memory"]) <= parse_quantity(resources["limits"]["memory"]), name
    assert step_pod["resources"] == K8S_STEP_RESOURCES
    assert parse_quantity(K8S_STEP_RESOURCES["requests"]["memory"]) >= 1.5 * 1024**3, "a large run's peak"
