"""Feature families, one module each: profile_, beh_, graph_, lock_ (docs/features.md).

Every function takes frames (polars or Arrow tables, contract column names) and returns a
polars frame keyed by `account_id`; the stage, notebooks and batch scoring call the same code.
"""
