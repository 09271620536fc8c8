"""The package's shape holds (docs/ARCHITECTURE.md): small modules, classes and functions, no import cycle,
no module importing another module's private names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "logkafka"
MAX_MODULE_LINES, MAX_CLASS_LINES, MAX_FUNCTION_LINES = 500, 300, 80


def _modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, str, int]]:
    """(module imported, name imported from it or "", line) for every import of ours in the module, those inside
    functions included."""
    out = []
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] == "logkafka":
                out += [(base, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.Import):
            out += [(alias.name, "", node.lineno) for alias in node.names if alias.name.split(".")[0] == "logkafka"]
    return out


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_class_and_function_sizes(name: str) -> None:
    """No module over 500 lines, no class over 300, no function over 80."""
    source = MODULES[name].read_text()
    assert len(source.splitlines()) <= MAX_MODULE_LINES, f"{name}: {len(source.splitlines())} lines"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            if isinstance(node, ast.ClassDef):
                assert size <= MAX_CLASS_LINES, f"{name}: class {node.name} has {size} lines"
            else:
                assert size <= MAX_FUNCTION_LINES, f"{name}: {node.name}() has {size} lines"


def test_no_module_imports_another_modules_private_names() -> None:
    """``from logkafka._x import _name`` never: what modules share has a public name."""
    bad = [f"{name}:{line} imports {module}.{imported}"
           for name, path in MODULES.items() for module, imported, line in _imports(name, path)
           if imported.startswith("_") and not imported.startswith("__") and f"{module}.{imported}" not in MODULES]
    assert not bad, "\n".join(bad)


def test_no_import_cycle() -> None:
    """No two modules import each other, directly or through others (imports inside functions count)."""
    edges: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for module, imported, _ in _imports(name, path):
            target = f"{module}.{imported}" if f"{module}.{imported}" in MODULES else module
            if target in MODULES and target != name and target != "logkafka":
                edges[name].add(target)
    done: set[str] = set()

    def visit(node: str, stack: list[str]) -> None:
        for nxt in sorted(edges[node]):
            if nxt in stack:
                pytest.fail("import cycle: " + " -> ".join([*stack[stack.index(nxt):], nxt]))
            if nxt not in done:
                visit(nxt, [*stack, nxt])
        done.add(node)

    for start in sorted(edges):
        if start not in done:
            visit(start, [start])
