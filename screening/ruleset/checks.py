"""Cross-file checks of a merged rule directory, and building the :class:`RuleSet`.

Each check appends a positioned :class:`~screening.errors.Problem` and carries on, so one
run reports everything wrong with a rule set.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from screening.aggregates.base import AGGREGATES, ANSWER_FIELDS, RECORD_FIELD_TYPES, FactType
from screening.errors import Problem
from screening.record import Status
from screening.ruleset.conditions import (
    Compare,
    Condition,
    ParamRef,
    SyntaxProblem,
    comparisons,
    operands,
    parse_condition,
)
from screening.ruleset.model import (
    ENGINE_LIMIT,
    Criterion,
    Fact,
    Loaded,
    ParameterTable,
    RuleSet,
    SiteValue,
    Source,
    value_type,
    within_engine_range,
)
from screening.ruleset.schema import CriterionDef, FactDef
from screening.ruleset.templates import Template
from screening.ruleset.yamlsource import PathKey, Positions, show
from screening.valuesets import ValueSet
from screening.vocabulary import STATUSES, effect_rank

EVIDENCE = "evidence"  # a template name: the record items behind the criterion
RESERVED_FACT_NAMES = frozenset({"t", "sid", "id", EVIDENCE})
_ORDERING = frozenset({"lt", "le", "gt", "ge"})


@dataclass(frozen=True)
class _Use:
    """A place that needs a parameter to be of some type (checked once all uses are known)."""

    wanted: FactType
    positions: Positions
    path: PathKey
    what: str


class _Builder:
    def __init__(self, loaded: Loaded, site: list[SiteValue], problems: list[Problem]):
        self.loaded = loaded
        self.problems = problems
        self.section = {
            name: loaded.sections.get(name, {})
            for name in ("sources", "parameters", "answers", "value_sets", "facts")
        }
        # Names defined but broken: their own problem is reported, their uses are not.
        self.broken = {kind: set(loaded.broken.get(kind, ())) for kind in self.section}
        self.param_uses: dict[str, list[_Use]] = {}
        table = ParameterTable(
            self.section["parameters"],
            site,
            self.broken["parameters"],
            loaded.unknown_because_failed("parameters"),
            problems,
        )
        self.site_at = table.site_at
        self.parameters = table.parameters
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
            else:
                self.broken["facts"].update({name, *(f"{name}_{o}" for o in definition.also)})

    def undefined(
        self, kind: str, name: str, positions: Positions, path: PathKey, code: str, message: str
    ) -> None:
        """Report a use of an undefined name, unless it names something already reported broken."""
        if name not in self.broken[kind]:
            self.problem(positions, path, code, message + self.loaded.unknown_because_failed(kind))

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

    def param_type(self, name: str) -> FactType | None:
        parameter = self.parameters.get(name)
        return value_type(parameter.value) if parameter else None

    def use_param(self, name: str, wanted: FactType, positions: Positions, path: PathKey, what: str) -> bool:
        """Whether parameter ``name`` is usable as a ``wanted``; a mismatch is reported later, once."""
        if name in self.broken["parameters"]:
            return False
        if self.param_type(name) == wanted:
            return True
        self.param_uses.setdefault(name, []).append(_Use(wanted, positions, path, what))
        return False

    def report_param_uses(self) -> None:
        """A parameter used as the wrong type: at its default when every use agrees, else at each use."""
        for name, uses in self.param_uses.items():
            definition, positions, where = self.section["parameters"][name]
            kind, default = value_type(definition.default), show(definition.default)
            if len({use.wanted for use in uses}) == 1:
                first = uses[0]
                more = f" (and {len(uses) - 1} more)" if len(uses) > 1 else ""
                self.problem(
                    positions,
                    (*where, "default"),
                    "type_mismatch",
                    f"parameter {name!r} is a {kind} ({default}), but it is {first.what} "
                    f"at {first.positions.where(first.path)}{more}",
                )
                continue
            for use in uses:
                message = f"parameter {name!r} is a {kind} ({default}), but it is {use.what}"
                self.problem(use.positions, use.path, "type_mismatch", message)

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
            resolved, valid = self._argument(kind, raw, used_params, positions, path)
            ok = ok and valid
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

    def _argument(
        self, kind: str, raw: Any, used_params: list[str], positions: Positions, path: PathKey
    ) -> tuple[Any, bool]:
        """An aggregate argument resolved (a ``$parameter`` replaced by its value); problems reported."""
        arg = path[-1]

        def fail(message: str) -> tuple[Any, bool]:
            self.problem(positions, path, "invalid_argument", f"{arg}: {message}")
            return None, False

        if isinstance(raw, str) and raw.startswith("$"):
            name = raw[1:]
            if name not in self.parameters:
                self.undefined(
                    "parameters",
                    name,
                    positions,
                    path,
                    "invalid_argument",
                    f"{arg}: no parameter named {name!r}",
                )
                return None, False
            used_params.append(name)
            wanted: FactType = "number" if kind in ("days", "months", "number") else "string"
            if kind in ("days", "months", "number", "value_set", "answer", "field") and not self.use_param(
                name, wanted, positions, path, f"used as argument {arg!r} ({kind})"
            ):
                return None, False
            raw = self.params[name]
            site = self.site_at.get(name)
            if kind in ("days", "months") and not isinstance(raw, int) and site:
                message = (
                    f"parameter {name!r} is used as a number of {kind}, so it must be whole, not {show(raw)}"
                )
                self.problems.append(site.positions.problem(site.where, "invalid_value", message))
                return None, False
        if kind in ("days", "months", "number"):
            if value_type(raw) != "number" or (kind in ("days", "months") and not isinstance(raw, int)):
                return fail(
                    f"expected {'a number' if kind == 'number' else 'whole ' + kind}, not {show(raw)}"
                )
            return raw, True
        # Names are strings: a list or a mapping here (unhashable) is a problem, not a TypeError.
        if kind == "value_set":
            if not isinstance(raw, str):
                return fail(f"expected a value set id, not {show(raw)}")
            if raw not in self.value_sets:
                if raw in self.broken["value_sets"]:
                    return None, False
                note = self.loaded.unknown_because_failed("value_sets")
                return fail(f"no value set named {show(raw)}{note}")
            return self.value_sets[raw], True
        if kind == "value_sets":
            if not isinstance(raw, list) or not raw or not all(isinstance(v, str) for v in raw):
                return fail("expected a list of value set ids")
            missing = [v for v in raw if v not in self.value_sets]
            undefined = [v for v in missing if v not in self.broken["value_sets"]]
            if undefined:
                names = ", ".join(map(show, undefined))
                fail(f"no value set named {names}{self.loaded.unknown_because_failed('value_sets')}")
            if missing:
                return None, False
            return tuple(self.value_sets[v] for v in raw), True
        if kind == "statuses":
            allowed = [s.value for s in Status]
            if not isinstance(raw, list) or not raw or any(s not in allowed for s in raw):
                return fail(f"expected a list drawn from {', '.join(allowed)}")
            return frozenset(raw), True
        if kind == "answer":
            return (
                (raw, True)
                if isinstance(raw, str) and raw in ANSWER_FIELDS
                else fail(f"expected one of {', '.join(ANSWER_FIELDS)}")
            )
        if kind == "field":
            if isinstance(raw, str) and raw in RECORD_FIELD_TYPES:
                return raw, True
            return fail(f"expected one of {', '.join(sorted(RECORD_FIELD_TYPES))}")
        return fail(f"unsupported argument kind {kind}")

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
            elif name not in self.facts and name not in self.broken["parameters"]:
                message = f"template names {{{name}}}, which is neither a fact nor a parameter"
                self.undefined("facts", name, positions, path, "undefined_name", message)
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
            message = f"fact {compare.fact!r} is not defined"
            self.undefined("facts", compare.fact, positions, compare.path[:-1], "undefined_fact", message)
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
                name = operand.name
                if name not in self.parameters:
                    message = f"no parameter named {name!r}"
                    self.undefined(
                        "parameters", name, positions, compare.path, "undefined_parameter", message
                    )
                    ok = False
                    continue
                used_params.append(name)
                what = f"compared with {fact.type} fact {fact.name!r}"
                ok = self.use_param(name, fact.type, positions, compare.path, what) and ok
                continue
            kind = value_type(operand)
            if kind != fact.type:
                self.problem(
                    positions,
                    compare.path,
                    "type_mismatch",
                    f"fact {fact.name!r} is a {fact.type}, but {show(operand)} is a {kind or 'list'}",
                )
                ok = False
            elif kind == "number" and not within_engine_range(operand):  # type: ignore[arg-type]
                message = f"a number compared with a fact must be between -{ENGINE_LIMIT} and {ENGINE_LIMIT}"
                self.problem(positions, compare.path, "invalid_value", f"{message}, not {show(operand)}")
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
        # A source that is undefined, or defined but broken (its own problem is reported,
        # this use is not), leaves the criterion unbuilt: it cannot cite what is not there.
        sources_ok = all(source in self.sources for source in definition.sources)
        for i, source in enumerate(definition.sources):
            if source not in self.sources:
                path = (*where, "sources", i)
                self.undefined(
                    "sources", source, positions, path, "undefined_source", f"no source named {source!r}"
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
        # Its parameters are not the criterion's: a label does not change what a decision shows.
        label = self._template(definition.label_when_failed, positions, (*where, "label_when_failed"), [])
        # The flow diagram counts records, not one record: it can say parameters, not facts.
        for name in label.names if label else ():
            if name in self.facts:
                message = f"label_when_failed names the fact {{{name}}}; it may name parameters only"
                self.problem(positions, (*where, "label_when_failed"), "invalid_template", message)
        if len(self.problems) > problems_before or when is None or not sources_ok:
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
            label_when_failed=label,
        )


def build(
    loaded: Loaded, directory: Path, sha256: str, site: list[SiteValue], problems: list[Problem]
) -> RuleSet | None:
    """Check the merged files and build the RuleSet; None when problems were found."""
    builder = _Builder(loaded, site, problems)
    if not loaded.meta_places:
        message = "no file has a 'ruleset:' section (id, version, title)"
        note = loaded.unknown_because_failed("ruleset")
        problems.append(Problem(str(directory), 0, 0, "missing_ruleset", message + note))
    for positions in loaded.meta_places[1:]:
        problems.append(
            positions.problem(
                ("ruleset",), "duplicate_ruleset", "only one file may have a 'ruleset:' section"
            )
        )
    seen: dict[str, str] = {}
    duplicates: set[tuple[str, int]] = set()
    for criterion_id, positions, index in loaded.criterion_ids:
        if criterion_id in seen:
            problems.append(
                positions.problem(
                    ("criteria", index, "id"),
                    "duplicate_id",
                    f"criterion {criterion_id} is already defined at {seen[criterion_id]}",
                )
            )
            duplicates.add((positions.file, index))
            continue
        seen[criterion_id] = positions.where(("criteria", index))
    criteria = []
    for definition, positions, index in loaded.criteria:
        if (positions.file, index) in duplicates:
            continue
        criterion = builder.criterion(definition, positions, index)
        if criterion:
            criteria.append(criterion)
    builder.report_param_uses()
    if not loaded.criterion_ids and not loaded.broken.get("criteria"):
        message = "the rule set defines no criteria" + loaded.unknown_because_failed("criteria")
        problems.append(Problem(str(directory), 0, 0, "no_criteria", message))
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
        criteria=tuple(sorted(criteria, key=lambda c: effect_rank(c.effect))),
        value_sets=builder.value_sets,
        sources=builder.sources,
        answers={k: v for k, (v, _, _) in builder.section["answers"].items()},
        dosing=loaded.dosing,
        overrides={name: item.value for name, item in builder.site_at.items()},
    )
