"""Daily monitoring summaries, one row per tenant-day (ledger migration 7)."""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.create_table(
        "monitoring_days",
        sa.Column("tenant_id", sa.String(63), primary_key=True),
        sa.Column("as_of_date", sa.Date, primary_key=True),
        sa.Column("model_version", sa.String(32)),
        sa.Column("reference_day", sa.String(10)),
        sa.Column("drifted_share", sa.Float),
        sa.Column("drifted_features", sa.Text),
        sa.Column("prediction_psi", sa.Float),
        sa.Column("drift_alarms", sa.Text),
        sa.Column("predicted_on", sa.Date),
        sa.Column("realized_model_version", sa.String(32)),
        sa.Column("realized_auc", sa.Float),
        sa.Column("realized_brier", sa.Float),
        sa.Column("top_decile_precision", sa.Float),
        sa.Column("holdout_auc", sa.Float),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("monitoring_days")
