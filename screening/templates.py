"""Reason and recommendation templates: ``{name}`` or ``{name:g}`` placeholders.

Templates are parsed once when the rule set loads; rendering is a join. A placeholder
whose value is unknown renders as ``unknown``, never as ``None``.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Template:
    text: str
    parts: tuple[tuple[str, str | None, str], ...]
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(name for _, name, _ in self.parts if name))

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

    def render(self, values: Mapping[str, Any]) -> str:
        out = []
        for literal, name, spec in self.parts:
            out.append(literal)
            if name:
                value = values.get(name)
                if value is None:
                    out.append("unknown")
                elif spec:
                    try:
                        out.append(format(value, spec))
                    except (TypeError, ValueError):
                        out.append(str(value))
                elif isinstance(value, float):
                    out.append(f"{value:g}")
                else:
                    out.append(str(value))
        return "".join(out)
