"""Reason and recommendation templates: ``{name}`` or ``{name:g}`` placeholders.

Templates are parsed once when the rule set loads; rendering is a join. A placeholder
whose value is unknown renders as ``unknown``, never as ``None``.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Template:
    text: str
    parts: tuple[tuple[str, str | None, str], ...]
    names: tuple[str, ...] = ()
    _constant: str | None = field(default=None, init=False, repr=False, compare=False)
    """The rendering when there are no placeholders."""
    _placeholders: tuple[tuple[str, str, str], ...] = field(default=(), init=False, repr=False, compare=False)
    """Each placeholder as (literal before it, name, spec); adjacent literals merged."""
    _tail: str = field(default="", init=False, repr=False, compare=False)
    """The literal after the last placeholder."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(name for _, name, _ in self.parts if name))
        placeholders: list[tuple[str, str, str]] = []
        pending = ""
        for literal, name, spec in self.parts:
            pending += literal
            if name:
                placeholders.append((pending, name, spec))
                pending = ""
        object.__setattr__(self, "_placeholders", tuple(placeholders))
        object.__setattr__(self, "_tail", pending)
        object.__setattr__(self, "_constant", None if placeholders else pending)

    @classmethod
    def parse(cls, text: str) -> Template:
        """Parse ``text``; raises ValueError on a malformed placeholder."""
        parts = []
        for literal, name, spec, conversion in string.Formatter().parse(text):
            if conversion:
                raise ValueError(f"conversion '!{conversion}' is not supported")
            if name is not None and not name.isidentifier():
                raise ValueError(f"placeholder {{{name}}} is not a plain name")
            parts.append((literal, name, spec or ""))
        return cls(text, tuple(parts))

    def bind(self, constants: Mapping[str, Any]) -> Template:
        """This template with the placeholders named in ``constants`` rendered now.

        Rendering the result with ``values`` gives what rendering this template would,
        as long as ``values`` agrees with ``constants`` on their names.
        """
        parts: list[tuple[str, str | None, str]] = []
        for literal, name, spec in self.parts:
            if name and name in constants:
                parts.append((literal + _text(constants[name], spec), None, ""))
            else:
                parts.append((literal, name, spec))
        return Template(self.text, tuple(parts))

    def render(self, values: Mapping[str, Any]) -> str:
        if self._constant is not None:
            return self._constant
        out = []
        for literal, name, spec in self._placeholders:
            out.append(literal)
            value = values.get(name)
            if value is None:
                out.append("unknown")
            elif spec or isinstance(value, float):
                out.append(_formatted(value, spec))
            else:
                out.append(str(value))
        out.append(self._tail)
        return "".join(out)


def _text(value: Any, spec: str) -> str:
    """One placeholder's value as text."""
    if value is None:
        return "unknown"
    if spec or isinstance(value, float):
        return _formatted(value, spec)
    return str(value)


def _formatted(value: Any, spec: str) -> str:
    """A value with a format spec (``{name:.1f}``), or a float without one (``{name}``)."""
    if not spec:
        return f"{value:g}"
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)
