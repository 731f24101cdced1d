"""What each raw partition quarantined, and the orders operators released (revision 8)."""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    op.create_table(
        "ingestion_days",
        sa.Column("tenant_id", sa.String(63), primary_key=True),
        sa.Column("asset", sa.String(63), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("rows_read", sa.Integer, nullable=False),
        sa.Column("rows_written", sa.Integer, nullable=False),
        sa.Column("quarantined", sa.Integer, nullable=False),
        sa.Column("by_reason", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "released_orders",
        sa.Column("tenant_id", sa.String(63), primary_key=True),
        sa.Column("order_id", sa.String(128), primary_key=True),
        sa.Column("reason", sa.String(63), nullable=False),
        sa.Column("released_by", sa.String(200), nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("released_orders")
    op.drop_table("ingestion_days")
