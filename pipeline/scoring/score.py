"""Scores, decisions and reasons in words for every account, from features and the task models.

`score_accounts` (frames) and `score_warehouse` (a warehouse, out of core) compute the features with the
pipeline's own code (`pipeline.features.build`), checks that each model was trained on exactly
those features (names, order, dtypes), and scores all accounts with one `Booster.predict` per
task on a contiguous float32 matrix. Reasons (SHAP values equal to LightGBM's `pred_contrib`,
computed by pipeline.scoring.treeshap) only for the accounts that need them: the flagged ones, or
all with `explain="all"`. `score_profiles` scores
accounts that come without engagements, from the profile features alone, by the profile-only models.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pipeline.db import literal
from pipeline.errors import ZombieScanError
from pipeline.features import families
from pipeline.features.build import build_features, computed_features
from pipeline.features.families import wording
from pipeline.features.family import Context
from pipeline.features.lockstep import LockstepParams, empty_groups
from pipeline.features.query import feature_connection
from pipeline.models.train import TaskModel, beyond_profile, check_features, to_matrix
from pipeline.scoring.treeshap import raw_scores, shap_values
from pipeline.warehouse import attach

EXPLAIN = ("flagged", "all", "none")
TOP_REASONS = 3
REASON = pl.Struct({"feature": pl.String, "value": pl.Float64, "contribution": pl.Float64, "text": pl.String})


@dataclass
class ScoreReport:
    accounts: int
    flagged: dict[str, int]
    seconds: float


# Rows scored at a time: bounds the model step's working memory (float32 matrix, pred_contrib and
# its sort) to a few hundred MB whatever the number of accounts; large enough that LightGBM's
# per-call overhead does not show.
CHUNK_SIZE = 100_000

Progress = Callable[[str, int, int], None]
"""A progress callback: (step, done, total)."""


def score_features(
    features: pl.DataFrame,
    models: dict[str, TaskModel],
    *,
    explain: str = "flagged",
    versions: dict[str, str] | None = None,
    scored_at: datetime | None = None,
    chunk_size: int = CHUNK_SIZE,
    progress: Progress | None = None,
) -> pl.DataFrame:
    """Scores, decisions and reasons for every row of a features frame (one row per account),
    `chunk_size` rows at a time."""
    _check(features, models, explain, chunk_size)
    chunks = (features.slice(offset, chunk_size) for offset in range(0, max(features.height, 1), chunk_size))
    parts = list(_scored(chunks, features.height, models, explain, versions or {}, scored_at or datetime.now(UTC), progress, chunk_size))
    return pl.concat(parts, rechunk=True) if len(parts) > 1 else parts[0]


def _check_request(explain: str, chunk_size: int) -> None:
    if explain not in EXPLAIN:
        raise ZombieScanError(f"explain: {explain!r} is not one of {', '.join(EXPLAIN)}")
    if chunk_size < 1:
        raise ZombieScanError(f"chunk size: {chunk_size} must be at least 1")


def _check(features: pl.DataFrame, models: dict[str, TaskModel], explain: str, chunk_size: int) -> None:
    """The request and the models against the features' columns (`features` may have no rows)."""
    _check_request(explain, chunk_size)
    for task, model in models.items():
        check_features(features, model.features, model.dtypes, task)
        if model.booster is None:
            raise ZombieScanError(f"{task}: the model has no booster")


def _scored(
    chunks: Iterable[pl.DataFrame],
    total: int,
    models: dict[str, TaskModel],
    explain: str,
    versions: dict[str, str],
    scored_at: datetime,
    progress: Progress | None,
    chunk_size: int,
) -> Iterator[pl.DataFrame]:
    """Each chunk scored, with its reasons and `scored_at`; the chunks' columns besides the features
    (has_engagements, lockstep_group) are carried after it.

    Chunks wait, scored, until their rows to explain reach `chunk_size` (or HELD_CHUNKS chunks
    wait; chunks with no row to explain never wait): then one TreeSHAP call explains them all and
    they are yielded in order. A call computes a tree's values once per distinct decision word
    (the rows' path through the tree), and the more rows a call has, the more share a word: the
    million-account world's 127k flagged rows took 8.0 s in one call and 14.6 s in ten, one per
    100k-account chunk. The rows held for it are bounded as the scoring matrix is, by `chunk_size`."""
    if progress is not None:
        progress("scoring", 0, total)
    done = 0
    held: list[_Pending] = []
    for chunk in chunks:
        held.append(_score(chunk, models, explain))
        done += chunk.height
        if progress is not None:
            progress("scoring", done, total)
        rows = _rows_to_explain(held)
        if rows == 0 or rows >= chunk_size or len(held) >= HELD_CHUNKS:
            yield from _released(held, models, versions, scored_at, _step(progress, done, total))
            held = []
    if held:
        yield from _released(held, models, versions, scored_at, _step(progress, done, total))


def _step(progress: Progress | None, done: int, total: int) -> Callable[[str], None]:
    # the reasons' seconds apart from the scores' (the summary's steps): "scoring: reasons" shares the scoring bar
    def step(name: str) -> None:
        if progress is not None:
            progress(name, done, total)

    return step


def _released(
    held: list[_Pending], models: dict[str, TaskModel], versions: dict[str, str], scored_at: datetime, step: Callable[[str], None]
) -> Iterator[pl.DataFrame]:
    for pending, out in zip(held, _explained(held, models, versions, step), strict=True):
        yield out.with_columns(pl.lit(scored_at, pl.Datetime("us", "UTC")).alias("scored_at"), *pending.context)


# Scored chunks that may wait for their reasons when few accounts are flagged (~100 bytes per account held).
HELD_CHUNKS = 10


@dataclass
class _Pending:
    """A chunk scored, its reasons not yet computed: the rows to explain, per task, as the model
    reads them (`x`) and as the features hold them (`exact`, for the reasons' values)."""

    height: int
    scores: pl.DataFrame  # account_id, then p_ and flagged_ of each task
    context: list[pl.Series]  # the chunk's CONTEXT columns
    rows: dict[str, np.ndarray]  # task -> indices of the rows to explain
    x: dict[str, np.ndarray]
    exact: dict[str, np.ndarray]


def _rows_to_explain(held: list[_Pending]) -> int:
    tasks = {t for h in held for t in h.rows}
    return max((sum(len(h.rows.get(t, ())) for h in held) for t in tasks), default=0)


def score_chunk(
    features: pl.DataFrame,
    models: dict[str, TaskModel],
    explain: str,
    versions: dict[str, str],
    step: Callable[[str], None] | None = None,
) -> pl.DataFrame:
    """Scores, flags, reasons and model versions of a few rows: what both engines run on each batch.
    `step` is told "scoring: reasons" when the reasons start and "scoring" when they end."""
    return _explained([_score(features, models, explain)], models, versions, step)[0]


def _score(features: pl.DataFrame, models: dict[str, TaskModel], explain: str) -> _Pending:
    """Scores and flags of a chunk, with the rows that need reasons set aside."""
    scores = features.select("account_id")
    rows: dict[str, np.ndarray] = {}
    x_rows: dict[str, np.ndarray] = {}
    exact: dict[str, np.ndarray] = {}
    matrices: dict[tuple[str, ...], np.ndarray] = {}  # both tasks usually read the same columns: one matrix
    for task, model in models.items():
        assert model.booster is not None
        key = tuple(model.features)
        if key not in matrices:
            matrices[key] = to_matrix(features, model.features)
        x = matrices[key]
        raw = raw_scores(model.booster, x)  # booster.predict(x, raw_score=True), the same bytes, faster
        p = model.calibration.apply(raw)
        flagged = p >= model.threshold
        need = np.ones(len(p), bool) if explain == "all" else flagged if explain == "flagged" else np.zeros(len(p), bool)
        rows[task] = np.flatnonzero(need)
        x_rows[task] = x[rows[task]]
        # values as the features hold them (Float64), not the float32 the booster reads: 12,345,678 stays exact
        exact[task] = features[rows[task]].select(pl.col(model.features).cast(pl.Float64)).to_numpy()
        scores = scores.with_columns(pl.Series(f"p_{task}", p), pl.Series(f"flagged_{task}", flagged))
    context = [features[c] for c in CONTEXT if c in features.columns]
    return _Pending(features.height, scores, context, rows, x_rows, exact)


def _explained(
    held: list[_Pending], models: dict[str, TaskModel], versions: dict[str, str], step: Callable[[str], None] | None
) -> list[pl.DataFrame]:
    """The held chunks with their reasons and model versions: each task's rows explained in one call."""
    outs = [h.scores.select("account_id") for h in held]
    for task, model in models.items():
        explaining = any(len(h.rows[task]) for h in held)
        if step is not None and explaining:
            step("scoring: reasons")
        lists = _reasons(model, np.concatenate([h.x[task] for h in held]), np.concatenate([h.exact[task] for h in held]))
        at = 0
        for i, h in enumerate(held):
            k = len(h.rows[task])
            reasons = _spread(lists.slice(at, k), h.rows[task], h.height)
            at += k
            outs[i] = outs[i].with_columns(
                h.scores[f"p_{task}"],
                h.scores[f"flagged_{task}"],
                reasons.alias(f"{task}_reasons"),
                pl.lit(versions.get(task, ""), pl.String).alias(f"{task}_model_version"),
            )
        if step is not None and explaining:
            step("scoring")
    return outs


def _reasons(model: TaskModel, x: np.ndarray, exact: np.ndarray) -> pl.Series:
    """Top contributions towards the flag (largest positive SHAP values) of each row of `x`, with
    the values of `exact` (the same rows as the features hold them). Built from flat arrays: no
    Python object per account."""
    n = len(x)
    if not n:
        return pl.Series([], dtype=pl.List(REASON))
    assert model.booster is not None

    contrib = shap_values(model.booster, x)  # pred_contrib's values without the bias column, ~5x faster
    k = min(TOP_REASONS, contrib.shape[1])
    top = np.argsort(-contrib, axis=1)[:, :k]
    row = np.repeat(np.arange(n), k)
    feature = top.ravel()
    c = np.take_along_axis(contrib, top, axis=1).ravel()
    value = exact[row, feature]
    keep = c > 0
    row, feature, c, value = row[keep], feature[keep], c[keep], value[keep]
    names = np.asarray(model.features, dtype=object)[feature].tolist()
    words = {f: wording(f) for f in model.features}  # each feature's family looked up once, not per account
    texts = [words[f](v) for f, v in zip(names, value.tolist(), strict=True)]
    flat = pl.DataFrame(
        {"row": row, "feature": names, "value": value, "contribution": c, "text": texts},
        schema={"row": pl.Int64, "feature": pl.String, "value": pl.Float64, "contribution": pl.Float64, "text": pl.String},
    ).with_columns(pl.col("value").fill_nan(None))
    grouped = flat.group_by("row", maintain_order=True).agg(pl.struct("feature", "value", "contribution", "text").alias("r"))
    full = pl.DataFrame({"row": np.arange(n, dtype=np.int64)}).join(grouped, on="row", how="left", maintain_order="left")
    return full["r"].cast(pl.List(REASON))


def _spread(lists: pl.Series, rows: np.ndarray, n: int) -> pl.Series:
    """`lists` at `rows` of a column of `n` rows; an empty list in the others (and for a row whose
    contributions towards the flag were none)."""
    if len(rows) == n:
        return _fill_empty(lists)
    placed = pl.DataFrame({"row": rows.astype(np.int64), "r": lists})
    full = pl.DataFrame({"row": np.arange(n, dtype=np.int64)}).join(placed, on="row", how="left", maintain_order="left")
    return _fill_empty(full["r"])


def _fill_empty(series: pl.Series) -> pl.Series:
    return pl.select(pl.when(series.is_null()).then(pl.lit([], dtype=pl.List(REASON))).otherwise(series)).to_series()


def lockstep_settings(models: dict[str, TaskModel]) -> LockstepParams:
    """The lockstep settings the models' features were computed with (model.json `lockstep`, written by
    the train stage), so scoring computes lock_ features the same way. Models trained before the
    settings were recorded get the defaults (what params.yaml has always shipped)."""
    recorded = {task: m.info.get("lockstep") for task, m in models.items() if m.info.get("lockstep") is not None}
    distinct = {json.dumps(v, sort_keys=True) for v in recorded.values()}
    if len(distinct) > 1:
        raise ZombieScanError(
            "the models were trained on lock_ features computed with different settings "
            f"({'; '.join(f'{t}: {v}' for t, v in recorded.items())}); score them separately"
        )
    if not recorded:
        return LockstepParams()
    return LockstepParams.from_dict(next(iter(recorded.values())), "model.json lockstep")


def score_accounts(
    accounts: pl.DataFrame,
    engagements: pl.DataFrame,
    models: dict[str, TaskModel],
    targets: pl.DataFrame | None = None,
    *,
    reference_time: datetime | None = None,
    lockstep_params: LockstepParams | None = None,
    explain: str = "flagged",
    versions: dict[str, str] | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> pl.DataFrame:
    """Score contract frames: features by the pipeline's code, then `score_features`.

    Adds `has_engagements` (false: the account has no engagement; the models score it with its
    engagement features empty) and `lockstep_group` (the id of the account's lockstep group, if any).
    """
    settings = lockstep_params or lockstep_settings(models)
    features, groups, _ = build_features(accounts, engagements, targets, reference_time=reference_time, lockstep_params=settings)
    scores = score_features(features, models, explain=explain, versions=versions, chunk_size=chunk_size)
    active = engagements.select(pl.col("actor_id").alias("account_id")).unique().with_columns(has_engagements=pl.lit(True))
    return _with_context(scores, active, groups)


@dataclass
class Scores:
    """Scores of a warehouse as they are made, `chunk_size` accounts at a time (`warehouse_scores`):
    one frame per chunk, in account_id order, each with every column of the output."""

    accounts: int  # rows the batches will hold: the accounts created by the reference time
    groups: pl.DataFrame  # the lockstep groups
    reference_time: datetime  # what the features describe
    batches: Iterator[pl.DataFrame]

    def frame(self) -> pl.DataFrame:
        """Every batch as one frame."""
        parts = list(self.batches)
        return pl.concat(parts, rechunk=True) if len(parts) > 1 else parts[0]


def score_warehouse(
    db: Path,
    models: dict[str, TaskModel],
    *,
    reference_time: datetime | None = None,
    lockstep_params: LockstepParams | None = None,
    explain: str = "flagged",
    versions: dict[str, str] | None = None,
    chunk_size: int = CHUNK_SIZE,
    memory_limit: str = "5GB",
    progress: Progress | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Scores for every account of a warehouse and the lockstep groups, as frames (`warehouse_scores`)."""
    with warehouse_scores(
        db,
        models,
        reference_time=reference_time,
        lockstep_params=lockstep_params,
        explain=explain,
        versions=versions,
        chunk_size=chunk_size,
        memory_limit=memory_limit,
        progress=progress,
    ) as scores:
        return scores.frame(), scores.groups


@contextlib.contextmanager
def warehouse_scores(
    db: Path,
    models: dict[str, TaskModel],
    *,
    reference_time: datetime | None = None,
    lockstep_params: LockstepParams | None = None,
    explain: str = "flagged",
    versions: dict[str, str] | None = None,
    chunk_size: int = CHUNK_SIZE,
    memory_limit: str = "5GB",
    progress: Progress | None = None,
    scored_at: datetime | None = None,
) -> Iterator[Scores]:
    """Scores for every account of a warehouse (features out of core, as the featurize stage
    computes them), in batches: DuckDB holds the features and spills past `memory_limit`; Python
    holds `chunk_size` accounts at a time, whatever their number. The batches read an open
    connection: consume them inside the block.

    Adds `has_engagements` (false: the account has no engagement up to the reference time; the
    models score it with its engagement features empty) and `lockstep_group` (the id of the
    account's lockstep group, if any).
    """
    _check_request(explain, chunk_size)  # before minutes of features
    settings = lockstep_params or lockstep_settings(models)
    with computed_features(
        db, reference_time=reference_time, lockstep_params=settings, memory_limit=memory_limit, progress=progress
    ) as done:
        yield _scores(
            done.ctx,
            done.sql,
            done.groups,
            done.report.accounts,
            datetime.fromisoformat(done.report.reference_time),
            engagements=True,
            models=models,
            explain=explain,
            chunk_size=chunk_size,
            versions=versions,
            scored_at=scored_at,
            progress=progress,
        )


def score_profiles(
    db: Path,
    models: dict[str, TaskModel],
    *,
    reference_time: datetime | None = None,
    explain: str = "flagged",
    versions: dict[str, str] | None = None,
    chunk_size: int = CHUNK_SIZE,
    memory_limit: str = "5GB",
    progress: Progress | None = None,
) -> tuple[pl.DataFrame, datetime]:
    """Scores for every account of a warehouse that holds no engagements, as a frame (`profile_scores`), and the reference time."""
    with profile_scores(
        db,
        models,
        reference_time=reference_time,
        explain=explain,
        versions=versions,
        chunk_size=chunk_size,
        memory_limit=memory_limit,
        progress=progress,
    ) as scores:
        return scores.frame(), scores.reference_time


@contextlib.contextmanager
def profile_scores(
    db: Path,
    models: dict[str, TaskModel],
    *,
    reference_time: datetime | None = None,
    explain: str = "flagged",
    versions: dict[str, str] | None = None,
    chunk_size: int = CHUNK_SIZE,
    memory_limit: str = "5GB",
    progress: Progress | None = None,
    scored_at: datetime | None = None,
) -> Iterator[Scores]:
    """Scores for every account of a warehouse that holds no engagements, from the families the
    accounts table alone gives (the profile_ features), by profile-only models (`models/<task>-profile/`),
    in batches as `warehouse_scores` gives them.

    The batches have the columns `warehouse_scores` gives, with `has_engagements` false and no
    `lockstep_group` on every row. The features describe the accounts at `reference_time`, by
    default the last account's creation (`Scores.reference_time`).
    """
    _check_request(explain, chunk_size)
    for task, model in models.items():
        beyond = beyond_profile(model.features)
        if beyond:
            raise ZombieScanError(f"{task} model: reads {', '.join(beyond[:3])}, which the profile alone does not give")
    wanted = families.present([f for model in models.values() for f in model.features])
    con = feature_connection(memory_limit)
    try:
        attach(con, db, "wh")
        if reference_time is None:
            reference_time = con.execute("SELECT max(created_at) FROM wh.accounts").fetchall()[0][0]
        if reference_time is None:
            raise ZombieScanError(
                "--reference-time: needed; without engagements the features describe the accounts as of the last account's "
                "creation, and no account has a creation time"
            )
        # as the full features do (pipeline.features.build): nothing created after the reference time is seen
        ref = f"TIMESTAMPTZ {literal(reference_time.isoformat())}"
        con.execute(f"CREATE TEMP VIEW accounts AS SELECT * FROM wh.accounts WHERE created_at IS NULL OR created_at <= {ref}")
        ctx = Context(con, reference_time, LockstepParams(), progress=progress)
        sql = families.build(ctx, wanted)
        total = con.execute(f"SELECT count(*) FROM {ctx.table('profile_')}").fetchall()[0][0]
        yield _scores(
            ctx,
            sql,
            empty_groups(),
            total,
            reference_time,
            engagements=False,
            models=models,
            explain=explain,
            chunk_size=chunk_size,
            versions=versions,
            scored_at=scored_at,
            progress=progress,
        )
    finally:
        con.close()


# The columns of a score besides the model's: whether the account engaged at all, its lockstep group.
CONTEXT = ("has_engagements", "lockstep_group")


def _scores(
    ctx: Context,
    features_sql: str,
    groups: pl.DataFrame,
    total: int,
    reference_time: datetime,
    *,
    engagements: bool,
    models: dict[str, TaskModel],
    explain: str,
    chunk_size: int,
    versions: dict[str, str] | None,
    scored_at: datetime | None,
    progress: Progress | None,
) -> Scores:
    """The `total` accounts of `features_sql` scored as `Scores`: batches read from `ctx`'s connection,
    the first checked against the models before any is scored."""
    batches = _checked(_batches(ctx, features_sql, groups, chunk_size, engagements=engagements), models, explain, chunk_size)
    scored = _scored(batches, total, models, explain, versions or {}, scored_at or datetime.now(UTC), progress, chunk_size)
    return Scores(total, groups, reference_time, scored)


def _batches(ctx: Context, features_sql: str, groups: pl.DataFrame, chunk_size: int, *, engagements: bool) -> Iterator[pl.DataFrame]:
    """The features of `features_sql` with the CONTEXT columns, `chunk_size` accounts at a time, in
    account_id order (DuckDB sorts and spills; Python holds one chunk). The first batch may be
    empty: it gives the columns when there are no accounts."""
    con = ctx.con
    members = groups.select(pl.col("group_id").alias("lockstep_group"), pl.col("members").alias("account_id")).explode("account_id")
    con.register("lockstep_members", members)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE score_groups AS "
        "SELECT account_id, min(lockstep_group) AS lockstep_group FROM lockstep_members GROUP BY account_id"
    )
    con.unregister("lockstep_members")
    # The accounts with an engagement, as a table of their own: the same DISTINCT inside the
    # query below ran out of memory at a million accounts under --memory-limit 1GB; as a table
    # it spills. The features saw engagements up to the reference time only (the `engagements`
    # view); so does this flag.
    con.execute(
        "CREATE OR REPLACE TEMP TABLE score_active AS "
        + ("SELECT DISTINCT actor_id FROM engagements" if engagements else "SELECT NULL::VARCHAR AS actor_id LIMIT 0")
    )
    reader = con.sql(
        f"""
        SELECT f.*, a.actor_id IS NOT NULL AS has_engagements, g.lockstep_group
        FROM ({features_sql}) f
        LEFT JOIN score_active a ON a.actor_id = f.account_id
        LEFT JOIN score_groups g ON g.account_id = f.account_id
        ORDER BY f.account_id
        """
    ).to_arrow_reader(chunk_size)
    first = True
    for batch in reader:
        if batch.num_rows or first:
            yield _frame(batch)
            first = False
    if first:
        yield _frame(reader.schema.empty_table())


def _frame(arrow: Any) -> pl.DataFrame:
    frame = pl.from_arrow(arrow)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _checked(batches: Iterator[pl.DataFrame], models: dict[str, TaskModel], explain: str, chunk_size: int) -> Iterator[pl.DataFrame]:
    """The batches, the first checked against the models (`_check`) before any is scored."""
    first = next(batches)
    _check(first, models, explain, chunk_size)
    yield first
    yield from batches


def with_lockstep_groups(scores: pl.DataFrame, groups: pl.DataFrame) -> pl.DataFrame:
    """`scores` with `lockstep_group`: the id of the lockstep group each account is in, if any."""
    member = (
        groups.select(pl.col("group_id").alias("lockstep_group"), pl.col("members").alias("account_id")).explode("account_id")
        if groups.height
        else pl.DataFrame(schema={"lockstep_group": pl.Int64, "account_id": pl.String})
    )
    return scores.join(member.unique("account_id"), on="account_id", how="left", maintain_order="left")


def _with_context(scores: pl.DataFrame, active: pl.DataFrame, groups: pl.DataFrame) -> pl.DataFrame:
    with_activity = scores.join(active, on="account_id", how="left", maintain_order="left")
    return with_lockstep_groups(with_activity, groups).with_columns(pl.col("has_engagements").fill_null(False))


def to_csv_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """Nested columns (reasons, group lists) as JSON text, so the frame fits a CSV file (vectorised, no per-row Python)."""
    out = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.List):
            inner = dtype.inner
            element = pl.element().struct.json_encode() if isinstance(inner, pl.Struct) else pl.element().cast(pl.String)
            out.append(pl.concat_str(pl.lit("["), pl.col(name).list.eval(element).list.join(","), pl.lit("]")).alias(name))
        elif isinstance(dtype, pl.Struct):
            out.append(pl.col(name).struct.json_encode())
    return frame.with_columns(out) if out else frame
