"""Load a rule directory into a checked, ready-to-compile :class:`RuleSet`.

Every problem in every file is collected before anything is raised, and each is reported as
``file:line:col: code: message``: YAML syntax, duplicate keys, unknown keys, wrong types,
duplicate ids across files, and references to undefined facts, parameters, value sets,
sources or aggregates. Site parameter overrides (``--params site.yaml``) are checked the
same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from screening.aggregates.base import Aggregate, FactType, FactValue
from screening.errors import Problem
from screening.ruleset.conditions import Condition, Scalar
from screening.ruleset.schema import ORDER_KEYS, CriterionDef, DosingDef, ParameterDef, RulesetMeta
from screening.ruleset.templates import Template
from screening.ruleset.yamlsource import PathKey, Positions, show
from screening.valuesets import ValueSet

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Parameter:
    name: str
    default: Scalar
    value: Scalar
    unit: str | None
    description: str


@dataclass(frozen=True)
class Fact:
    """A named fact: an aggregate's output with its arguments resolved."""

    name: str
    type: FactType
    description: str
    aggregate: Aggregate
    args: Mapping[str, Any]
    output: str
    ask: Template | None
    if_absent: FactValue
    not_checked: Template | None
    params: tuple[str, ...]

    @property
    def may_be_unknown(self) -> bool:
        """Whether a record can leave this fact unknown (absent data counts as absent otherwise)."""
        return self.if_absent is None and self.aggregate.may_be_unknown(self.args)

    group: tuple[str, str] = ("", "")
    """Facts with the same aggregate and arguments share one computation."""

    def __post_init__(self) -> None:
        key = repr(sorted((k, _arg_key(v)) for k, v in self.args.items()))
        object.__setattr__(self, "group", (self.aggregate.name, key))


def _arg_key(value: Any) -> Any:
    if isinstance(value, ValueSet):
        return value.id
    if isinstance(value, (tuple, frozenset)):
        return tuple(sorted(_arg_key(v) for v in value))
    return value


@dataclass(frozen=True)
class Source:
    id: str
    citation: str
    label: str | None
    url: str | None
    seed: str | None

    def as_dict(self) -> dict[str, str]:
        out = {"id": self.id, "citation": self.citation}
        for key in ("label", "url", "seed"):
            value = getattr(self, key)
            if value:
                out[key] = value
        return out


def _source_dicts(sources: tuple[Source, ...]) -> tuple[dict[str, str], ...]:
    """Short references (id, label, url); the full citations are in the decision's table."""
    return tuple({k: v for k, v in s.as_dict().items() if k in ("id", "label", "url")} for s in sources)


@dataclass(frozen=True)
class Criterion:
    id: str
    title: str
    effect: str
    description: str
    sources: tuple[Source, ...]
    when: Condition
    not_met_when: Condition | None
    reason: Mapping[str, Template]
    recommendation: Mapping[str, Template]
    ask: Template | None
    emphasis: tuple[Condition, Template] | None
    urgent: bool
    facts: tuple[str, ...]
    params: tuple[str, ...]
    file: str
    source_dicts: tuple[dict[str, str], ...] = ()
    label_when_failed: Template | None = None
    """What failed, in a few words (``label_when_failed:``); parameters only."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "source_dicts", _source_dicts(self.sources))


@dataclass(frozen=True)
class RuleSet:
    """A checked rule set, with parameter values resolved (site overrides applied)."""

    id: str
    version: str
    title: str
    description: str
    sha256: str
    directory: Path
    parameters: Mapping[str, Parameter]
    facts: Mapping[str, Fact]
    criteria: tuple[Criterion, ...]
    value_sets: Mapping[str, ValueSet]
    sources: Mapping[str, Source]
    answers: Mapping[str, str]
    dosing: DosingDef | None
    overrides: Mapping[str, Scalar] = field(default_factory=dict)

    @property
    def params(self) -> dict[str, Scalar]:
        """Parameter values (a fresh dict each call)."""
        return {name: p.value for name, p in self.parameters.items()}

    def may_be_unknown(self, criterion: Criterion) -> bool:
        """Whether some record can leave the criterion unknown, given its facts' semantics."""
        return criterion.not_met_when is not None or any(
            self.facts[f].may_be_unknown for f in criterion.facts
        )

    @cached_property
    def cited_sources(self) -> dict[str, dict[str, str]]:
        """Every source some criterion cites, by id, in full (shared; do not mutate)."""
        return {s.id: s.as_dict() for c in self.criteria for s in c.sources}

    @cached_property
    def criterion_parameters(self) -> dict[str, dict[str, Scalar]]:
        """For each criterion id, the parameters it uses and their values (shared; do not mutate)."""
        return {c.id: {name: self.parameters[name].value for name in c.params} for c in self.criteria}

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "version": self.version, "sha256": self.sha256}


@dataclass(frozen=True)
class SiteValue:
    """One value of a site parameter file, with where it was written."""

    name: str
    value: Any
    positions: Positions
    where: PathKey

    @property
    def place(self) -> str:
        return self.positions.where(self.where)


# parameters ------------------------------------------------------------------------------
ENGINE_LIMIT = 2**53
"""Numbers a rule set compares facts with stay strictly within this: durable-rules compares
an integer with a float as two floats, which is exact (the same answer as Python) only for
integers below 2**53, and saturates integers beyond 64 bits."""


def within_engine_range(value: float) -> bool:
    return -ENGINE_LIMIT < value < ENGINE_LIMIT


def value_type(value: object) -> FactType | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def parameter_value_problem(name: str, value: object, definition: ParameterDef) -> str | None:
    """Why ``value`` cannot be parameter ``name``, or None when it can."""
    wanted = "number" if definition.numeric else value_type(definition.default)
    if value_type(value) != wanted:
        return f"parameter {name!r} takes a {wanted}, not {show(value)}"
    if wanted == "number":
        number = float(value)  # type: ignore[arg-type]
        if not math.isfinite(number):
            return f"parameter {name!r} takes a finite number, not {show(value)}"
        if not within_engine_range(value):  # type: ignore[arg-type]
            return f"parameter {name!r} must be between -{ENGINE_LIMIT} and {ENGINE_LIMIT}, not {show(value)}"
        if definition.minimum is not None and number < definition.minimum:
            return f"parameter {name!r} must be at least {show(definition.minimum)}, not {show(value)}"
        if definition.maximum is not None and number > definition.maximum:
            return f"parameter {name!r} must be at most {show(definition.maximum)}, not {show(value)}"
    return None


def _holds(key: str, left: float, right: float) -> bool:
    return {
        "below": left < right,
        "above": left > right,
        "at_most": left <= right,
        "at_least": left >= right,
    }[key]


class ParameterTable:
    """Parameters with their values: defaults checked, site values checked and applied, and
    every order constraint (``below``, ``above``, ``at_most``, ``at_least``) checked for the
    defaults and again for the site's values. Names found broken are added to ``broken``."""

    def __init__(
        self,
        definitions: Mapping[str, tuple[ParameterDef, Positions, PathKey]],
        site: list[SiteValue],
        broken: set[str],
        note: str,
        problems: list[Problem],
    ) -> None:
        self.definitions = definitions
        self.broken = broken
        self.note = note
        self.problems = problems
        self.site_at: dict[str, SiteValue] = {}
        self.parameters = self._resolve(site)
        self.params = {name: p.value for name, p in self.parameters.items()}
        self._check_order()

    def problem(self, positions: Positions, path: PathKey, code: str, message: str) -> None:
        self.problems.append(positions.problem(path, code, message))

    def _resolve(self, site: list[SiteValue]) -> dict[str, Parameter]:
        """Defaults checked, then the site's values checked and applied."""
        for name, (definition, positions, where) in self.definitions.items():
            issue = parameter_value_problem(name, definition.default, definition)
            if issue:
                self.problem(positions, (*where, "default"), "invalid_value", issue)
                self.broken.add(name)
        overrides: dict[str, Scalar] = {}
        for item in site:
            entry = self.definitions.get(item.name)
            if entry is None:
                if item.name not in self.broken:
                    message = f"no parameter named {item.name!r}{self.note}"
                    self.problems.append(item.positions.problem(item.where, "unknown_parameter", message))
                continue
            if item.name in self.broken:
                continue
            issue = parameter_value_problem(item.name, item.value, entry[0])
            if issue:
                self.problems.append(item.positions.problem(item.where, "invalid_value", issue))
                continue
            overrides[item.name] = item.value
            self.site_at[item.name] = item
        return {
            name: Parameter(
                name,
                definition.default,
                overrides.get(name, definition.default),
                definition.unit,
                definition.description,
            )
            for name, (definition, _, _) in self.definitions.items()
        }

    def _check_order(self) -> None:
        """``below``, ``above``, ``at_most``, ``at_least``: for the defaults, then the site's values."""
        params = self.definitions
        for name, (definition, positions, where) in params.items():
            for key, other in definition.order():
                path = (*where, key)
                if other == name:
                    self.problem(
                        positions, path, "invalid_value", f"{name!r} cannot be ordered against itself"
                    )
                    continue
                if other not in params:
                    message = f"no parameter named {other!r}"
                    if other not in self.broken:
                        self.problem(positions, path, "undefined_parameter", message + self.note)
                    continue
                if name in self.broken or other in self.broken:
                    continue
                other_def, other_positions, other_where = params[other]
                if value_type(other_def.default) != "number":
                    self.problem(
                        positions,
                        path,
                        "type_mismatch",
                        f"{name!r} is ordered against {other!r}, which is not a number "
                        f"({other_positions.where(other_where)})",
                    )
                    continue
                relation = ORDER_KEYS[key]
                if not _holds(key, definition.default, other_def.default):  # type: ignore[arg-type]
                    self.problem(
                        positions,
                        path,
                        "parameter_order",
                        f"{name} (default {show(definition.default)}) must be {relation} {other} "
                        f"(default {show(other_def.default)}, {other_positions.where((*other_where, 'default'))})",
                    )
                elif not _holds(key, self.params[name], self.params[other]):  # type: ignore[arg-type]
                    site = self.site_at.get(name) or self.site_at[other]
                    self.problems.append(
                        site.positions.problem(
                            site.where,
                            "parameter_order",
                            f"{self._describe(name)} must be {relation} {self._describe(other)}",
                        )
                    )

    def _describe(self, name: str) -> str:
        """A parameter's value and where it comes from: the site file or the rule file."""
        site = self.site_at.get(name)
        if site:
            return f"{name} {show(site.value)} (set at {site.place})"
        definition, positions, where = self.definitions[name]
        return f"{name} {show(definition.default)} (the default, {positions.where((*where, 'default'))})"


@dataclass
class Loaded:
    """What the files said, merged, with where each named thing was defined.

    Entries that failed their schema are left out of ``sections`` and ``criteria``, but
    their names are kept in ``broken``, so uses of them are not reported as undefined.
    ``failed`` lists the files that could not be read whole (a syntax error, not a mapping),
    which may define names nobody can know.
    """

    meta: list[tuple[RulesetMeta, Positions]] = field(default_factory=list)
    meta_places: list[Positions] = field(default_factory=list)
    sections: dict[str, dict[str, tuple[Any, Positions, tuple[str | int, ...]]]] = field(default_factory=dict)
    criteria: list[tuple[CriterionDef, Positions, int]] = field(default_factory=list)
    criterion_ids: list[tuple[str, Positions, int]] = field(default_factory=list)
    dosing: DosingDef | None = None
    broken: dict[str, set[str]] = field(default_factory=dict)
    failed: dict[str, list[str]] = field(default_factory=dict)
    defined: dict[str, dict[str, tuple[Positions, PathKey]]] = field(default_factory=dict)

    def fail(self, where: str, section: str = "*") -> None:
        """Note that ``section`` (``*``: every section) of a file could not be read."""
        self.failed.setdefault(section, []).append(where)

    def unknown_because_failed(self, section: str) -> str:
        """A note for an undefined name: it may be in a file that could not be read."""
        places = sorted({*self.failed.get("*", ()), *self.failed.get(section, ())})
        if not places:
            return ""
        return f" (it may be defined in {', '.join(places)}, which could not be read)"
