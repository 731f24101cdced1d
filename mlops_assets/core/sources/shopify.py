"""Ingestion client for the Shopify Admin REST API (and the project's emulator of it).

It follows `Link` cursors exactly as given, paces itself from `X-Shopify-Shop-Api-Call-Limit`
so it rarely meets a 429, honours `Retry-After`, and retries 5xx, dropped connections, timeouts
and truncated bodies with jittered exponential backoff (tenacity). The access token lives only
in the session's headers: it is never part of a URL, a log line, an exception or metadata.

Retries inside a run only ride out blips: a request gives up after `max_failures` attempts or
`max_retry_wait_s` seconds of backoff, whichever comes first, and a client whose request gave up
fails its later requests at once (the shop is down for this run). Outages are the healing sensor's
job, which retries the tenant-day ten minutes later; before, a shop in a 5xx storm held its run for
33 s per request while the tenants after it waited (benchmarks/chaos.py, docs/benchmarks.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential_jitter

from mlops_assets.core.sources.records import Validated, validate_records

log = logging.getLogger(__name__)
MAX_PAGE = 250


# The shop refuses this tenant's settings (token, scopes, shop URL, API version): no retry helps until they change.
SETTINGS_REJECTED = frozenset({401, 403, 404})


class ShopApiError(RuntimeError):
    """A request the client gave up on: a response retrying cannot fix (bad token, unknown shop, rejected
    request; `status` is its HTTP status) or a server that kept failing past the retry budget (`status` None)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status

    @property
    def permanent(self) -> bool:
        """True when only a change of the tenant's settings can fix it; later retries of the run cannot."""
        return self.status in SETTINGS_REJECTED


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


@dataclass
class FetchStats:
    requests: int = 0
    pages: int = 0
    records: int = 0
    rate_limited: int = 0
    retries: int = 0
    server_errors: int = 0
    connection_errors: int = 0
    malformed_bodies: int = 0
    paced_seconds: float = 0.0

    def add(self, other: FetchStats) -> FetchStats:
        for key, value in asdict(other).items():
            setattr(self, key, getattr(self, key) + value)
        return self

    def as_metadata(self) -> dict[str, float]:
        return {f"api_{k}": (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass
class ShopifyClient:
    shop_url: str
    token: str = field(repr=False)
    tenant_id: str = "?"
    api_version: str = "2025-01"
    page_limit: int = MAX_PAGE
    timeout: tuple[float, float] = (5.0, 30.0)
    bucket_capacity: int = 40
    leak_per_s: float = 2.0
    headroom: int = 1
    max_failures: int = 8
    max_retry_wait_s: float = 6.0
    initial_backoff_s: float = 0.25
    max_backoff_s: float = 30.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def __post_init__(self):
        if not 1 <= self.page_limit <= MAX_PAGE:
            raise ValueError(f"page_limit must be in [1, {MAX_PAGE}]")
        self._session = requests.Session()
        self._session.headers.update(
            {"X-Shopify-Access-Token": self.token, "Accept": "application/json", "User-Agent": "mlops-assets/0.1"}
        )
        self._level, self._level_at = 0.0, time.monotonic()
        self._gave_up: str | None = None

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> ShopifyClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _pace(self, stats: FetchStats) -> None:
        """Wait until the bucket as last reported, minus what leaked since, has room."""
        predicted = self._level - (time.monotonic() - self._level_at) * self.leak_per_s
        excess = predicted + 1 - (self.bucket_capacity - self.headroom)
        if excess > 0:
            wait = excess / self.leak_per_s
            stats.paced_seconds += wait
            self.sleep(wait)

    def _observe_limit(self, response: requests.Response) -> None:
        header = response.headers.get("X-Shopify-Shop-Api-Call-Limit", "")
        used, _, capacity = header.partition("/")
        if used.isdigit() and capacity.isdigit():
            self._level, self._level_at = float(used), time.monotonic()
            self.bucket_capacity = int(capacity)

    def _get_once(self, url: str, params: dict | None, stats: FetchStats) -> requests.Response:
        self._pace(stats)
        stats.requests += 1
        try:
            response = self._session.get(url, params=params, timeout=self.timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            stats.connection_errors += 1
            raise _Retryable(f"connection: {type(exc).__name__}") from None
        self._observe_limit(response)
        if response.status_code == 429:
            stats.rate_limited += 1
            self._level, self._level_at = float(self.bucket_capacity), time.monotonic()
            retry_after = response.headers.get("Retry-After")
            raise _Retryable("429 rate limited", float(retry_after) if retry_after else 2.0)
        if response.status_code >= 500:
            stats.server_errors += 1
            raise _Retryable(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            raise ShopApiError(self._explain(response), response.status_code)
        try:
            response.json()
        except ValueError:
            stats.malformed_bodies += 1
            raise _Retryable("malformed JSON body") from None
        return response

    def _explain(self, response: requests.Response) -> str:
        where = f"tenant {self.tenant_id}: GET {response.url.split('?')[0]}"
        if response.status_code in (401, 403):
            return (
                f"{where} -> {response.status_code}: the shop rejected the access token (fix: check the token in "
                "the variable named by the tenant's token_env, and the app's read_orders/read_customers scopes)"
            )
        if response.status_code == 404:
            return f"{where} -> 404: no such shop or API version (fix: check the tenant's shop_url and api_version)"
        return f"{where} -> {response.status_code}: {response.text[:300]} (fix: check the request parameters)"

    def _get(self, url: str, params: dict | None, stats: FetchStats) -> requests.Response:
        endpoint = url.split("?")[0]
        if self._gave_up is not None:
            raise ShopApiError(
                f"tenant {self.tenant_id}: {endpoint} not tried, the shop already failed in this run "
                f"({self._gave_up}); re-run the partition when the shop recovers"
            )
        failures = {"count": 0, "backoff_s": 0.0}

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception()
            if isinstance(error, _Retryable) and error.retry_after is not None:
                return error.retry_after
            backoff = wait_exponential_jitter(
                multiplier=self.initial_backoff_s, max=self.max_backoff_s, jitter=self.initial_backoff_s
            )(state)
            failures["backoff_s"] += backoff
            return backoff

        def stop(state: RetryCallState) -> bool:
            """Rate limits are paced, not failures; anything else counts toward both limits."""
            error = state.outcome.exception()
            if not (isinstance(error, _Retryable) and error.retry_after is not None):
                failures["count"] += 1
            return failures["count"] >= self.max_failures or failures["backoff_s"] > self.max_retry_wait_s

        def before_sleep(state: RetryCallState) -> None:
            stats.retries += 1
            log.debug("tenant %s: retrying after %s", self.tenant_id, state.outcome.exception())

        try:
            for attempt in Retrying(
                retry=retry_if_exception_type(_Retryable),
                wait=wait,
                stop=stop,
                sleep=self.sleep,
                before_sleep=before_sleep,
                reraise=True,
            ):
                with attempt:
                    return self._get_once(url, params, stats)
        except _Retryable as exc:
            self._gave_up = f"{exc.reason} after {failures['count']} attempts"
            raise ShopApiError(
                f"tenant {self.tenant_id}: {endpoint} still failing after {failures['count']} attempts "
                f"({exc.reason}); re-run the partition when the shop recovers"
            ) from None
        raise AssertionError("unreachable")

    def fetch(
        self, resource: str, updated_min: datetime | None, updated_max: datetime
    ) -> tuple[list[dict], FetchStats]:
        """Every record of `resource` whose updated_at lies in [updated_min, updated_max); no min = all history."""
        if resource not in ("orders", "customers"):
            raise ValueError(f"unknown resource {resource!r}")
        stats = FetchStats()
        url = f"{self.shop_url}/admin/api/{self.api_version}/{resource}.json"
        params: dict | None = {
            "limit": self.page_limit,
            "updated_at_max": (updated_max - timedelta(seconds=1)).isoformat(),
        }
        if updated_min is not None:
            params["updated_at_min"] = updated_min.isoformat()
        if resource == "orders":
            params["status"] = "any"
        records: list[dict] = []
        while url:
            response = self._get(url, params, stats)
            stats.pages += 1
            records.extend(response.json().get(resource, []))
            url, params = response.links.get("next", {}).get("url"), None
        stats.records = len(records)
        return records, stats

    def fetch_days(
        self, resource: str, first_day: date | None, end_day: date, zone: ZoneInfo
    ) -> tuple[Validated, FetchStats]:
        """Days [first_day, end_day) in the tenant's timezone, by updated_at, every version the walk saw
        (screening keeps the latest per id and day, and names conflicting copies).

        One cursor sweep serves a whole range: a 2-year history is a few hundred pages, not a
        request per day. `first_day=None` reaches back to the shop's first record.
        """
        start = None if first_day is None else datetime.combine(first_day, datetime.min.time(), zone)
        end = datetime.combine(end_day, datetime.min.time(), zone)
        records, stats = self.fetch(resource, start, end)
        return validate_records(resource, records, self.tenant_id), stats

    def fetch_day(self, resource: str, day: date, zone: ZoneInfo) -> tuple[Validated, FetchStats]:
        return self.fetch_days(resource, day, day + timedelta(days=1), zone)
