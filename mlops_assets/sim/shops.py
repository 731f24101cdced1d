"""Synthetic shops with known ground truth.

Each customer has a latent purchase rate (Gamma) and a lifetime (exponential dropout), modulated
by weekly and yearly seasonality and an optional drift event: the Pareto/NBD story, so every
target's truth is known (`sim.oracle`: the probability of ordering in the next H days, P(alive),
expected orders and spend). On top of the
latent purchases comes the dirt of a real shop: guest checkouts, test orders, cancellations,
refunds and orders updated days after they were placed.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

CUSTOMER_ID_BASE = 7_000_000_000
ORDER_ID_BASE = 5_000_000_000
TAX_RATE = 0.08


@dataclass(frozen=True)
class Channel:
    share: float
    rate: float
    dropout: float
    value: float


CHANNELS: dict[str, Channel] = {
    "organic": Channel(0.35, 1.0, 1.0, 1.0),
    "paid_search": Channel(0.25, 0.8, 1.4, 0.9),
    "social": Channel(0.18, 0.6, 1.8, 0.8),
    "email": Channel(0.12, 1.5, 0.7, 1.1),
    "referral": Channel(0.10, 1.2, 0.8, 1.05),
}


@dataclass(frozen=True)
class DriftScenario:
    """From `start` on, purchase rates, order values and the acquisition mix may change."""

    start: date
    rate_factor: float = 1.0
    value_factor: float = 1.0
    channel_mix: dict[str, float] | None = None


@dataclass(frozen=True)
class Dirt:
    guest_rate: float = 0.03
    test_rate: float = 0.005
    cancel_rate: float = 0.02
    refund_rate: float = 0.04
    fulfil_rate: float = 0.9
    full_refund_share: float = 0.6  # of refunds; the others return 10-90% of the order, 50% on average

    @property
    def kept_value_share(self) -> float:
        """The expected share of a placed order's value that stays spent: not cancelled, net of refunds."""
        mean_refund = self.full_refund_share + (1 - self.full_refund_share) * 0.5
        return (1 - self.cancel_rate) * (1 - self.refund_rate * mean_refund)


@dataclass(frozen=True)
class ShopSpec:
    name: str
    customers: int = 2000
    seed: int = 0
    end: date = field(default_factory=lambda: datetime.now(UTC).date())
    history_days: int = 730
    timezone: str = "UTC"
    currency: str = "USD"
    mean_days_between_orders: float = 90.0
    mean_lifetime_days: float = 300.0
    mean_order_value: float = 60.0
    weekly_amplitude: float = 0.2
    yearly_amplitude: float = 0.3
    growth: float = 1.0
    drift: DriftScenario | None = None
    dirt: Dirt = field(default_factory=Dirt)

    def __post_init__(self):
        if not 100 <= self.customers <= 200_000:
            raise ValueError(f"shop {self.name}: customers={self.customers} must be in [100, 200000]")
        if self.history_days < 30:
            raise ValueError(f"shop {self.name}: history_days={self.history_days} must be >= 30")

    @property
    def start(self) -> date:
        return self.end - timedelta(days=self.history_days - 1)


class SyntheticShop:
    """The whole history of one shop, as of the end of `spec.end` in the shop's timezone."""

    def __init__(self, spec: ShopSpec):
        self.spec = spec
        self.zone = ZoneInfo(spec.timezone)
        seed = zlib.crc32(spec.name.encode()) ^ spec.seed
        self._rng = np.random.default_rng(seed)
        self._days = spec.history_days
        self._intensity = self.intensity_on(pd.date_range(spec.start, periods=self._days, freq="D"))
        self._cumulative = np.concatenate([[0.0], np.cumsum(self._intensity)])
        self._build()

    def _seasonality(self, days: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
        spec = self.spec
        weekly = 1 + spec.weekly_amplitude * np.cos(2 * np.pi * (days.dayofweek.to_numpy() - 6) / 7)
        yearly = 1 + spec.yearly_amplitude * np.cos(2 * np.pi * (days.dayofyear.to_numpy() - 340) / 365.25)
        return weekly, yearly

    def intensity_on(self, days: pd.DatetimeIndex) -> np.ndarray:
        """The purchase-rate multiplier of each day (mean 1 over the history), past the history too:
        the truth of a 365-day target may reach beyond the shop's last day."""
        weekly, yearly = self._seasonality(days)
        history_weekly, history_yearly = self._seasonality(pd.date_range(self.spec.start, periods=self._days))
        intensity = weekly * yearly / (history_weekly.mean() * history_yearly.mean())
        if self.spec.drift is not None:
            intensity = np.where(days.date >= self.spec.drift.start, intensity * self.spec.drift.rate_factor, intensity)
        return intensity

    def value_factor_on(self, days: pd.DatetimeIndex) -> np.ndarray:
        """The order-value multiplier of each day (the drift's `value_factor` from its start)."""
        if self.spec.drift is None:
            return np.ones(len(days))
        return np.where(days.date >= self.spec.drift.start, self.spec.drift.value_factor, 1.0)

    def day_index(self, day: date) -> int:
        return (day - self.spec.start).days

    def cumulative_at(self, t: np.ndarray) -> np.ndarray:
        """Integrated seasonal intensity M(t), t in fractional days since the first day."""
        return np.interp(t, np.arange(self._days + 1), self._cumulative)

    def _time_at_cumulative(self, m: np.ndarray) -> np.ndarray:
        return np.interp(m, self._cumulative, np.arange(self._days + 1))

    def _build(self) -> None:
        spec, rng, n = self.spec, self._rng, self.spec.customers
        horizon_end = float(self._days)
        acquisition_weight = self._intensity * np.exp(spec.growth * np.arange(self._days) / self._days)
        acquisition_day = rng.choice(self._days, size=n, p=acquisition_weight / acquisition_weight.sum())
        acquired_at = np.sort(acquisition_day + rng.random(n))

        names = list(CHANNELS)
        base_mix = np.array([CHANNELS[c].share for c in names])
        channel_idx = rng.choice(len(names), size=n, p=base_mix / base_mix.sum())
        if spec.drift is not None and spec.drift.channel_mix:
            drifted_mix = np.array([spec.drift.channel_mix.get(c, 0.0) for c in names])
            after = acquired_at >= self.day_index(spec.drift.start)
            channel_idx[after] = rng.choice(len(names), size=int(after.sum()), p=drifted_mix / drifted_mix.sum())
        channel = np.array(names)[channel_idx]
        rate_mult = np.array([CHANNELS[c].rate for c in names])[channel_idx]
        dropout_mult = np.array([CHANNELS[c].dropout for c in names])[channel_idx]
        value_mult = np.array([CHANNELS[c].value for c in names])[channel_idx]

        shape = 0.9
        purchase_rate = rng.gamma(shape, 1 / (shape * spec.mean_days_between_orders), n) * rate_mult
        dropout_rate = rng.gamma(2.0, 1 / (2.0 * spec.mean_lifetime_days), n) * dropout_mult
        death_at = acquired_at + rng.exponential(1 / dropout_rate)
        active_until = np.minimum(death_at, horizon_end)

        expected = purchase_rate * (self.cumulative_at(active_until) - self.cumulative_at(acquired_at))
        repeat_counts = rng.poisson(expected)
        owner = np.repeat(np.arange(n), repeat_counts)
        m_lo = self.cumulative_at(acquired_at)[owner]
        m_hi = self.cumulative_at(active_until)[owner]
        repeat_times = self._time_at_cumulative(m_lo + rng.random(owner.size) * (m_hi - m_lo))

        order_owner = np.concatenate([np.arange(n), owner])
        order_time = np.concatenate([acquired_at, repeat_times])
        mean_value = rng.lognormal(np.log(spec.mean_order_value) - 0.125, 0.5, n) * value_mult
        value = mean_value[order_owner] * rng.lognormal(-0.06, 0.35, order_owner.size)
        if spec.drift is not None:
            value = np.where(order_time >= self.day_index(spec.drift.start), value * spec.drift.value_factor, value)

        dirt = spec.dirt
        n_guest = rng.binomial(order_owner.size, dirt.guest_rate)
        guest_time = self._time_at_cumulative(rng.random(n_guest) * self._cumulative[-1])
        guest_value = rng.lognormal(np.log(spec.mean_order_value) - 0.2, 0.6, n_guest)
        n_test = max(1, rng.binomial(order_owner.size, dirt.test_rate))
        test_time = self._time_at_cumulative(rng.random(n_test) * self._cumulative[-1])

        customer_col = np.concatenate([order_owner, np.full(n_guest, -1), np.full(n_test, -1)])
        time_col = np.concatenate([order_time, guest_time, test_time])
        value_col = np.round(np.concatenate([value, guest_value, np.full(n_test, 1.0)]), 2)
        is_test = np.concatenate([np.zeros(order_owner.size + n_guest, bool), np.ones(n_test, bool)])
        order = np.argsort(time_col, kind="stable")
        customer_col, time_col, value_col, is_test = (
            customer_col[order],
            time_col[order],
            value_col[order],
            is_test[order],
        )
        self.order_owner, self.order_time = order_owner, order_time  # customers' own orders (no guests, no tests)
        self.truth = pd.DataFrame(
            {
                "customer_id": CUSTOMER_ID_BASE + np.arange(n),
                "channel": channel,
                "acquired_at_day": acquired_at,
                "purchase_rate": purchase_rate,
                "dropout_rate": dropout_rate,
                "death_at_day": death_at,
                "mean_order_value": mean_value * np.exp(-0.06 + 0.35**2 / 2),  # E[value] of the next order
            }
        )
        self.orders = self._orders_frame(customer_col, time_col, value_col, is_test)
        self.customers = self._customers_frame(acquired_at, channel)

    def _timestamps(self, t: np.ndarray) -> pd.DatetimeIndex:
        local = pd.Timestamp(self.spec.start) + pd.to_timedelta(np.round(t * 86400), unit="s")
        return (
            pd.DatetimeIndex(local)
            .tz_localize(self.zone, ambiguous=np.zeros(len(local), bool), nonexistent="shift_forward")
            .tz_convert("UTC")
        )

    def _orders_frame(self, customer_idx, t, value, is_test) -> pd.DataFrame:
        rng, dirt, n = self._rng, self.spec.dirt, len(t)
        end_t = float(self._days)
        created = t
        cancelled = rng.random(n) < dirt.cancel_rate
        cancel_t = np.where(cancelled, created + rng.uniform(0.01, 2.0, n), np.nan)
        refunded = (~cancelled) & (rng.random(n) < dirt.refund_rate)
        refund_t = np.where(refunded, created + rng.uniform(2.0, 30.0, n), np.nan)
        refund_share = np.where(rng.random(n) < dirt.full_refund_share, 1.0, rng.uniform(0.1, 0.9, n))
        fulfilled = (~cancelled) & (rng.random(n) < dirt.fulfil_rate)
        fulfil_t = np.where(fulfilled, created + rng.uniform(0.2, 6.0, n), np.nan)
        cancel_t[cancel_t > end_t] = np.nan
        refund_t[refund_t > end_t] = np.nan
        fulfil_t[fulfil_t > end_t] = np.nan
        updated = np.fmax(np.fmax(np.fmax(created, cancel_t), refund_t), fulfil_t)

        refund_amount = np.where(np.isnan(refund_t), 0.0, np.round(value * refund_share, 2))
        subtotal = np.round(value / (1 + TAX_RATE), 2)
        discount = np.where(rng.random(n) < 0.2, np.round(subtotal * 0.1, 2), 0.0)
        financial = np.where(
            ~np.isnan(cancel_t),
            "voided",
            np.where(refund_amount <= 0, "paid", np.where(refund_amount >= value, "refunded", "partially_refunded")),
        )
        items = 1 + rng.poisson(0.6, n)
        frame = pd.DataFrame(
            {
                "order_id": ORDER_ID_BASE + np.arange(n, dtype=np.int64) * 7 + 3,
                "order_number": 1001 + np.arange(n),
                "customer_id": pd.array(np.where(customer_idx >= 0, CUSTOMER_ID_BASE + customer_idx, 0), dtype="Int64"),
                "created_at": self._timestamps(created),
                "updated_at": self._timestamps(updated),
                "cancelled_at": self._timestamps(cancel_t),
                "refunded_at": self._timestamps(refund_t),
                "total_price": value,
                "subtotal_price": subtotal,
                "total_tax": np.round(value - subtotal, 2),
                "total_discounts": discount,
                "total_refunded": refund_amount,
                "financial_status": financial,
                "fulfillment_status": np.where(np.isnan(fulfil_t), None, "fulfilled"),
                "test": is_test,
                "line_item_count": items,
                "item_quantity": items + rng.poisson(0.3, n),
                "source_name": rng.choice(["web", "web", "web", "pos", "iphone", "android"], n),
            }
        )
        frame.loc[customer_idx < 0, "customer_id"] = pd.NA
        return frame

    def _customers_frame(self, acquired_at: np.ndarray, channel: np.ndarray) -> pd.DataFrame:
        ids = CUSTOMER_ID_BASE + np.arange(self.spec.customers)
        created = self._timestamps(acquired_at - 10 / 86400)
        linked = self.orders.dropna(subset=["customer_id"])
        last_order = linked.groupby("customer_id")["created_at"].max()
        updated = pd.Series(created, index=ids).combine(last_order.reindex(ids), max)
        return pd.DataFrame(
            {
                "customer_id": ids,
                "created_at": created,
                "updated_at": pd.DatetimeIndex(updated.to_numpy()).tz_localize("UTC")
                if updated.dt.tz is None
                else updated.to_numpy(),
                "state": "enabled",
                "tags": [f"channel:{c}" for c in channel],
                "accepts_marketing": self._rng.random(self.spec.customers) < 0.55,
            }
        ).sort_values("customer_id", ignore_index=True)

    def raw_orders(self) -> pd.DataFrame:
        """The orders as the lake's `raw_orders` rows (latest state), for tests and benchmarks."""
        from mlops_assets.core.sources.records import to_frame

        orders = self.orders.rename(columns={"test": "is_test"}).assign(
            order_id=lambda f: f["order_id"].astype(str),
            customer_id=lambda f: f["customer_id"].astype("string"),
            order_name=None,
            processed_at=lambda f: f["created_at"],
            currency=self.spec.currency,
        )
        return to_frame("orders", orders)

    def order_versions(self) -> pd.DataFrame:
        """Each order as placed (unfulfilled, nothing cancelled or refunded) and, when it changed later, in its
        final state: what a shop's API returned on the day of each version, for replays of days ingested daily."""
        changed = self.orders.loc[self.orders["updated_at"] > self.orders["created_at"]]
        placed = changed.assign(
            updated_at=changed["created_at"],
            cancelled_at=pd.NaT,
            refunded_at=pd.NaT,
            total_refunded=0.0,
            financial_status="paid",
            fulfillment_status=None,
        )
        return pd.concat([self.orders, placed], ignore_index=True)

    @cached_property
    def end_utc(self) -> pd.Timestamp:
        return self._timestamps(np.array([float(self._days)]))[0]


def transaction_export(shop: SyntheticShop) -> pd.DataFrame:
    """The shop as a plain transaction log, the shape of a file tenant's CSV export."""
    orders = shop.orders[shop.orders["customer_id"].notna() & ~shop.orders["test"]]
    return pd.DataFrame(
        {
            "order_id": orders["order_id"].astype(str),
            "customer_id": orders["customer_id"].astype(str),
            "timestamp": orders["created_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "amount": orders["total_price"].round(2),
            "quantity": orders["item_quantity"],
        }
    )
