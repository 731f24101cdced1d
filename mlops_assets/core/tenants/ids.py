"""Tenant id rules, enforced at every entry point (CLI, registry, sensors, IO manager, SQL).

A `|` would break Dagster's multi-partition key parsing, and `/` or `..` would escape the
lake's Hive layout, so ids are restricted to a conservative slug.
"""

import re

TENANT_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{1,62}$")


class InvalidTenantId(ValueError):
    pass


def validate_tenant_id(tenant_id: object) -> str:
    if not isinstance(tenant_id, str) or not TENANT_ID_PATTERN.fullmatch(tenant_id):
        raise InvalidTenantId(
            f"invalid tenant id {tenant_id!r}: a tenant id is 2-63 characters of lowercase letters, "
            "digits, '_' or '-', starting with a letter or digit (fix: e.g. 'acme-shop')"
        )
    return tenant_id
