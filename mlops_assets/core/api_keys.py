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

from mlops_assets.core.tenant_ids import validate_tenant_id
from mlops_assets.core.warehouse import api_keys_table, engine_for

KEY_SHAPE = re.compile(r"^mlk_([0-9a-f]{12})_[A-Za-z0-9_-]{43}$")
K = api_keys_table


class ApiKeyError(ValueError):
    pass


@dataclass(frozen=True)
class Principal:
    """Who a request is: the tenant its key belongs to, and which key."""

    tenant_id: str
    key_id: str


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    def __init__(self, warehouse_url: str):
        self.engine = engine_for(warehouse_url)

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
                    key_hash=_digest(key),
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
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def authenticate(self, key: str | None) -> Principal | None:
        if not key or not KEY_SHAPE.fullmatch(key):
            return None
        query = sa.select(K.c.tenant_id, K.c.key_id).where(K.c.key_hash == _digest(key), K.c.revoked_at.is_(None))
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return Principal(row.tenant_id, row.key_id) if row else None

    def is_active(self, principal: Principal) -> bool:
        """A dashboard session stays valid only while the key that opened it is not revoked."""
        query = sa.select(K.c.key_id).where(
            K.c.key_id == principal.key_id, K.c.tenant_id == principal.tenant_id, K.c.revoked_at.is_(None)
        )
        with self.engine.connect() as conn:
            return conn.execute(query).first() is not None
