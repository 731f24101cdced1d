"""The production profile on one machine, for the benchmarks that run a fleet through Dagster (fleet.py,
chaos.py): PostgreSQL databases of their own, a moto S3 server and the Shopify emulator on loopback, and
the environment that points `mlops` at them. Nothing here is timed.
"""

from __future__ import annotations

import os
import resource
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

BIN = Path(sys.executable).parent
TOKEN_ENV = "FLEET_SHOP_TOKEN"
SHOP_TOKEN = "shpat_fleet"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, what: str, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout_s} s")


def peak_rss_mib() -> float:
    """The largest peak resident memory of this process and the run processes it waited for."""
    return max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024


def cpu_seconds() -> float:
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def start_s3() -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    wait_for_port(port, process, "moto server")
    return process, port


def start_emulator(
    shops: dict[str, int],
    day: date,
    log: Path,
    port: int | None = None,
    error_rate: float = 0.0,
    only: set[str] | None = None,
) -> tuple[subprocess.Popen, int]:
    """The shops (or `only` these of them) behind the Shopify emulator in its own process; a shop's seed is its
    position in `shops`. `error_rate` answers that share of requests 5xx. Returns before it listens."""
    port = port or free_port()
    flags = [
        flag
        for seed, (name, n) in enumerate(shops.items())
        if only is None or name in only
        for flag in ("--shop", f"{name}:{n}:{seed}")
    ]
    process = subprocess.Popen(
        [str(BIN / "mlops"), "shop-emulator", "--port", str(port), "--end-date", day.isoformat(),
         "--history-days", "420", "--as-of-request", "--bucket-capacity", "100000", "--leak-per-s", "100000",
         "--error-rate", str(error_rate), *flags],
        env={**os.environ, "MLOPS_EMULATOR_TOKEN": SHOP_TOKEN}, stdout=subprocess.DEVNULL, stderr=log.open("w"),
        start_new_session=True,
    )  # fmt: skip
    return process, port


def stop(*processes: subprocess.Popen) -> None:
    for process in processes:
        process.terminate()
        process.wait(timeout=30)


@dataclass
class Deployment:
    """One deployment on the profile: its PostgreSQL databases (named by `prefix`), its S3 bucket and its home
    directory; `env()` is the environment `mlops`, Dagster and the stages' processes run with."""

    pg: str  # postgresql://user@host:port/db of the server; the deployment creates and drops its own databases
    prefix: str
    home: Path
    s3_port: int
    emulator_url: str
    window_days: int = 7

    DATABASES = ("dagster", "warehouse", "mlflow_dagster", "mlflow_bare")

    @property
    def bucket(self) -> str:
        return f"{self.prefix}-lake".replace("_", "-")

    @property
    def server(self) -> str:
        return self.pg.rsplit("/", 1)[0]

    def database(self, name: str) -> str:
        return f"{self.prefix}_{name}"

    def mlflow_env(self, side: str) -> dict[str, str]:
        """Each side its own MLflow database and artifacts (fleet.py: both train every tenant's first model)."""
        server = self.server.replace("postgresql://", "postgresql+psycopg2://")
        return {
            "MLOPS_MLFLOW_TRACKING_URI": f"{server}/{self.database(f'mlflow_{side}')}",
            "MLOPS_MLFLOW_ARTIFACTS_URL": f"s3://{self.bucket}/mlflow-{side}",
        }

    def env(self) -> dict[str, str]:
        warehouse = f"{self.server}/{self.database('warehouse')}".replace("postgresql://", "postgresql+psycopg://")
        return {
            **os.environ,
            "MLOPS_PROFILE": "production",
            "MLOPS_HOME": str(self.home),
            "DAGSTER_HOME": str(self.home / "dagster"),
            "MLOPS_LAKE_URL": f"s3://{self.bucket}/lake",
            "MLOPS_S3_ENDPOINT_URL": f"http://127.0.0.1:{self.s3_port}",
            "MLOPS_WAREHOUSE_URL": warehouse,
            **self.mlflow_env("dagster"),
            "MLOPS_PARTITION_WINDOW_DAYS": str(self.window_days),
            "AWS_ACCESS_KEY_ID": "fleet",
            "AWS_SECRET_ACCESS_KEY": "fleet",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "FLEET_EMULATOR_URL": self.emulator_url,
            TOKEN_ENV: SHOP_TOKEN,
        }

    def _dagster_yaml(self) -> str:
        user, host_port = self.server.removeprefix("postgresql://").split("@")
        host, port = host_port.split(":")
        return (
            "storage:\n  postgres:\n    postgres_db:\n"
            f"      username: {user}\n      password: ''\n      hostname: {host}\n"
            f"      db_name: {self.database('dagster')}\n      port: {port}\n      scheme: postgresql+psycopg2\n"
            "telemetry:\n  enabled: false\nnux:\n  enabled: false\n"
        )

    def _databases(self, create: bool) -> None:
        import sqlalchemy as sa

        admin = sa.create_engine(
            self.pg.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            for name in self.DATABASES:
                conn.execute(sa.text(f'drop database if exists "{self.database(name)}" with (force)'))
                if create:
                    conn.execute(sa.text(f'create database "{self.database(name)}"'))
        admin.dispose()

    def create(self) -> Deployment:
        import boto3

        (self.home / "dagster").mkdir(parents=True, exist_ok=True)
        (self.home / "dagster" / "dagster.yaml").write_text(self._dagster_yaml())
        self._databases(create=True)
        boto3.client(
            "s3", endpoint_url=f"http://127.0.0.1:{self.s3_port}", region_name="us-east-1",
            aws_access_key_id="fleet", aws_secret_access_key="fleet",
        ).create_bucket(Bucket=self.bucket)  # fmt: skip
        return self

    def drop(self) -> None:
        self._databases(create=False)
        shutil.rmtree(self.home, ignore_errors=True)
