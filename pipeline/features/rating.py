"""rate_ features: the ratings an account gives and receives, and REV2's fairness (docs/features.md#rate_).

Rating and review platforms (trust networks such as Bitcoin OTC/Alpha, product reviews such as
Amazon or Epinions) carry a `value` on their engagements: a score, often negative. A rating is
an engagement with a value, of any kind (typically `rate`) and on any target; the received side
counts the ratings of accounts (target_type 'account'). The family is computed only when some
engagement carries a value (`Family.values`): the simulator's worlds have none.

- The statistics (counts, mean, spread, negative and extreme shares, time span, burstiness,
  reciprocity, deviation from the consensus) are `sql/rating.sql`, which Spark runs transpiled.
- REV2 (Kumar, Hooi, Makhija, Kumar, Faloutsos & Subrahmanian, "REV2: Fraudulent User Prediction
  in Rating Platforms", WSDM 2018): the fairness F of raters, the goodness G of what they rate and
  the reliability R of each rating, iterated to a fixed point (`rev2`). Vectorised over integer
  codes (numpy); pipeline/spark/rating.py runs the same passes as DataFrame jobs. Sums are exact
  integers of fixed-point terms (`REV2_SCALE`), so they do not depend on the order of the
  additions: both engines give the same bytes and stop after the same number of passes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import polars as pl

from pipeline.errors import ZombieScanError
from pipeline.features.family import Context, Family, count, share
from pipeline.features.query import Frame, feature_connection, query

log = logging.getLogger(__name__)

# A sum of reliabilities (or reliability x score, or fairness, or goodness: each at most 1 in size)
# is kept as integers of 2**-36, so it is exact whatever the order the engine adds in. The rounding
# moves a mean by at most 7.3e-12, well below the iteration's tolerance; and under REV2_MAX_RATINGS
# ratings no sum reaches 2**63 (a node has at most as many ratings, and there are at most as many
# raters or targets, as there are ratings).
REV2_SCALE = 2**36
REV2_MAX_RATINGS = 2**63 // REV2_SCALE  # 134M
REV2_COLUMNS = ("rate_fairness", "rate_goodness", "rate_given_reliability", "rate_received_reliability", "rate_rev2_score")


@dataclass(frozen=True)
class Rev2Params:
    """REV2's settings, named as in the paper (the BIRDNEST priors alpha2, beta2, gamma3 are not used).

    Attributes:
        alpha1: Pseudo-ratings of reliability mu_f (the mean fairness) in every rater's fairness:
            the cold-start smoothing, so one rating does not make a rater perfectly fair or unfair.
        beta1: Pseudo-ratings of score mu_g (the mean goodness) in every target's goodness.
        gamma1: Weight of the rater's fairness in a rating's reliability.
        gamma2: Weight of the rating's agreement with the target's goodness.
        tol: Stop when no fairness, goodness or reliability moved by this much in a pass.
        max_iter: The most passes (the result is then logged as not converged).
    """

    alpha1: float = 1.0
    beta1: float = 1.0
    gamma1: float = 1.0
    gamma2: float = 1.0
    tol: float = 1e-10
    max_iter: int = 300


@dataclass
class Rev2Result:
    """REV2's fixed point over integer-coded raters (0..n_raters-1) and targets (0..n_targets-1)."""

    fairness: np.ndarray  # per rater, in [0, 1]
    goodness: np.ndarray  # per target, in [-1, 1]
    reliability: np.ndarray  # per rating, in [0, 1]
    given_reliability: np.ndarray  # per rater: mean reliability of its ratings
    received_reliability: np.ndarray  # per target: mean reliability of its ratings
    passes: int
    converged: bool


def rev2_scores(value: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Ratings on REV2's scale [-1, 1]: the lowest value seen is -1, the highest 1 (as the authors'
    code maps each dataset's range); 0 for all when every rating has the same value."""
    if hi == lo:
        return np.zeros(len(value))
    return 2.0 * (value - lo) / (hi - lo) - 1.0


def check_size(ratings: int) -> None:
    """REV2's exact sums hold up to REV2_MAX_RATINGS ratings: refuse more rather than overflow."""
    if ratings >= REV2_MAX_RATINGS:
        raise ZombieScanError(
            f"rate_: {ratings:,} ratings; REV2's exact fixed-point sums hold fewer than {REV2_MAX_RATINGS:,} "
            "(pipeline/features/rating.py: REV2_SCALE): lower REV2_SCALE to go further"
        )


def fixed(x: np.ndarray) -> np.ndarray:
    """x in integer units of 1 / REV2_SCALE, rounded half to even (Spark: CAST(rint(x * scale) AS BIGINT))."""
    return np.rint(x * float(REV2_SCALE)).astype(np.int64)


def fixed_mean(total: int, n: int) -> float:
    """The mean of n values whose fixed-point sum is `total`; the driver's Python on both engines."""
    return float(total) / float(REV2_SCALE) / n


def _ratio(num: np.ndarray | float, den: np.ndarray, where: np.ndarray, otherwise: float = 1.0) -> np.ndarray:
    """num / den where `where`, else `otherwise` (a code without ratings: no 0 / 0)."""
    out = np.full(len(den), otherwise)
    np.divide(num, den, out=out, where=where)
    return out


class _Groups:
    """Exact integer sums of a per-rating array over the ratings of each node."""

    def __init__(self, codes: np.ndarray, n: int) -> None:
        self.order = np.argsort(codes, kind="stable")
        ordered = codes[self.order]
        self.starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if len(codes) else np.zeros(0, np.int64)
        self.keys = ordered[self.starts]
        self.n = n
        self.count = np.bincount(codes, minlength=n).astype(np.int64)

    def sum(self, q: np.ndarray) -> np.ndarray:
        out = np.zeros(self.n, np.int64)
        if len(self.starts):
            out[self.keys] = np.add.reduceat(q[self.order], self.starts)
        return out


def rev2(
    rater: np.ndarray, target: np.ndarray, value: np.ndarray, n_raters: int, n_targets: int, params: Rev2Params = Rev2Params()
) -> Rev2Result:
    """REV2's fairness, goodness and reliability, iterated as in the authors' code (rev2code.py).

    With s(u, p) the rating scaled to [-1, 1] (`rev2_scores`), In(p) the ratings of target p and
    Out(u) those of rater u, each pass updates, in this order:

        G(p)    = (beta1 mu_g + sum over In(p) of R(u, p) s(u, p)) / (beta1 + |In(p)|), clipped to [-1, 1]
        R(u, p) = (gamma1 F(u) + gamma2 (1 - |s(u, p) - G(p)| / 2)) / (gamma1 + gamma2), in [0, 1]
        F(u)    = (alpha1 mu_f + sum over Out(u) of R(u, p)) / (alpha1 + |Out(u)|), in [0, 1]

    from F = G = R = 1, where mu_f and mu_g are the mean fairness and goodness of the previous
    pass (the authors' code takes the median and notes that the mean serves as well: the mean's
    sum is exact here, the median would need a global sort on Spark). It stops when the largest
    change of any F, G or R in a pass is below `tol`, or after `max_iter` passes.

    Args:
        rater, target: Integer codes of each rating's rater and target.
        value: Each rating's value (any scale).
        n_raters, n_targets: How many codes there are.
        params: The weights and the stopping rule.
    """
    rater = np.asarray(rater, dtype=np.int64)
    target = np.asarray(target, dtype=np.int64)
    value = np.asarray(value, dtype=np.float64)
    if len(value) == 0:
        empty = np.zeros(0)
        return Rev2Result(np.full(n_raters, np.nan), np.full(n_targets, np.nan), empty, np.full(n_raters, np.nan),
                          np.full(n_targets, np.nan), 0, True)  # fmt: skip
    check_size(len(value))
    p = params
    s = rev2_scores(value, float(value.min()), float(value.max()))
    raters, targets = _Groups(rater, n_raters), _Groups(target, n_targets)
    rated_u, rated_p = raters.count > 0, targets.count > 0  # codes without ratings take no part
    f, g, r = np.ones(n_raters), np.ones(n_targets), np.ones(len(value))
    mu_f = mu_g = 1.0
    sf = np.zeros(n_raters, np.int64)
    converged = False
    passes = 0
    while passes < p.max_iter:
        passes += 1
        sg = targets.sum(fixed(r * s))
        g_new = np.clip(_ratio(p.beta1 * mu_g + sg / float(REV2_SCALE), p.beta1 + targets.count, rated_p), -1.0, 1.0)
        r_new = np.clip((p.gamma1 * f[rater] + p.gamma2 * (1.0 - np.abs(s - g_new[target]) / 2.0)) / (p.gamma1 + p.gamma2), 0.0, 1.0)
        sf = raters.sum(fixed(r_new))
        f_new = np.clip(_ratio(p.alpha1 * mu_f + sf / float(REV2_SCALE), p.alpha1 + raters.count, rated_u), 0.0, 1.0)
        change = max(np.abs(g_new - g).max(), np.abs(r_new - r).max(), np.abs(f_new - f).max())
        f, g, r = f_new, g_new, r_new
        mu_g = fixed_mean(int(fixed(g[rated_p]).sum()), int(rated_p.sum()))
        mu_f = fixed_mean(int(fixed(f[rated_u]).sum()), int(rated_u.sum()))
        if change < p.tol:
            converged = True
            break
    given = _ratio(sf / float(REV2_SCALE), raters.count, rated_u, np.nan)
    received = _ratio(targets.sum(fixed(r)) / float(REV2_SCALE), targets.count, rated_p, np.nan)
    f = np.where(rated_u, f, np.nan)
    g = np.where(rated_p, g, np.nan)
    return Rev2Result(f, g, r, given, received, passes, converged)


def _rev2_columns(con: duckdb.DuckDBPyConnection, reference_time: datetime, params: Rev2Params) -> tuple[pl.DataFrame, Rev2Result]:
    """account_id + REV2_COLUMNS for every account that gave or received a rating, from the
    `engagements` the connection shows (ratings numbered in SQL, the iteration in numpy)."""
    try:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE rate_rv AS SELECT actor_id, target_type::VARCHAR AS target_type, target_id, value "
            "FROM engagements WHERE value IS NOT NULL AND ts <= $ref",
            {"ref": reference_time},
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE rate_rv_u AS SELECT actor_id, (row_number() OVER (ORDER BY actor_id) - 1)::BIGINT AS u "
            "FROM (SELECT DISTINCT actor_id FROM rate_rv)"
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE rate_rv_p AS SELECT target_type, target_id, "
            "(row_number() OVER (ORDER BY target_type, target_id) - 1)::BIGINT AS p "
            "FROM (SELECT DISTINCT target_type, target_id FROM rate_rv)"
        )
        edges = con.execute(
            "SELECT u.u, p.p, r.value FROM rate_rv r JOIN rate_rv_u u USING (actor_id) JOIN rate_rv_p p USING (target_type, target_id) "
            "ORDER BY u.u, p.p, r.value"
        ).fetchnumpy()
        raters = con.sql("SELECT actor_id FROM rate_rv_u ORDER BY u").pl()["actor_id"]
        targets = con.sql("SELECT target_type, target_id FROM rate_rv_p ORDER BY p").pl()
    finally:
        for name in ("rate_rv", "rate_rv_u", "rate_rv_p"):
            con.execute(f"DROP TABLE IF EXISTS {name}")
    result = rev2(edges["u"], edges["p"], edges["value"], len(raters), targets.height, params)
    log.info(
        "rev2: %d ratings, %d raters, %d targets; %d passes, %s",
        *(len(edges["value"]), len(raters), targets.height, result.passes, "converged" if result.converged else "NOT converged"),
    )
    if not result.converged:
        log.warning("rev2: no fixed point within max_iter=%d passes (tol %g): the last pass's values are used", params.max_iter, params.tol)
    given = pl.DataFrame(
        {
            "account_id": raters,
            "rate_fairness": result.fairness,
            "rate_given_reliability": result.given_reliability,
            "rate_rev2_score": 1.0 - result.fairness,
        }
    )
    received = pl.DataFrame(
        {"account_id": targets["target_id"], "rate_goodness": result.goodness, "rate_received_reliability": result.received_reliability}
    ).filter(targets["target_type"] == "account")
    out = given.join(received, on="account_id", how="full", coalesce=True).select("account_id", *REV2_COLUMNS)
    return out, result


def rating_features(
    accounts: Frame | None = None,
    engagements: Frame | None = None,
    *,
    reference_time: datetime,
    con: duckdb.DuckDBPyConnection | None = None,
    params: Rev2Params = Rev2Params(),
) -> pl.DataFrame:
    """One row per account created by `reference_time` (or of unknown creation time), columns `rate_*`.

    Args:
        accounts: Contract accounts (account_id, created_at are used).
        engagements: Contract engagements with `value` (a missing column: no ratings).
        reference_time: Nothing after it is used.
        con: Instead of the frames, a connection that shows `accounts` and `engagements` by name.
        params: REV2's settings.
    """
    if con is not None:
        return rating_table(con, reference_time, params)[0]
    if accounts is None or engagements is None:
        raise TypeError("rating_features needs accounts and engagements, or con")
    acc = accounts.collect() if isinstance(accounts, pl.LazyFrame) else accounts
    eng = engagements.collect() if isinstance(engagements, pl.LazyFrame) else engagements
    if "value" not in eng.columns:
        eng = eng.with_columns(value=pl.lit(None, pl.Float64))
    own = feature_connection()
    try:
        created = pl.col("created_at")
        own.register("accounts", acc.select("account_id", "created_at").filter(created.is_null() | (created <= reference_time)))
        own.register("engagements", eng.select("actor_id", "target_id", "target_type", "kind", "ts", pl.col("value").cast(pl.Float64)))
        return rating_table(own, reference_time, params)[0]
    finally:
        own.close()


def rating_table(con: duckdb.DuckDBPyConnection, reference_time: datetime, params: Rev2Params) -> tuple[pl.DataFrame, Rev2Result]:
    """The rate_ features of the accounts the connection shows (`rating_features`), and how REV2's iteration ended."""
    stats = query("rating.sql", {"ref": reference_time}, con=con)
    rev, result = _rev2_columns(con, reference_time, params)
    return stats.join(rev, on="account_id", how="left", maintain_order="left"), result


def compute(ctx: Context) -> pl.DataFrame:
    features, result = ctx.timed("rating", rating_table, ctx.con, ctx.reference_time, Rev2Params())
    ctx.outputs["rev2"] = {"passes": result.passes, "converged": result.converged}
    return features


# How an analyst reads each value (the reasons of `zombiescan score`).
DESCRIBE = {
    "rate_given_n": lambda v: f"gave {count(v)} ratings",
    "rate_given_mean": lambda v: f"its ratings average {v:,.2f}",
    "rate_given_std": lambda v: f"its ratings spread by {v:,.2f} (standard deviation)",
    "rate_given_negative_share": lambda v: f"{share(v)} of its ratings are negative",
    "rate_given_extreme_share": lambda v: f"{share(v)} of its ratings are at an end of the scale",
    "rate_given_span_days": lambda v: f"its ratings span {v:,.1f} days",
    "rate_given_burstiness": lambda v: f"rates in bursts (burstiness {v:.2f})",
    "rate_received_n": lambda v: f"rated {count(v)} times by others",
    "rate_received_mean": lambda v: f"others rate it {v:,.2f} on average",
    "rate_received_std": lambda v: f"the ratings it received spread by {v:,.2f} (standard deviation)",
    "rate_received_negative_share": lambda v: f"{share(v)} of the ratings it received are negative",
    "rate_received_extreme_share": lambda v: f"{share(v)} of the ratings it received are at an end of the scale",
    "rate_received_span_days": lambda v: f"the ratings it received span {v:,.1f} days",
    "rate_received_burstiness": lambda v: f"its ratings arrive in bursts (burstiness {v:.2f})",
    "rate_reciprocity": lambda v: f"{share(v)} of the accounts it rated rated it back",
    "rate_reciprocal_gap": lambda v: f"it and the accounts it rates rate each other {v:,.2f} apart",
    "rate_deviation": lambda v: f"its ratings sit {v:+,.2f} from what others give the same targets",
    "rate_abs_deviation": lambda v: f"its ratings are {v:,.2f} away from what others give the same targets",
    "rate_fairness": lambda v: f"REV2 fairness {v:.2f} (1: its ratings agree with reliable raters)",
    "rate_goodness": lambda v: f"REV2 goodness {v:+.2f} (how reliable raters rate it, -1 to 1)",
    "rate_given_reliability": lambda v: f"its ratings are {share(v)} reliable (REV2)",
    "rate_received_reliability": lambda v: f"the ratings it received are {share(v)} reliable (REV2)",
    "rate_rev2_score": lambda v: f"REV2 unfairness {v:.2f} (1 - fairness; higher is more suspicious)",
}

FAMILY = Family("rate_", "rating", compute, DESCRIBE, role="relational", values=True, spark="pipeline.spark.features:rating")
