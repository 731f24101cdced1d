"""Per-tenant API keys: the key decides the tenant; only its SHA-256 is stored.

A key is `mlk_<key id>_<secret>` with 256 bits of randomness, so a plain SHA-256 is enough (a slow
password hash protects guessable secrets, which these are not) and lookups stay one indexed query.
The key is shown once, at creation; the key id names it afterwards (list, revoke, logs).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from mlops_assets.core.tenants.ids import validate_tenant_id
from mlops_assets.core.warehouse.engine import Bindable, api_keys_table

KEY_SHAPE = re.compile(r"^mlk_([0-9a-f]{12})_[A-Za-z0-9_-]{43}$")
K = api_keys_table
ACTIVE_KEY = sa.select(K.c.tenant_id, K.c.key_id).where(
    K.c.key_hash == sa.bindparam("key_hash"), K.c.revoked_at.is_(None)
)


class ApiKeyError(ValueError):
    pass


@dataclass(frozen=True)
class Principal:
    """Who a request is: the tenant its key belongs to, and which key."""

    tenant_id: str
    key_id: str


def key_digest(key: str | None) -> str | None:
    """What the table stores of a key; None for anything not shaped like one of our keys."""
    return hashlib.sha256(key.encode()).hexdigest() if key and KEY_SHAPE.fullmatch(key) else None


class ApiKeys(Bindable):
    def create(self, tenant_id: str, label: str = "") -> tuple[str, str]:
        """(key id, key); the key is not stored and cannot be shown again."""
        validate_tenant_id(tenant_id)
        key_id = secrets.token_hex(6)
        key = f"mlk_{key_id}_{secrets.token_urlsafe(32)}"
        with self.engine.begin() as conn:
            conn.execute(
                K.insert().values(
                    key_id=key_id,
                    tenant_id=tenant_id,
                    key_hash=key_digest(key),
                    label=label[:200],
                    created_at=datetime.now(UTC),
                )
            )
        return key_id, key

    def revoke(self, tenant_id: str, key_id: str) -> None:
        with self.engine.begin() as conn:
            revoked = conn.execute(
                K.update()
                .where(K.c.tenant_id == validate_tenant_id(tenant_id), K.c.key_id == key_id, K.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            ).rowcount
        if not revoked:
            raise ApiKeyError(
                f"tenant {tenant_id} has no active API key {key_id!r} (fix: `mlops tenants api-key list {tenant_id}`)"
            )

    def list(self, tenant_id: str) -> list[dict]:
        query = (
            sa.select(K.c.key_id, K.c.label, K.c.created_at, K.c.revoked_at)
            .where(K.c.tenant_id == validate_tenant_id(tenant_id))
            .order_by(K.c.created_at)
        )
        return self._rows(query)

    def authenticate(self, key: str | None) -> Principal | None:
        digest = key_digest(key)
        if digest is None:
            return None
        with self._connect() as conn:
            row = conn.execute(ACTIVE_KEY, {"key_hash": digest}).first()
        return Principal(row.tenant_id, row.key_id) if row else None

    def is_active(self, principal: Principal) -> bool:
        """A dashboard session stays valid only while the key that opened it is not revoked."""
        query = sa.select(K.c.key_id).where(
            K.c.key_id == principal.key_id, K.c.tenant_id == principal.tenant_id, K.c.revoked_at.is_(None)
        )
        return bool(self._rows(query))
