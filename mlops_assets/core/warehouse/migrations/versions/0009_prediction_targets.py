"""Every target of issue 16 on `predictions`, and their day's summary on `prediction_batches` (revision 9).

All nullable: rows written before this revision have no targets, and every reader shows them as such.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    op.add_column("predictions", sa.Column("expected_orders", sa.Float))
    op.add_column("predictions", sa.Column("expected_revenue", sa.Float))
    op.add_column("predictions", sa.Column("clv_365d", sa.Float))
    op.add_column(
        "predictions",
        sa.Column(
            "churn_probability",
            sa.Float,
            sa.CheckConstraint("churn_probability between 0 and 1", name="predictions_churn_probability"),
        ),
    )
    op.add_column("predictions", sa.Column("expected_next_order_date", sa.Date))
    op.add_column(
        "predictions",
        sa.Column(
            "spend_tier",
            sa.String(8),
            sa.CheckConstraint("spend_tier in ('high', 'medium', 'low')", name="predictions_spend_tier"),
        ),
    )
    op.add_column("prediction_batches", sa.Column("targets", sa.JSON))


def downgrade() -> None:
    op.drop_column("prediction_batches", "targets")
    for name in ("spend_tier", "expected_next_order_date", "churn_probability", "clv_365d", "expected_revenue",
                 "expected_orders"):  # fmt: skip
        op.drop_column("predictions", name)
