"""IO managers: Hive-partitioned Parquet over UPath (local or s3://) and the warehouse DB.

Lake paths are `<lake>/<asset>/tenant=<t>/date=<d>/part-0.parquet`. A step over tenant-days hands
over the healthy partitions (`batching.PartitionValues`); each is written whole and materialized
with its own rows, path and content digest (the data version); a failed write fails only its
tenant-day. Inputs load the partitions whose upstream did not fail in this run; one that cannot be read
fails only its tenant-day (`isolation.load_partitions`).
"""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pyarrow as pa
from upath import UPath

from mlops_assets.batching import PartitionValues, write_partitions
from mlops_assets.core.lake import files as lake
from mlops_assets.core.ml.scoring import batch_summary
from mlops_assets.core.sources.records import CUSTOMERS_SCHEMA, ORDERS_SCHEMA
from mlops_assets.core.warehouse.prediction_store import read_partition, refresh_statistics, write_partition
from mlops_assets.isolation import load_partitions
from mlops_assets.partitions import tenant_and_day

LAKE_SCHEMAS: dict[str, pa.Schema] = {"raw_orders": ORDERS_SCHEMA, "raw_customers": CUSTOMERS_SCHEMA}


class HiveParquetIOManager(dg.UPathIOManager):
    extension = None

    def __init__(self, root: UPath):
        super().__init__(base_path=root)
        self.root = root

    def get_path_for_partition(self, context, path: UPath, partition: str) -> UPath:
        day, _, tenant_id = partition.partition("/")
        return lake.partition_path(self.root, context.asset_key.path[-1], tenant_id, day)

    def _schema(self, context, frame: pd.DataFrame) -> pa.Schema:
        schema = LAKE_SCHEMAS.get(context.asset_key.path[-1])
        return schema if schema is not None else pa.Schema.from_pandas(frame, preserve_index=False)

    def dump_to_path(self, context: dg.OutputContext, obj: pd.DataFrame, path: UPath) -> None:
        written = lake.write_frame(path, obj, self._schema(context, obj))
        context.add_output_metadata({"rows": written["rows"], "bytes": written["bytes"], "digest": written["digest"]})

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pd.DataFrame:
        """The frame, with the file's sha256 (its data version) in `attrs["digest"]`: no metadata query later."""
        return lake.read_frame(path, with_digest=True)

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        if not isinstance(obj, PartitionValues):
            return super().handle_output(context, obj)

        def write(key: str, frame: pd.DataFrame) -> dict:
            tenant_id, day = tenant_and_day(key)
            path = lake.partition_path(self.root, context.asset_key.path[-1], tenant_id, day)
            written = lake.write_frame(path, frame, self._schema(context, frame))
            return {
                "rows": written["rows"],
                "bytes": written["bytes"],
                "digest": written["digest"],
                "path": dg.MetadataValue.path(written["path"]),
            }

        write_partitions(context, obj, write)

    def load_input(self, context: dg.InputContext):
        if not context.has_asset_partitions:
            return super().load_input(context)
        name = context.asset_key.path[-1]

        def read(key: str) -> pd.DataFrame:
            return self.load_from_path(context, lake.partition_path(self.root, name, *tenant_and_day(key)))

        return load_partitions(context, read)


class LakeIOManager(dg.ConfigurableIOManagerFactory):
    """The lake as an IO manager; configured by the same URL as the lake resource."""

    url: str
    s3_endpoint_url: str | None = None

    def create_io_manager(self, context) -> HiveParquetIOManager:
        return HiveParquetIOManager(lake.lake_root(self.url, self.s3_endpoint_url))


class WarehouseIOManager(dg.ConfigurableIOManager):
    """Predictions in the warehouse DB (PostgreSQL or SQLite): each tenant-day replaced in one transaction.

    The asset returns frames; where they land is this configuration. Summaries for the dashboard
    are written in the same transaction, so the overview never disagrees with the rows.
    """

    warehouse_url: str

    def handle_output(self, context: dg.OutputContext, obj: PartitionValues) -> None:
        def write(key: str, frame: pd.DataFrame) -> dict:
            tenant_id, day = tenant_and_day(key)
            rows = write_partition(self.warehouse_url, tenant_id, day, frame, batch_summary(frame), context.run_id)
            return {"rows": rows, "table": "predictions", "tenant": tenant_id, "as_of_date": day.isoformat()}

        write_partitions(context, obj, write)
        refresh_statistics(self.warehouse_url)

    def load_input(self, context: dg.InputContext):
        return load_partitions(context, lambda key: read_partition(self.warehouse_url, *tenant_and_day(key)))
