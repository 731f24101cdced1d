"""Every target's monitoring on `monitoring_days` (revision 11): the PSI of each target beside the repurchase
score's, each target's realized metrics, the day and version of the 365-day targets' predictions, and the
targets that failed their floor.

All nullable: a day monitored before this revision, or a target not measured that day, holds NULL.
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"

COLUMNS = [
    ("churn_probability_psi", sa.Float),
    ("expected_orders_psi", sa.Float),
    ("expected_revenue_psi", sa.Float),
    ("clv_365d_psi", sa.Float),
    ("realized_churn_probability_auc", sa.Float),
    ("realized_churn_probability_brier", sa.Float),
    ("realized_expected_orders_gini", sa.Float),
    ("realized_expected_orders_mae", sa.Float),
    ("realized_expected_orders_bias", sa.Float),
    ("realized_expected_revenue_gini", sa.Float),
    ("realized_expected_revenue_mae", sa.Float),
    ("realized_expected_revenue_bias", sa.Float),
    ("realized_clv_365d_gini", sa.Float),
    ("realized_clv_365d_mae", sa.Float),
    ("realized_clv_365d_bias", sa.Float),
    ("year_predicted_on", sa.Date),
    ("year_model_version", sa.String(32)),
    ("target_alarms", sa.Text),
]


def upgrade() -> None:
    for name, kind in COLUMNS:
        op.add_column("monitoring_days", sa.Column(name, kind))


def downgrade() -> None:
    for name, _ in reversed(COLUMNS):
        op.drop_column("monitoring_days", name)
