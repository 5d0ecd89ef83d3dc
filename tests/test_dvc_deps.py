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
"""

from __future__ import annotations

import ast
import os
import shlex
import tomllib
import warnings
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "pipeline"


@dataclass(frozen=True)
class Stage:
    """One stage of dvc.yaml as DVC resolves it: `train@zombie`, its command, deps and params keys."""

    name: str
    cmd: str
    deps: tuple[str, ...]
    params: tuple[str, ...] = ()


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
        for stage in ordered:
            deps = tuple(os.path.normpath(d.def_path) for d in stage.deps if not isinstance(d, ParamsDependency))
            params = tuple(
                key
                for d in stage.deps
                if isinstance(d, ParamsDependency) and os.path.normpath(d.def_path) == "params.yaml"
                for key in (d.params or [""])  # no keys: the whole file
            )
            cmd = stage.cmd if isinstance(stage.cmd, str) else " && ".join(stage.cmd)
            stages.append(Stage(stage.addressing, cmd, deps, params))
    return stages


# --- the stage's module and its import closure ------------------------------------------------


def console_scripts(root: Path = ROOT) -> dict[str, str]:
    """pyproject.toml's `[project.scripts]`: command name -> module."""
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        return {}
    scripts = tomllib.loads(pyproject.read_text()).get("project", {}).get("scripts", {})
    return {name: target.split(":")[0] for name, target in scripts.items()}


def stage_module(cmd: str, scripts: dict[str, str]) -> str | None:
    """The `pipeline` module a stage's command runs, or None when it runs none."""
    for part in cmd.split("&&"):
        words = shlex.split(part)
        for i, word in enumerate(words):
            if word == "-m" and i + 1 < len(words) and words[i + 1].split(".")[0] == PACKAGE:
                return words[i + 1]
            if word.endswith(".py") and word.split("/")[0] == PACKAGE:
                return word.removesuffix(".py").replace("/", ".")
            if word in scripts and scripts[word].split(".")[0] == PACKAGE:
                return scripts[word]
    return None


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
    "data/warehouse.duckdb",
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
