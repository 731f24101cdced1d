"""Where a tenant's orders come from: a Shopify-shaped shop API or a transaction export file.

The registry stores these settings as JSON next to the tenant's `source_kind` (the shape existing
databases hold: no `kind` key inside); `parse_source` reads them into the typed model of that kind.
Secrets are referenced, never stored: a Shopify tenant names the environment variable that holds
its access token.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from mlops_assets.core.tenants.validation import TenantSettingError, setting_problems

SourceKind = Literal["shopify", "file"]
FileField = Literal["customer_id", "timestamp", "amount", "order_id", "quantity", "currency"]
FILE_FIELDS: tuple[str, ...] = get_args(FileField)
SHOPIFY_API_VERSION = "2025-01"
# The most the robust outlier limit tolerates above the tenant's median order value (`screening.outlier_limit`).
OUTLIER_FACTOR = 1000.0


class SourceSettingError(TenantSettingError):
    pass


class _Source(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    outlier_factor: float = Field(
        OUTLIER_FACTOR, gt=1, allow_inf_nan=False, description="a number > 1, e.g. 1000 (the default)"
    )

    def stored(self) -> dict[str, Any]:
        """The JSON the registry keeps: the settings given, without the kind (a column of its own)."""
        return self.model_dump(exclude_unset=True)


class ShopifySource(_Source):
    kind: Literal["shopify"] = Field("shopify", exclude=True)
    shop_url: str = Field(description="--shop-url, e.g. https://acme.myshopify.com")
    token_env: str = Field(
        pattern=r"^[A-Z_][A-Z0-9_]{0,127}$",
        description="--token-env with the NAME of the variable holding the token, e.g. ACME_SHOPIFY_TOKEN; "
        "never the token itself",
    )
    api_version: str = Field(
        SHOPIFY_API_VERSION, pattern=r"^(\d{4}-\d{2}|unstable)$", description="--api-version, e.g. 2025-01"
    )

    @field_validator("shop_url")
    @classmethod
    def _plain_http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PydanticCustomError("shop_url", "not an http(s) URL")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise PydanticCustomError(
                "shop_url",
                "must not carry credentials, a query or a fragment; a token belongs in an environment variable "
                "named by --token-env",
            )
        return url.rstrip("/")


class FileSource(_Source):
    kind: Literal["file"] = Field("file", exclude=True)
    path: str = Field(min_length=1, description="--path, a CSV or Parquet export, local or s3://")
    format: Literal["csv", "parquet"] = Field("csv", description="--format csv or parquet")
    columns: dict[FileField, str] = Field(
        default_factory=dict, description=f"--column FIELD=COLUMN with FIELD one of {', '.join(FILE_FIELDS)}"
    )
    delimiter: str = Field(",", min_length=1, description="--delimiter, e.g. ';', or 'whitespace'")

    @model_validator(mode="before")
    @classmethod
    def _format_from_suffix(cls, values: Any) -> Any:
        """Stored with the format the suffix implies, so a later default can never reread an export differently."""
        if isinstance(values, dict) and "format" not in values and isinstance(values.get("path"), str):
            return {**values, "format": "parquet" if values["path"].endswith(".parquet") else "csv"}
        return values

    @field_validator("format", mode="before")
    @classmethod
    def _case_blind(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    def column_names(self) -> dict[str, str]:
        """The export's column for each field: its own name unless mapped."""
        return {**{name: name for name in FILE_FIELDS}, **self.columns}

    def __hash__(self) -> int:  # the columns dict would make the generated hash fail; exports are cached by it
        return hash((self.path, self.format, self.delimiter, tuple(sorted(self.columns.items()))))


SourceSettings = Annotated[ShopifySource | FileSource, Field(discriminator="kind")]
_SOURCE = TypeAdapter(SourceSettings)


def parse_source(kind: str, settings: dict[str, Any], tenant_id: str | None = None) -> ShopifySource | FileSource:
    """The typed settings of a source of `kind`; a bad one names the tenant, the field and the fix."""
    if kind not in get_args(SourceKind):
        subject = f"tenant {tenant_id}: " if tenant_id else ""
        raise SourceSettingError(f"{subject}source {kind!r} must be 'shopify' or 'file' (fix: --source shopify|file)")
    model = ShopifySource if kind == "shopify" else FileSource
    try:
        return _SOURCE.validate_python({**settings, "kind": kind})
    except ValidationError as exc:
        # The union puts the kind first in each error's location: the field follows it.
        errors = [{**error, "loc": error["loc"][1:]} for error in exc.errors()]
        raise SourceSettingError(setting_problems(errors, model, tenant_id, "source")) from None
