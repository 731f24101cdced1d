"""Per-tenant API keys: shown once, hashed at rest, scoped to their tenant, revocable."""

import pytest
import sqlalchemy as sa

from mlops_assets.core.tenants.api_keys import ApiKeys
from mlops_assets_tests.helpers import SERVED_TENANT as TENANT


def test_api_keys_hash_decide_the_tenant_and_revoke(warehouse_url):
    keys = ApiKeys(warehouse_url)
    key_id, key = keys.create(TENANT, "dashboard")
    other_id, other = keys.create("globex")
    assert keys.authenticate(key).tenant_id == TENANT and keys.authenticate(other).tenant_id == "globex"
    engine = sa.create_engine(warehouse_url)
    with engine.connect() as conn:
        stored = " ".join(str(v) for row in conn.execute(sa.text("select * from api_keys")) for v in row)
    engine.dispose()
    assert key not in stored and key.split("_")[-1] not in stored, "only a hash is stored"
    assert keys.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert keys.authenticate("' or 1=1 --") is None and keys.authenticate(None) is None
    with pytest.raises(ValueError, match="no active API key"):
        keys.revoke("globex", key_id)
    keys.revoke(TENANT, key_id)
    assert keys.authenticate(key) is None and keys.authenticate(other).key_id == other_id
    assert [k["key_id"] for k in keys.list(TENANT)] == [key_id] and keys.list(TENANT)[0]["revoked_at"]
