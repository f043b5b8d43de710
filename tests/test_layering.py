"""The house: packages import downward only, with no circles, and each outside library has one door.

Every import is read from the source (those inside functions too, where circles used to hide),
so the layering holds however a module is loaded.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import screening

PACKAGE = Path(screening.__file__).parent

# From the bottom up: a module may import its own layer and the layers below, never above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "vocabulary", "windows", "valuesets"),
    ("record",),
    ("aggregates",),
    ("ruleset",),
    ("engine",),
    ("decision",),
    ("screener",),
    ("fhir",),
    ("intake",),
    ("present",),
    ("batch",),
    ("service",),
    ("authoring",),
    ("build", "cli", "__init__", "__main__"),
)
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path) -> Iterator[tuple[str, int]]:
    """Every module an import in the file names (absolute, resolved), with its line."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[: len(parent) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            for alias in node.names:
                # `from screening.aggregates import diagnoses` imports a module.
                yield (f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base), node.lineno


MODULES = modules()


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def own_imports(path: Path) -> list[tuple[str, int]]:
    return [
        (name, line) for name, line in imports(path) if name == "screening" or name.startswith("screening.")
    ]


def test_every_module_has_a_layer() -> None:
    assert {layer(name) for name in MODULES} <= set(RANK)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_run_downward(module: str) -> None:
    mine = RANK[layer(module)]
    upward = [
        f"line {line}: {name}"
        for name, line in own_imports(MODULES[module])
        if name != "screening" and RANK[layer(name)] > mine
    ]
    assert not upward, f"{module} imports upward: {upward}"


def test_no_import_circles() -> None:
    graph = {
        name: {target for target, _ in own_imports(path) if target in MODULES and target != name}
        for name, path in MODULES.items()
    }
    # The package __init__ files re-export or register their modules; an import of a module
    # runs its package first, so a circle through an __init__ is a circle too.
    done: set[str] = set()
    stack: list[str] = []

    def visit(node: str) -> None:
        if node in stack:
            raise AssertionError("import circle: " + " -> ".join([*stack[stack.index(node) :], node]))
        if node in done:
            return
        stack.append(node)
        for target in sorted(graph[node]):
            visit(target)
        stack.pop()
        done.add(node)

    for name in sorted(graph):
        if name != "screening":  # the public API imports everything, and nothing imports it
            visit(name)


def importers_of(*prefixes: str) -> set[str]:
    return {
        module
        for module, path in MODULES.items()
        for name, _ in imports(path)
        if any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)
    }


def test_only_the_durable_module_imports_durable_rules() -> None:
    assert importers_of("durable", "durable_rules_engine") == {"screening.engine.durable"}


def test_the_engines_are_chosen_in_one_place_and_the_reference_engine_needs_nothing_above_errors() -> None:
    # Everything above the screener sees only engine.base.RuleEngine.
    assert importers_of("screening.engine.durable") == {"screening.screener"}
    assert {name for name, _ in own_imports(MODULES["screening.engine.reference"])} == {"screening.errors"}


def test_only_the_service_imports_the_web_framework() -> None:
    web = importers_of("fastapi", "fastapi_offline", "starlette", "uvicorn")
    assert web and all(module.startswith("screening.service.") for module in web), web


def test_the_rule_language_knows_nothing_of_the_engine() -> None:
    ruleset = {m for m in MODULES if m.startswith("screening.ruleset")}
    for module in ruleset:
        assert not [n for n, _ in own_imports(MODULES[module]) if n.startswith("screening.engine")], module


def test_the_screener_knows_nothing_of_fhir() -> None:
    assert not [n for n, _ in own_imports(MODULES["screening.screener"]) if n.startswith("screening.fhir")]


def test_each_package_says_what_lives_there() -> None:
    for init in PACKAGE.glob("*/__init__.py"):
        docstring = ast.get_docstring(ast.parse(init.read_text()))
        assert docstring and len(docstring) > 40, init
