"""Ingest: validate a contract folder (docs/data-contract.md) and load it into a warehouse.

`read` puts one contract file into a DuckDB staging table (structure first: it parses, the
header names each contract column once; then types, value by value); `load` runs every row
check in SQL over the staged tables, reports or quarantines bad rows, and writes the
warehouse whole (pipeline.warehouse). `zombiescan ingest`, the ingest stage, the dataset
adapter and `zombiescan score` (on contract files) all go through `ingest`.
"""

from pipeline.ingest.load import DEFAULT_MAX_REJECT_SHARE, IngestReport, TableReport, ingest

__all__ = ["DEFAULT_MAX_REJECT_SHARE", "IngestReport", "TableReport", "ingest"]
