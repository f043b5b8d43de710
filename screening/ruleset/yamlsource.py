"""YAML with positions: load a file into plain Python data and remember where each value is.

Rule files are validated after loading, so every problem must be traced back to a line.
:func:`load_yaml` returns the data and a :class:`Positions` table from paths (tuples of
keys and indices) to ``(line, column)``. Duplicate mapping keys, which plain YAML silently
overwrites, are reported as problems instead, and so is everything else that would
otherwise escape as a YAML traceback: bytes that are not UTF-8 text, control characters,
unknown tags (``!!python/...``), aliases that contain themselves.

When a file has a syntax error, :attr:`Positions.partial` holds what was read before it,
so the loader can tell which names the file defined and not report their uses as undefined.
"""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from screening.errors import Problem

PathKey = tuple[int | str, ...]

# Aliases can expand exponentially ("billion laughs"); no rule file comes near this.
MAX_NODES = 2_000_000


class Positions:
    """Where each value of a loaded YAML document starts (1-based line and column)."""

    def __init__(self, file: str) -> None:
        self.file = file
        self._marks: dict[PathKey, tuple[int, int]] = {}
        self.empty = False
        """The file holds no document at all (nothing, or only comments)."""
        self.partial: Any = None
        """After a syntax error: the data read before it (mappings and lists of scalars)."""

    def record(self, path: PathKey, mark: yaml.Mark) -> None:
        self._marks[path] = (mark.line + 1, mark.column + 1)

    def of(self, path: PathKey) -> tuple[int, int]:
        """The position of ``path``, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            found = self._marks.get(tuple(path[:end]))
            if found:
                return found
        return (1, 1)

    def where(self, path: PathKey) -> str:
        """``file:line`` of ``path``, for messages that point at another place."""
        return f"{self.file}:{self.of(path)[0]}"

    def problem(self, path: PathKey, code: str, message: str) -> Problem:
        line, column = self.of(path)
        return Problem(self.file, line, column, code, message)


def show(value: object) -> str:
    """A value as it would be written in YAML, for messages (never a Python repr)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, date):
        return f"{value.isoformat()} (a date)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, bytes):
        return "binary data"
    name = getattr(value, "name", None)  # a ParamRef
    if isinstance(name, str):
        return f"${name}"
    return f"a {type(value).__name__}"


def _line_column(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def load_yaml(path: Path, display_name: str) -> tuple[Any, Positions, list[Problem]]:
    """Load one YAML file. Every failure comes back as a problem, with None as the data."""
    positions = Positions(display_name)
    try:
        raw = path.read_bytes()
    except OSError as error:
        reason = error.strerror or "cannot be read"
        return None, positions, [Problem(display_name, 0, 0, "unreadable_file", reason.lower())]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        message = f"not UTF-8 text (byte 0x{raw[error.start]:02x})"
        return None, positions, [Problem(display_name, line, column, "not_utf8", message)]
    try:
        node = yaml.compose(text, Loader=_COMPOSER)
    except yaml.YAMLError as error:
        positions.partial = _partial(text)
        return None, positions, [_syntax_problem(error, text, display_name)]
    if node is None:
        positions.empty = True
        return {}, positions, []
    problems: list[Problem] = []
    budget = [MAX_NODES]
    # A constructor per file: it remembers every node it built (``constructed_objects``),
    # so a module-level one kept every rule file's nodes for ever (~1.7 MiB a load), and
    # was shared by threads loading at the same time.
    scalars = yaml.SafeLoader("")
    data = _convert(node, (), positions, problems, budget, set(), scalars)
    return data, positions, problems


def _syntax_problem(error: yaml.YAMLError, text: str, file: str) -> Problem:
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        return Problem(file, line, column, "yaml_syntax", f"{error.problem or error.context}")
    if isinstance(error, yaml.reader.ReaderError):
        line, column = _line_column(text, error.position)
        character = error.character if isinstance(error.character, str) else chr(error.character)
        message = f"control character U+{ord(character):04X} is not allowed in YAML"
        return Problem(file, line, column, "yaml_syntax", message)
    return Problem(file, 0, 0, "yaml_syntax", "not valid YAML")


def _partial(text: str) -> Any:
    """What a broken document said before its error, as nested mappings, lists and scalars."""
    stack: list[Any] = []
    keys: list[Any] = []  # per open mapping: the pending key, or None
    root: list[Any] = []

    def add(value: Any) -> None:
        if not stack:
            root.append(value)
        elif isinstance(stack[-1], list):
            stack[-1].append(value)
        elif keys[-1] is None:
            keys[-1] = value if isinstance(value, str) else repr(value)
        else:
            stack[-1][keys[-1]] = value
            keys[-1] = None

    try:
        for event in yaml.parse(text, Loader=_COMPOSER):
            if isinstance(event, yaml.ScalarEvent):
                add(event.value)
            elif isinstance(event, yaml.AliasEvent):
                add(None)
            elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                container: Any = {} if isinstance(event, yaml.MappingStartEvent) else []
                add(container)
                stack.append(container)
                keys.append(None)
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                stack.pop()
                keys.pop()
    except yaml.YAMLError:
        pass
    return root[0] if root else None


# libyaml's composer keeps every mark and is about 14x faster than the pure-Python one.
_COMPOSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _scalar(
    node: yaml.Node, positions: Positions, path: PathKey, problems: list[Problem], scalars: yaml.SafeLoader
) -> Any:
    try:
        return scalars.construct_object(node)
    except yaml.YAMLError:
        problems.append(
            Problem(
                positions.file,
                node.start_mark.line + 1,
                node.start_mark.column + 1,
                "unsupported_tag",
                f"tag {node.tag} is not supported here",
            )
        )
        return None


def _convert(
    node: yaml.Node,
    path: PathKey,
    positions: Positions,
    problems: list[Problem],
    budget: list[int],
    ancestors: set[int],
    scalars: yaml.SafeLoader,
    mark: yaml.Mark | None = None,
) -> Any:
    # A mapping entry is located at its key, where a reader looks for it.
    positions.record(path, mark or node.start_mark)
    budget[0] -= 1
    if budget[0] == 0:
        problems.append(positions.problem(path, "too_large", "the document expands to too many values"))
    if budget[0] <= 0:
        return None
    if not isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        return _scalar(node, positions, path, problems, scalars)
    if id(node) in ancestors:
        problems.append(
            positions.problem(path, "recursive_alias", "an alias refers to a value containing it")
        )
        return None
    ancestors = ancestors | {id(node)}
    if isinstance(node, yaml.SequenceNode):
        return [
            _convert(item, (*path, index), positions, problems, budget, ancestors, scalars)
            for index, item in enumerate(node.value)
        ]
    out: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = (
            _scalar(key_node, positions, path, problems, scalars)
            if isinstance(key_node, yaml.ScalarNode)
            else None
        )
        if not isinstance(key, (str, int, float, bool)):
            start = key_node.start_mark
            problems.append(
                Problem(
                    positions.file, start.line + 1, start.column + 1, "invalid_key", "keys must be scalars"
                )
            )
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
                    f"key '{key_text}' appears twice in the same mapping",
                )
            )
            continue
        out[key_text] = _convert(
            value_node, child, positions, problems, budget, ancestors, scalars, key_node.start_mark
        )
    return out
