"""Prediction API latency at a fixed request rate, load from a second process, on loopback.

Seeds a scratch PostgreSQL warehouse with `--customers` predictions a day for `--days` days of one
tenant (plus a second tenant of the same size), starts `mlops serve` (one uvicorn worker) on it, and
drives it open-loop from a separate process: requests are scheduled at `--rate` per second and
latency is measured from each request's scheduled time, so a slow answer also delays the ones
queued behind it (no coordinated omission). Baseline in the same run: `/healthz` (no database, no
auth) at the same rate, the floor of the HTTP stack and the load generator.

    .venv/bin/python benchmarks/api_latency.py --rate 200 --seconds 30
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import requests
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load(base: str, paths: list[str], key: str, rate: float, seconds: float, connections: int, warmup: float) -> dict:
    """Open-loop load (runs in the load-generator process): one request due every 1/rate s.

    The first `warmup` seconds (fresh pool connections, statements not yet prepared) are not counted.

    asyncio + aiohttp on one thread: a Python client with threads spends its time fighting for the
    GIL on a 2-core machine and shows up as server latency.
    """
    import asyncio

    import aiohttp

    skipped = int(rate * warmup)
    total = int(rate * (seconds + warmup))
    latencies = np.full(total, np.nan)
    statuses = np.zeros(total, dtype=int)

    async def run() -> float:
        connector = aiohttp.TCPConnector(limit=connections)
        headers = {"Authorization": f"Bearer {key}"}
        async with aiohttp.ClientSession(base, connector=connector, headers=headers) as session:
            loop = asyncio.get_running_loop()
            start = loop.time() + 0.5
            measured_from = start + warmup

            async def one(i: int) -> None:
                due = start + i / rate
                await asyncio.sleep(max(0.0, due - loop.time()))
                async with session.get(paths[i % len(paths)]) as answer:
                    await answer.read()
                    statuses[i] = answer.status
                latencies[i] = (loop.time() - due) * 1000

            await asyncio.gather(*(one(i) for i in range(total)))
            return loop.time() - measured_from

    elapsed = asyncio.run(run())
    latencies, statuses = latencies[skipped:], statuses[skipped:]
    total -= skipped
    windows = np.array_split(latencies, 5)
    return {
        "p99_by_fifth": [round(float(np.percentile(w, 99)), 1) for w in windows],
        "requests": total,
        "achieved_rate": total / elapsed,
        "ok": int((statuses == 200).sum()),
        "p50_ms": float(np.percentile(latencies, 50)),
        "p90_ms": float(np.percentile(latencies, 90)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "max_ms": float(np.max(latencies)),
    }


def seed(url: str, customers: int, days: int) -> tuple[str, list[str]]:
    from predictions_write import scored_day

    from mlops_assets.core.ml.scoring import batch_summary
    from mlops_assets.core.tenants.api_keys import ApiKeys
    from mlops_assets.core.warehouse.prediction_store import write_partition

    last = date(2026, 11, 20)
    for tenant_id in ("acme", "globex"):
        for offset in range(days):
            frame = scored_day(tenant_id, last - timedelta(days=offset), customers, offset)
            write_partition(url, tenant_id, frame["as_of_date"].iloc[0], frame, batch_summary(frame), "seed")
    # Analyzed as after a pipeline run, and vacuumed so that no autovacuum competes for the 2 cores.
    settle = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with settle.connect() as conn:
        conn.execute(sa.text("vacuum analyze"))
    settle.dispose()
    _, key = ApiKeys(url).create("acme", "benchmark")
    return key, frame["customer_id"].tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=10, help="seconds at the same rate, not counted")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes of `mlops serve`")
    parser.add_argument("--load", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:  # the load-generator process
        print(json.dumps(load(**json.load(sys.stdin))))
        return

    from predictions_write import scratch_database

    with scratch_database(args.postgres) as url:
        key, customers = seed(url, args.customers, args.days)
        port = free_port()
        env = {**os.environ, "MLOPS_HOME": tempfile.mkdtemp(prefix="mlops-bench-"), "MLOPS_WAREHOUSE_URL": url}
        server = subprocess.Popen(
            [sys.executable, "-m", "mlops_assets.cli", "serve", "--port", str(port), "--workers", str(args.workers)],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
        )
        try:
            results = drive(f"http://127.0.0.1:{port}", key, customers, args)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=20)
    print(json.dumps({"rows": 2 * args.customers * args.days, "rate": args.rate, "seconds": args.seconds}))
    print("| endpoint | requests | ok | achieved req/s | p50 ms | p90 ms | p99 ms | max ms | p99 vs baseline |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    floor = results["GET /healthz (baseline)"]["p99_ms"]
    for label, r in results.items():
        print(
            f"| {label} | {r['requests']} | {r['ok']} | {r['achieved_rate']:.1f} | {r['p50_ms']:.2f} | "
            f"{r['p90_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.2f} | {r['p99_ms'] / floor:.2f} |"
        )


def drive(base: str, key: str, customers: list[str], args) -> dict:
    """The baseline, then the lookups, each from its own load-generator process."""
    for _ in range(300):
        try:
            if requests.get(f"{base}/healthz", timeout=1).ok:
                break
        except requests.ConnectionError:
            time.sleep(0.1)
    rng = random.Random(0)
    lookups = [f"/v1/customers/{rng.choice(customers)}/prediction" for _ in range(5000)]
    results = {}
    for label, paths in (("GET /healthz (baseline)", ["/healthz"]), ("GET /v1/customers/{id}/prediction", lookups)):
        spec = {"base": base, "paths": paths, "key": key, "rate": args.rate, "seconds": args.seconds,
                "connections": args.connections, "warmup": args.warmup}  # fmt: skip
        out = subprocess.run(
            [sys.executable, __file__, "--load"], input=json.dumps(spec), capture_output=True, text=True, check=True
        )
        results[label] = json.loads(out.stdout)
        print(label, "p99 by fifth of the run:", results[label]["p99_by_fifth"], file=sys.stderr)
    page = requests.get(f"{base}/v1/predictions?limit=100", headers={"Authorization": f"Bearer {key}"}, timeout=5)
    assert page.status_code == 200 and len(page.json()["items"]) == 100
    return results


if __name__ == "__main__":
    main()
