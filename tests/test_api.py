"""The public API: a sorted __all__ whose names all exist."""

from __future__ import annotations

import screening


def test_all_is_sorted_and_complete() -> None:
    assert screening.__all__ == sorted(screening.__all__)
    for name in screening.__all__:
        assert hasattr(screening, name), name
