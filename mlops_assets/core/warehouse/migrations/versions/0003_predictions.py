"""Predictions, one row per tenant, customer and day (ledger migration 3)."""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("tenant_id", sa.String(63), primary_key=True),
        sa.Column("customer_id", sa.String(128), primary_key=True),
        sa.Column("as_of_date", sa.Date, primary_key=True),
        sa.Column("repurchase_probability", sa.Float, nullable=False),
        sa.Column("risk_band", sa.String(8), nullable=False),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("percentile", sa.Float, nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("feature_version", sa.String(80), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("top_reasons", sa.Text, nullable=False),
        sa.CheckConstraint("repurchase_probability between 0 and 1", name="predictions_probability"),
        sa.CheckConstraint("risk_band in ('high', 'medium', 'low')", name="predictions_risk_band"),
    )
    op.create_index("predictions_by_day_rank", "predictions", ["tenant_id", "as_of_date", "rank"])


def downgrade() -> None:
    op.drop_table("predictions")
