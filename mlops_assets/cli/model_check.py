"""`mlops model-check`: the model regression gate CI runs (`make model-check`), on fixed seeded shops
and the real CDNOW sample."""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from tqdm import tqdm

from mlops_assets.cli.common import console, fail
from mlops_assets.core.lake.history import ORDER_COLUMNS
from mlops_assets.core.ml.model_gate import GateCase, changes, measure, read_record, regressions, write_record
from mlops_assets.core.sources.files import load_normalized
from mlops_assets.core.tenants.registry import Tenant, file_settings

RECORD = Path(".ci/model-quality.json")
SHOPS_END = date(2026, 10, 31)
CDNOW_END = date(1998, 6, 27)  # the sample's last Saturday: its export is the original dates


def _cdnow_sample_orders(folder: Path) -> pd.DataFrame:
    from mlops_assets.sim.demo_shops import CDNOW_COLUMNS, cdnow_export

    path = folder / "cdnow_sample.csv"
    cdnow_export(CDNOW_END).to_csv(path, index=False)
    source = Tenant("cdnow-sample", "CDNOW sample", "file", file_settings(str(path), "csv", CDNOW_COLUMNS),
                    "UTC", "USD").source  # fmt: skip
    normalized = load_normalized(source, "UTC", "USD", "cdnow-sample")
    orders = normalized.loc[normalized["_error"].isna(), ORDER_COLUMNS].reset_index(drop=True)
    stamps = ["created_at", "updated_at", "cancelled_at"]
    return orders.assign(**{column: pd.to_datetime(orders[column], utc=True) for column in stamps})


def gate_cases(folder: Path) -> list[GateCase]:
    """A mid-sized and a small synthetic shop (the learned and the small-shop paths) and real CDNOW."""
    from mlops_assets.sim.shops import ShopSpec, SyntheticShop

    shops = [SyntheticShop(ShopSpec(f"gate-{size}", customers=size, seed=seed, end=SHOPS_END, history_days=730))
             for size, seed in ((3000, 3), (800, 11))]  # fmt: skip
    cases = [GateCase(shop.spec.name, shop.raw_orders(), SHOPS_END, 30, shop.spec.timezone) for shop in shops]
    return [*cases, GateCase("cdnow-sample", _cdnow_sample_orders(folder), CDNOW_END, 91)]


def model_check(
    update: Annotated[bool, typer.Option("--update", help="commit these figures as the new reference")] = False,
    reason: Annotated[str | None, typer.Option(help="why the reference moves (required with --update)")] = None,
    record: Annotated[Path, typer.Option(help="the committed reference")] = RECORD,
):
    """Train every target on fixed cases and fail when a holdout metric is worse than the committed one."""
    if update and not reason:
        fail("--update needs --reason: say why the committed model quality moves (it is kept in the record)")
    with tempfile.TemporaryDirectory(prefix="mlops-model-check-") as folder:
        cases = gate_cases(Path(folder))
        measured = {case.name: measure(case) for case in tqdm(cases, desc="model-check", unit="case")}
    committed = read_record(record)
    moved = changes(committed["cases"], measured)
    for line in moved:
        console.print(f"  {line}")
    if update:
        write_record(record, measured, reason)
        console.print(f"{record}: {len(moved)} figure(s) changed; commit it with the reason: {reason}")
        return
    if not committed["cases"]:
        fail(f"{record} holds no reference (fix: mlops model-check --update --reason 'first reference')")
    worse = regressions(committed["cases"], measured)
    if worse:
        fail("model quality regressed:\n  " + "\n  ".join(worse) + "\n(fix the change, or if the drop is meant, "
             "mlops model-check --update --reason '...')")  # fmt: skip
    console.print(f"model-check: {sum(map(len, measured.values()))} metrics on {len(measured)} cases within tolerance")
