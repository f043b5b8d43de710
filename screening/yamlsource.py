"""YAML with positions: load a file into plain Python data and remember where each value is.

Rule files are validated after loading, so every problem must be traced back to a line.
:func:`load_yaml` returns the data and a :class:`Positions` table from paths (tuples of
keys and indices) to ``(line, column)``. Duplicate mapping keys, which plain YAML silently
overwrites, are reported as problems instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import Problem

PathKey = tuple[int | str, ...]


class Positions:
    """Where each value of a loaded YAML document starts (1-based line and column)."""

    def __init__(self, file: str) -> None:
        self.file = file
        self._marks: dict[PathKey, tuple[int, int]] = {}

    def record(self, path: PathKey, mark: yaml.Mark) -> None:
        self._marks[path] = (mark.line + 1, mark.column + 1)

    def of(self, path: PathKey) -> tuple[int, int]:
        """The position of ``path``, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            found = self._marks.get(tuple(path[:end]))
            if found:
                return found
        return (1, 1)

    def problem(self, path: PathKey, code: str, message: str) -> Problem:
        line, column = self.of(path)
        return Problem(self.file, line, column, code, message)


def load_yaml(path: Path, display_name: str) -> tuple[Any, Positions, list[Problem]]:
    """Load one YAML file. Syntax errors and duplicate keys come back as problems."""
    positions = Positions(display_name)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return None, positions, [Problem(display_name, 0, 0, "unreadable_file", str(error))]
    try:
        node = yaml.compose(text, Loader=_COMPOSER)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        message = f"{error.problem or error.context}"
        return None, positions, [Problem(display_name, line, column, "yaml_syntax", message)]
    if node is None:
        return {}, positions, []
    problems: list[Problem] = []
    data = _convert(node, (), positions, problems)
    return data, positions, problems


_scalars = yaml.SafeLoader("")
# libyaml's composer keeps every mark and is about 14x faster than the pure-Python one.
_COMPOSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _convert(
    node: yaml.Node,
    path: PathKey,
    positions: Positions,
    problems: list[Problem],
    mark: yaml.Mark | None = None,
) -> Any:
    # A mapping entry is located at its key, where a reader looks for it.
    positions.record(path, mark or node.start_mark)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalars.construct_object(key_node)
            if not isinstance(key, (str, int, float, bool)):
                problems.append(positions.problem(path, "invalid_key", "keys must be scalars"))
                continue
            key_text = str(key) if not isinstance(key, str) else key
            child = (*path, key_text)
            if key_text in out:
                line = key_node.start_mark.line + 1
                problems.append(
                    Problem(
                        positions.file,
                        line,
                        key_node.start_mark.column + 1,
                        "duplicate_key",
                        f"key {key_text!r} appears twice in the same mapping",
                    )
                )
                continue
            out[key_text] = _convert(value_node, child, positions, problems, key_node.start_mark)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, index), positions, problems) for index, item in enumerate(node.value)]
    return _scalars.construct_object(node)
