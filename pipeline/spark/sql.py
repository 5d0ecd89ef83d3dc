"""The feature SQL on Spark: pipeline/features/sql/*.sql transpiled from DuckDB's dialect by sqlglot.

The files are the one definition of the profile_ and beh_ features. sqlglot carries most of
DuckDB's dialect to Spark SQL; the few forms it does not carry with the same meaning are
rewritten on the parsed tree here (`_spark_form`), never by keeping a second copy of a query:

- DuckDB's list aggregates (`list_median`, `list_avg`, `list_stddev_pop`) become Spark
  higher-order functions over the same array;
- `list[i]` (1-based in DuckDB) becomes `element_at(list, i)` (1-based in Spark; `[]` is 0-based);
- `list(x ORDER BY x)` becomes `array_sort(collect_list(x))` (Spark's collect_list has no order);
- `epoch(ts)` becomes the fractional seconds `CAST(ts AS DOUBLE)` (Spark's unix_timestamp drops them);
- `list_reduce(list, lambda, initial)` becomes `aggregate(list, initial, lambda)`;
- `string_split(text, '')`, the text's characters, takes them by position (Spark's split is by
  regular expression, and an empty one splits UTF-16 units and leaves a trailing empty string);
- `map_values(list_histogram(list))`, the count of each distinct value, becomes a count per
  `array_distinct` value: the same counts, in order of first appearance where DuckDB sorts them
  by value (the one use sums them exactly, in decimals, so the order does not matter);
- a script's temp tables become temp views (`CREATE OR REPLACE TEMPORARY VIEW`).

tests/test_spark.py runs both engines on the same world and compares every column to 1e-9.
"""

from __future__ import annotations

from datetime import datetime
from importlib.resources import files
from typing import TYPE_CHECKING, Any, cast

from pipeline.db import literal
from pipeline.errors import ZombieScanError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from sqlglot import exp

# Spark forms of DuckDB's list aggregates; {a} is the array. They run left to right over the array
# (aggregate), as DuckDB's list functions do: the sum in order, the deviation by Welford's update.
_MEAN = "(aggregate({a}, CAST(0 AS DOUBLE), (acc, x) -> acc + x) / size({a}))"
_WELFORD = (
    "aggregate({a}, named_struct('n', CAST(0 AS DOUBLE), 'mean', CAST(0 AS DOUBLE), 'm2', CAST(0 AS DOUBLE)), "
    "(s, x) -> named_struct('n', s.n + 1, 'mean', s.mean + (x - s.mean) / (s.n + 1), "
    "'m2', s.m2 + (x - s.mean) * (x - (s.mean + (x - s.mean) / (s.n + 1)))), s -> sqrt(s.m2 / s.n))"
)
LIST_FUNCTIONS = {
    "LIST_AVG": _MEAN,
    "LIST_STDDEV_POP": _WELFORD,
    # the mean of the two middle values for an even count, as DuckDB's median; the array is sorted
    # once and bound to `s` by a one-element transform (Spark SQL has no let)
    "LIST_MEDIAN": (
        "element_at(transform(array(array_sort({a})), s -> CASE WHEN size(s) % 2 = 1 "
        "THEN CAST(element_at(s, CAST((size(s) + 1) DIV 2 AS INT)) AS DOUBLE) "
        "ELSE (element_at(s, CAST(size(s) DIV 2 AS INT)) + element_at(s, CAST(size(s) DIV 2 + 1 AS INT))) / 2 END), 1)"
    ),
}


def spark_sql(sql_file: str, params: dict[str, Any]) -> list[str]:
    """The Spark SQL statements of one feature file (the last one is the SELECT of the features),
    its `$name` parameters written in as literals (Spark SQL has no bound parameters for a whole
    script; every value here comes from the code or a parsed datetime, never from data)."""
    return transpile(files("pipeline.features").joinpath("sql", sql_file).read_text(), params)


def transpile(text: str, params: dict[str, Any]) -> list[str]:
    """Any DuckDB SQL text of the package (a feature file, the pages query) as Spark statements."""
    import sqlglot

    text = "\n".join(line for line in text.splitlines() if not line.strip().startswith("--"))
    for name, value in sorted(params.items(), key=lambda kv: -len(kv[0])):  # $young_hours before $young
        text = text.replace(f"${name}", _literal(value))
    trees = [tree for tree in sqlglot.parse(text, read="duckdb") if tree is not None]
    return [tree.transform(_spark_form).sql("spark") for tree in trees]


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ZombieScanError(f"reference time {value}: needs a time zone")
        return f"TIMESTAMPTZ {literal(value.isoformat())}"
    if isinstance(value, bool | int | float):
        return repr(value)
    raise ZombieScanError(f"feature SQL parameter {value!r}: not a time or a number")


def _spark_form(node: exp.Expression) -> exp.Expression:
    """One node in the form Spark gives the same meaning (see the module docstring)."""
    import sqlglot
    from sqlglot import exp

    if isinstance(node, exp.Anonymous) and node.name.upper() in LIST_FUNCTIONS:
        array = node.expressions[0].sql("spark")
        return cast("exp.Expression", sqlglot.parse_one(LIST_FUNCTIONS[node.name.upper()].format(a=array), read="spark"))
    if isinstance(node, exp.Anonymous) and node.name.upper() == "LIST_REDUCE" and len(node.expressions) == 3:
        # a replaced node's arguments are not visited by the transform: rewritten here
        items, merge, initial = (arg.transform(_spark_form) for arg in node.expressions)
        return exp.Anonymous(this="AGGREGATE", expressions=[items, initial, merge])
    if isinstance(node, exp.Anonymous) and node.name.upper() == "MAP_VALUES" and _is_call(node.expressions[0], "LIST_HISTOGRAM"):
        array = node.expressions[0].expressions[0].transform(_spark_form).sql("spark")
        counts = f"transform(array_distinct({array}), hist_value -> size(filter({array}, hist_item -> hist_item = hist_value)))"
        return cast("exp.Expression", sqlglot.parse_one(counts, read="spark"))
    if isinstance(node, exp.Split) and node.expression == exp.Literal.string(""):
        text = node.this.transform(_spark_form).sql("spark")
        return cast(
            "exp.Expression",
            sqlglot.parse_one(f"transform(sequence(1, length({text})), char_at -> substring({text}, char_at, 1))", read="spark"),
        )
    if isinstance(node, exp.Bracket) and len(node.expressions) == 1:
        return exp.Anonymous(this="ELEMENT_AT", expressions=[node.this, node.expressions[0]])
    if isinstance(node, exp.ArrayAgg) and isinstance(node.this, exp.Order):
        keys = node.this.expressions
        if len(keys) != 1 or keys[0].this != node.this.this or keys[0].args.get("desc"):
            raise ZombieScanError(f"feature SQL: {node.sql('duckdb')}: on Spark a list can only be ordered by its own values, ascending")
        return exp.Anonymous(this="ARRAY_SORT", expressions=[exp.Anonymous(this="COLLECT_LIST", expressions=[node.this.this])])
    if isinstance(node, exp.TimeToUnix):
        return exp.Cast(this=node.this, to=exp.DataType.build("DOUBLE"))
    if isinstance(node, exp.Create) and node.args.get("kind") == "TABLE":
        node.set("kind", "VIEW")  # in place: the transform goes on into its query
        node.set("replace", True)
    return node


def _is_call(node: exp.Expression, name: str) -> bool:
    from sqlglot import exp

    return isinstance(node, exp.Anonymous) and node.name.upper() == name


def run_feature_sql(spark: SparkSession, sql_file: str, params: dict[str, Any]) -> DataFrame:
    """Run one feature file on the session; the contract tables must be temp views by their names."""
    statements = spark_sql(sql_file, params)
    for statement in statements[:-1]:
        spark.sql(statement)
    return spark.sql(statements[-1])
