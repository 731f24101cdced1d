"""The demo's tenants: Shopify-shaped synthetic shops of different sizes (one with a drift event) and
a file tenant made from the real CDNOW transaction log that `lifetimes` ships.

The demo replays the last `DEMO_CALENDAR_DAYS` days as the daemon would have lived them: the shops
sign up on the calendar's first day, each with at least 180 days of order history (Klaviyo's
threshold for predictions), and the drift event falls inside the calendar so its alarm and the
retrain it triggers are part of the replay.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI imports this module for its defaults; pandas and the simulator load on use
    import pandas as pd

    from mlops_assets.sim.shops import ShopSpec

DEMO_CALENDAR_DAYS = 10
CDNOW_TENANT = "cdnow-music"
CDNOW_COLUMNS = {"timestamp": "date", "amount": "dollar_value", "quantity": "number_of_cds"}


@dataclass(frozen=True)
class DemoShop:
    spec: ShopSpec
    display_name: str
    horizon_days: int = 30


def calendar_start(end: date, days: int = DEMO_CALENDAR_DAYS) -> date:
    """The day the demo tenants sign up: the first day of the replayed calendar ending `end`."""
    return end - timedelta(days=days - 1)


def demo_shops(end: date, days: int = DEMO_CALENDAR_DAYS) -> list[DemoShop]:
    """Three sizes, three timezones and currencies; globex-beauty's customers change after sign-up.

    The drift is a premium relaunch: order values x4 while repeat purchases halve. It starts on the
    first Sunday from sign-up on, the day after the cutoff of the first model or of a weekly retrain,
    so the reference the alarm compares with predates it (a reference taken a day into a drift hides
    part of it: the alarm then came 5-6 days late instead of 2-3, measured at core level). globex
    sells consumables, so its horizon is 10 days and realized performance matures inside the calendar.
    """
    from mlops_assets.sim.scenarios import LevelShift
    from mlops_assets.sim.shops import ShopSpec

    signup = calendar_start(end, days)
    sunday = signup + timedelta(days=(6 - signup.weekday()) % 7)
    drift = LevelShift(sunday, rate_factor=0.5, value_factor=4.0)
    return [
        DemoShop(
            ShopSpec(
                "acme-outdoor",
                customers=2000,
                seed=1,
                end=end,
                history_days=540,
                timezone="America/New_York",
                currency="USD",
            ),
            "Acme Outdoor",
        ),  # fmt: skip
        DemoShop(
            ShopSpec(
                "globex-beauty",
                customers=1500,
                seed=2,
                end=end,
                history_days=400,
                timezone="Europe/Berlin",
                currency="EUR",
                mean_order_value=45.0,
                mean_days_between_orders=45.0,
                scenario=drift,
            ),
            "Globex Beauty",
            horizon_days=10,
        ),  # fmt: skip
        DemoShop(
            ShopSpec(
                "initech-books",
                customers=600,
                seed=3,
                end=end,
                history_days=240,
                timezone="Asia/Seoul",
                currency="KRW",
                mean_order_value=38000.0,
            ),
            "Initech Books",
        ),  # fmt: skip
    ]


def cdnow_export(end: date) -> pd.DataFrame:
    """The CDNOW sample (2,357 customers, 1997-01 to 1998-06) moved by whole weeks to end on `end`.

    This is the 1/10 sample of the CDNOW cohort that Fader, Hardie and Lee fitted BG/NBD on (the
    full master log, also shipped, has 23,570 customers and is what tests/test_file_source.py
    reads). Moving by weeks keeps every weekday pattern; customers, amounts and CD counts are the
    original, so this tenant is real purchase behaviour, not the simulator's.
    """
    import pandas as pd

    source = importlib.resources.files("lifetimes") / "datasets" / "CDNOW_sample.txt"
    with source.open("r") as handle:
        log = pd.read_csv(handle, sep=r"\s+", header=None, dtype=str,
                          names=["customer_id", "sample_index", "date", "number_of_cds", "dollar_value"])  # fmt: skip
    days = pd.to_datetime(log["date"], format="%Y%m%d")
    shift = pd.Timedelta(weeks=(pd.Timestamp(end) - days.max()).days // 7)
    return log.drop(columns="sample_index").assign(date=(days + shift).dt.strftime("%Y-%m-%d"))
