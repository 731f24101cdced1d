import pytest

from mlops_assets.core.tenants.ids import InvalidTenantId, validate_tenant_id


@pytest.mark.parametrize("tenant_id", ["ab", "acme", "acme-shop_2", "0shop", "a" * 63])
def test_accepts_slugs(tenant_id):
    assert validate_tenant_id(tenant_id) == tenant_id


@pytest.mark.parametrize(
    "tenant_id",
    [
        "a|b",
        "../x",
        "a/b",
        "A",
        "Acme",
        "",
        "a",
        "a" * 64,
        "-acme",
        "_acme",
        "acme shop",
        "acme'; drop table x;--",
        "acme\n",
        None,
        42,
    ],
)
def test_rejects_everything_else_with_the_fix(tenant_id):
    with pytest.raises(InvalidTenantId, match="fix"):
        validate_tenant_id(tenant_id)
