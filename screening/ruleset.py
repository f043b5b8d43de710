"""Load a rule directory into a checked, ready-to-compile :class:`RuleSet`.

Every problem in every file is collected before anything is raised, and each is reported as
``file:line:col: code: message``: YAML syntax, duplicate keys, unknown keys, wrong types,
duplicate ids across files, and references to undefined facts, parameters, value sets,
sources or aggregates. Site parameter overrides (``--params site.yaml``) are checked the
same way.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .aggregates import ANSWER_FIELDS, Aggregate, FactType, FactValue
from .conditions import Condition, Scalar
from .errors import Problem, RuleSetError
from .rulefiles import (
    KEYED_MODELS,
    NAME_PATTERN,
    NAME_RULE,
    ORDER_KEYS,
    SECTIONS,
    CriterionDef,
    DosingDef,
    ParameterDef,
    RulesetMeta,
)
from .templates import Template
from .valuesets import ValueSet
from .yamlsource import PathKey, Positions, load_yaml, show

STATUSES = ("met", "not_met", "unknown")
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


@dataclass
class _Loaded:
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
    """Load, check and build a rule set; raise RuleSetError listing every problem.

    Loading carries on past every problem: a file that does not parse leaves the others to
    be checked, an entry that fails its schema leaves the rest of its file, and uses of a
    broken name are not reported again as undefined.
    """
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
    site = read_overrides(Path(overrides_file), problems) if overrides_file is not None else []
    sha256 = content_hash(directory) if not problems else ""
    ruleset = checks.build(loaded, directory, sha256, site, problems)
    if problems or ruleset is None:
        raise RuleSetError(list(dict.fromkeys(problems)))  # one per place, however many uses
    return ruleset


def _read_file(path: Path, name: str, loaded: _Loaded, problems: list[Problem]) -> None:
    data, positions, found = load_yaml(path, name)
    problems.extend(found)
    if data is None:
        loaded.fail(name)
        if isinstance(positions.partial, dict):
            _note_broken(positions.partial, loaded)
        return
    if positions.empty:
        problems.append(positions.problem((), "empty_file", "the file is empty"))
        loaded.fail(name)
        return
    if not isinstance(data, dict):
        problems.append(positions.problem((), "invalid_file", "a rule file must be a mapping of sections"))
        loaded.fail(name)
        return
    for section, value in data.items():
        where: PathKey = (section,)
        if section not in SECTIONS:
            problems.append(positions.problem(where, "unknown_key", f"unknown section {section!r}"))
        elif section == "ruleset":
            loaded.meta_places.append(positions)
            meta = _validate(RulesetMeta, value, positions, where, problems)
            if meta:
                loaded.meta.append((meta, positions))
        elif section == "criteria":
            _read_criteria(value, positions, loaded, problems)
        elif section == "dosing":
            loaded.dosing = _validate(DosingDef, value, positions, where, problems) or loaded.dosing
        elif not isinstance(value, dict):
            problems.append(positions.problem(where, "invalid_value", f"{section}: expected a mapping"))
            loaded.fail(f"the {section} section of {name}", section)
        else:
            for key, entry in value.items():
                _read_entry(section, key, entry, positions, loaded, problems)


def _validate(
    model: type[M], value: Any, positions: Positions, where: PathKey, problems: list[Problem]
) -> M | None:
    try:
        return model.model_validate(value)
    except ValidationError as error:
        problems.extend(pydantic_problems(error, positions, where))
        return None


def _read_entry(
    section: str, key: str, value: Any, positions: Positions, loaded: _Loaded, problems: list[Problem]
) -> None:
    where = (section, key)
    defined = loaded.defined.setdefault(section, {})
    if key in defined:
        other, other_path = defined[key]
        problems.append(
            positions.problem(
                where, "duplicate_id", f"{section} {key!r} is already defined at {other.where(other_path)}"
            )
        )
        return
    defined[key] = (positions, where)
    parsed: Any = None
    if section == "answers":
        # The record lists that may be blank: the same names an answered_by argument takes.
        if key not in ANSWER_FIELDS:
            problems.append(
                positions.problem(
                    where, "unknown_key", f"answers: {key!r} is not one of {', '.join(ANSWER_FIELDS)}"
                )
            )
        elif not isinstance(value, str):
            problems.append(positions.problem(where, "invalid_value", f"answers.{key}: expected a string"))
        else:
            parsed = value
    elif not NAME_PATTERN.match(key):
        problems.append(
            positions.problem(
                where, "invalid_name", f"{section}: {key!r} is not a valid name: a name {NAME_RULE}"
            )
        )
    else:
        parsed = _validate(KEYED_MODELS[section], value, positions, where, problems)
    if parsed is None:
        _note_broken({section: {key: value}}, loaded)
        return
    loaded.sections.setdefault(section, {})[key] = (parsed, positions, where)


def _read_criteria(value: Any, positions: Positions, loaded: _Loaded, problems: list[Problem]) -> None:
    if not isinstance(value, list):
        problems.append(positions.problem(("criteria",), "invalid_value", "criteria: expected a list"))
        loaded.fail(f"the criteria section of {positions.file}", "criteria")
        return
    for index, item in enumerate(value):
        criterion = _validate(CriterionDef, item, positions, ("criteria", index), problems)
        if criterion:
            loaded.criteria.append((criterion, positions, index))
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            loaded.criterion_ids.append((item["id"], positions, index))


def _note_broken(data: dict[str, Any], loaded: _Loaded) -> None:
    """Remember the names a broken file or entry defines, with the facts its ``also:`` adds."""
    for section in KEYED_MODELS:
        entries = data.get(section)
        if not isinstance(entries, dict):
            continue
        names = loaded.broken.setdefault(section, set())
        for key, entry in entries.items():
            names.add(str(key))
            also = entry.get("also") if isinstance(entry, dict) else None
            if section == "facts" and isinstance(also, list):
                names.update(f"{key}_{output}" for output in also if isinstance(output, str))
    criteria = data.get("criteria")
    if isinstance(criteria, list):
        ids = {c["id"] for c in criteria if isinstance(c, dict) and isinstance(c.get("id"), str)}
        loaded.broken.setdefault("criteria", set()).update(ids)


_MESSAGES = {
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "list_type": "expected a list",
    "string_type": "expected a string",
    "bool_type": "expected true or false",
    "int_type": "expected a whole number",
    "float_type": "expected a number",
    "date_type": "expected a date (YYYY-MM-DD)",
    "missing": "is required",
}


def pydantic_problems(error: ValidationError, positions: Positions, prefix: PathKey = ()) -> list[Problem]:
    """Each pydantic error as a positioned problem with a plain message (no class names)."""
    out = []
    seen = set()
    for item in error.errors(include_url=False):
        loc = (*prefix, *(p for p in item["loc"] if p != "[key]"))
        key = ".".join(str(p) for p in loc)
        if item["type"] == "extra_forbidden":
            out.append(positions.problem(loc, "unknown_key", f"unknown key {key!r}"))
            continue
        message = _MESSAGES.get(item["type"]) or item["msg"].removeprefix("Value error, ")
        code = "missing_key" if item["type"] == "missing" else "invalid_value"
        if (loc, message) in seen:
            continue
        seen.add((loc, message))
        out.append(positions.problem(loc, code, f"{key}: {message}" if key else message))
    return out


def read_overrides(path: Path, problems: list[Problem]) -> list[SiteValue]:
    """Read a site parameter file: ``parameters: {name: value}`` (or a flat mapping).

    Only its shape is checked here; :func:`screening.checks.build` checks each value
    against the parameter's definition and the order constraints.
    """
    data, positions, found = load_yaml(path, str(path))
    problems.extend(found)
    if data is None:
        return []
    prefix: tuple[str, ...] = ()
    if isinstance(data, dict) and set(data) == {"parameters"}:
        data, prefix = data["parameters"], ("parameters",)
        if data is None:
            data = {}
    if not isinstance(data, dict):
        problems.append(
            positions.problem(prefix, "invalid_file", "expected a mapping of parameter names to values")
        )
        return []
    return [SiteValue(name, value, positions, (*prefix, name)) for name, value in data.items()]


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
