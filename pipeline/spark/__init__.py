"""The Spark engine (optional extra `zombiescan[spark]`): the same feature definitions as the
DuckDB engine, run on Apache Spark when one machine is not enough (docs/scale.md).

`session` starts a Spark session (local or a cluster master) with every process bound to
127.0.0.1 unless a cluster is named; `sql` runs the feature SQL files on it, transpiled from
DuckDB's dialect by sqlglot: one definition per feature, never a hand-kept second copy.
"""
