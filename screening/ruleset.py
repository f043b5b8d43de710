"""Load a rule directory into a checked, ready-to-compile :class:`RuleSet`.

Every problem in every file is collected before anything is raised, and each is reported as
``file:line:col: code: message``: YAML syntax, duplicate keys, unknown keys, wrong types,
duplicate ids across files, and references to undefined facts, parameters, value sets,
sources or aggregates. Site parameter overrides (``--params site.yaml``) are checked the
same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .aggregates import Aggregate, FactType, FactValue
from .conditions import Condition, Scalar
from .errors import Problem, RuleSetError
from .rulefiles import CriterionDef, DosingDef, RuleFile, RulesetMeta
from .templates import Template
from .valuesets import ValueSet
from .yamlsource import Positions, load_yaml

STATUSES = ("met", "not_met", "unknown")


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


@dataclass
class _Loaded:
    """What the files said, merged, with where each named thing was defined."""

    meta: list[tuple[RulesetMeta, Positions]] = field(default_factory=list)
    sections: dict[str, dict[str, tuple[Any, Positions, tuple[str | int, ...]]]] = field(default_factory=dict)
    criteria: list[tuple[CriterionDef, Positions, int]] = field(default_factory=list)
    dosing: DosingDef | None = None


def yaml_files(directory: Path) -> list[Path]:
    """Every ``*.yaml`` below ``directory``, skipping hidden folders (``.venv``, ``.git``)."""
    return sorted(
        path
        for path in directory.rglob("*.yaml")
        if not any(part.startswith(".") for part in path.relative_to(directory).parts)
    )


def rule_files(directory: Path) -> list[Path]:
    """The rule files of a directory (tests excluded), in a stable order."""
    return [p for p in yaml_files(directory) if not p.name.endswith("_test.yaml")]


def content_hash(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in rule_files(directory):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def load_ruleset(directory: Path | str, overrides_file: Path | str | None = None) -> RuleSet:
    """Load, check and build a rule set; raise RuleSetError listing every problem."""
    from . import checks  # checks builds the dataclasses defined here

    directory = Path(directory)
    if not directory.is_dir():
        raise RuleSetError([Problem(str(directory), 0, 0, "not_a_directory", "rule directory not found")])
    files = rule_files(directory)
    if not files:
        raise RuleSetError([Problem(str(directory), 0, 0, "no_rule_files", "no *.yaml rule files found")])
    problems: list[Problem] = []
    loaded = _Loaded()
    for path in files:
        _read_file(path, str(path.relative_to(directory.parent)), loaded, problems)
    overrides: dict[str, Scalar] = {}
    if overrides_file is not None:
        overrides = read_overrides(Path(overrides_file), loaded, problems)
    ruleset = None
    if not problems:
        ruleset = checks.build(loaded, directory, content_hash(directory), overrides, problems)
    if problems or ruleset is None:
        raise RuleSetError(problems)
    return ruleset


_KEYED_SECTIONS = ("sources", "parameters", "answers", "value_sets", "facts")


def _read_file(path: Path, name: str, loaded: _Loaded, problems: list[Problem]) -> None:
    data, positions, found = load_yaml(path, name)
    problems.extend(found)
    if data is None:
        return
    if not isinstance(data, dict):
        problems.append(positions.problem((), "invalid_file", "a rule file must be a mapping of sections"))
        return
    try:
        parsed = RuleFile.model_validate(data)
    except ValidationError as error:
        problems.extend(pydantic_problems(error, positions))
        return
    if parsed.ruleset:
        loaded.meta.append((parsed.ruleset, positions))
    for section in _KEYED_SECTIONS:
        seen = loaded.sections.setdefault(section, {})
        for key, value in getattr(parsed, section).items():
            where = (section, key)
            if key in seen:
                _, other, other_path = seen[key]
                line = other.of(other_path)[0]
                problems.append(
                    positions.problem(
                        where, "duplicate_id", f"{section} {key!r} is already defined at {other.file}:{line}"
                    )
                )
                continue
            seen[key] = (value, positions, where)
    for index, criterion in enumerate(parsed.criteria):
        loaded.criteria.append((criterion, positions, index))
    if parsed.dosing:
        loaded.dosing = parsed.dosing


def pydantic_problems(error: ValidationError, positions: Positions) -> list[Problem]:
    out = []
    for item in error.errors(include_url=False):
        loc = tuple(item["loc"])
        key = ".".join(str(p) for p in loc)
        if item["type"] == "extra_forbidden":
            out.append(positions.problem(loc, "unknown_key", f"unknown key {key!r}"))
            continue
        message = item["msg"].removeprefix("Value error, ")
        code = "missing_key" if item["type"] == "missing" else "invalid_value"
        out.append(positions.problem(loc, code, f"{key}: {message}" if key else message))
    return out


def read_overrides(path: Path, loaded: _Loaded, problems: list[Problem]) -> dict[str, Scalar]:
    """Read a site parameter file: ``parameters: {name: value}`` (or a flat mapping)."""
    data, positions, found = load_yaml(path, str(path))
    problems.extend(found)
    if data is None:
        return {}
    prefix: tuple[str, ...] = ()
    if isinstance(data, dict) and set(data) == {"parameters"}:
        data, prefix = data["parameters"], ("parameters",)
    if not isinstance(data, dict):
        problems.append(
            positions.problem(prefix, "invalid_file", "expected a mapping of parameter names to values")
        )
        return {}
    declared = loaded.sections.get("parameters", {})
    out: dict[str, Scalar] = {}
    for name, value in data.items():
        where = (*prefix, name)
        if name not in declared:
            problems.append(positions.problem(where, "unknown_parameter", f"no parameter named {name!r}"))
            continue
        definition = declared[name][0]
        from .checks import parameter_value_problem

        problem = parameter_value_problem(name, value, definition)
        if problem:
            problems.append(positions.problem(where, "invalid_value", problem))
            continue
        out[name] = value
    return out
