"""The public API: a sorted __all__ whose names all exist."""

from __future__ import annotations

import screening


def test_all_is_sorted_and_complete() -> None:
    assert screening.__all__ == sorted(screening.__all__)
    for name in screening.__all__:
        assert hasattr(screening, name), name


def test_only_the_engine_module_imports_durable_rules() -> None:
    from pathlib import Path

    package = Path(screening.__file__).parent
    importers = sorted(
        p.name
        for p in package.glob("*.py")
        if "durable_rules_engine" in p.read_text() or "import durable" in p.read_text()
    )
    assert importers == ["engine.py"]
