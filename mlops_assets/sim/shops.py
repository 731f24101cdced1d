"""Synthetic shops with known ground truth.

Each customer has a latent purchase rate (Gamma) and a lifetime (exponential dropout), modulated
by weekly and yearly seasonality and an optional drift scenario (`sim.scenarios`): the Pareto/NBD
story, so every target's truth is known (`sim.oracle`: the probability of ordering in the next H
days, P(alive), expected orders and spend). On top of the latent purchases comes the dirt of a real
shop: guest checkouts, test orders, cancellations, refunds and orders updated days after they were placed.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from mlops_assets.sim.scenarios import BehaviourChange, Scenario

CUSTOMER_ID_BASE = 7_000_000_000
ORDER_ID_BASE = 5_000_000_000
TAX_RATE = 0.08
ORDER_VALUE_NOISE = (-0.06, 0.35)  # lognormal (mean log, sigma) of an order's value around its customer's
ORDER_VALUE_NOISE_MEAN = float(np.exp(ORDER_VALUE_NOISE[0] + ORDER_VALUE_NOISE[1] ** 2 / 2))


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
    scenario: Scenario | None = None
    dirt: Dirt = field(default_factory=Dirt)

    def __post_init__(self):
        if not 100 <= self.customers <= 200_000:
            raise ValueError(f"shop {self.name}: customers={self.customers} must be in [100, 200000]")
        if self.history_days < 30:
            raise ValueError(f"shop {self.name}: history_days={self.history_days} must be >= 30")
        if self.scenario is not None and not self.start <= self.scenario.start <= self.end:
            raise ValueError(
                f"shop {self.name}: the scenario starts on {self.scenario.start}, outside the history "
                f"{self.start}..{self.end} (fix: a start day inside it)"
            )

    @property
    def start(self) -> date:
        return self.end - timedelta(days=self.history_days - 1)


class SyntheticShop:
    """The whole history of one shop, as of the end of `spec.end` in the shop's timezone."""

    def __init__(self, spec: ShopSpec):
        self.spec = spec
        self.zone = ZoneInfo(spec.timezone)
        self._seed = zlib.crc32(spec.name.encode()) ^ spec.seed
        self._rng = np.random.default_rng(self._seed)
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
        if self.spec.scenario is not None:
            intensity = intensity * self.spec.scenario.rate_multiplier(days.date)
        return intensity

    def value_factor_on(self, days: pd.DatetimeIndex) -> np.ndarray:
        """The order-value multiplier of each day (a level shift's, from its start)."""
        if self.spec.scenario is None:
            return np.ones(len(days))
        return self.spec.scenario.value_multiplier(days.date)

    def _value_factor_at(self, t: np.ndarray) -> np.ndarray:
        factors = self.value_factor_on(pd.date_range(self.spec.start, periods=self._days, freq="D"))
        return factors[np.clip(np.floor(t).astype(int), 0, self._days - 1)]

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
        value = mean_value[order_owner] * rng.lognormal(*ORDER_VALUE_NOISE, order_owner.size)
        if spec.scenario is not None:
            value = value * self._value_factor_at(order_time)

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
                "mean_order_value": mean_value * ORDER_VALUE_NOISE_MEAN,  # E[value] of the next order
            }
        )
        self.orders = self._orders_frame(customer_col, time_col, value_col, is_test, rng)
        self.change_at: float | None = None  # the day (in days of history) customers' behaviour changes
        if spec.scenario is not None:
            self._apply_scenario(spec.scenario)
        self.customers = self._customers_frame(self.truth["acquired_at_day"].to_numpy(), self.truth["channel"])

    def _apply_scenario(self, scenario: Scenario) -> None:
        """From the scenario's own random stream, so every order before its start stays the calm shop's."""
        rng = np.random.default_rng([self._seed, zlib.crc32(type(scenario).__name__.encode())])
        start_t = float(self.day_index(scenario.start))
        change = scenario.change_behaviour(self.truth, start_t, rng)
        if change is not None:
            self.change_at = start_t
            self._change_behaviour(change, start_t, rng)
        local_day = self.orders["created_at"].dt.tz_convert(self.zone).dt.date.to_numpy()
        self.orders = scenario.corrupt(self.orders, local_day, rng)

    def _change_behaviour(self, change: BehaviourChange, start_t: float, rng: np.random.Generator) -> None:
        """Each changed customer's orders from the start (or their acquisition, if later) are drawn anew with the
        new rates; a residual lifetime is rescaled to the new dropout, a revived customer's drawn afresh."""
        truth = self.truth
        acquired, death = truth["acquired_at_day"].to_numpy(), truth["death_at_day"].to_numpy()
        rate = truth["purchase_rate"].to_numpy() * change.rate_factor
        dropout = truth["dropout_rate"].to_numpy() * change.dropout_factor
        mean_value = truth["mean_order_value"].to_numpy() * change.value_factor
        begin = np.maximum(acquired, start_t)
        alive = death >= begin
        revived = change.revived & ~alive
        death = np.where(alive, begin + (death - begin) / change.dropout_factor, death)
        death[revived] = start_t + rng.exponential(1 / dropout[revived])
        changed = (change.rate_factor != 1) | (change.dropout_factor != 1) | (change.value_factor != 1) | revived
        changed |= change.channel != truth["channel"].to_numpy()
        whole_life = acquired >= start_t
        self.truth = truth.assign(
            channel=change.channel,
            death_at_day=death,
            purchase_rate=np.where(whole_life, rate, truth["purchase_rate"]),
            dropout_rate=np.where(whole_life, dropout, truth["dropout_rate"]),
            mean_order_value=np.where(whole_life, mean_value, truth["mean_order_value"]),
            purchase_rate_after=rate,
            dropout_rate_after=dropout,
            mean_order_value_after=mean_value,
            revived=change.revived & ~whole_life,
        )

        until = np.minimum(death, float(self._days))
        expected = np.where(
            changed & (until > begin), rate * (self.cumulative_at(until) - self.cumulative_at(begin)), 0
        )
        owner = np.repeat(np.arange(len(truth)), rng.poisson(expected))
        m_lo, m_hi = self.cumulative_at(begin)[owner], self.cumulative_at(until)[owner]
        first = np.flatnonzero(changed & whole_life)
        new_owner = np.concatenate([first, owner])
        new_time = np.concatenate(
            [acquired[first], self._time_at_cumulative(m_lo + rng.random(owner.size) * (m_hi - m_lo))]
        )
        noise = rng.lognormal(*ORDER_VALUE_NOISE, new_owner.size) / ORDER_VALUE_NOISE_MEAN
        new_value = np.round(mean_value[new_owner] * noise * self._value_factor_at(new_time), 2)

        placed_since = np.round(self.order_time * 86400) >= start_t * 86400  # rounded as `created_at` is
        redrawn = changed[self.order_owner] & placed_since
        self.order_owner = np.concatenate([self.order_owner[~redrawn], new_owner])
        self.order_time = np.concatenate([self.order_time[~redrawn], new_time])
        customer_idx = self.orders["customer_id"].to_numpy(dtype=float, na_value=np.nan) - CUSTOMER_ID_BASE
        placed = (self.orders["created_at"] >= self._timestamps(np.array([start_t]))[0]).to_numpy()
        dropped = placed & np.isin(customer_idx, np.flatnonzero(changed))
        order = np.argsort(new_time, kind="stable")
        new_orders = self._orders_frame(
            new_owner[order], new_time[order], new_value[order], np.zeros(len(order), bool), rng
        )
        orders = pd.concat([self.orders.loc[~dropped], new_orders]).sort_values("created_at", kind="stable")
        self.orders = orders.assign(
            order_id=ORDER_ID_BASE + np.arange(len(orders), dtype=np.int64) * 7 + 3,
            order_number=1001 + np.arange(len(orders)),
        ).reset_index(drop=True)

    def _timestamps(self, t: np.ndarray) -> pd.DatetimeIndex:
        local = pd.Timestamp(self.spec.start) + pd.to_timedelta(np.round(t * 86400), unit="s")
        return (
            pd.DatetimeIndex(local)
            .tz_localize(self.zone, ambiguous=np.zeros(len(local), bool), nonexistent="shift_forward")
            .tz_convert("UTC")
        )

    def _orders_frame(self, customer_idx, t, value, is_test, rng: np.random.Generator) -> pd.DataFrame:
        dirt, n = self.spec.dirt, len(t)
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
                "currency": self.spec.currency,
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
