"""One feature snapshot of a large shop, from its lake history, on one core.

The shop's two-year history is written as Hive day files (as the history asset does); a child
process pinned to one core, with Arrow and BLAS on one thread, then lists the files, reads them as
one pyarrow dataset and computes `feature_snapshot` (BG/NBD fit included). It reports wall and CPU
time and the peak RSS of the whole process, and the same for reading alone as a baseline.

    .venv/bin/python benchmarks/feature_snapshot.py --customers 100000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date

END = date(2026, 10, 31)
CHILD = r"""
import json, sys, time
import pyarrow as pa
pa.set_cpu_count(1); pa.set_io_thread_count(1)
from datetime import date
from mlops_assets.core.ml.features import feature_snapshot
from mlops_assets.core.lake.history import history_files, read_orders
from mlops_assets.core.lake.files import lake_root
def peak_rss_mb():
    # VmHWM belongs to this process image; ru_maxrss would carry over the parent's peak across exec.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
root, mode = lake_root(sys.argv[1]), sys.argv[2]
rss_before = peak_rss_mb()
wall, cpu = time.perf_counter(), time.process_time()
history = read_orders(history_files(root, "big"))
rows = len(history)
if mode == "features":
    rows = len(feature_snapshot(history, date.fromisoformat(sys.argv[3]), "UTC", 30))
print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu, "rows": rows,
                  "peak_rss_mb": peak_rss_mb(), "rss_after_imports_mb": rss_before}))
"""


def run_child(lake: str, mode: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = [sys.executable, "-c", CHILD, lake, mode, END.isoformat()]
    if subprocess.run(["which", "taskset"], capture_output=True).returncode == 0:
        command = ["taskset", "-c", "0", *command]
    output = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=730)
    args = parser.parse_args()
    from mlops_assets.core.lake import files as lake
    from mlops_assets.core.sources.ingest import split_by_day
    from mlops_assets.core.sources.records import ORDERS_SCHEMA
    from mlops_assets.sim.shops import ShopSpec, SyntheticShop

    shop = SyntheticShop(ShopSpec("big", customers=args.customers, seed=1, end=END, history_days=args.days))
    with tempfile.TemporaryDirectory() as tmp:
        root = lake.lake_root(tmp)
        started = time.perf_counter()
        days = split_by_day(shop.raw_orders(), "UTC")
        for day, frame in days.items():
            lake.write_frame(lake.partition_path(root, "raw_orders_history", "big", day), frame, ORDERS_SCHEMA)
        print(
            f"wrote {len(shop.orders)} orders of {args.customers} customers as {len(days)} day files "
            f"in {time.perf_counter() - started:.1f} s"
        )
        read = run_child(tmp, "read")
        full = run_child(tmp, "features")
    print("| step | wall s | CPU s | rows | peak RSS MiB |")
    print("|---|---|---|---|---|")
    print(
        f"| read history (baseline) | {read['wall']:.2f} | {read['cpu']:.2f} | {read['rows']} "
        f"| {read['peak_rss_mb']:.0f} |"
    )
    print(
        f"| read + feature_snapshot | {full['wall']:.2f} | {full['cpu']:.2f} | {full['rows']} | "
        f"{full['peak_rss_mb']:.0f} |"
    )
    print(
        f"snapshot / read time: {full['wall'] / read['wall']:.1f}x; against the targets: "
        f"{full['wall'] / 15:.2f} of 15 s, {full['peak_rss_mb'] / 1024:.2f} of 1 GiB "
        f"(RSS after imports {full['rss_after_imports_mb']:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
