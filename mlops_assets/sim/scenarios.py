"""Drift scenarios for the synthetic shops, each a knob with a start day.

A scenario acts inside the generator, so the shop's ground truth (`sim.oracle`) follows it: global
levels (`LevelShift`) through the day's intensity and value factor; behaviour (`ChannelBehaviour`,
`Comeback`, `RhythmSwitch`, `AcquisitionShift`) through each customer's rates after the start day;
broken data (`CurrencySwitch`, `TrackingOutage`) only in the orders a shop serves, never in the truth.
Everything before the start day is the scenario-free shop's, order for order: the scenario draws
from a random stream of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

from mlops_assets.sim.shops import CHANNELS

MONEY_COLUMNS = ("total_price", "subtotal_price", "total_tax", "total_discounts", "total_refunded")


@dataclass(frozen=True)
class BehaviourChange:
    """Per customer, what changes from the start day on (factors of 1 and no revival: unchanged).
    `revived` customers are alive on the start day whether or not they had dropped out before it;
    `channel` is the acquisition channel of customers acquired from the start day on."""

    rate_factor: np.ndarray
    dropout_factor: np.ndarray
    value_factor: np.ndarray
    revived: np.ndarray
    channel: np.ndarray

    @classmethod
    def none(cls, truth: pd.DataFrame) -> BehaviourChange:
        ones = np.ones(len(truth))
        return cls(ones, ones.copy(), ones.copy(), np.zeros(len(truth), bool), truth["channel"].to_numpy())


@dataclass(frozen=True)
class Scenario:
    """No change; each knob overrides the hook its kind of drift acts through."""

    start: date

    def rate_multiplier(self, days: np.ndarray) -> np.ndarray:
        """The shop-wide purchase-rate multiplier of each day (`days`: an array of dates)."""
        return np.ones(len(days))

    def value_multiplier(self, days: np.ndarray) -> np.ndarray:
        return np.ones(len(days))

    def change_behaviour(self, truth: pd.DataFrame, start_t: float, rng: np.random.Generator) -> BehaviourChange | None:
        """`truth`: the scenario-free customers (`SyntheticShop.truth`); `start_t`: the start in days of history."""
        return None

    def corrupt(self, orders: pd.DataFrame, local_day: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
        """The orders as the shop serves them; `local_day`: each order's creation day in the shop's timezone."""
        return orders


@dataclass(frozen=True)
class LevelShift(Scenario):
    """Purchase rates and order values move to `rate_factor` and `value_factor` times their level: at once
    on `start`, or along a straight line from `start` to `end` (a slow trend), staying there after."""

    rate_factor: float = 1.0
    value_factor: float = 1.0
    end: date | None = None

    def __post_init__(self):
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"level shift: end {self.end} must come after start {self.start}")
        if self.rate_factor <= 0 or self.value_factor <= 0:
            raise ValueError("level shift: rate_factor and value_factor must be > 0")

    def _towards(self, factor: float, days: np.ndarray) -> np.ndarray:
        if self.end is None:
            return np.where(days >= self.start, factor, 1.0)
        elapsed = (days.astype("datetime64[D]") - np.datetime64(self.start)).astype(float)
        return 1.0 + (factor - 1.0) * np.clip(elapsed / (self.end - self.start).days, 0.0, 1.0)

    def rate_multiplier(self, days: np.ndarray) -> np.ndarray:
        return self._towards(self.rate_factor, days)

    def value_multiplier(self, days: np.ndarray) -> np.ndarray:
        return self._towards(self.value_factor, days)


def _check_channels(scenario: str, *names: str) -> None:
    unknown = [name for name in names if name not in CHANNELS]
    if unknown:
        raise ValueError(f"{scenario}: unknown channel(s) {unknown} (fix: one of {sorted(CHANNELS)})")


@dataclass(frozen=True)
class ChannelBehaviour(Scenario):
    """Customers of `loyal` buy `strength` times as often and stay `strength` times as long; those of
    `churning` the reverse. The channel is no feature: a model sees the change only in behaviour."""

    loyal: str = "social"
    churning: str = "email"
    strength: float = 4.0

    def __post_init__(self):
        _check_channels("channel behaviour", self.loyal, self.churning)
        if self.strength <= 0:
            raise ValueError("channel behaviour: strength must be > 0")

    def change_behaviour(self, truth, start_t, rng):
        change = BehaviourChange.none(truth)
        channel = truth["channel"].to_numpy()
        factor = np.where(
            channel == self.loyal, self.strength, np.where(channel == self.churning, 1 / self.strength, 1.0)
        )
        return BehaviourChange(factor, 1 / factor, change.value_factor, change.revived, change.channel)


@dataclass(frozen=True)
class Comeback(Scenario):
    """A new product line: a random `share` of the customers acquired before `start` are alive on it (the
    lapsed come back with a new lifetime) and buy `rate_factor` times as often from then on."""

    share: float = 0.3
    rate_factor: float = 1.5

    def __post_init__(self):
        if not 0 < self.share <= 1 or self.rate_factor <= 0:
            raise ValueError("comeback: share must be in (0, 1] and rate_factor > 0")

    def change_behaviour(self, truth, start_t, rng):
        change = BehaviourChange.none(truth)
        revived = (rng.random(len(truth)) < self.share) & (truth["acquired_at_day"].to_numpy() < start_t)
        rate = np.where(revived, self.rate_factor, 1.0)
        return BehaviourChange(rate, change.dropout_factor, change.value_factor, revived, change.channel)


@dataclass(frozen=True)
class RhythmSwitch(Scenario):
    """The segment that buys about monthly (mean days between orders within `monthly_days`) switches to a
    quarterly rhythm (`to_days` between orders); everyone else keeps theirs."""

    monthly_days: tuple[float, float] = (15.0, 45.0)
    to_days: float = 90.0

    def change_behaviour(self, truth, start_t, rng):
        change = BehaviourChange.none(truth)
        days_between = 1 / truth["purchase_rate"].to_numpy()
        segment = (days_between >= self.monthly_days[0]) & (days_between <= self.monthly_days[1])
        rate = np.where(segment, days_between / self.to_days, 1.0)
        return BehaviourChange(rate, change.dropout_factor, change.value_factor, change.revived, change.channel)


@dataclass(frozen=True)
class AcquisitionShift(Scenario):
    """Covariate shift: customers acquired from `start` on come through channels in the proportions `mix`;
    each channel's customers behave as before, so behaviour given the channel does not change."""

    mix: dict[str, float] = field(default_factory=lambda: {"social": 0.6, "paid_search": 0.3, "organic": 0.1})

    def __post_init__(self):
        _check_channels("acquisition shift", *self.mix)
        if min(self.mix.values()) < 0 or sum(self.mix.values()) <= 0:
            raise ValueError("acquisition shift: mix shares must be >= 0 with a positive sum")

    def change_behaviour(self, truth, start_t, rng):
        names = list(CHANNELS)
        weights = np.array([self.mix.get(name, 0.0) for name in names])
        new = truth["acquired_at_day"].to_numpy() >= start_t
        channel = truth["channel"].to_numpy().copy()
        channel[new] = np.array(names)[rng.choice(len(names), size=int(new.sum()), p=weights / weights.sum())]

        def ratio(attribute: str) -> np.ndarray:
            per_channel = {name: getattr(CHANNELS[name], attribute) for name in names}
            return np.array([per_channel[c] for c in channel]) / truth["channel"].map(per_channel).to_numpy()

        return BehaviourChange(ratio("rate"), ratio("dropout"), ratio("value"), np.zeros(len(truth), bool), channel)


@dataclass(frozen=True)
class CurrencySwitch(Scenario):
    """Broken data: from `start` on the shop reports orders in `currency`, amounts converted at `rate`."""

    currency: str = "JPY"
    rate: float = 150.0

    def corrupt(self, orders, local_day, rng):
        switched = local_day >= self.start
        orders = orders.copy()
        orders.loc[switched, "currency"] = self.currency
        for column in MONEY_COLUMNS:
            orders.loc[switched, column] = np.round(orders.loc[switched, column] * self.rate, 2)
        return orders


@dataclass(frozen=True)
class TrackingOutage(Scenario):
    """Broken data: a `share` of the orders placed in the `days` from `start` never reach the shop's API."""

    days: int = 3
    share: float = 0.5

    def corrupt(self, orders, local_day, rng):
        during = (local_day >= self.start) & (local_day < self.start + timedelta(days=self.days))
        lost = during & (rng.random(len(orders)) < self.share)
        return orders.loc[~lost].reset_index(drop=True)


SCENARIOS: dict[str, Callable[[date], Scenario]] = {
    "channel_flip": lambda start: ChannelBehaviour(start, loyal="social", churning="email"),
    "comeback": lambda start: Comeback(start),
    "quarterly_rhythm": lambda start: RhythmSwitch(start),
    "acquisition_surge": lambda start: AcquisitionShift(start),
    "level_shift": lambda start: LevelShift(start, rate_factor=0.5, value_factor=4.0),
    "slow_trend": lambda start: LevelShift(start, rate_factor=0.5, end=start + timedelta(days=120)),
    "currency_switch": lambda start: CurrencySwitch(start),
    "tracking_outage": lambda start: TrackingOutage(start),
}


def parse_scenario(option: str, default_start: date) -> Scenario:
    """`NAME[@YYYY-MM-DD]`, as `mlops shop-emulator --scenario` takes it."""
    name, _, day = option.partition("@")
    if name not in SCENARIOS:
        raise ValueError(f"scenario {name!r} is unknown (fix: one of {', '.join(SCENARIOS)})")
    try:
        start = date.fromisoformat(day) if day else default_start
    except ValueError as exc:
        raise ValueError(f"scenario {option!r}: the start day {day!r} is not YYYY-MM-DD") from exc
    return SCENARIOS[name](start)
