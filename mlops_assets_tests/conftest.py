"""Real components for tests: PostgreSQL (the machine's, or a throwaway cluster), an S3 endpoint
(moto server on loopback), the shop API emulator over real HTTP, and a private MLOPS_HOME."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from glob import glob
from pathlib import Path

import pytest
import sqlalchemy as sa

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# A short rolling window keeps end-to-end tests quick (read when the definitions are built).
os.environ.setdefault("MLOPS_PARTITION_WINDOW_DAYS", "14")
# pytest-xdist's workers get COLUMNS=80; the CLI's tables would then be squeezed into ellipses in some runs and
# not others. Without it the CLI prints 160 columns, as into any pipe (cli/common.py).
os.environ.pop("COLUMNS", None)

from mlops_assets.core.warehouse.local_sqlite import keep_wal_databases_open  # noqa: E402
from mlops_assets_tests.helpers import SERVED_TENANT, TEST_END, free_port, write_history  # noqa: E402

# As in every `mlops` process: Dagster's SQLite instances in tests commit without an fsync per event.
keep_wal_databases_open()


def _server_answers(url: str) -> bool:
    try:
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not usable", and we start our own
        return False


def _pg_binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        pytest.fail(f"no PostgreSQL server at 127.0.0.1:5432 and no {name} to start one (install Debian's postgresql)")
    return found


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL admin URL: the machine's server (MLOPS_TESTS_POSTGRES_URL names another, such as a CI
    service container) if it answers, else a throwaway cluster (always the latter with
    MLOPS_TESTS_OWN_POSTGRES=1, to exercise what a bare machine does)."""
    machine = os.environ.get("MLOPS_TESTS_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    if not os.environ.get("MLOPS_TESTS_OWN_POSTGRES") and _server_answers(machine):
        yield machine
        return
    root = Path(tempfile.mkdtemp(prefix="mlops-pg-"))
    data, port = root / "data", free_port()
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(root, "postgres")
    subprocess.run(
        [*as_postgres, _pg_binary("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *as_postgres,
            _pg_binary("pg_ctl"),
            "-D",
            str(data),
            "-w",
            "-l",
            str(root / "log"),
            "-o",
            f"-h 127.0.0.1 -p {port} -k {root}",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_postgres, _pg_binary("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def new_postgres_database(postgres_server: str) -> Iterator[Callable[[], str]]:
    """Fresh databases on demand (their URLs), all dropped after the test."""
    admin = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    created = []

    def create() -> str:
        name = f"mlops_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'create database "{name}"'))
        created.append(name)
        return postgres_server.rsplit("/", 1)[0] + f"/{name}"

    try:
        yield create
    finally:
        from mlops_assets.core.warehouse.engine import dispose_engines

        dispose_engines()
        with admin.connect() as conn:
            for name in created:
                conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))
        admin.dispose()


@pytest.fixture
def postgres_url(new_postgres_database: Callable[[], str]) -> str:
    """A fresh database per test, dropped afterwards."""
    return new_postgres_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def warehouse_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'warehouse.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 HTTP endpoint (moto server) on loopback, with fake credentials."""
    from moto.server import ThreadedMotoServer

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        os.environ[key] = value
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_lake_url(s3_endpoint: str) -> str:
    import boto3

    bucket = f"lake-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/prefix"


@pytest.fixture
def mlops_home(tmp_path, monkeypatch) -> Path:
    """A private local profile: lake, warehouse and Dagster home under tmp_path."""
    home = tmp_path / "mlops"
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    for name in ("MLOPS_PROFILE", "MLOPS_LAKE_URL", "MLOPS_WAREHOUSE_URL", "MLOPS_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    (home / "dagster").mkdir(parents=True)
    (home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return home


@pytest.fixture(scope="session")
def small_shop():
    from mlops_assets.sim.shops import ShopSpec, SyntheticShop

    return SyntheticShop(
        ShopSpec(
            "acme", customers=1500, seed=7, end=TEST_END, history_days=400, timezone="America/New_York", currency="USD"
        )
    )


@pytest.fixture
def emulator_factory():
    """Start emulators serving given shops; all are stopped after the test."""
    from mlops_assets.sim.shop_emulator import EmulatedShop, LeakyBucket, ShopApiEmulator

    started = []

    def start(shops: dict, faults=None, token: str = "shpat_test_token", bucket=(40, 2.0), as_of_request=False):
        emulator = ShopApiEmulator(
            {name: EmulatedShop(shop, token, LeakyBucket(*bucket), as_of_request) for name, shop in shops.items()},
            faults=faults,
        ).start()
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.stop()


@pytest.fixture(scope="session")
def served(tmp_path_factory):
    """A tenant with a promoted LightGBM in a real MLflow registry, and its snapshot of TEST_END."""
    from mlops_assets.core.lake.history import history_files, read_orders
    from mlops_assets.core.ml.candidates import promote_candidate, train_candidate
    from mlops_assets.core.ml.features import feature_snapshot
    from mlops_assets.core.ml.promotion import PromotionPolicy
    from mlops_assets.core.ml.scoring import load_served_model
    from mlops_assets.core.ml.tracking import ModelRegistry
    from mlops_assets.core.ml.training_data import TrainingPlan, build_training_set
    from mlops_assets.sim.shops import ShopSpec, SyntheticShop

    tmp = tmp_path_factory.mktemp("served")
    shop = SyntheticShop(ShopSpec(SERVED_TENANT, customers=2500, seed=9, end=TEST_END, history_days=550))
    from mlops_assets.core.lake.files import lake_root

    root = lake_root(str(tmp / "lake"))
    write_history(root, SERVED_TENANT, shop)
    files = history_files(root, SERVED_TENANT, through=TEST_END)
    history = read_orders(files)
    built = build_training_set(history, TrainingPlan(TEST_END), "UTC", files.through)
    registry = ModelRegistry(f"sqlite:///{tmp / 'mlflow.db'}", (tmp / "artifacts").as_uri())
    card = train_candidate(
        registry, SERVED_TENANT, built, data_digest=files.digest(), data_through=str(files.through), timezone="UTC",
        training_source=str(root.path), tags={"cutoff": str(TEST_END)},
    )  # fmt: skip
    outcome = promote_candidate(
        registry, f"sqlite:///{tmp / 'w.db'}", SERVED_TENANT, card.frame().iloc[0], built.frame,
        PromotionPolicy(baseline_margin=-1.0),
    )  # fmt: skip
    assert outcome.promoted
    snapshot = feature_snapshot(history, TEST_END, "UTC", 30)
    model = load_served_model(registry, SERVED_TENANT)
    created = datetime(2026, 11, 1, 6, tzinfo=UTC)
    return {
        "registry": registry,
        "model": model,
        "snapshot": snapshot,
        "history": history,
        "tmp": tmp,
        "created": created,
    }
