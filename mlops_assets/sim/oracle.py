"""What each customer of a synthetic shop truly does next, from the generator's own parameters.

A customer buys at rate lambda times the day's seasonal intensity while alive and dies at an
exponential rate mu (Pareto/NBD). Given lambda, mu and the customer's observed purchases, P(alive)
at t0 is exact, and so are the expected orders and spend over any window: P(alive) times
lambda times the intensity integrated against survival exp(-mu u), day by day (the intensity is
constant within a day). A scenario that changes behaviour (`sim.scenarios`) switches each customer
to their rates after its start day, and a revived customer is alive on it. `oracle` gives P(an order
within H) at two levels of knowledge; `ground_truth` gives the truth of every other target (issue 16).
"""

from __future__ import annotations

import zlib
from datetime import date, timedelta

import numpy as np
import pandas as pd

from mlops_assets.sim.shops import CHANNELS, SyntheticShop

CLV_DAYS = 365


def _start_of_day_after(shop: SyntheticShop, as_of: date) -> float:
    t0 = float(shop.day_index(as_of) + 1)
    if not 1 <= t0 <= shop.spec.history_days:
        raise ValueError(f"as_of {as_of} is outside the shop's history {shop.spec.start}..{shop.spec.end}")
    return t0


def _last_order_before(shop: SyntheticShop, t0: float) -> tuple[np.ndarray, np.ndarray]:
    """Each customer's repeat orders before t0 and the time of their last order (NaN if none yet)."""
    owner, when = shop.order_owner, shop.order_time
    seen = when < t0
    last = np.full(len(shop.truth), np.nan)
    np.fmax.at(last, owner[seen], when[seen])
    return np.bincount(owner[seen], minlength=len(shop.truth)) - 1, last


def _segment(shop: SyntheticShop, lam, mu, start: np.ndarray, end) -> tuple[np.ndarray, np.ndarray]:
    """P(alive and silent through [start, end)), P(died silent in it): the two ways to show no order, for one
    alive at `start` with constant rates. `lam` and `mu` are per customer (n,) or per customer and draw
    (n, draws); the seasonal average of a span past the history is that of its part inside it."""
    gap = end - start
    covered = np.broadcast_to(np.minimum(end, float(shop.spec.history_days)), start.shape)
    seasonal_gap = shop.cumulative_at(covered) - shop.cumulative_at(start)
    covered_gap = np.maximum(covered - start, 1e-9)
    if np.ndim(lam) == 2:
        gap, seasonal_gap, covered_gap = gap[:, None], seasonal_gap[:, None], covered_gap[:, None]
    lam_gap = lam * seasonal_gap / covered_gap
    alive_and_silent = np.exp(-(mu + lam_gap) * gap)
    return alive_and_silent, mu / (lam_gap + mu) * (1 - alive_and_silent)


def _silence(shop: SyntheticShop, start, end) -> tuple[np.ndarray, np.ndarray]:
    """`_segment` by each customer's true rates: before the scenario's change, then after it, where a
    revived customer is alive whatever happened before."""
    truth = shop.truth
    start = np.broadcast_to(np.asarray(start, float), len(truth))
    lam, mu = truth["purchase_rate"].to_numpy(), truth["dropout_rate"].to_numpy()
    change = shop.change_at
    if change is None:
        return _segment(shop, lam, mu, start, end)
    lam_after, mu_after = truth["purchase_rate_after"].to_numpy(), truth["dropout_rate_after"].to_numpy()
    changed = (lam_after != lam) | (mu_after != mu) | truth["revived"].to_numpy()
    split = np.where(changed, np.clip(change, start, end), end)  # the unchanged keep the calm shop's truth exactly
    alive_before, died_before = _segment(shop, lam, mu, start, split)
    alive_after, died_after = _segment(shop, lam_after, mu_after, split, end)
    reset = truth["revived"].to_numpy() & (start < change) & (change <= end)
    alive_at_change = np.where(reset, alive_before + died_before, alive_before)
    return alive_at_change * alive_after, np.where(reset, 0.0, died_before) + alive_at_change * died_after


def _channel_multipliers(shop: SyntheticShop) -> tuple[np.ndarray, np.ndarray]:
    names = list(CHANNELS)
    codes = pd.Categorical(shop.truth["channel"].to_numpy(), names).codes
    return (
        np.array([CHANNELS[c].rate for c in names])[codes],
        np.array([CHANNELS[c].dropout for c in names])[codes],
    )


def _posterior_probability(
    shop: SyntheticShop, known: np.ndarray, t0: float, horizon_days: int, samples: int = 2000, chunk: int = 2000
) -> np.ndarray:
    """P(order within H | what the shop's data shows, the true population prior).

    Importance sampling over (rate, dropout) drawn from the generator's own prior (per channel):
    each draw is weighted by the likelihood of the customer's observed purchases (count, first and
    last time); the ceiling a model can reach from observable data, unlike `p_true`. The prior is the
    calm shop's: a scenario's change of behaviour is not in it.
    """
    spec, truth = shop.spec, shop.truth
    rng = np.random.default_rng(zlib.crc32(f"oracle:{spec.name}:{spec.seed}".encode()))
    base_rate = rng.gamma(0.9, 1 / (0.9 * spec.mean_days_between_orders), samples)
    base_dropout = rng.gamma(2.0, 1 / (2.0 * spec.mean_lifetime_days), samples)
    rate_mult, dropout_mult = _channel_multipliers(shop)
    count, last = _last_order_before(shop, t0)
    first = truth["acquired_at_day"].to_numpy()
    t1 = min(t0 + horizon_days, float(spec.history_days))
    m_t0 = shop.cumulative_at(np.array([t0]))[0]
    season_h = (shop.cumulative_at(np.array([t1]))[0] - m_t0) / max(t1 - t0, 1e-9)
    result = np.full(len(truth), np.nan)
    for lo in range(0, len(truth), chunk):
        rows = np.flatnonzero(known[lo : lo + chunk]) + lo
        if not len(rows):
            continue
        lam = base_rate[None, :] * rate_mult[rows, None]
        mu = base_dropout[None, :] * dropout_mult[rows, None]
        active = (shop.cumulative_at(last[rows]) - shop.cumulative_at(first[rows]))[:, None]
        silent_alive, silent_dead = _segment(shop, lam, mu, last[rows], t0)
        log_like = (
            count[rows, None] * np.log(lam)
            - lam * active
            - mu * (last[rows] - first[rows])[:, None]
            + np.log(silent_alive + silent_dead)
        )
        weight = np.exp(log_like - log_like.max(axis=1, keepdims=True))
        rate = lam * season_h + mu
        no_order = mu / rate * (1 - np.exp(-rate * horizon_days)) + np.exp(-rate * horizon_days)
        p_alive = silent_alive / (silent_alive + silent_dead)
        result[rows] = (weight * p_alive * (1 - no_order)).sum(axis=1) / weight.sum(axis=1)
    return result


def _true_p_alive(shop: SyntheticShop, t0: float) -> np.ndarray:
    _, last = _last_order_before(shop, t0)
    alive_and_silent, died_silent = _silence(shop, last, t0)
    return alive_and_silent / (alive_and_silent + died_silent)


def _p_order(shop: SyntheticShop, t0: float, horizon_days: int) -> np.ndarray:
    """P(an order within [t0, t0 + H)) by the true rates: alive now and ordering before dropout, or revived
    by a scenario's change within the window and ordering after it."""
    p_alive = _true_p_alive(shop, t0)
    alive_and_silent, died_silent = _silence(shop, t0, t0 + horizon_days)
    p_order = p_alive * (1 - (died_silent + alive_and_silent))
    change = shop.change_at
    if change is not None and t0 < change < t0 + horizon_days:
        alive_and_silent, died_silent = _silence(shop, change, t0 + horizon_days)
        back = shop.truth["revived"].to_numpy() * (1 - (died_silent + alive_and_silent))
        p_order = p_order + (1 - p_alive) * back
    return p_order


def oracle(shop: SyntheticShop, as_of: date, horizon_days: int = 30) -> pd.DataFrame:
    """True probabilities that each customer known at the end of `as_of` orders in the next H days.

    `p_true` is Bayes-optimal given each customer's latent rate and dropout and their observed
    purchases: P(alive | history) times P(an order before dropout within the horizon); no model
    can see the latent parameters, so its AUC is an upper bound nothing reaches. `p_observed` is
    Bayes-optimal given only what the data shows (purchases and channel) and the true population
    prior: the ceiling a model can reach. Seasonality enters through the effective rate over the
    gap and over the horizon. `ordered` is what happened.
    """
    t0 = _start_of_day_after(shop, as_of)
    truth = shop.truth
    known = truth["acquired_at_day"].to_numpy() < t0
    owner, when = shop.order_owner, shop.order_time
    future = (when >= t0) & (when < t0 + horizon_days)
    ordered = np.zeros(len(truth), bool)
    ordered[owner[future]] = True
    result = pd.DataFrame(
        {
            "customer_id": truth["customer_id"],
            "p_true": _p_order(shop, t0, horizon_days),
            "p_observed": _posterior_probability(shop, known, t0, horizon_days),
            "alive": truth["death_at_day"].to_numpy() >= t0,
            "ordered": ordered,
            "horizon_complete": t0 + horizon_days <= shop.spec.history_days,
        }
    )
    return result[known].reset_index(drop=True)


def _expected_orders_and_spend(
    shop: SyntheticShop, t0: float, known: np.ndarray, p_alive: np.ndarray, days: int, chunk: int = 2000
) -> np.ndarray:
    """Per known customer, the expected orders and spend (before the dirt) over the next `days`: day by day,
    P(alive through the day) times the day's intensity and the customer's rate, and for spend their mean
    order value and the day's value factor; a scenario's change switches the rates on its day. (n, 2)."""
    truth, change = shop.truth, shop.change_at
    dates = pd.date_range(pd.Timestamp(shop.spec.start) + timedelta(days=t0), periods=days, freq="D")
    intensity, value_factor = shop.intensity_on(dates), shop.value_factor_on(dates)
    columns = ["purchase_rate", "dropout_rate", "mean_order_value"]
    before = truth.loc[known, columns].to_numpy()
    if change is None:
        after_change, after, revived = np.zeros(days, bool), before, np.zeros(len(before), bool)
    else:
        after_change = t0 + np.arange(days) >= change
        after = truth.loc[known, [f"{column}_after" for column in columns]].to_numpy()
        revived = truth.loc[known, "revived"].to_numpy() & (t0 < change)
    result = np.empty((len(before), 2))
    for lo in range(0, len(before), chunk):
        rows = slice(lo, lo + chunk)
        lam, mu, value = (np.where(after_change, after[rows, k, None], before[rows, k, None]) for k in range(3))
        hazard_before_day = np.cumsum(mu, axis=1) - mu
        reset = revived[rows, None] & after_change  # alive on the change's day for sure, survival counted from it
        if reset.any():
            at_change = hazard_before_day[:, [int(np.argmax(after_change))]]
            hazard_before_day = np.where(reset, hazard_before_day - at_change, hazard_before_day)
        alive = np.where(reset, 1.0, p_alive[rows, None]) * np.exp(-hazard_before_day) * -np.expm1(-mu) / mu
        orders = alive * lam * intensity
        result[rows] = np.stack([orders.sum(axis=1), (orders * value * value_factor).sum(axis=1)], axis=1)
    return result


def ground_truth(shop: SyntheticShop, as_of: date, horizon_days: int = 30) -> pd.DataFrame:
    """Every target's truth for each customer known at the end of `as_of`, given their latent rate,
    dropout and mean order value and their observed purchases (the `p_true` level of knowledge).

    Orders and spend are what the labels count: orders not cancelled, spend net of refunds (the
    shop's dirt rates), so `expected_orders` compares with `target_labels`' `orders` directly. The
    365-day window may run past the shop's last day: the seasonality continues there.
    """
    t0 = _start_of_day_after(shop, as_of)
    truth = shop.truth
    known = truth["acquired_at_day"].to_numpy() < t0
    p_alive = _true_p_alive(shop, t0)[known]
    dirt = shop.spec.dirt
    columns = {"customer_id": truth["customer_id"].to_numpy()[known], "p_alive": p_alive}
    for name, days in (("h", horizon_days), ("365d", CLV_DAYS)):
        orders, spend = _expected_orders_and_spend(shop, t0, known, p_alive, days).T
        columns[f"expected_orders_{name}"] = orders * (1 - dirt.cancel_rate)
        columns[f"expected_spend_{name}"] = spend * dirt.kept_value_share
    return pd.DataFrame(columns)
