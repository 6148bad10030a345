"""The package's layers: every import (at top level and inside functions) points down or sideways
within a layer, no import cycle exists, and the reading path imports neither torch nor UMAP.

The layers, lowest first (README, "Architecture"): a module may import from its own layer and the
layers below it, never from one above.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mucomp"

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundations", ("mucomp", "mucomp.settings", "mucomp.seeds", "mucomp.locks", "mucomp.blas", "mucomp.progress",
                     "mucomp.precision", "mucomp.environment", "mucomp.display_text")),
    ("vocabulary", ("mucomp.specs", "mucomp.forget_sets", "mucomp.config", "mucomp.catalogue", "mucomp.names",
                    "mucomp.schema", "mucomp.groups")),
    ("computation", ("mucomp.data", "mucomp.models", "mucomp.weights", "mucomp.training", "mucomp.evaluation",
                     "mucomp.metrics", "mucomp.privacy", "mucomp.similarity", "mucomp.embedding", "mucomp.layout_cache",
                     "mucomp.audits", "mucomp.reference_check", "mucomp.recipes")),
    ("methods", ("mucomp.methods",)),
    ("references", ("mucomp.references", "mucomp.uploads")),
    ("store", ("mucomp.store",)),
    ("experiment", ("mucomp.experiment", "mucomp.runner")),
    ("execution and sharing", ("mucomp.execution", "mucomp.sharing")),
    ("results", ("mucomp.results", "mucomp.compare")),
    ("front ends", ("mucomp.cli", "mucomp.ui", "mucomp.report")),
]
#: What the pages that only read results, and the reading commands, import.
READING_MODULES = ("mucomp.store", "mucomp.results", "mucomp.schema", "mucomp.catalogue", "mucomp.compare",
                   "mucomp.cli", "mucomp.ui.session", "mucomp.ui.widgets", "mucomp.ui.figures", "mucomp.ui.tables",
                   "mucomp.ui.variance", "mucomp.ui.grids", "mucomp.ui.audit_tabs", "mucomp.execution",
                   "mucomp.report")
HEAVY = ("torch", "umap", "numba", "torchvision")


def module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:`` (annotations only, never run)."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for child in ast.walk(node))
    return skipped


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every mucomp module ``module`` imports, at top level or in a function."""
    tree = ast.parse(path.read_text(), str(path))
    skipped = _type_checking_nodes(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            if target == "mucomp" or target.startswith("mucomp."):
                resolved = _resolve(target, modules)
                if resolved and resolved != module:
                    found.add(resolved)
    return found


def layer_of(module: str) -> int:
    best, depth = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            # "mucomp" itself is the package's __init__ only, not a prefix of every module.
            inside = module == prefix or (prefix != "mucomp" and module.startswith(prefix + "."))
            if inside and len(prefix) > depth:
                best, depth = index, len(prefix)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS (and to the README's Architecture)")
    return best


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = module_names()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def test_every_module_has_a_layer(graph):
    for module in graph:
        layer_of(module)


def test_no_import_points_to_a_higher_layer(graph):
    upward = [f"{m} ({LAYERS[layer_of(m)][0]}) imports {t} ({LAYERS[layer_of(t)][0]})"
              for m, targets in graph.items() for t in targets if layer_of(t) > layer_of(m)]
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def test_no_import_cycle(graph):
    # Tarjan's strongly connected components: any component of more than one module is a cycle.
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


def test_the_checker_sees_function_level_and_upward_imports(tmp_path):
    # The checker itself: an import inside a function counts, a TYPE_CHECKING one does not.
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from mucomp.ui import session\n"
              "def f():\n    from mucomp.cli import main\n    return main\n")
    path = tmp_path / "probe.py"
    path.write_text(source)
    modules = {**module_names(), "mucomp.probe": path}
    assert imports_of("mucomp.probe", path, modules) == {"mucomp.cli"}


def test_the_reading_path_imports_neither_torch_nor_umap(tmp_path):
    code = (
        "import json, sys\n"
        f"for name in {READING_MODULES!r}:\n"
        "    __import__(name)\n"
        "from mucomp.cli import main\n"
        "main(['list']); main(['summary'])\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "MUCOMP_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == [], f"the reading path loaded {sorted({m.split('.')[0] for m in loaded})}"
