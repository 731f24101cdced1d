"""Prediction batch summaries, one row per tenant-day (ledger migration 4)."""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "prediction_batches",
        sa.Column("tenant_id", sa.String(63), primary_key=True),
        sa.Column("as_of_date", sa.Date, primary_key=True),
        sa.Column("customers", sa.Integer, nullable=False),
        sa.Column("mean_probability", sa.Float, nullable=False),
        sa.Column("band_counts", sa.JSON, nullable=False),
        sa.Column("histogram", sa.JSON, nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("model_kind", sa.String(32), nullable=False),
        sa.Column("model_metrics", sa.JSON, nullable=False),
        sa.Column("feature_version", sa.String(80), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("prediction_batches")
