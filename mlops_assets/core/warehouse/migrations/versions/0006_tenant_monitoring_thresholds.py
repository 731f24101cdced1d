"""Per-tenant monitoring thresholds (ledger migration 6): a column on tenants, '{}' for existing rows."""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.add_column("tenants", sa.Column("monitoring", sa.JSON, nullable=False, server_default=sa.text("'{}'")))


def downgrade() -> None:
    op.drop_column("tenants", "monitoring")
