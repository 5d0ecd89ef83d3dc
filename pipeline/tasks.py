"""The model tasks: what each one predicts, from which label, and how it is named and shown.

Every part of the pipeline reads the tasks from here: the contract's labels table (one nullable
bool column per task), the split (stratified on all labels at once), the train and evaluate
stages, scoring (`p_<task>`, `flagged_<task>`), the MLflow registry, the model card, the report
and the notebooks' tables. A new task is one `Task` added to `BUILT_IN` (or, for a study of
your own, `register`ed before the pipeline runs) plus its `train.<task>` section in params.yaml
and its name in dvc.yaml's `foreach` lists (docs/models.md#a-new-task).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pipeline.errors import ZombieScanError


@dataclass(frozen=True)
class Task:
    name: str  # models/<name>/, train.<name>, metrics/<name>.json, the p_<name> column
    label: str  # its bool column in the labels table (null: unknown)
    title: str  # a heading in the report
    registry_name: str  # the MLflow registered model
    purpose: str  # the model card's intended use, completing "LightGBM binary classifier that ..."
    positive: str  # what a positive account is called in legends ("zombie")
    negative: str  # and a negative one ("genuine")
    colour: str  # its colour in figures
    simulated: bool = False  # the simulator draws this label: the transfer and robustness stages study it
    sells_likes: bool = False  # its flagged accounts are the like sellers of the pages-that-bought-likes report


BUILT_IN: tuple[Task, ...] = (
    Task(
        name="zombie",
        label="is_zombie",
        title="Zombie profiles",
        registry_name="zombiescan-zombie",
        purpose="ranks accounts by how likely they are fake profiles (zombies): created in bulk or bought, "
        "not run by the person they claim to be",
        positive="zombie",
        negative="genuine",
        colour="#DD8452",
        simulated=True,
    ),
    Task(
        name="like_farm",
        label="is_like_farm",
        title="Like-farm accounts",
        registry_name="zombiescan-like-farm",
        purpose="ranks accounts by how likely they sell likes in a like farm: coordinated bursts of likes on bought pages",
        positive="like farm",
        negative="not a farm",
        colour="#C44E52",
        simulated=True,
        sells_likes=True,
    ),
)

_registry: dict[str, Task] = {t.name: t for t in BUILT_IN}


def all_tasks() -> tuple[Task, ...]:
    """Every task, in registry order (built-in first)."""
    return tuple(_registry.values())


def names() -> tuple[str, ...]:
    return tuple(_registry)


def get(name: str) -> Task:
    """The task called `name`; an unknown name is a clear error listing the known ones."""
    try:
        return _registry[name]
    except KeyError:
        raise ZombieScanError(f"task {name!r}: unknown; the tasks are {', '.join(_registry)} (pipeline/tasks.py)") from None


def by_label(label: str) -> Task:
    for task in _registry.values():
        if task.label == label:
            return task
    raise ZombieScanError(f"label {label!r}: no task reads it; the label columns are {', '.join(label_columns())}")


def label_columns() -> tuple[str, ...]:
    """The labels table's label columns, one per task."""
    return tuple(t.label for t in _registry.values())


def like_seller() -> Task | None:
    """The task whose flagged accounts sell likes (the pages-that-bought-likes report), if any."""
    return next((t for t in _registry.values() if t.sells_likes), None)


def configured(params: dict[str, Any]) -> tuple[Task, ...]:
    """The tasks this run trains: those with a `train.<task>` section in params."""
    train = params.get("train") or {}
    return tuple(t for t in _registry.values() if isinstance(train.get(t.name), dict))


def register(task: Task) -> None:
    """Add a task (a study of your own; the built-in ones are in `BUILT_IN`)."""
    if task.name in _registry:
        raise ZombieScanError(f"task {task.name!r}: already registered")
    if task.label in label_columns():
        raise ZombieScanError(f"task {task.name!r}: label column {task.label!r} already belongs to {by_label(task.label).name}")
    if not task.name.isidentifier() or not task.label.isidentifier():
        raise ZombieScanError(f"task {task.name!r}: the name and label column must be identifiers (letters, digits, _)")
    _registry[task.name] = task


def unregister(name: str) -> None:
    if name in {t.name for t in BUILT_IN}:
        raise ZombieScanError(f"task {name!r}: built in; it cannot be removed")
    _registry.pop(name, None)


@contextlib.contextmanager
def registered(task: Task) -> Iterator[Task]:
    """`task` registered for the duration of a `with` block."""
    register(task)
    try:
        yield task
    finally:
        unregister(task.name)
