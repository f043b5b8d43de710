"""The engine boundary: which compiled rules fire for one record's fact.

Everything above the engine (the screener, statuses, decisions) sees only :class:`RuleEngine`.
Two implementations: :class:`screening.engine.durable.DurableEngine`, the production
engine, and :class:`screening.engine.reference.ReferenceEngine`, plain Python over the same
compiled definitions, which the property tests compare it with and the benchmark measures
it against. Nothing else evaluates compiled conditions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol


class RuleEngine(Protocol):
    """One compiled rule set (:func:`screening.engine.compiler.compile_ruleset`), evaluated
    fact by fact.

    A *fact* is the one flat dict that :meth:`screening.engine.compiler.StatusReader.fact`
    builds for a record: each known fact value by name (a bool, number or string; unknown
    facts are left out), ``"t": "screening"``, and ``"?<ID>": True`` for each criterion that
    reads an unknown value (its gate).

    A rule *fires* when its compiled condition holds for the fact; a comparison on a field
    the fact does not have never holds. :meth:`fired` returns the names of those rules
    (``<ID>:met``, ``<ID>:not_met``), and nothing that one fact leaves behind is seen by
    the next. Failures of the engine itself raise :class:`screening.errors.EngineError`.
    """

    def fired(self, fact: Mapping[str, Any]) -> frozenset[str]:
        """The names of the rules whose condition holds for ``fact``."""
        ...

    def close(self) -> None:
        """Release what the engine holds (once; later calls do nothing)."""
        ...


EngineFactory = Callable[[dict[str, Any]], RuleEngine]
"""Builds an engine from a compiled definition: ``DurableEngine`` or ``ReferenceEngine``."""
