"""Batch scoring: every account's probability per task, decision, and reasons in words.

- `score`: features -> scores (`score_features`, `score_accounts`, `score_warehouse`; `score_profiles`
  for accounts without engagements, by the profile-only models), reasons
  from LightGBM's `pred_contrib`, worded by each feature family's `describe`;
- `models`: the task models (full or profile-only) from a model folder, or from the MLflow registry;
- `pages`: the pages that bought likes;
- `job`: `zombiescan score` end to end (inputs checked and loaded, outputs locked and written
  whole); the command line only parses the options and prints the summary.
"""

from pipeline.scoring.models import load_models, load_registered
from pipeline.scoring.pages import suspected_pages
from pipeline.scoring.score import (
    CHUNK_SIZE,
    EXPLAIN,
    REASON,
    lockstep_settings,
    score_accounts,
    score_features,
    score_profiles,
    score_warehouse,
    to_csv_frame,
    with_lockstep_groups,
)

__all__ = [
    "CHUNK_SIZE",
    "EXPLAIN",
    "REASON",
    "load_models",
    "load_registered",
    "lockstep_settings",
    "score_accounts",
    "score_features",
    "score_profiles",
    "score_warehouse",
    "suspected_pages",
    "to_csv_frame",
    "with_lockstep_groups",
]
