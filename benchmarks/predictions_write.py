"""Predictions write throughput against a plain COPY of the same rows, on the same PostgreSQL.

Both load into the same `predictions` table of a scratch database (primary key and rank index in
place), best of `--repeat`, the table emptied before each try:

- plain COPY (the baseline): the rows already serialized as CSV in memory, one `COPY ... FROM STDIN`;
- the platform's write (`core.warehouse.prediction_store.write_partition`, what the warehouse IO manager
  calls): from the scored DataFrame, in one transaction per tenant-day: delete the partition, binary
  COPY, summary row; then one ANALYZE for the run.

    .venv/bin/python benchmarks/predictions_write.py --customers 100000 --days 5
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa

from mlops_assets.core.ml.features import FEATURES
from mlops_assets.core.ml.scoring import RiskBands, batch_summary, top_reasons
from mlops_assets.core.warehouse.engine import PREDICTION_COLUMNS, dispose_engines, engine_for
from mlops_assets.core.warehouse.prediction_store import refresh_statistics, write_partition


def scored_day(tenant_id: str, day: date, customers: int, seed: int) -> pd.DataFrame:
    """A tenant-day shaped exactly like the predictions asset's output (reasons included)."""
    rng = np.random.default_rng(seed)
    probabilities = rng.beta(1.2, 6.0, customers)
    features = pd.DataFrame(rng.gamma(2.0, 20.0, (customers, len(FEATURES))), columns=FEATURES)
    order = np.argsort(-probabilities, kind="stable")
    rank = np.empty(customers, dtype=np.int64)
    rank[order] = np.arange(1, customers + 1)
    return pd.DataFrame(
        {
            "tenant_id": tenant_id,
            "customer_id": [f"{7_000_000_000 + i}" for i in range(customers)],
            "as_of_date": day,
            "repurchase_probability": probabilities,
            "risk_band": RiskBands().of(probabilities),
            "rank": rank,
            "percentile": (pd.Series(probabilities).rank(pct=True) * 100).round(3).to_numpy(),
            "model_name": f"repurchase-{tenant_id}",
            "model_version": "7",
            "feature_version": "sha256:" + "ab" * 32,
            "run_id": str(uuid.uuid4()),
            "created_at": datetime.now(UTC),
            "top_reasons": top_reasons(rng.normal(0, 0.3, (customers, len(FEATURES))), features),
        },
        columns=PREDICTION_COLUMNS,
    )


@contextlib.contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """A new database on the given server for one benchmark run, dropped afterwards."""
    name = f"mlops_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'create database "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        dispose_engines()
        with admin.connect() as conn:
            conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))
        admin.dispose()


def csv_buffer(frames: list[pd.DataFrame]) -> bytes:
    return b"".join(frame.to_csv(index=False, header=False).encode() for frame in frames)


def plain_copy(engine: sa.Engine, payload: bytes) -> None:
    with engine.begin() as conn:
        driver = conn.connection.driver_connection
        with (
            driver.cursor() as cursor,
            cursor.copy(f"COPY predictions ({', '.join(PREDICTION_COLUMNS)}) FROM STDIN (FORMAT CSV)") as copy,
        ):
            copy.write(payload)


def platform_write(url: str, frames: list[pd.DataFrame]) -> None:
    """What `WarehouseIOManager.handle_output` does for a run over these tenant-days."""
    for frame in frames:
        write_partition(url, frame["tenant_id"].iloc[0], frame["as_of_date"].iloc[0], frame, batch_summary(frame), "b")
    refresh_statistics(url)


def empty(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("truncate predictions, prediction_batches"))
        conn.execute(sa.text("checkpoint"))


def best(engine, action, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        empty(engine)
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with scratch_database(args.postgres) as url:
        engine = engine_for(url)
        start = date(2026, 11, 1)
        frames = [scored_day("acme", start + timedelta(days=d), args.customers, d) for d in range(args.days)]
        rows = sum(len(f) for f in frames)
        payload = csv_buffer(frames)
        baseline = best(engine, lambda: plain_copy(engine, payload), args.repeat)
        ours = best(engine, lambda: platform_write(url, frames), args.repeat)
        with engine.connect() as conn:
            stored = conn.execute(sa.text("select count(*) from predictions")).scalar_one()
        assert stored == rows, (stored, rows)
        server = engine.connect().execute(sa.text("show server_version")).scalar_one()
        print(json.dumps({"postgres": server, "rows": rows, "tenant_days": args.days, "csv_mib": len(payload) / 2**20}))
        print("| write | rows | best s | rows/s | throughput vs plain COPY |")
        print("|---|---:|---:|---:|---:|")
        print(f"| plain COPY (CSV, pre-serialized) | {rows:,} | {baseline:.2f} | {rows / baseline:,.0f} | 1.00 |")
        print(
            f"| warehouse IO manager path (per tenant-day: delete + binary COPY + summary; ANALYZE) | {rows:,} | "
            f"{ours:.2f} | {rows / ours:,.0f} | **{baseline / ours:.2f}** |"
        )


if __name__ == "__main__":
    main()
