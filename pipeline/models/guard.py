"""The giveaway guard: does the data give the class away through one trait or a shallow rule?

A model is only as good as the data it was measured on. On a simulated world, a trait that one
class always has and the other never has (zombies that never post, say), or a two-question rule
that separates the classes, says the generator leaks the answer, and a high score then measures
the generator, not the detector. The guard checks two things on every evaluation:

(a) *presence*: for every feature, the share of each class where it is non-zero (not null, not
    NaN, not 0). A feature absent in one class (present in at most `absent_share` of it) while
    present in more than `present_share` of the other is flagged.
(b) *shallow trees*: ROC-AUC of decision trees of depth 1, 2 and 3 over all features, fitted
    and scored fold by fold on the evaluation's own folds (each test fold scored by a tree that
    never saw it). A deep model should need many features; if a depth-2 tree comes close to it,
    the task is a rule of thumb.

The limits live in params.yaml (`evaluate.guard`). `check` turns a violated limit into a
`ZombieScanError` naming the feature or depth; the evaluate stage enforces it on simulated data
and reports it on real data, where the world is what it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from sklearn.metrics import roc_auc_score
from sklearn.tree import DecisionTreeClassifier, export_text

from pipeline.errors import ZombieScanError
from pipeline.models.train import feature_columns, to_matrix


@dataclass(frozen=True)
class GuardLimits:
    """When the guard fails (params.yaml: evaluate.guard, per task under `max_tree_auc`)."""

    absent_share: float = 0.001  # "absent": non-zero in at most this share of a class
    present_share: float = 0.5  # flagged when the other class has it in more than this share
    depths: tuple[int, ...] = (1, 2, 3)
    max_tree_auc: dict[int, float] = field(default_factory=dict)  # depth -> highest allowed ROC-AUC
    min_leaf_share: float = 0.005  # a tree leaf holds at least this share of the training rows
    enforce: bool = True

    @classmethod
    def from_params(cls, values: dict[str, Any] | None, task: str) -> GuardLimits:
        values = dict(values or {})
        known = set(cls.__dataclass_fields__)
        per_task = values.pop("max_tree_auc", {}) or {}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ZombieScanError(f"evaluate.guard: unknown setting(s) {', '.join(unknown)}: expected some of {', '.join(sorted(known))}")
        limits = per_task.get(task, {}) if isinstance(per_task, dict) else {}
        if not isinstance(limits, dict):
            raise ZombieScanError(f"evaluate.guard.max_tree_auc.{task}: expected a mapping of tree depth to ROC-AUC, got {limits!r}")
        try:
            max_auc = {int(d): float(v) for d, v in limits.items()}
        except (TypeError, ValueError):
            raise ZombieScanError(f"evaluate.guard.max_tree_auc.{task}: expected depth: ROC-AUC pairs, got {limits!r}") from None
        if "depths" in values:
            values["depths"] = tuple(int(d) for d in values["depths"])
        out = cls(**values, max_tree_auc=max_auc)
        for name in ("absent_share", "present_share", "min_leaf_share"):
            if not 0.0 <= getattr(out, name) < 1.0:
                raise ZombieScanError(f"evaluate.guard.{name} = {getattr(out, name)}: expected a share in [0, 1)")
        return out


def presence(data: pl.DataFrame, label: str, features: list[str]) -> pl.DataFrame:
    """Per feature: the share of positives and of negatives where it is non-zero (not null, NaN or 0)."""
    y = data[label].cast(pl.Boolean)
    nonzero = [
        (pl.col(c).cast(pl.Float64).fill_nan(None).fill_null(0.0) != 0.0).cast(pl.Float64).alias(c)  # null and NaN count as absent
        for c in features
    ]
    frame = data.select(nonzero).with_columns(_y=y)
    pos = frame.filter(pl.col("_y")).drop("_y").mean()
    neg = frame.filter(~pl.col("_y")).drop("_y").mean()
    return pl.DataFrame(
        {
            "feature": features,
            "positives": [float(pos[c][0]) if pos.height else 0.0 for c in features],
            "negatives": [float(neg[c][0]) if neg.height else 0.0 for c in features],
        }
    )


def shallow_trees(
    data: pl.DataFrame, label: str, features: list[str], depths: tuple[int, ...], *, seed: int, min_leaf_share: float = 0.005
) -> dict[int, dict[str, Any]]:
    """ROC-AUC of depth-d trees, out of fold over the `fold` column (or 5 stratified folds without one).

    Trees weigh the classes equally (a rare class is not ignored) and keep leaves of at least
    `min_leaf_share` of the rows, so that a rule is a rule, not a memorised handful of accounts.
    Returns depth -> {roc_auc (pooled out of fold), fold_mean, fold_std, rule (the tree fitted on
    all rows, as text)}.
    """
    y = data[label].cast(pl.Int8).to_numpy()
    x = to_matrix(data, features)
    fold = data["fold"].to_numpy() if "fold" in data.columns else np.random.default_rng(seed).permutation(len(y)) % 5
    out: dict[int, dict[str, Any]] = {}
    min_leaf = max(1, int(min_leaf_share * len(y)))
    for depth in depths:
        oof = np.full(len(y), np.nan)
        per_fold = []
        for k in np.unique(fold):
            test = fold == k
            if len(np.unique(y[~test])) < 2:
                continue
            tree = DecisionTreeClassifier(max_depth=depth, class_weight="balanced", min_samples_leaf=min_leaf, random_state=seed)
            tree.fit(x[~test], y[~test])
            oof[test] = tree.predict_proba(x[test])[:, 1]
            if len(np.unique(y[test])) == 2:
                per_fold.append(float(roc_auc_score(y[test], oof[test])))
        scored = ~np.isnan(oof)
        tree = DecisionTreeClassifier(max_depth=depth, class_weight="balanced", min_samples_leaf=min_leaf, random_state=seed).fit(x, y)
        out[depth] = {
            "roc_auc": float(roc_auc_score(y[scored], oof[scored])) if len(np.unique(y[scored])) == 2 else float("nan"),
            "fold_mean": float(np.mean(per_fold)) if per_fold else float("nan"),
            "fold_std": float(np.std(per_fold, ddof=1)) if len(per_fold) > 1 else float("nan"),
            "rule": export_text(tree, feature_names=features, decimals=3, show_weights=False),
        }
    return out


def giveaway_guard(data: pl.DataFrame, label: str, limits: GuardLimits, *, seed: int = 0) -> dict[str, Any]:
    """Both checks on labelled rows of `data` (features, `label`, optionally `fold`), and which limits they break.

    The result is plain JSON: `presence` (feature -> shares per class), `flagged` (features absent in
    one class and common in the other), `trees` (depth -> ROC-AUC and the rule), `violations` (text).
    """
    data = data.filter(pl.col(label).is_not_null())
    features = feature_columns(data)
    shares = presence(data, label, features)
    flagged = shares.filter(
        ((pl.col("positives") <= limits.absent_share) & (pl.col("negatives") > limits.present_share))
        | ((pl.col("negatives") <= limits.absent_share) & (pl.col("positives") > limits.present_share))
    )
    trees = shallow_trees(data, label, features, limits.depths, seed=seed, min_leaf_share=limits.min_leaf_share)
    violations = [
        f"feature {r['feature']} is non-zero in {r['positives']:.1%} of positives and {r['negatives']:.1%} of negatives: "
        f"absent in one class (at most {limits.absent_share:.1%}), common in the other (over {limits.present_share:.0%})"
        for r in flagged.iter_rows(named=True)
    ]
    for depth, bound in sorted(limits.max_tree_auc.items()):
        auc = trees.get(depth, {}).get("roc_auc", float("nan"))
        if auc != auc or auc > bound:
            rule = trees.get(depth, {}).get("rule", "").strip()
            violations.append(f"a depth-{depth} decision tree reaches ROC-AUC {auc:.3f} (limit {bound:.3f}); the rule:\n{rule}")
    return {
        "limits": {
            "absent_share": limits.absent_share,
            "present_share": limits.present_share,
            "max_tree_auc": {str(d): v for d, v in sorted(limits.max_tree_auc.items())},
        },
        "presence": {r["feature"]: {"positives": r["positives"], "negatives": r["negatives"]} for r in shares.iter_rows(named=True)},
        "flagged": flagged["feature"].to_list(),
        "trees": {str(d): t for d, t in trees.items()},
        "violations": violations,
    }


def check(task: str, guard: dict[str, Any], where: str) -> None:
    """Raise a `ZombieScanError` listing every violated limit (the evaluate stage, on simulated data)."""
    if guard["violations"]:
        lines = "\n".join(f"- {v}" for v in guard["violations"])
        raise ZombieScanError(
            f"{task}: the giveaway guard failed on {where}: the data gives the class away, so its metrics would measure "
            f"the generator, not the detector (docs/models.md#the-giveaway-guard):\n{lines}"
        )
