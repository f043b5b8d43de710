"""Cross-file checks of a merged rule directory, and building the :class:`RuleSet`.

Each check appends a positioned :class:`~screening.errors.Problem` and carries on, so one
run reports everything wrong with a rule set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from .aggregates import AGGREGATES, ANSWER_FIELDS, RECORD_FIELD_TYPES, FactType
from .conditions import (
    Compare,
    Condition,
    ParamRef,
    Scalar,
    SyntaxProblem,
    comparisons,
    operands,
    parse_condition,
)
from .errors import Problem
from .record import Status
from .rulefiles import CriterionDef, FactDef, ParameterDef
from .ruleset import STATUSES, Criterion, Fact, Parameter, RuleSet, Source, _Loaded
from .templates import Template
from .valuesets import ValueSet
from .yamlsource import PathKey, Positions

EVIDENCE = "evidence"  # a template name: the record items behind the criterion
RESERVED_FACT_NAMES = frozenset({"t", "sid", "id", EVIDENCE})
_ORDERING = frozenset({"lt", "le", "gt", "ge"})
EFFECT_ORDER = ("require", "indication", "exclude", "review", "caution")


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
    wanted = value_type(definition.default)
    if value_type(value) != wanted:
        return f"parameter {name!r} takes a {wanted}, not {value!r}"
    if wanted == "number":
        number = float(value)  # type: ignore[arg-type]
        if definition.minimum is not None and number < definition.minimum:
            return f"parameter {name!r} must be at least {definition.minimum}, not {value!r}"
        if definition.maximum is not None and number > definition.maximum:
            return f"parameter {name!r} must be at most {definition.maximum}, not {value!r}"
    return None


class _Builder:
    def __init__(self, loaded: _Loaded, overrides: Mapping[str, Scalar], problems: list[Problem]):
        self.loaded = loaded
        self.problems = problems
        self.section = {
            name: loaded.sections.get(name, {})
            for name in ("sources", "parameters", "answers", "value_sets", "facts")
        }
        self.parameters = self._parameters(overrides)
        self.params = {name: p.value for name, p in self.parameters.items()}
        self.value_sets = {
            key: ValueSet.build(key, value.model_dump())
            for key, (value, _, _) in self.section["value_sets"].items()
        }
        self.sources = {
            key: Source(key, v.citation, v.label, v.url, v.seed)
            for key, (v, _, _) in self.section["sources"].items()
        }
        self.facts: dict[str, Fact] = {}
        for name, (definition, positions, where) in self.section["facts"].items():
            fact = self._fact(name, definition, positions, where)
            if fact:
                self.facts[name] = fact
                self._siblings(fact, definition, positions, where)

    def _siblings(self, fact: Fact, definition: FactDef, positions: Positions, where: PathKey) -> None:
        """The facts that ``also:`` exposes: other outputs of the same computation."""
        for index, output in enumerate(definition.also):
            name = f"{fact.name}_{output}"
            if output not in fact.aggregate.outputs:
                self.problem(
                    positions,
                    (*where, "also", index),
                    "unknown_output",
                    f"{fact.aggregate.name} has no output {output!r}",
                )
            elif name in self.section["facts"] or name in self.facts:
                self.problem(
                    positions, (*where, "also", index), "duplicate_id", f"fact {name!r} is already defined"
                )
            else:
                self.facts[name] = replace(
                    fact,
                    name=name,
                    type=fact.aggregate.outputs[output],
                    output=output,
                    description=f"{fact.description} ({output})",
                    ask=None,
                    if_absent=None,
                    not_checked=None,
                )

    def problem(self, positions: Positions, path: PathKey, code: str, message: str) -> None:
        self.problems.append(positions.problem(path, code, message))

    def _parameters(self, overrides: Mapping[str, Scalar]) -> dict[str, Parameter]:
        out = {}
        for name, (definition, positions, where) in self.section["parameters"].items():
            issue = parameter_value_problem(name, definition.default, definition)
            if issue:
                self.problem(positions, (*where, "default"), "invalid_value", issue)
            value = overrides.get(name, definition.default)
            out[name] = Parameter(name, definition.default, value, definition.unit, definition.description)
        return out

    def param_type(self, name: str) -> FactType | None:
        parameter = self.parameters.get(name)
        return value_type(parameter.value) if parameter else None

    # facts -------------------------------------------------------------------------------
    def _fact(self, name: str, definition: FactDef, positions: Positions, where: PathKey) -> Fact | None:
        if name in RESERVED_FACT_NAMES:
            self.problem(positions, where, "reserved_name", f"{name!r} is reserved for the engine")
            return None
        spec = AGGREGATES.get(definition.aggregate)
        if spec is None:
            known = ", ".join(sorted(AGGREGATES))
            self.problem(
                positions,
                (*where, "aggregate"),
                "unknown_aggregate",
                f"no aggregate {definition.aggregate!r}; known: {known}",
            )
            return None
        ok = True
        if definition.output not in spec.outputs:
            self.problem(
                positions,
                (*where, "output"),
                "unknown_output",
                f"{spec.name} has no output {definition.output!r}; it has {sorted(spec.outputs)}",
            )
            ok = False
        args: dict[str, Any] = {}
        used_params: list[str] = []
        for arg, raw in definition.args.items():
            kind = spec.args.get(arg)
            path = (*where, "args", arg)
            if kind is None:
                self.problem(
                    positions,
                    path,
                    "unknown_argument",
                    f"{spec.name} takes no argument {arg!r}; it takes {sorted(spec.args)}",
                )
                ok = False
                continue
            resolved, issue = self._argument(kind, raw, used_params)
            if issue:
                self.problem(positions, path, "invalid_argument", f"{arg}: {issue}")
                ok = False
            args[arg] = resolved
        for arg in sorted(set(spec.args) - set(definition.args) - spec.optional):
            self.problem(
                positions, (*where, "args"), "missing_argument", f"{spec.name} needs argument {arg!r}"
            )
            ok = False
        fact_type = spec.outputs.get(definition.output, "string")
        if spec.name == "record_field" and isinstance(args.get("field"), str):
            fact_type = RECORD_FIELD_TYPES[args["field"]]
        if definition.if_absent is not None and value_type(definition.if_absent) != fact_type:
            self.problem(
                positions,
                (*where, "if_absent"),
                "type_mismatch",
                f"if_absent must be a {fact_type} like the fact",
            )
            ok = False
        not_checked = self._template(definition.not_checked, positions, (*where, "not_checked"), used_params)
        ask = self._template(definition.ask, positions, (*where, "ask"), used_params)
        if not ok:
            return None
        return Fact(
            name,
            fact_type,
            definition.description,
            spec,
            args,
            definition.output,
            ask,
            definition.if_absent,
            not_checked,
            tuple(dict.fromkeys(used_params)),
        )

    def _argument(self, kind: str, raw: Any, used_params: list[str]) -> tuple[Any, str | None]:
        if isinstance(raw, str) and raw.startswith("$"):
            name = raw[1:]
            if name not in self.parameters:
                return None, f"no parameter named {name!r}"
            used_params.append(name)
            raw = self.params[name]
        if kind in ("days", "months", "number"):
            if value_type(raw) != "number" or (kind == "days" and not isinstance(raw, int)):
                return None, f"expected {'whole days' if kind == 'days' else 'a number'}, got {raw!r}"
            return raw, None
        if kind == "value_set":
            if raw not in self.value_sets:
                return None, f"no value set named {raw!r}"
            return self.value_sets[raw], None
        if kind == "value_sets":
            if not isinstance(raw, list) or not raw:
                return None, "expected a list of value set ids"
            missing = [v for v in raw if v not in self.value_sets]
            if missing:
                return None, f"no value set named {', '.join(map(repr, missing))}"
            return tuple(self.value_sets[v] for v in raw), None
        if kind == "statuses":
            allowed = [s.value for s in Status]
            if not isinstance(raw, list) or not raw or any(s not in allowed for s in raw):
                return None, f"expected a list drawn from {allowed}"
            return frozenset(raw), None
        if kind == "answer":
            return (raw, None) if raw in ANSWER_FIELDS else (None, f"expected one of {list(ANSWER_FIELDS)}")
        if kind == "field":
            return (
                (raw, None)
                if raw in RECORD_FIELD_TYPES
                else (None, f"expected one of {sorted(RECORD_FIELD_TYPES)}")
            )
        return None, f"unsupported argument kind {kind}"

    def _template(
        self, text: str | None, positions: Positions, path: PathKey, used_params: list[str]
    ) -> Template | None:
        if text is None:
            return None
        try:
            template = Template.parse(text)
        except ValueError as error:
            self.problem(positions, path, "invalid_template", str(error))
            return None
        for name in template.names:
            if name == EVIDENCE:
                continue
            if name in self.parameters:
                used_params.append(name)
            elif name not in self.facts:
                self.problem(
                    positions,
                    path,
                    "undefined_name",
                    f"template names {{{name}}}, which is neither a fact nor a parameter",
                )
        return template

    # criteria ----------------------------------------------------------------------------
    def condition(
        self, raw: Any, positions: Positions, path: PathKey, facts: list[str], used_params: list[str]
    ) -> Condition | None:
        syntax: list[SyntaxProblem] = []
        parsed = parse_condition(raw, path, syntax)
        for issue in syntax:
            self.problem(positions, issue.path, issue.code, issue.message)
        if parsed is None:
            return None
        ok = True
        for compare in comparisons(parsed):
            ok = self._compare(compare, positions, facts, used_params) and ok
        return parsed if ok else None

    def _compare(
        self, compare: Compare, positions: Positions, facts: list[str], used_params: list[str]
    ) -> bool:
        fact = self.facts.get(compare.fact)
        if fact is None:
            reason = "is defined but invalid" if compare.fact in self.section["facts"] else "is not defined"
            self.problem(positions, compare.path[:-1], "undefined_fact", f"fact {compare.fact!r} {reason}")
            return False
        facts.append(compare.fact)
        ok = True
        if fact.type != "number" and compare.op in _ORDERING:
            self.problem(
                positions,
                compare.path,
                "type_mismatch",
                f"{compare.op!r} needs a number, but {fact.name!r} is a {fact.type}",
            )
            ok = False
        if fact.type == "boolean" and compare.op == "in":
            self.problem(
                positions, compare.path, "type_mismatch", f"use eq with a boolean fact like {fact.name!r}"
            )
            ok = False
        for operand in operands(compare):
            if isinstance(operand, ParamRef):
                kind = self.param_type(operand.name)
                if kind is None:
                    self.problem(
                        positions, compare.path, "undefined_parameter", f"no parameter named {operand.name!r}"
                    )
                    ok = False
                    continue
                used_params.append(operand.name)
            else:
                kind = value_type(operand)
            if kind != fact.type:
                self.problem(
                    positions,
                    compare.path,
                    "type_mismatch",
                    f"fact {fact.name!r} is a {fact.type}; {operand!r} is a {kind}",
                )
                ok = False
        return ok

    def criterion(self, definition: CriterionDef, positions: Positions, index: int) -> Criterion | None:
        where: PathKey = ("criteria", index)
        facts: list[str] = []
        used: list[str] = []
        problems_before = len(self.problems)
        when = self.condition(definition.when, positions, (*where, "when"), facts, used)
        not_met = None
        if definition.not_met_when is not None:
            not_met = self.condition(
                definition.not_met_when, positions, (*where, "not_met_when"), facts, used
            )
        for i, source in enumerate(definition.sources):
            if source not in self.sources:
                self.problem(
                    positions, (*where, "sources", i), "undefined_source", f"no source named {source!r}"
                )
        reason = {
            s: self._template(getattr(definition.reason, s), positions, (*where, "reason", s), used)
            for s in STATUSES
        }
        recommendation = {
            s: self._template(
                getattr(definition.recommendation, s), positions, (*where, "recommendation", s), used
            )
            for s in STATUSES
        }
        ask = self._template(definition.ask, positions, (*where, "ask"), used)
        emphasis = None
        if definition.emphasis:
            condition = self.condition(
                definition.emphasis.when, positions, (*where, "emphasis", "when"), [], used
            )
            text = self._template(definition.emphasis.text, positions, (*where, "emphasis", "text"), used)
            if condition and text:
                emphasis = (condition, text)
        if len(self.problems) > problems_before or when is None:
            return None
        for name in facts:
            used.extend(self.facts[name].params)
        return Criterion(
            id=definition.id,
            title=definition.title,
            effect=definition.effect,
            description=definition.description,
            sources=tuple(self.sources[s] for s in definition.sources),
            when=when,
            not_met_when=not_met,
            reason={s: t for s, t in reason.items() if t},
            recommendation={s: t for s, t in recommendation.items() if t},
            ask=ask,
            emphasis=emphasis,
            urgent=definition.urgent,
            facts=tuple(dict.fromkeys(facts)),
            params=tuple(dict.fromkeys(used)),
            file=positions.file,
        )


def build(
    loaded: _Loaded, directory: Path, sha256: str, overrides: Mapping[str, Scalar], problems: list[Problem]
) -> RuleSet | None:
    """Check the merged files and build the RuleSet; None when problems were found."""
    builder = _Builder(loaded, overrides, problems)
    if len(loaded.meta) != 1:
        if not loaded.meta:
            problems.append(
                Problem(
                    str(directory),
                    0,
                    0,
                    "missing_ruleset",
                    "no file has a 'ruleset:' section (id, version, title)",
                )
            )
        for _, positions in loaded.meta[1:]:
            problems.append(
                positions.problem(
                    ("ruleset",), "duplicate_ruleset", "only one file may have a 'ruleset:' section"
                )
            )
    criteria = []
    seen: dict[str, str] = {}
    for definition, positions, index in loaded.criteria:
        if definition.id in seen:
            problems.append(
                positions.problem(
                    ("criteria", index, "id"),
                    "duplicate_id",
                    f"criterion {definition.id} is already defined in {seen[definition.id]}",
                )
            )
            continue
        seen[definition.id] = f"{positions.file}:{positions.of(('criteria', index))[0]}"
        criterion = builder.criterion(definition, positions, index)
        if criterion:
            criteria.append(criterion)
    if not loaded.criteria:
        problems.append(Problem(str(directory), 0, 0, "no_criteria", "the rule set defines no criteria"))
    if problems or not loaded.meta:
        return None
    meta = loaded.meta[0][0]
    return RuleSet(
        id=meta.id,
        version=meta.version,
        title=meta.title,
        description=meta.description,
        sha256=sha256,
        directory=directory,
        parameters=builder.parameters,
        facts=builder.facts,
        criteria=tuple(sorted(criteria, key=lambda c: EFFECT_ORDER.index(c.effect))),
        value_sets=builder.value_sets,
        sources=builder.sources,
        answers={k: v for k, (v, _, _) in builder.section["answers"].items()},
        dosing=loaded.dosing,
        overrides=dict(overrides),
    )
