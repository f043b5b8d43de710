"""One criterion the way a clinician reads it (``screening rules show ID``).

A criterion's meaning is spread over its rule file, ``facts.yaml`` and ``valuesets/``, and
some of the names its reasons use exist only through ``also:`` (``bp_band_text`` is the
``text`` output of ``bp_band``). This gathers it in one place, with every parameter
resolved to the value in force (site values included), and names each ``also:`` fact
explicitly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from screening.decision import level
from screening.engine.explain import condition_text
from screening.ruleset.conditions import Scalar, comparisons
from screening.ruleset.model import Criterion, Fact, RuleSet
from screening.valuesets import ValueSet
from screening.vocabulary import STATUSES

_CODE_SYSTEMS = (
    ("icd10cm", "ICD-10-CM"),
    ("exclude_icd10cm", "ICD-10-CM excluded"),
    ("snomed", "SNOMED CT"),
    ("rxnorm", "RxNorm"),
    ("loinc", "LOINC"),
    ("text", "text patterns"),
)


def find_criterion(ruleset: RuleSet, criterion_id: str) -> Criterion | None:
    return next((c for c in ruleset.criteria if c.id == criterion_id), None)


def condition_facts(criterion: Criterion) -> list[str]:
    """The facts the condition reads, in order of first use."""
    conditions = [criterion.when] + ([criterion.not_met_when] if criterion.not_met_when else [])
    return list(dict.fromkeys(c.fact for condition in conditions for c in comparisons(condition)))


def template_names(criterion: Criterion) -> list[str]:
    """Every name the reasons, recommendations and ask put in their text."""
    templates = [*criterion.reason.values(), *criterion.recommendation.values()]
    if criterion.ask:
        templates.append(criterion.ask)
    if criterion.emphasis:
        templates.append(criterion.emphasis[1])
    return list(dict.fromkeys(name for t in templates for name in t.names))


def sibling_of(ruleset: RuleSet, fact: Fact) -> str | None:
    """The fact an ``also:`` fact is an output of (``bp_band`` for ``bp_band_text``)."""
    base = fact.name.removesuffix(f"_{fact.output}")
    other = ruleset.facts.get(base)
    if base != fact.name and other is not None and other.group == fact.group and other.output != fact.output:
        return base
    return None


def value_sets_of(fact: Fact) -> list[ValueSet]:
    found: list[ValueSet] = []
    for value in fact.args.values():
        items = value if isinstance(value, (tuple, list, frozenset)) else (value,)
        found += [v for v in items if isinstance(v, ValueSet)]
    return found


def _arg_text(value: Any) -> str:
    if isinstance(value, ValueSet):
        return value.id
    if isinstance(value, (tuple, list, frozenset)):
        items = sorted(_arg_text(v) for v in value) if isinstance(value, frozenset) else map(_arg_text, value)
        return ", ".join(items)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _param(ruleset: RuleSet, name: str) -> str:
    p = ruleset.parameters[name]
    unit = f" {p.unit}" if p.unit else ""
    site = f" (site value; default {_value(p.default)})" if p.value != p.default else ""
    return f"{name} = {_value(p.value)}{unit}{site}: {p.description}"


def _value(value: Scalar) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:g}" if isinstance(value, float) else str(value)


def show_criterion(ruleset: RuleSet, criterion: Criterion, codes: bool = False) -> list[str]:
    """The criterion as text: effect, condition, facts with their windows, value sets, what
    leaves it unknown, reasons, recommendations and sources."""
    params = ruleset.params
    lines = [f"{criterion.id}  {criterion.title}"]
    if criterion.description:
        lines.append(" ".join(criterion.description.split()))
    moves = [
        f"{status.replace('_', ' ')}: {outcome.value.replace('_', ' ')}"
        for status in STATUSES
        if (outcome := level(criterion.effect, status)) is not None
    ]
    lines += [
        f"effect: {criterion.effect} ({'; '.join(moves) or 'never moves the outcome'})"
        + (", urgent when met" if criterion.urgent else ""),
        f"file: {criterion.file}",
        *(
            [f"in the batch report, when it fails: {criterion.label_when_failed.render(params)}"]
            if criterion.label_when_failed is not None
            else []
        ),
        "",
        "met when:",
        *condition_text(criterion.when, params, "  "),
    ]
    if criterion.not_met_when:
        lines += ["not met when (otherwise unknown):", *condition_text(criterion.not_met_when, params, "  ")]
    else:
        lines.append("not met when: every fact it needs is known and the condition is false")
    lines += ["", "facts it reads:"]
    read = condition_facts(criterion)
    for name in read:
        lines += [f"  {line}" for line in _fact_lines(ruleset, ruleset.facts[name])]
    sets = {vs.id: vs for name in read for vs in value_sets_of(ruleset.facts[name])}
    if sets:
        lines += ["", "value sets:"]
        for vs in sets.values():
            lines += [f"  {line}" for line in _value_set_lines(vs, codes)]
    lines += ["", "unknown when:"]
    lines += [f"  {line}" for line in _unknown_lines(ruleset, criterion, read)]
    extra = [name for name in template_names(criterion) if name not in read]
    if extra:
        lines += ["", "other names in its texts:"]
        for name in extra:
            lines.append(f"  {name}: {_name_origin(ruleset, name)}")
    if criterion.params:
        lines += ["", "parameters:"] + [f"  {_param(ruleset, name)}" for name in criterion.params]
    lines += ["", "reasons:"]
    lines += [f"  {status.replace('_', ' ')}: {t.text}" for status, t in criterion.reason.items()]
    if criterion.emphasis:
        lines.append(f"  added when met and {' '.join(condition_text(criterion.emphasis[0], params))}: ")
        lines[-1] += criterion.emphasis[1].text
    if criterion.recommendation:
        lines += ["", "recommendations:"]
        lines += [f"  {s.replace('_', ' ')}: {t.text}" for s, t in criterion.recommendation.items()]
    if criterion.ask:
        lines += ["", f"asks: {criterion.ask.text}"]
    lines += ["", "sources:"]
    for source in criterion.sources:
        lines.append(f"  {source.id}: {source.label or source.citation}")
        if source.label and source.citation != source.label:
            lines.append(f"    {source.citation}")
        if source.url:
            lines.append(f"    {source.url}")
    return lines


def _fact_lines(ruleset: RuleSet, fact: Fact) -> Iterator[str]:
    yield f"{fact.name} ({fact.type}): {fact.description}"
    base = sibling_of(ruleset, fact)
    if base:
        yield f"  the '{fact.output}' output of fact {base} (through also:)"
    args = ", ".join(f"{k}={_arg_text(v)}" for k, v in fact.args.items())
    output = f", output {fact.output}" if fact.output != "value" else ""
    yield f"  from {fact.aggregate.name}({args}){output}"
    for name in fact.params:
        yield f"  window/limit: {_param(ruleset, name)}"
    if fact.if_absent is not None:
        yield f"  when absent: taken as {_value(fact.if_absent)}" + (
            f" (noted: {fact.not_checked.text})" if fact.not_checked else ""
        )


def _value_set_lines(vs: ValueSet, codes: bool) -> Iterator[str]:
    sizes = [f"{len(getattr(vs, attr))} {label}" for attr, label in _CODE_SYSTEMS if getattr(vs, attr)]
    yield f"{vs.id}: {vs.title} ({', '.join(sizes) or 'empty'})"
    yield f"  source: {vs.source}"
    if codes:
        for attr, label in _CODE_SYSTEMS:
            values = getattr(vs, attr)
            if values:
                shown = sorted(values) if isinstance(values, frozenset) else list(values)
                yield f"  {label}: {', '.join(shown)}"


def _unknown_lines(ruleset: RuleSet, criterion: Criterion, read: list[str]) -> Iterator[str]:
    """Which facts can be unknown, and what the decision then asks for."""
    values: dict[str, Any] = {**ruleset.params}
    any_unknown = False
    for name in read:
        fact = ruleset.facts[name]
        if not fact.may_be_unknown:
            continue
        any_unknown = True
        answered_by = fact.args.get("answered_by")
        if isinstance(answered_by, str) and answered_by in ruleset.answers:
            yield f"{name}: when the {answered_by} list is not given; asks for {ruleset.answers[answered_by]}"
        elif fact.ask and all(n in values for n in fact.ask.names):
            yield f"{name}: when the record does not settle it; asks for {fact.ask.render(values)}"
        else:
            yield f"{name}: when the record does not settle it ({fact.description})"
    if not any_unknown:
        yield "never: every fact it reads is always known"
    elif criterion.not_met_when is None:
        yield "(only when the unknown facts could change the result: strong Kleene logic)"
    if "unknown" in criterion.reason:
        template = criterion.reason["unknown"]
        said = template.render(values) if all(n in values for n in template.names) else template.text
        yield f"reason then: {said}"


def _name_origin(ruleset: RuleSet, name: str) -> str:
    if name == "evidence":
        return "the evidence of the facts it reads (record items with dates)"
    if name in ruleset.facts:
        fact = ruleset.facts[name]
        base = sibling_of(ruleset, fact)
        if base:
            return f"the '{fact.output}' output of fact {base} (through also:): {ruleset.facts[base].description}"
        return f"fact: {fact.description}"
    if name in ruleset.parameters:
        return f"parameter: {_param(ruleset, name)}"
    return "(not defined)"
