"""Each customer's orders, for the dashboard's customer page and `/v1/customers/{id}/orders` (revision 10)."""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    op.create_table(
        "customer_orders",
        sa.Column("tenant_id", sa.String(63), primary_key=True),
        sa.Column("order_id", sa.String(128), primary_key=True),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("ordered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("total", sa.Float, nullable=False),
        sa.Column("refunded", sa.Float, nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lake_day", sa.Date),
    )
    op.create_index("customer_orders_by_customer", "customer_orders", ["tenant_id", "customer_id", "ordered_at"])
    op.create_index("customer_orders_by_lake_day", "customer_orders", ["tenant_id", "lake_day"])


def downgrade() -> None:
    op.drop_index("customer_orders_by_lake_day", "customer_orders")
    op.drop_index("customer_orders_by_customer", "customer_orders")
    op.drop_table("customer_orders")
