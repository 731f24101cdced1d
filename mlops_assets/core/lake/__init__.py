"""The lake: Hive-style Parquet files written atomically with digests, and a tenant's order history as one dataset."""
