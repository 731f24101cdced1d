"""Tenant registry (migration 1 of the former hand-written ledger `mlops_schema_migrations`).

Revision ids 0001-0007 repeat that ledger's versions 1-7 one for one, so a database it migrated is
stamped at its last recorded version. Columns are those of the time, not today's table objects.
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("tenant_id", sa.String(63), primary_key=True),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("source_kind", sa.String(16), nullable=False),
        sa.Column("source_settings", sa.JSON, nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("horizon_days", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("source_kind in ('shopify', 'file')", name="tenants_source_kind"),
        sa.CheckConstraint("status in ('active', 'paused')", name="tenants_status"),
        sa.CheckConstraint("horizon_days between 1 and 365", name="tenants_horizon_days"),
    )


def downgrade() -> None:
    op.drop_table("tenants")
