"""The REST API and the tenant dashboard, reading the warehouse only (no Dagster, MLflow or pandas)."""
