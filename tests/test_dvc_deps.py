"""dvc.yaml names every `pipeline/` module each stage runs, so a code change re-runs exactly the stages it affects.

DVC does not follow Python imports (STYLE 3): a stage whose `deps` miss a module it imports is not
re-run when that module changes, and `dvc repro` calls stale outputs up to date. The stages come
from DVC itself (`foreach` expanded, `${...}` resolved with params.yaml), so a stage added to
dvc.yaml is checked without touching this file.

The rule for code, checked statically (ast, nothing is imported):

- A stage's module is the `pipeline.*` module its `cmd` runs (`python -m pipeline.stages.x ...`,
  `python pipeline/stages/x.py`, or a console script from pyproject.toml such as `zombiescan`).
- Its closure is every `pipeline` module reached from there by `import pipeline.x`,
  `from pipeline.x import y` (y too when it is a submodule), `from pipeline import x`, relative
  imports and `importlib.import_module("pipeline.x")`, wherever they stand: an import inside a
  function still runs when the function does. Imports under `if TYPE_CHECKING:` never run and are
  skipped. Importing a module runs its packages' `__init__.py` files, so they are in the closure.
- Files a module reads with `importlib.resources.files("pipeline.x")` (the feature SQL) are code
  too: every non-Python file under that package is in the closure.
- Every closure file must be covered by a `deps` entry: the file itself or a folder above it.
  One exception: an `__init__.py` that only holds a docstring (and dunder constants such as
  `__version__`) and that nothing imports a name from runs no code, so it need not be listed;
  `pipeline/__init__.py` would otherwise be a dep of every stage.
- A `deps` entry under `pipeline/` must exist (no stale entries) and must cover at least one
  closure file (an entry the stage never runs re-runs it for nothing). A folder entry may cover
  more than the stage imports: that is the price of a readable dvc.yaml.

The rule for params, checked by running every stage (dynamic; static patterns miss reads such as
`RunPaths.from_dict`'s `get(name)` helper and over-count code that is imported but not run):

- Every stage runs once, in DVC's order, through its own `main` and the arguments of its `cmd`,
  on the tiny simulated world in a temporary folder (`TINY` below: small values, same keys), with
  params that note every key read: a leaf value read (`train.zombie.num_leaves`), a missing key
  asked for, or a whole mapping used at once (iterated, copied with `dict(...)`, `**`-unpacked,
  dumped), which reads everything under it. `section(params, "x")` alone reads nothing.
- Every read must be covered by a `params` entry: the entry equals the read key or a section
  above it (`train` covers `train.zombie.num_leaves`; `train.models` does not cover a read of all
  of `train`). Listing a section where the stage reads one key is allowed: over-listing only
  re-runs a stage, under-listing leaves stale results.
- A key the stage's cmd, deps or outs interpolate (`${ingest.db}`) needs no entry: a new value
  changes the stage's definition, and DVC re-runs it for that.
- Every `params` entry must be read by the run (or lie under or above something read): an entry
  the stage never reads re-runs it for nothing. Reads the tiny run does not reach (a branch taken
  only with `data.spec` set, say) are not seen: list the section when a stage reads it on
  several paths.

The run takes about a minute (45 s of CPU on the 2-core machine), once per session; the rest of
this file takes seconds.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import shlex
import tomllib
import warnings
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

import pipeline.params
from pipeline.errors import ZombieScanError
from pipeline.params import DEFAULT_PARAMS, Params, Section, load_params, section

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "pipeline"


@dataclass(frozen=True)
class Stage:
    """One stage of dvc.yaml as DVC resolves it: `train@zombie`, its command, deps and params keys."""

    name: str
    cmd: str
    deps: tuple[str, ...]
    params: tuple[str, ...] = ()
    interpolated: tuple[str, ...] = ()  # params keys written as ${...} into its cmd, deps or outs


def interpolated_keys(definition: Any) -> tuple[str, ...]:
    """The `${...}` keys in a raw stage definition, outside its `params` list; a foreach's `${item}`/`${key}` are not params."""
    found: list[str] = []
    if isinstance(definition, dict):
        for name, value in definition.items():
            if name not in ("params", "foreach", "matrix"):
                found += [*interpolated_keys(name), *interpolated_keys(value)]
    elif isinstance(definition, list):
        for value in definition:
            found += interpolated_keys(value)
    elif isinstance(definition, str):
        found += [k for k in re.findall(r"\$\{\s*([^}\s]+)\s*\}", definition) if k.split(".")[0] not in ("item", "key")]
    return tuple(dict.fromkeys(found))


def dvc_stages(root: Path = ROOT) -> list[Stage]:
    """The stages of `root`'s dvc.yaml in the order DVC runs them, as DVC itself reads them."""
    import networkx as nx
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    with warnings.catch_warnings(), Repo(str(root)) as repo:
        warnings.simplefilter("ignore", DeprecationWarning)  # DVC's own, from its path trie
        order = {stage: i for i, stage in enumerate(repo.index.stages)}
        # edges point from a stage to the stages it depends on
        ordered = nx.lexicographical_topological_sort(repo.index.graph.reverse(), key=order.__getitem__)
        stages = []
        raw: dict[str, Any] = {}
        for stage in ordered:
            if stage.path not in raw:
                raw[stage.path] = yaml.safe_load(Path(stage.path).read_text()).get("stages", {})
            definition = raw[stage.path].get(stage.name.split("@")[0], {})
            deps = tuple(os.path.normpath(d.def_path) for d in stage.deps if not isinstance(d, ParamsDependency))
            params = tuple(
                key
                for d in stage.deps
                if isinstance(d, ParamsDependency) and os.path.normpath(d.def_path) == "params.yaml"
                for key in (d.params or [""])  # no keys: the whole file
            )
            cmd = stage.cmd if isinstance(stage.cmd, str) else " && ".join(stage.cmd)
            interpolated = interpolated_keys(definition.get("do", definition))
            stages.append(Stage(stage.addressing, cmd, deps, params, interpolated))
    return stages


# --- the stage's module and its import closure ------------------------------------------------


def console_scripts(root: Path = ROOT) -> dict[str, str]:
    """pyproject.toml's `[project.scripts]`: command name -> module."""
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        return {}
    scripts = tomllib.loads(pyproject.read_text()).get("project", {}).get("scripts", {})
    return {name: target.split(":")[0] for name, target in scripts.items()}


def stage_command(cmd: str, scripts: dict[str, str]) -> tuple[str, list[str]] | None:
    """The `pipeline` module a stage's command runs and the arguments it gets, or None when it runs none."""
    for part in cmd.split("&&"):
        words = shlex.split(part)
        for i, word in enumerate(words):
            if word == "-m" and i + 1 < len(words) and words[i + 1].split(".")[0] == PACKAGE:
                return words[i + 1], words[i + 2 :]
            if word.endswith(".py") and word.split("/")[0] == PACKAGE:
                return word.removesuffix(".py").replace("/", "."), words[i + 1 :]
            if word in scripts and scripts[word].split(".")[0] == PACKAGE:
                return scripts[word], words[i + 1 :]
    return None


def stage_module(cmd: str, scripts: dict[str, str]) -> str | None:
    """The `pipeline` module a stage's command runs, or None when it runs none."""
    found = stage_command(cmd, scripts)
    return found[0] if found else None


def module_file(module: str, root: Path) -> Path | None:
    """The file that runs when `module` is imported (relative to root), or None if there is none."""
    base = Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if (root / candidate).is_file():
            return candidate
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _string_arg(call: ast.Call) -> str | None:
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    return None


def _call_name(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


@dataclass
class _Imports:
    modules: list[str]  # modules this file imports
    names_from: list[str]  # modules (packages) that this file imports a non-module name from
    resources: list[str]  # packages whose resource files this file reads


class _ImportVisitor(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool, root: Path) -> None:
        self.package = module if is_package else module.rpartition(".")[0]
        self.root = root
        self.found = _Imports([], [], [])

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):  # typing-only imports never run
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.found.modules += [alias.name for alias in node.names]
        self.found.names_from += [alias.name for alias in node.names]  # its namespace is in hand

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            parts = self.package.split(".")
            base_parts = parts[: len(parts) - node.level + 1]
            base = ".".join([*base_parts, *([node.module] if node.module else [])])
        else:
            base = node.module or ""
        self.found.modules.append(base)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            if alias.name != "*" and module_file(sub, self.root) is not None:
                self.found.modules.append(sub)
            else:
                self.found.names_from.append(base)

    def visit_Call(self, node: ast.Call) -> None:
        name, arg = _call_name(node), _string_arg(node)
        if arg is not None and name in ("import_module", "__import__"):
            self.found.modules.append(arg)
        elif arg is not None and name == "files":  # importlib.resources.files("pipeline.x")
            self.found.resources.append(arg)
        self.generic_visit(node)


def _inert(tree: ast.Module) -> bool:
    """True when running the module defines nothing but a docstring and dunder constants."""
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            continue
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            continue
        if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) and t.id.startswith("__") for t in node.targets):
            try:
                ast.literal_eval(node.value)
            except ValueError:
                return False
            continue
        return False
    return True


@dataclass(frozen=True)
class Closure:
    """What running a module runs: file -> how it comes to run ("imported via pipeline.x"), and the files exempt from deps."""

    files: dict[str, str]
    exempt: frozenset[str]

    @property
    def required(self) -> dict[str, str]:
        return {f: via for f, via in self.files.items() if f not in self.exempt}


def _package_files(module: str, root: Path) -> list[tuple[str, Path]]:
    """(module, file) for `module` and every package above it, outermost first."""
    parts = module.split(".")
    found = []
    for i in range(1, len(parts) + 1):
        name = ".".join(parts[:i])
        path = module_file(name, root)
        if path is not None:
            found.append((name, path))
    return found


def import_closure(module: str, root: Path = ROOT) -> Closure:
    """Every file under root/pipeline that running `module` runs or reads, with who brought it in."""
    files: dict[str, str] = {}
    trees: dict[str, ast.Module] = {}
    names_used: set[str] = set()
    queue: deque[str] = deque()

    def add(target: str, via: str) -> None:
        if target.split(".")[0] != PACKAGE:
            return
        for name, path in _package_files(target, root):
            key = path.as_posix()
            if key not in files:
                files[key] = via if via.startswith("run by") else f"imported via {via}"
                queue.append(name)

    add(module, "run by the stage's cmd")
    names_used.add(module)  # the stage's own module runs as __main__
    while queue:
        name = queue.popleft()
        path = module_file(name, root)
        assert path is not None
        tree = ast.parse((root / path).read_text(), filename=str(path))
        trees[path.as_posix()] = tree
        visitor = _ImportVisitor(name, path.name == "__init__.py", root)
        visitor.visit(tree)
        for target in visitor.found.modules:
            add(target, name)
        names_used.update(visitor.found.names_from)
        for package in visitor.found.resources:
            folder = root / Path(*package.split("."))
            if package.split(".")[0] == PACKAGE and folder.is_dir():
                for data in sorted(folder.rglob("*")):
                    if data.is_file() and data.suffix not in (".py", ".pyc") and "__pycache__" not in data.parts:
                        files.setdefault(data.relative_to(root).as_posix(), f"read by {name} via importlib.resources")
    exempt = frozenset(
        key
        for key, tree in trees.items()
        if key.endswith("/__init__.py") and _inert(tree) and key.removesuffix("/__init__.py").replace("/", ".") not in names_used
    )
    return Closure(files, exempt)


def _covers(dep: str, file: str) -> bool:
    return dep == "." or file == dep or file.startswith(dep.rstrip("/") + "/")


def dep_problems(stage: Stage, root: Path = ROOT, scripts: dict[str, str] | None = None) -> list[str]:
    """What is wrong with `stage`'s code deps, one line each; empty when nothing is."""
    module = stage_module(stage.cmd, console_scripts(root) if scripts is None else scripts)
    problems = []
    ours = [d for d in stage.deps if d == PACKAGE or d.startswith(PACKAGE + "/")]
    for dep in ours:
        if not (root / dep).exists():
            problems.append(f"stage {stage.name}: dvc.yaml deps name {dep}, which does not exist")
    if module is None:
        return problems
    closure = import_closure(module, root)
    for file, how in sorted(closure.required.items()):
        if not any(_covers(dep, file) for dep in stage.deps):
            problems.append(f"stage {stage.name}: dvc.yaml deps lack {file} ({how})")
    for dep in ours:
        if (root / dep).exists() and not any(_covers(dep, file) for file in closure.files):
            problems.append(f"stage {stage.name}: dvc.yaml deps name {dep}, which {module} never imports (a change re-runs it for nothing)")
    return problems


# --- the params each stage reads ------------------------------------------------------------

Key = tuple[str, ...]  # ("train", "zombie", "num_leaves"); () is the whole file


class _Recording(dict[str, Any]):
    """A params mapping that notes in `reads` every key read through it (see the module docstring)."""

    key: Key
    reads: set[Key]
    whole: bool
    source: Path | str

    def _value(self, name: str, value: Any) -> Any:
        key = (*self.key, str(name))
        if self.whole:  # noted already, with everything under it
            return value
        if isinstance(value, dict):  # a mapping is not read until something in it is
            return RecordingSection(key, self.source, value, self.reads)
        self.reads.add(key)
        return value

    def _read_all(self) -> None:
        self.reads.add(self.key)
        self.whole = True

    def __getitem__(self, name: str) -> Any:
        if not dict.__contains__(self, name):
            self.reads.add((*self.key, str(name)))
        return self._value(name, super().__getitem__(name))

    def get(self, name: str, default: Any = None) -> Any:
        if dict.__contains__(self, name):
            return self._value(name, dict.__getitem__(self, name))
        self.reads.add((*self.key, str(name)))
        return default

    def __contains__(self, name: object) -> bool:
        self.reads.add((*self.key, str(name)))
        return super().__contains__(name)

    def __iter__(self) -> Iterator[str]:
        self._read_all()
        return super().__iter__()

    def keys(self) -> Any:
        self._read_all()
        return super().keys()

    def values(self) -> Any:
        self._read_all()
        return super().values()

    def items(self) -> Any:
        self._read_all()
        return super().items()

    def copy(self) -> dict[str, Any]:
        self._read_all()
        return dict(super().items())

    def __eq__(self, other: object) -> bool:
        self._read_all()
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]


class RecordingSection(_Recording, Section):
    """One section (or deeper mapping) of a `RecordingParams`."""

    def __init__(self, key: Key, source: Path | str, values: dict[str, Any], reads: set[Key]) -> None:
        Section.__init__(self, ".".join(key), source, values)
        self.key, self.reads, self.whole = key, reads, False


class RecordingParams(_Recording, Params):
    """The whole params file, as `load_params` returns it, noting reads into a shared set."""

    def __init__(self, source: Path | str, values: dict[str, Any], reads: set[Key]) -> None:
        Params.__init__(self, source, values)
        self.key, self.reads, self.whole = (), reads, False


def _recording_section_class(name: str, source: Path | str, values: dict[str, Any]) -> Section:
    """Stands in for `Section` inside `section()`: a recording mapping stays one.

    Copying it into a `Section` would read all of it. Should `section()` ever copy by other
    means, reads only get coarser (whole sections): the check may then ask for more, never less.
    """
    return values if isinstance(values, RecordingSection) else Section(name, source, values)


def _key(entry: str) -> Key:
    return tuple(entry.split(".")) if entry else ()


def _under(key: Key, entry: Key) -> bool:
    return key[: len(entry)] == entry


def param_problems(stage: Stage, reads: set[Key]) -> list[str]:
    """What is wrong with `stage`'s params, one line each, given the keys its run read."""
    listed = [_key(e) for e in stage.params]
    tracked = listed + [_key(k) for k in stage.interpolated]  # a new value there changes the stage itself
    problems = [
        f"stage {stage.name}: dvc.yaml params lack {'.'.join(read) or 'the whole params file'} (the stage reads it)"
        for read in sorted(reads)
        if not any(_under(read, entry) for entry in tracked)
    ]
    problems += [
        f"stage {stage.name}: dvc.yaml params list {'.'.join(entry)}, which the stage never reads (a change re-runs it for nothing)"
        for entry in listed
        if entry and not any(_under(read, entry) or _under(entry, read) for read in reads)
    ]
    return problems


# Small settings for the run that records reads: they change values, not which keys a stage reads.
# LightGBM on one thread: 5x faster on a busy 2-core machine (evaluate trains ~20 small models).
TINY = {
    "simulate": {"preset": "tiny"},
    "split": {"folds": 3},
    "train": {task: {"num_boost_round": 30, "lightgbm": {"num_threads": 1}} for task in ("zombie", "like_farm")},
    "evaluate": {"bootstrap": 20, "guard": {"enforce": False}},
    "transfer": {"train_seeds": [1]},
    "robustness": {"preset": "tiny", "accounts": None, "knobs": {"farm_count": 9}, "folds": 3, "sweep": {"adaptive_share": [0.5]}},
    "benchmark": {"datasets": ["instafake"], "fast": True},
}


def _update(values: dict[str, Any], overrides: dict[str, Any]) -> None:
    for name, value in overrides.items():
        if isinstance(value, dict) and isinstance(values.get(name), dict):
            _update(values[name], value)
        elif name in values or isinstance(value, dict):  # a new mapping: train.<task>.lightgbm
            values[name] = value
        else:
            raise KeyError(f"TINY sets {name}, which params.yaml does not have: rename it there too")


def record_reads(stages: list[Stage], work: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, set[Key]]:
    """Run every stage's `main` in `work` on the tiny world; the params keys each one read."""
    values = yaml.safe_load((ROOT / DEFAULT_PARAMS).read_text())
    _update(values, TINY)
    (work / "params.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
    (work / "datasets").symlink_to(ROOT / "datasets")  # dataset specs are read from ./datasets
    monkeypatch.chdir(work)  # every output path in params.yaml is relative: all of them land here
    monkeypatch.setenv("ZOMBIESCAN_DATA_ROOT", str(ROOT.parent / "shared" / "data"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{work / 'mlflow.db'}")
    monkeypatch.setattr(pipeline.params, "Section", _recording_section_class)
    scripts = console_scripts()
    reads: dict[str, set[Key]] = {}
    for stage in stages:
        found = stage_command(stage.cmd, scripts)
        if found is None:
            continue
        module, args = found
        seen = reads[stage.name] = set()
        monkeypatch.setattr(
            "pipeline.stages.common.load_params", lambda path, seen=seen: RecordingParams(path, dict(load_params(path)), seen)
        )
        code = importlib.import_module(module).main(args)
        assert code == 0, f"stage {stage.name} failed on the tiny world (`{stage.cmd}` in {work}); its message is above"
    return reads


# --- the checks on this repository ------------------------------------------------------------

STAGES = dvc_stages()


@pytest.mark.parametrize("stage", STAGES, ids=[s.name for s in STAGES])
def test_deps_name_every_module_the_stage_runs(stage: Stage) -> None:
    problems = dep_problems(stage)
    assert not problems, "\n".join(problems)


def test_every_stage_runs_a_pipeline_module() -> None:
    """A stage whose command this file cannot read would go unchecked: better to hear about it."""
    scripts = console_scripts()
    assert STAGES
    assert [s.name for s in STAGES if stage_module(s.cmd, scripts) is None] == []


@pytest.fixture(scope="module")
def stage_reads(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[Key]]:
    """The params keys every stage reads, from one run of the whole pipeline on the tiny world (~1 min)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        return record_reads(STAGES, tmp_path_factory.mktemp("dvc-params"), monkeypatch)


@pytest.mark.parametrize("stage", STAGES, ids=[s.name for s in STAGES])
def test_params_name_every_setting_the_stage_reads(stage: Stage, stage_reads: dict[str, set[Key]]) -> None:
    if stage.name not in stage_reads:
        pytest.skip(f"stage {stage.name} runs no pipeline module (test_every_stage_runs_a_pipeline_module fails)")
    problems = param_problems(stage, stage_reads[stage.name])
    assert not problems, "\n".join(problems)


# --- the checks can fail ----------------------------------------------------------------------


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


FAKE = {
    "pipeline/__init__.py": '"""The package."""\n__version__ = "1"\n',
    "pipeline/stages/__init__.py": '"""Stages."""\n',
    "pipeline/stages/featurize.py": (
        "from typing import TYPE_CHECKING\n"
        "from pipeline.features.build import build\n"
        "if TYPE_CHECKING:\n    from pipeline.typing_only import Frame\n"
        "def main():\n    from . import common\n"
    ),
    "pipeline/stages/common.py": "import pipeline.io\n",
    "pipeline/io.py": "",
    "pipeline/typing_only.py": "",
    "pipeline/features/__init__.py": '"""Features."""\n',
    "pipeline/features/build.py": "from pipeline.datasets import adapt\nfrom ..features import sql\n",
    "pipeline/features/sql.py": 'from importlib.resources import files\nTEXT = files("pipeline.features")\n',
    "pipeline/features/sql/profile.sql": "SELECT 1\n",
    "pipeline/features/unused.py": "",
    "pipeline/datasets/__init__.py": "from pipeline.datasets.spec import SPEC\n",
    "pipeline/datasets/adapt.py": "",
    "pipeline/datasets/spec.py": "SPEC = 1\n",
}
FAKE_CMD = "python -m pipeline.stages.featurize --params params.yaml"
FAKE_DEPS = (
    "data/warehouse",
    "pipeline/stages/featurize.py",
    "pipeline/stages/common.py",
    "pipeline/io.py",
    "pipeline/features",
    "pipeline/datasets",
)


def _swap(drop: str | None, *add: str) -> tuple[str, ...]:
    """FAKE_DEPS without `drop`, with `add`."""
    return (*(d for d in FAKE_DEPS if d != drop), *add)


def test_closure_follows_every_kind_of_import(tmp_path: Path) -> None:
    _write(tmp_path, FAKE)
    closure = import_closure("pipeline.stages.featurize", tmp_path)
    assert closure.files == {
        "pipeline/__init__.py": "run by the stage's cmd",
        "pipeline/stages/__init__.py": "run by the stage's cmd",
        "pipeline/stages/featurize.py": "run by the stage's cmd",
        "pipeline/features/__init__.py": "imported via pipeline.stages.featurize",
        "pipeline/features/build.py": "imported via pipeline.stages.featurize",
        "pipeline/stages/common.py": "imported via pipeline.stages.featurize",  # lazy and relative
        "pipeline/datasets/__init__.py": "imported via pipeline.features.build",
        "pipeline/datasets/adapt.py": "imported via pipeline.features.build",
        "pipeline/features/sql.py": "imported via pipeline.features.build",
        "pipeline/datasets/spec.py": "imported via pipeline.datasets",  # through the package's __init__
        "pipeline/io.py": "imported via pipeline.stages.common",
        "pipeline/features/sql/profile.sql": "read by pipeline.features.sql via importlib.resources",
    }
    # docstring-only packages run no code; pipeline/datasets/__init__.py imports a module
    assert closure.exempt == {"pipeline/__init__.py", "pipeline/stages/__init__.py", "pipeline/features/__init__.py"}


def test_complete_deps_pass(tmp_path: Path) -> None:
    _write(tmp_path, FAKE)
    assert dep_problems(Stage("featurize", FAKE_CMD, FAKE_DEPS), tmp_path, {}) == []


@pytest.mark.parametrize(
    ("deps", "expected"),
    [
        (
            _swap("pipeline/datasets", "pipeline/datasets/spec.py"),
            [
                "stage featurize: dvc.yaml deps lack pipeline/datasets/__init__.py (imported via pipeline.features.build)",
                "stage featurize: dvc.yaml deps lack pipeline/datasets/adapt.py (imported via pipeline.features.build)",
            ],
        ),
        (
            _swap("pipeline/features", "pipeline/features/__init__.py", "pipeline/features/build.py", "pipeline/features/sql.py"),
            [
                "stage featurize: dvc.yaml deps lack pipeline/features/sql/profile.sql "
                "(read by pipeline.features.sql via importlib.resources)"
            ],
        ),
        (
            _swap("pipeline/stages/featurize.py"),
            ["stage featurize: dvc.yaml deps lack pipeline/stages/featurize.py (run by the stage's cmd)"],
        ),
        (
            _swap("pipeline/io.py"),
            ["stage featurize: dvc.yaml deps lack pipeline/io.py (imported via pipeline.stages.common)"],
        ),
        (
            _swap(None, "pipeline/gone.py"),
            ["stage featurize: dvc.yaml deps name pipeline/gone.py, which does not exist"],
        ),
        (
            _swap(None, "pipeline/typing_only.py"),
            [
                "stage featurize: dvc.yaml deps name pipeline/typing_only.py, which pipeline.stages.featurize never imports "
                "(a change re-runs it for nothing)"
            ],
        ),
    ],
    ids=["module-via-folder", "package-data", "stage-module", "lazy-relative-import", "stale", "unneeded"],
)
def test_incomplete_deps_fail_naming_the_file_and_importer(tmp_path: Path, deps: tuple[str, ...], expected: list[str]) -> None:
    _write(tmp_path, FAKE)
    assert dep_problems(Stage("featurize", FAKE_CMD, deps), tmp_path, {}) == expected


@pytest.mark.parametrize(
    ("cmd", "expected"),
    [
        ("python -m pipeline.stages.train --task zombie", "pipeline.stages.train"),
        ("python pipeline/stages/report.py", "pipeline.stages.report"),
        ("zombiescan report --params params.yaml", "pipeline.cli"),
        ("mkdir -p out && python -m pipeline.stages.split", "pipeline.stages.split"),
        ("python -m pytest", None),
        ("cp a b", None),
    ],
)
def test_stage_module_from_cmd(cmd: str, expected: str | None) -> None:
    assert stage_module(cmd, {"zombiescan": "pipeline.cli"}) == expected


@pytest.mark.parametrize("stage", STAGES, ids=[s.name for s in STAGES])
def test_dropping_any_code_dep_of_a_real_stage_fails(stage: Stage) -> None:
    """On the real dvc.yaml: without the first `pipeline/` dep each stage lists, the check fails."""
    ours = [d for d in stage.deps if d.startswith(PACKAGE + "/")]
    if not ours:
        pytest.skip(f"stage {stage.name} lists no pipeline/ deps")
    dropped = Stage(stage.name, stage.cmd, tuple(d for d in stage.deps if d != ours[0]), stage.params)
    assert any(ours[0] in p and "deps lack" in p for p in dep_problems(dropped)), f"dropping {ours[0]} went unnoticed"


@pytest.mark.parametrize("stage", STAGES, ids=[s.name for s in STAGES])
def test_dropping_any_param_of_a_real_stage_fails(stage: Stage, stage_reads: dict[str, set[Key]]) -> None:
    """On the real dvc.yaml and the recorded run: without its first params entry each stage fails the check."""
    if not stage.params or stage.name not in stage_reads:
        pytest.skip(f"stage {stage.name} lists no params or runs no pipeline module")
    dropped = Stage(stage.name, stage.cmd, stage.deps, stage.params[1:])
    problems = param_problems(dropped, stage_reads[stage.name])
    assert any(f"params lack {stage.params[0]}" in p for p in problems), f"dropping {stage.params[0]} went unnoticed: {problems}"


FAKE_PARAMS = {
    "data": {"spec": None, "root": "../data"},
    "split": {"out": "split.parquet", "folds": 5},
    "train": {"models": "models", "zombie": {"num_leaves": 31, "seed": 1}, "like_farm": {"num_leaves": 15}},
}


def test_recording_notes_leaves_missing_keys_and_whole_mappings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline.params, "Section", _recording_section_class)
    reads: set[Key] = set()
    params = RecordingParams("params.yaml", FAKE_PARAMS, reads)
    train = section(params, "train")
    assert (train["models"], dict(train["zombie"])) == ("models", {"num_leaves": 31, "seed": 1})
    assert (params.get("data") or {}).get("spec") is None
    assert params.get("featurize") is None
    assert section(params, "split").get("folds") == 5
    with pytest.raises(ZombieScanError, match=r"setting 'split\.nope' is missing"):
        section(params, "split")["nope"]
    assert reads == {("train", "models"), ("train", "zombie"), ("data", "spec"), ("featurize",), ("split", "folds"), ("split", "nope")}
    dict(params)  # e.g. logging every setting
    assert () in reads


@pytest.mark.parametrize(
    ("listed", "reads", "expected"),
    [
        (("train.models", "train.zombie", "split"), {("train", "models"), ("train", "zombie", "seed"), ("split", "out")}, []),
        (("",), {("train",), ("data", "spec")}, []),  # `- params.yaml:` with no keys: the whole file
        (("train.models", "split"), {("train",), ("split", "out")}, ["stage t: dvc.yaml params lack train (the stage reads it)"]),
        (("split",), {("split",), ("ingest", "db")}, ["stage t: dvc.yaml params lack ingest.db (the stage reads it)"]),
        (
            ("train",),
            {("train", "models"), ("featurize", "lockstep")},
            ["stage t: dvc.yaml params lack featurize.lockstep (the stage reads it)"],
        ),
        (("train",), {()}, ["stage t: dvc.yaml params lack the whole params file (the stage reads it)"]),
        (
            ("train.models", "evaluate"),
            {("train", "models")},
            ["stage t: dvc.yaml params list evaluate, which the stage never reads (a change re-runs it for nothing)"],
        ),
    ],
    ids=["complete", "whole-file", "section-read-whole", "path-not-interpolated", "missing-key", "whole-file-read", "never-read"],
)
def test_param_problems(listed: tuple[str, ...], reads: set[Key], expected: list[str]) -> None:
    assert param_problems(Stage("t", "python -m pipeline.stages.t", (), listed, ("evaluate.metrics",)), reads) == expected


def test_a_key_written_into_the_stage_needs_no_params_entry() -> None:
    """`${ingest.db}` in deps: a new value changes the stage's definition, and DVC re-runs it for that."""
    definition = {
        "cmd": "python -m pipeline.stages.t --task ${item} --db ${ingest.db}",
        "deps": ["${ featurize.out }", "${train.models}/${item}/model.txt"],
        "params": ["train.${item}", "data.spec"],
    }
    assert interpolated_keys(definition) == ("ingest.db", "featurize.out", "train.models")
    stage = Stage("t@zombie", "", (), ("train.zombie",), interpolated_keys(definition))
    assert param_problems(stage, {("ingest", "db"), ("featurize", "out"), ("train", "zombie")}) == []
