"""The package's imports point down the data flow: records → features → baseline → monitor →
pipeline → stream and the command line. Read from the source with ``ast`` (nothing is imported),
counting every import: at module level, inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "detector"

# Lowest first. A module may import its own layer and the layers below it, never one above. A
# name covers the module and its submodules; "detector" alone is the package's __init__.
LAYERS: list[tuple[str, ...]] = [
    ("detector", "detector.errors", "detector.config", "detector.logs", "detector.heap", "detector.dedup",
     "detector.threads"),
    ("detector.records", "detector.formats", "detector.schema", "detector.intake"),
    ("detector.features",),
    ("detector.baseline",),
    ("detector.monitor",),
    ("detector.probes", "detector.review", "detector.simulate", "detector.realistic"),
    ("detector.pipeline", "detector.split"),
    ("detector.metrics", "detector.report", "detector.backtest"),
    ("detector.stream",),
    ("detector.cli", "detector.__main__"),
]
CLI = "detector.cli"
CLI_IMPORTERS = ("detector.__main__", "detector.cli")  # the only modules that may import detector.cli


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _nodes(tree: ast.AST, *, runtime: bool) -> Iterator[ast.AST]:
    """Every node of ``tree``; with ``runtime``, not those of ``if TYPE_CHECKING:`` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if runtime and isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
        else:
            stack.extend(ast.iter_child_nodes(node))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


@functools.cache
def _tree(module: str) -> ast.Module:
    return ast.parse(MODULES[module].read_text(), str(MODULES[module]))


def imports_of(module: str, *, runtime: bool = False) -> set[str]:
    """The package's modules that ``module`` imports (relative imports resolved)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in _nodes(_tree(module), runtime=runtime):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            target = ".".join(p for p in (base, node.module) if p)
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
    return {m for m in found if m in MODULES and m != module}


def layer_of(module: str) -> int:
    """Index in LAYERS of the most specific name covering ``module``."""
    covering = [(prefix.count("."), index) for index, names in enumerate(LAYERS) for prefix in names
                if module == prefix or (prefix != "detector" and module.startswith(prefix + "."))]
    if not covering:
        raise LookupError(f"{module} is in no layer: add it to LAYERS in {Path(__file__).name}")
    return max(covering)[1]


def upward_imports(imports: dict[str, set[str]]) -> list[str]:
    return sorted(f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
                  for module, targets in imports.items() for target in targets
                  if layer_of(target) > layer_of(module))


def import_cycles(imports: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per back edge met in a depth-first walk (none: the graph is acyclic)."""
    cycles, path, state = [], [], {}  # state: 1 on the current path, 2 done

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(imports.get(module, ())):
            if state.get(target) == 1:
                cycles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(imports):
        if module not in state:
            visit(module)
    return cycles


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)


def test_no_module_imports_a_layer_above_its_own():
    assert upward_imports({m: imports_of(m) for m in MODULES}) == []


def test_only_the_command_line_imports_the_command_line():
    outside = sorted(f"{module} imports {target}" for module in MODULES for target in imports_of(module)
                     if (target == CLI or target.startswith(CLI + "."))
                     and not any(module == m or module.startswith(m + ".") for m in CLI_IMPORTERS))
    assert outside == []


def part_of(module: str) -> str:
    """The part of the package a module belongs to: ``detector.probes.cues`` → ``detector.probes``."""
    return ".".join(module.split(".")[:2])


def test_no_import_cycle_at_run_time():
    """Neither between modules nor between the package's parts (a simulator importing the probes
    while a probe module imports the simulator); ``TYPE_CHECKING`` imports never run."""
    imports = {m: imports_of(m, runtime=True) for m in MODULES}
    parts: dict[str, set[str]] = {}
    for module, targets in imports.items():
        parts.setdefault(part_of(module), set()).update(part_of(t) for t in targets if part_of(t) != part_of(module))
    assert import_cycles(imports) == []
    assert import_cycles(parts) == []


# ---- the checks themselves can fail ------------------------------------------------------------------

def test_the_checks_see_an_upward_import_and_a_cycle():
    assert upward_imports({"detector.baseline.build": {"detector.stream.kafka_config", "detector.records"}}) == [
        "detector.baseline.build (layer 3) imports detector.stream.kafka_config (layer 8)"]
    parts = {"detector.simulate": {"detector.probes"}, "detector.probes": {"detector.simulate", "detector.records"}}
    assert import_cycles(parts) == [["detector.probes", "detector.simulate", "detector.probes"]]


def test_imports_are_read_in_every_form():
    assert "detector.report.plots" in imports_of("detector.report")  # `from pkg import submodule`, in a function
    assert "detector.formats" in imports_of("detector.records")  # under TYPE_CHECKING...
    assert "detector.formats" not in imports_of("detector.records", runtime=True)  # ...which never runs


@pytest.mark.parametrize("module, layer", [("detector", 0), ("detector.features.text", 2),
                                           ("detector.stream.topic_range", 8), ("detector.__main__", 9)])
def test_layer_lookup(module, layer):
    assert layer_of(module) == layer
