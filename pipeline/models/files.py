"""Check model files before LightGBM sees them.

LightGBM parses model text in C++ and can abort the whole process (exit 134) on a malformed
file, with no Python exception to catch. So model.json is checked against its schema and
model.txt against its layout (header, tree count, each tree's byte size and array lengths)
first; whatever is wrong is named with the file and what was expected.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pipeline.errors import ZombieScanError

RETRAIN = "train the model again (`dvc repro`) or restore the file"

# key -> (accepted types, description)
META_SCHEMA: dict[str, tuple[tuple[type, ...], str]] = {
    "format": ((int,), "a whole number"),
    "task": ((str,), "a task name"),
    "features": ((list,), "a list of {name, dtype}"),
    "calibration": ((dict,), "an object"),
    "threshold": ((int, float), "a number between 0 and 1"),
    "threshold_note": ((str,), "text"),
    "params": ((dict,), "an object"),
    "model_txt_md5": ((str,), "the MD5 of model.txt"),
}
CALIBRATION_METHODS = ("isotonic", "platt", "none")
# array -> its length minus num_leaves (internal nodes: one fewer than leaves)
TREE_ARRAYS = {
    **dict.fromkeys(("split_feature", "split_gain", "threshold", "decision_type", "left_child", "right_child"), -1),
    **dict.fromkeys(("internal_value", "internal_weight", "internal_count"), -1),
    **dict.fromkeys(("leaf_value", "leaf_weight", "leaf_count"), 0),
}


def read_meta(path: Path) -> dict[str, Any]:
    """model.json as a dict, or a message naming the file and what is wrong with it."""
    try:
        meta = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise ZombieScanError(f"{path}: is not UTF-8 text, so not a model.json; {RETRAIN}") from None
    except json.JSONDecodeError as exc:
        raise ZombieScanError(f"{path}: is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); {RETRAIN}") from None
    if not isinstance(meta, dict):
        raise ZombieScanError(f"{path}: expected a JSON object, found {type(meta).__name__}; {RETRAIN}")
    return meta


def check_meta(meta: dict[str, Any], path: Path) -> None:
    """The keys a trained model's model.json must carry, with their types."""
    for key, (types, what) in META_SCHEMA.items():
        if key not in meta:
            raise ZombieScanError(f"{path}: key '{key}' is missing (expected {what}); {RETRAIN}")
        value = meta[key]
        if isinstance(value, bool) or not isinstance(value, types):
            raise ZombieScanError(f"{path}: key '{key}' is {json.dumps(value)[:60]}; expected {what}; {RETRAIN}")
    threshold = float(meta["threshold"])
    if not (math.isfinite(threshold) and 0 <= threshold <= 1):
        raise ZombieScanError(f"{path}: key 'threshold' is {threshold}; expected a number between 0 and 1; {RETRAIN}")
    for i, f in enumerate(meta["features"]):
        if not (isinstance(f, dict) and isinstance(f.get("name"), str) and isinstance(f.get("dtype"), str)):
            raise ZombieScanError(f"{path}: features[{i}] is {json.dumps(f)[:60]}; expected {{name, dtype}} as text; {RETRAIN}")
    cal = meta["calibration"]
    if cal.get("method") not in CALIBRATION_METHODS:
        raise ZombieScanError(f"{path}: calibration.method is {cal.get('method')!r}; expected one of {', '.join(CALIBRATION_METHODS)}")
    numbers = {k: cal.get(k, [] if k in "xy" else 0.0) for k in ("x", "y", "a", "b")}
    if not (isinstance(numbers["x"], list) and isinstance(numbers["y"], list) and len(numbers["x"]) == len(numbers["y"])):
        raise ZombieScanError(f"{path}: calibration.x and calibration.y must be lists of the same length; {RETRAIN}")
    flat = [*numbers["x"], *numbers["y"], numbers["a"], numbers["b"]]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in flat):
        raise ZombieScanError(f"{path}: calibration holds a value that is not a finite number; {RETRAIN}")
    unknown = set(cal) - {"method", "x", "y", "a", "b"}
    if unknown:
        raise ZombieScanError(f"{path}: calibration has unknown key(s) {', '.join(sorted(unknown))}; {RETRAIN}")


def read_model_text(path: Path, features: list[str]) -> str:
    """model.txt, checked: LightGBM's text layout, trees as long as `tree_sizes` says, each tree's
    arrays as long as its leaf count says, features as model.json names them."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ZombieScanError(f"{path}: byte {exc.start} is not UTF-8, so this is not a LightGBM text model; {RETRAIN}") from None

    def bad(what: str) -> ZombieScanError:
        return ZombieScanError(f"{path}: not a LightGBM text model as written by training ({what}); {RETRAIN}")

    head, sep, _ = data.partition(b"\n\n")
    lines = head.decode().split("\n")
    if not sep or lines[0] != "tree":
        raise bad("expected a first line 'tree' and a header ending in a blank line")
    header = dict(line.partition("=")[::2] for line in lines[1:])
    for key in ("version", "num_class", "max_feature_idx", "feature_names", "tree_sizes"):
        if key not in header:
            raise bad(f"header line '{key}=' is missing")
    names = header["feature_names"].split()
    try:
        n_features = int(header["max_feature_idx"]) + 1
        sizes = [int(s) for s in header["tree_sizes"].split()]
    except ValueError:
        raise bad("max_feature_idx and tree_sizes must be whole numbers") from None
    if len(names) != n_features:
        raise bad(f"max_feature_idx says {n_features} features, feature_names lists {len(names)}")
    if names != features:
        where = next((i for i, (a, b) in enumerate(zip(names, features, strict=False)) if a != b), min(len(names), len(features)))
        ours = names[where] if where < len(names) else "nothing"
        theirs = features[where] if where < len(features) else "nothing"
        raise ZombieScanError(
            f"{path}: feature {where + 1} is {ours}, model.json beside it says {theirs}: the two files do not belong together "
            f"(a model from another feature version?); {RETRAIN}"
        )
    if not sizes or any(s <= 0 for s in sizes):
        raise bad("tree_sizes must list one positive size per tree")
    at = data.find(b"Tree=0\n", len(head))
    if at < 0:
        raise bad("no 'Tree=0' section")
    for i, size in enumerate(sizes):
        block = data[at : at + size]
        if len(block) < size or not block.startswith(f"Tree={i}\n".encode()):
            raise bad(f"tree {i} is not where tree_sizes puts it")
        _check_tree(block.decode(), i, n_features, bad)
        at += size
    if not data[at:].startswith(b"end of trees"):
        raise bad(f"'end of trees' does not follow tree {len(sizes) - 1}")
    return text


def _check_tree(block: str, i: int, n_features: int, bad: Any) -> None:
    fields = dict(line.partition("=")[::2] for line in block.strip().split("\n")[1:] if "=" in line)
    try:
        leaves = int(fields["num_leaves"])
    except (KeyError, ValueError):
        raise bad(f"tree {i}: num_leaves missing or not a whole number") from None
    if leaves < 1:
        raise bad(f"tree {i}: num_leaves {leaves}")
    if fields.get("num_cat", "0") != "0" or fields.get("is_linear", "0") != "0":
        raise bad(f"tree {i}: categorical or linear trees, which training never writes")
    for key, extra in TREE_ARRAYS.items():
        want = leaves + extra
        if want == 0 or (key not in fields and key not in ("split_feature", "threshold", "left_child", "right_child", "leaf_value")):
            continue
        values = fields.get(key, "").split()
        if len(values) != want:
            raise bad(f"tree {i}: {key} has {len(values)} values, expected {want} for {leaves} leaves")
        try:
            numbers = [float(v) for v in values]
        except ValueError:
            raise bad(f"tree {i}: {key} holds a value that is not a number") from None
        if key == "split_feature" and not all(0 <= v < n_features and v == int(v) for v in numbers):
            raise bad(f"tree {i}: split_feature names a feature outside 0..{n_features - 1}")
        if key in ("left_child", "right_child") and not all(-leaves <= v < leaves - 1 and v == int(v) for v in numbers):
            raise bad(f"tree {i}: {key} points outside the tree")
