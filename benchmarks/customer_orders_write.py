"""What the warehouse's copy of customer orders costs: onboarding a tenant's history, a tenant-day of the daily
cycle (first run and re-run), and the customer page's read, on PostgreSQL.

A scratch database; `--tenants` tenants each onboarded with `--history-orders` orders over two years
(`core.warehouse.customer_orders.write_orders` of the history sweep), then one day of `--day-orders` orders
per tenant (a tenth of them revised versions of older orders, as refunds are), then that day again (a re-run),
then `PredictionReader.orders` for customers. Frames are shaped like the lake's `raw_orders` files.

    .venv/bin/python benchmarks/customer_orders_write.py --tenants 20 --history-orders 20000 --day-orders 100
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import date, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa

from mlops_assets.core.sources.records import to_frame
from mlops_assets.core.warehouse.customer_orders import write_orders
from mlops_assets.core.warehouse.engine import dispose_engines
from mlops_assets.core.warehouse.prediction_store import PredictionReader

DAY = date(2026, 10, 31)


def orders_frame(first_id: int, count: int, customers: int, since: pd.Timestamp, until: pd.Timestamp, seed: int):
    rng = np.random.default_rng(seed)
    placed = pd.DatetimeIndex(since + (until - since) * np.sort(rng.random(count))).floor("s")
    return to_frame(
        "orders",
        pd.DataFrame(
            {
                "order_id": [str(first_id + i) for i in range(count)],
                "order_name": None,
                "customer_id": [str(c) for c in rng.integers(0, customers, count)],
                "created_at": placed,
                "updated_at": placed,
                "processed_at": placed,
                "cancelled_at": pd.NaT,
                "currency": "USD",
                "total_price": rng.gamma(2.0, 40.0, count).round(2),
                "subtotal_price": None,
                "total_tax": None,
                "total_discounts": None,
                "total_refunded": 0.0,
                "financial_status": "paid",
                "fulfillment_status": None,
                "is_test": False,
                "line_item_count": 1,
                "item_quantity": 1,
                "source_name": "web",
            }
        ),
    )


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--history-orders", type=int, default=20000)
    parser.add_argument("--day-orders", type=int, default=100)
    args = parser.parse_args()

    admin = sa.create_engine(args.server, isolation_level="AUTOCOMMIT")
    name = f"bench_orders_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'create database "{name}"'))
    url = args.server.rsplit("/", 1)[0] + f"/{name}"
    try:
        customers = max(1, args.history_orders // 4)
        end = pd.Timestamp(DAY, tz="UTC")
        start = end - pd.Timedelta(days=730)
        onboard, first_run, rerun = [], [], []
        for k in range(args.tenants):
            tenant = f"t{k:04d}"
            history = orders_frame(0, args.history_orders, customers, start, end, seed=k)
            onboard.append(timed(lambda: write_orders(url, tenant, history, None)))  # noqa: B023 - called at once
            new = orders_frame(10_000_000, args.day_orders, customers, end, end + pd.Timedelta(days=1), seed=10_000 + k)
            revised = history.sample(max(1, args.day_orders // 10), random_state=k).assign(
                updated_at=end + pd.Timedelta(hours=12), total_refunded=5.0
            )
            day = to_frame("orders", pd.concat([new, revised]))
            first_run.append(timed(lambda: write_orders(url, tenant, day, DAY + timedelta(days=1))))  # noqa: B023
            rerun.append(timed(lambda: write_orders(url, tenant, day, DAY + timedelta(days=1))))  # noqa: B023
        reader = PredictionReader(url, read_only=True)
        reads = [timed(lambda c=c: reader.orders("t0000", str(c), 50)) for c in range(0, min(customers, 2000), 10)]
        busiest = max(range(min(customers, 2000)), key=lambda c: reader.orders("t0000", str(c), 1)["count"])
        with sa.create_engine(url).connect() as conn:
            rows = conn.execute(sa.text("select count(*) from customer_orders")).scalar()
            size = conn.execute(sa.text("select pg_total_relation_size('customer_orders')")).scalar()

        def ms(values):
            return f"median {statistics.median(values) * 1000:.1f} ms, max {max(values) * 1000:.1f} ms"

        print(f"{args.tenants} tenants x {args.history_orders} history orders, {args.day_orders} orders a day")
        print(f"onboarding (history sweep) per tenant: {ms(onboard)}")
        print(f"daily tenant-day, first run: {ms(first_run)}")
        print(f"daily tenant-day, re-run:    {ms(rerun)}")
        print(f"customer page read (orders + totals, 50 shown): {ms(reads)}; busiest customer "
              f"{reader.orders('t0000', str(busiest), 1)['count']} orders")  # fmt: skip
        print(f"table: {rows} rows, {size / 2**20:.1f} MiB with indexes ({size / max(rows, 1):.0f} bytes a row)")
    finally:
        dispose_engines()
        with admin.connect() as conn:
            conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))
        admin.dispose()


if __name__ == "__main__":
    main()
