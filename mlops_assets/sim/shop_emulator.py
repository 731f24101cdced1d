"""A local emulator of the Shopify Admin REST API serving synthetic shops.

It reproduces what an ingestion client has to get right against a real store: `status=open` as
the default (so a client that forgets `status=any` loses cancelled orders), inclusive
`updated_at_min/max`, `limit<=250`, opaque `page_info` cursors in the `Link` header that refuse
other filters, token auth, and the leaky bucket (40 requests, 2 per second) with 429 +
`Retry-After` and `X-Shopify-Shop-Api-Call-Limit`. Faults are opt-in: 5xx, latency, dropped
connections, malformed bodies, and, always on the same records like real bad data, malformed
records and fat-finger orders (a total a million times too large).
"""

from __future__ import annotations

import base64
import json
import random
import re
import threading
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from mlops_assets.sim.shops import SyntheticShop

MAX_LIMIT = 250
DEFAULT_LIMIT = 50
ROUTE = re.compile(
    r"^/shops/(?P<shop>[a-z0-9][a-z0-9_-]{0,62})/admin/api/(?P<version>\d{4}-\d{2})/(?P<resource>orders|customers)\.json$"
)
PAGE_INFO_COMPANIONS = {"limit", "fields", "page_info"}


@dataclass
class Faults:
    server_error_rate: float = 0.0
    latency_ms: float = 0.0
    drop_rate: float = 0.0
    malformed_body_rate: float = 0.0
    malformed_record_rate: float = 0.0
    outlier_order_rate: float = 0.0
    seed: int = 0

    def picks(self, kind: str, rate: float, record_id: int) -> bool:
        """Whether a record carries a fault: by a hash of the record, so every request and version agrees."""
        return rate > 0 and zlib.crc32(f"{self.seed}:{kind}:{record_id}".encode()) % 10_000 < rate * 10_000


OUTLIER_MULTIPLIER = 1_000_000  # a fat finger on the zero key, or cents read as millionths


class LeakyBucket:
    """Shopify's REST limiter: each request adds one; the bucket leaks `leak_per_s`."""

    def __init__(self, capacity: int = 40, leak_per_s: float = 2.0):
        self.capacity, self.leak_per_s = capacity, leak_per_s
        self._level, self._at = 0.0, time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> tuple[bool, int, float]:
        """(admitted, level shown in the header, seconds to wait when refused)."""
        with self._lock:
            now = time.monotonic()
            self._level = max(0.0, self._level - (now - self._at) * self.leak_per_s)
            self._at = now
            if self._level + 1 > self.capacity:
                return False, self.capacity, (self._level + 1 - self.capacity) / self.leak_per_s
            self._level += 1
            return True, int(np.ceil(self._level)), 0.0


NEVER = 2**53  # seconds; exact as a float, so it survives pandas' NaN filling


@dataclass
class _Table:
    """One resource of one shop, sorted by (updated_at, id) so filters and cursors are slices."""

    frame: pd.DataFrame
    updated_s: np.ndarray
    created_s: np.ndarray
    ids: np.ndarray
    superseded_s: np.ndarray  # when the next version of the same record appeared (never: NEVER)

    @classmethod
    def of(cls, frame: pd.DataFrame, id_column: str) -> _Table:
        frame = frame.sort_values(["updated_at", id_column], ignore_index=True)
        updated_s = frame["updated_at"].astype("int64").to_numpy() // 10**9
        ids = frame[id_column].to_numpy(np.int64)
        superseded = pd.Series(updated_s).groupby(ids).shift(-1).fillna(NEVER)
        return cls(
            frame=frame,
            updated_s=updated_s,
            created_s=frame["created_at"].astype("int64").to_numpy() // 10**9,
            ids=ids,
            superseded_s=superseded.to_numpy(np.int64),
        )


@dataclass
class EmulatedShop:
    """`as_of_request=True` answers as the shop did at the request's `updated_at_max` (an order placed on day d
    and fulfilled on d+3 is returned for d as placed, and for d+3 as fulfilled): a replay of days that were
    ingested daily. By default every record is served in its final state, as a real shop answers a backfill."""

    shop: SyntheticShop
    token: str
    bucket: LeakyBucket = field(default_factory=LeakyBucket)
    as_of_request: bool = False

    def __post_init__(self):
        orders = self.shop.order_versions() if self.as_of_request else self.shop.orders
        self.tables = {
            "orders": _Table.of(orders, "order_id"),
            "customers": _Table.of(self.shop.customers, "customer_id"),
        }


class BadRequest(Exception):
    def __init__(self, errors: object):
        self.errors = errors


def _parse_time(value: str, zone: ZoneInfo, name: str) -> int:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadRequest({name: f"invalid datetime {value!r}"}) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return int(parsed.timestamp())


def _iso(ts: pd.Timestamp | None, zone: ZoneInfo) -> str | None:
    if ts is None or pd.isna(ts):
        return None
    return ts.tz_convert(zone).isoformat()


def _money(x: float) -> str:
    return f"{x:.2f}"


class ShopApiEmulator:
    """Serves shops at http://HOST:PORT/shops/<name>; start() in a thread, stop() to free the port."""

    def __init__(
        self,
        shops: dict[str, EmulatedShop],
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults | None = None,
    ):
        self.shops = shops
        self.faults = faults or Faults()
        self._rng = random.Random(self.faults.seed)
        self._rng_lock = threading.Lock()
        self.request_log: list[tuple[str, int]] = []
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 (http.server's naming)
                emulator._handle(self)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def shop_url(self, name: str) -> str:
        return f"{self.base_url}/shops/{name}"

    def start(self) -> ShopApiEmulator:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="shop-emulator", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> ShopApiEmulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _chance(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._rng_lock:
            return self._rng.random() < rate

    def _send(self, handler, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.request_log.append((handler.path, status))
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(body)

    def _json(self, handler, status: int, payload: object, headers: dict[str, str] | None = None) -> None:
        self._send(handler, status, json.dumps(payload).encode(), headers)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        match = ROUTE.match(parts.path)
        if not match or match["shop"] not in self.shops:
            return self._json(handler, 404, {"errors": "Not Found"})
        shop = self.shops[match["shop"]]
        if handler.headers.get("X-Shopify-Access-Token") != shop.token:
            return self._json(
                handler, 401, {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
            )
        admitted, level, wait = shop.bucket.take()
        limit_header = {"X-Shopify-Shop-Api-Call-Limit": f"{level}/{shop.bucket.capacity}"}
        if not admitted:
            return self._json(
                handler,
                429,
                {
                    "errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume "
                    "uninterrupted service."
                },
                {**limit_header, "Retry-After": f"{max(wait, 0.05):.2f}"},
            )
        if self.faults.latency_ms:
            time.sleep(self.faults.latency_ms / 1000)
        if self._chance(self.faults.drop_rate):
            self.request_log.append((handler.path, 0))
            handler.close_connection = True
            return None
        if self._chance(self.faults.server_error_rate):
            return self._json(
                handler, self._rng.choice([500, 502, 503]), {"errors": "Internal Server Error"}, limit_header
            )
        try:
            body, link = self._page(shop, match["resource"], match["version"], parts.query)
        except BadRequest as exc:
            return self._json(handler, 400, {"errors": exc.errors}, limit_header)
        headers = {**limit_header, "X-Shopify-API-Version": match["version"]}
        if link:
            headers["Link"] = link
        payload = json.dumps(body).encode()
        if self._chance(self.faults.malformed_body_rate):
            payload = payload[: max(1, len(payload) // 2)]
        return self._send(handler, 200, payload, headers)

    def _page(self, shop: EmulatedShop, resource: str, version: str, query: str) -> tuple[dict, str | None]:
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        limit = params.get("limit", str(DEFAULT_LIMIT))
        if not limit.isdigit() or not 1 <= int(limit) <= MAX_LIMIT:
            raise BadRequest({"limit": f"must be between 1 and {MAX_LIMIT}"})
        limit = int(limit)
        if "page_info" in params:
            extra = set(params) - PAGE_INFO_COMPANIONS
            if extra:
                raise BadRequest({"page_info": f"cannot be passed with {sorted(extra)}; only limit and fields may be"})
            try:
                cursor = json.loads(base64.urlsafe_b64decode(params["page_info"].encode()))
                filters, after = cursor["filters"], tuple(cursor["after"])
            except (ValueError, KeyError, TypeError) as exc:
                raise BadRequest({"page_info": "Invalid value."}) from exc
        else:
            filters, after = {k: v for k, v in params.items() if k not in ("limit", "fields")}, None
        table = shop.tables[resource]
        positions = self._select(table, filters, shop.shop.zone, resource)
        if after is not None:
            mask = (table.updated_s[positions] > after[0]) | (
                (table.updated_s[positions] == after[0]) & (table.ids[positions] > after[1])
            )
            positions = positions[mask]
        page, rest = positions[:limit], positions[limit:]
        rows = [self._render(shop, resource, table.frame.iloc[int(i)]) for i in page]
        link = None
        if len(rest):
            last = int(page[-1])
            token = base64.urlsafe_b64encode(
                json.dumps({"filters": filters, "after": [int(table.updated_s[last]), int(table.ids[last])]}).encode()
            ).decode()
            url = f"{self.shop_url(self._name_of(shop))}/admin/api/{version}/{resource}.json"
            link = f'<{url}?{urlencode({"limit": limit, "page_info": token})}>; rel="next"'
        return {resource: rows}, link

    def _name_of(self, shop: EmulatedShop) -> str:
        return next(name for name, candidate in self.shops.items() if candidate is shop)

    @staticmethod
    def _select(table: _Table, filters: dict[str, str], zone: ZoneInfo, resource: str) -> np.ndarray:
        known = {"updated_at_min", "updated_at_max", "created_at_min", "created_at_max", "status", "ids"}
        unknown = set(filters) - known
        if unknown:
            raise BadRequest({k: "is not a supported filter" for k in sorted(unknown)})
        lo = _parse_time(filters["updated_at_min"], zone, "updated_at_min") if "updated_at_min" in filters else None
        hi = _parse_time(filters["updated_at_max"], zone, "updated_at_max") if "updated_at_max" in filters else None
        start = 0 if lo is None else int(np.searchsorted(table.updated_s, lo, side="left"))
        stop = len(table.updated_s) if hi is None else int(np.searchsorted(table.updated_s, hi, side="right"))
        positions = np.arange(start, max(start, stop))
        as_of = NEVER - 1 if hi is None else hi
        positions = positions[table.superseded_s[positions] > as_of]
        if "created_at_min" in filters:
            positions = positions[
                table.created_s[positions] >= _parse_time(filters["created_at_min"], zone, "created_at_min")
            ]
        if "created_at_max" in filters:
            positions = positions[
                table.created_s[positions] <= _parse_time(filters["created_at_max"], zone, "created_at_max")
            ]
        if "ids" in filters:
            wanted = np.array([int(x) for x in filters["ids"].split(",") if x.strip().isdigit()], np.int64)
            positions = positions[np.isin(table.ids[positions], wanted)]
        if resource == "orders":
            status = filters.get("status", "open")
            cancelled = table.frame["cancelled_at"].notna().to_numpy()[positions]
            if status == "open":
                positions = positions[~cancelled]
            elif status == "cancelled":
                positions = positions[cancelled]
            elif status == "closed":
                positions = positions[:0]
            elif status != "any":
                raise BadRequest({"status": f"{status!r} is not one of open, closed, cancelled, any"})
        return positions

    def _render(self, shop: EmulatedShop, resource: str, row: pd.Series) -> dict:
        zone = shop.shop.zone
        if resource == "customers":
            return {
                "id": int(row.customer_id),
                "admin_graphql_api_id": f"gid://shopify/Customer/{int(row.customer_id)}",
                "created_at": _iso(row.created_at, zone),
                "updated_at": _iso(row.updated_at, zone),
                "state": row.state,
                "tags": row.tags,
                "verified_email": True,
                "currency": shop.shop.spec.currency,
            }
        order_id = int(row.order_id)
        quantity = int(row.item_quantity)
        items = int(row.line_item_count)
        per_unit = row.subtotal_price / max(quantity, 1)
        line_items = [
            {
                "id": order_id * 10 + k,
                "quantity": quantity - items + 1 if k == 0 else 1,
                "price": _money(per_unit),
                "title": f"Product {k + 1}",
            }
            for k in range(items)
        ]
        refunds = []
        if not pd.isna(row.refunded_at):
            refunds.append(
                {
                    "id": order_id + 1,
                    "created_at": _iso(row.refunded_at, zone),
                    "transactions": [{"kind": "refund", "status": "success", "amount": _money(row.total_refunded)}],
                }
            )
        customer = None
        if not pd.isna(row.customer_id):
            customer = {
                "id": int(row.customer_id),
                "admin_graphql_api_id": f"gid://shopify/Customer/{int(row.customer_id)}",
            }
        record = {
            "id": order_id,
            "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
            "name": f"#{int(row.order_number)}",
            "order_number": int(row.order_number),
            "created_at": _iso(row.created_at, zone),
            "updated_at": _iso(row.updated_at, zone),
            "processed_at": _iso(row.created_at, zone),
            "cancelled_at": _iso(row.cancelled_at, zone),
            "cancel_reason": "customer" if not pd.isna(row.cancelled_at) else None,
            "currency": row.currency,
            "presentment_currency": row.currency,
            "total_price": _money(row.total_price),
            "subtotal_price": _money(row.subtotal_price),
            "total_tax": _money(row.total_tax),
            "total_discounts": _money(row.total_discounts),
            "financial_status": row.financial_status,
            "fulfillment_status": row.fulfillment_status,
            "test": bool(row.test),
            "source_name": row.source_name,
            "customer": customer,
            "line_items": line_items,
            "refunds": refunds,
        }
        if self.faults.picks("outlier", self.faults.outlier_order_rate, order_id):
            record["total_price"] = _money(row.total_price * OUTLIER_MULTIPLIER)
        if self.faults.picks("malformed", self.faults.malformed_record_rate, order_id):
            corruption = order_id % 3
            if corruption == 0:
                record["total_price"] = "12,34 EUR"
            elif corruption == 1:
                record["created_at"] = None
            else:
                record["id"] = None
        return record
