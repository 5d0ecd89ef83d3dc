"""Feature families, one module each: profile_, beh_, rate_ (data with engagement values), graph_, lock_ (docs/features.md).

`families.FAMILIES` lists them in column order; each module defines its `Family` (prefix,
`compute`, analyst wording) beside its SQL or code, and `build` runs them all over a DuckDB
connection that shows the warehouse cut at the reference time. Each module also has a function
over polars frames (`profile_features(accounts, ...)`, `lockstep(engagements, ...)`) for
notebooks and tests; `build.build_features` computes every family from frames the same way.
"""
