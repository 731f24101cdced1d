"""Model promotion log (ledger migration 2)."""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "model_promotions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("alias", sa.String(32), nullable=False),
        sa.Column("version", sa.String(32)),
        sa.Column("previous_version", sa.String(32)),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("run_id", sa.String(64)),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("action in ('promote', 'refuse', 'rollback')", name="model_promotions_action"),
    )
    op.create_index("ix_model_promotions_tenant_id", "model_promotions", ["tenant_id"])


def downgrade() -> None:
    op.drop_table("model_promotions")
