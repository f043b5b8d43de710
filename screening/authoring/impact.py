"""Impact analysis: which patients a rule or parameter change moves, and why.

The same cohort is screened twice with the batch machinery (:func:`batch.run_batch`:
parallel, streaming, every input format), once under the baseline rule set and once
under the new one, into two compact JSONL files in a temporary directory. The two files
are in input order, so they are compared line by line, in constant memory. A patient
whose outcome, decisive criteria or missing items changed gets one line in the output:

    {"position": 7, "source": "cohort.jsonl:8", "record_id": "p7",
     "before": {"outcome": "needs_review", "decisive": ["REV-BP-ELEVATED"], "missing": []},
     "after": {"outcome": "ineligible", "decisive": ["EXC-BP-UNCONTROLLED"], "missing": []},
     "criteria": [{"id": "EXC-BP-UNCONTROLLED", "before": {"status": "not_met", "reason": "..."},
                   "after": {"status": "met", "reason": "..."}}, ...]}

The report shows the before/after matrix of outcomes, the criteria responsible for each
flip (those whose status changed and that were decisive on either side), and the rule
diff: criterion definitions, facts and value sets by sha256 of each, and parameter values.
"""

from __future__ import annotations

import hashlib
import html
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from screening.batch.run import run_batch
from screening.errors import InputError
from screening.ruleset.conditions import AllOf, AnyOf, Compare, Condition, Not, ParamRef, operands
from screening.ruleset.loading import load_ruleset
from screening.ruleset.model import Criterion, Fact, RuleSet
from screening.screener import default_rules_dir, parse_as_of
from screening.valuesets import ValueSet
from screening.vocabulary import OUTCOMES

NOT_DECIDED = "not_decided"
"""The row and column for a record with no decision on that side (an error, not screened)."""


@dataclass(frozen=True)
class Side:
    """One side of the comparison: a rule directory and an optional site parameter file."""

    rules: Path
    params: Path | None

    def describe(self) -> str:
        return f"{self.rules}" + (f" with {self.params}" if self.params else " (no site parameters)")


@dataclass
class RuleDiff:
    """What differs between two rule sets, each item by sha256 of its definition."""

    criteria: list[dict[str, Any]] = field(default_factory=list)
    parameters: list[dict[str, Any]] = field(default_factory=list)
    facts: list[dict[str, Any]] = field(default_factory=list)
    value_sets: list[dict[str, Any]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.criteria or self.parameters or self.facts or self.value_sets)

    def as_dict(self) -> dict[str, Any]:
        return {
            "criteria": self.criteria,
            "parameters": self.parameters,
            "facts": self.facts,
            "value_sets": self.value_sets,
        }


@dataclass
class ImpactResult:
    before: Side
    after: Side
    as_of: str
    records: int = 0
    changed: int = 0
    matrix: Counter[tuple[str, str]] = field(default_factory=Counter)
    responsible: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)
    diff: RuleDiff = field(default_factory=RuleDiff)
    seconds: float = 0.0
    workers: int = 1
    output: str = ""
    before_sha256: str = ""
    after_sha256: str = ""
    before_params_sha256: str = ""
    after_params_sha256: str = ""

    def summary_line(self) -> str:
        flips = sum(n for (b, a), n in self.matrix.items() if b != a)
        return (
            f"{self.records:,} records in {self.seconds:.1f} s ({self.workers} worker"
            f"{'s' if self.workers > 1 else ''}): {self.changed:,} changed, {flips:,} changed outcome -> {self.output}"
        )


def run_impact(
    inputs: Sequence[Path | str],
    out: Path | str,
    *,
    as_of: date | str,
    rules: Path | str | None = None,
    params: Path | str | None = None,
    baseline_rules: Path | str | None = None,
    baseline_params: Path | str | None = None,
    workers: int | None = None,
    input_format: str | None = None,
    chunk_size: int = 250,
    progress: bool = False,
) -> ImpactResult:
    """Screen ``inputs`` under the baseline and the new rules; write the changes to ``out``.

    Both sides default to the default rule set with no site parameters."""
    started = time.perf_counter()
    day = parse_as_of(as_of)
    out = Path(out)
    before = Side(Path(baseline_rules) if baseline_rules else default_rules_dir(), _path(baseline_params))
    after = Side(Path(rules) if rules else default_rules_dir(), _path(params))
    old, new = load_ruleset(before.rules, before.params), load_ruleset(after.rules, after.params)
    result = ImpactResult(before, after, day.isoformat(), output=str(out))
    result.diff = rule_diff(old, new)
    result.before_sha256, result.after_sha256 = old.sha256, new.sha256
    result.before_params_sha256, result.after_params_sha256 = _sha(old.params), _sha(new.params)
    if any(Path(p).resolve() == out.resolve() for p in inputs if str(p) != "-"):
        raise InputError("the output file is also an input", str(out))
    with tempfile.TemporaryDirectory(
        prefix="impact-", dir=out.parent if out.parent.exists() else None
    ) as tmp:
        runs = []
        for name, side in (("before", before), ("after", after)):
            runs.append(
                run_batch(
                    inputs,
                    Path(tmp) / f"{name}.jsonl",
                    input_format=input_format,
                    rules=side.rules,
                    params=side.params,
                    as_of=day,
                    workers=workers,
                    chunk_size=chunk_size,
                    progress=progress,
                    compact=True,
                )
            )
        if any(run.interrupted for run in runs):
            raise KeyboardInterrupt
        result.workers = runs[0].workers
        with out.open("wb") as sink:
            for change in _compare(Path(tmp) / "before.jsonl", Path(tmp) / "after.jsonl", result):
                sink.write(orjson.dumps(change) + b"\n")
    result.seconds = time.perf_counter() - started
    return result


def _path(value: Path | str | None) -> Path | None:
    return Path(value) if value else None


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as source:
        for line in source:
            yield orjson.loads(line)


def _compare(before: Path, after: Path, result: ImpactResult) -> Iterator[dict[str, Any]]:
    for old, new in zip(_lines(before), _lines(after), strict=True):
        result.records += 1
        was, now = _outcome(old), _outcome(new)
        result.matrix[was, now] += 1
        old_d, new_d = old.get("decision") or {}, new.get("decision") or {}
        old_c = {c["id"]: c for c in old_d.get("criteria", [])}
        new_c = {c["id"]: c for c in new_d.get("criteria", [])}
        old_decisive = [i for i, c in old_c.items() if c.get("decisive")]
        new_decisive = [i for i, c in new_c.items() if c.get("decisive")]
        old_missing = old_d.get("missing_information", [])
        new_missing = new_d.get("missing_information", [])
        if was == now and old_decisive == new_decisive and old_missing == new_missing:
            continue
        result.changed += 1
        changed = [
            {
                "id": cid,
                "before": _status(old_c.get(cid)),
                "after": _status(new_c.get(cid)),
            }
            for cid in dict.fromkeys([*old_c, *new_c])
            if _status(old_c.get(cid))["status"] != _status(new_c.get(cid))["status"]
        ]
        if was != now:
            blamed = result.responsible.setdefault((was, now), Counter())
            for item in changed:
                if item["id"] in old_decisive or item["id"] in new_decisive:
                    blamed[item["id"]] += 1
        yield {
            "position": new.get("position"),
            "source": new.get("source"),
            "record_id": new.get("record_id"),
            "before": _side(was, old_decisive, old_missing, old),
            "after": _side(now, new_decisive, new_missing, new),
            "criteria": changed,
        }


def _outcome(line: Mapping[str, Any]) -> str:
    decision = line.get("decision")
    return str(decision["outcome"]) if decision else NOT_DECIDED


def _status(criterion: Mapping[str, Any] | None) -> dict[str, Any]:
    if criterion is None:
        return {"status": "absent", "reason": "not in this rule set"}
    return {"status": criterion["status"], "reason": criterion["reason"]}


def _side(outcome: str, decisive: list[str], missing: list[str], line: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"outcome": outcome, "decisive": decisive, "missing": missing}
    if "error" in line:
        out["error"] = line["error"].get("message")
    if "not_screened" in line:
        out["not_screened"] = line["not_screened"]
    return out


# -- the rule diff -------------------------------------------------------------------------


def _sha(data: Any) -> str:
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()


def _condition(condition: Condition) -> Any:
    """A condition as data with its parameters by name (their values are diffed apart)."""
    if isinstance(condition, Compare):
        values = [f"${v.name}" if isinstance(v, ParamRef) else v for v in operands(condition)]
        return [condition.fact, condition.op, values]
    if isinstance(condition, Not):
        return {"not": _condition(condition.item)}
    key = "all" if isinstance(condition, AllOf) else "any"
    assert isinstance(condition, (AllOf, AnyOf))
    return {key: [_condition(item) for item in condition.items]}


def criterion_definition(criterion: Criterion) -> dict[str, Any]:
    return {
        "title": criterion.title,
        "effect": criterion.effect,
        "urgent": criterion.urgent,
        "when": _condition(criterion.when),
        "not_met_when": _condition(criterion.not_met_when) if criterion.not_met_when else None,
        "reason": {k: t.text for k, t in criterion.reason.items()},
        "recommendation": {k: t.text for k, t in criterion.recommendation.items()},
        "ask": criterion.ask.text if criterion.ask else None,
        "emphasis": [_condition(criterion.emphasis[0]), criterion.emphasis[1].text]
        if criterion.emphasis
        else None,
        "sources": [s.id for s in criterion.sources],
    }


def _arg(value: Any) -> Any:
    if isinstance(value, ValueSet):
        return f"valueset:{value.id}"
    if isinstance(value, frozenset):
        return sorted(_arg(v) for v in value)
    if isinstance(value, (tuple, list)):
        return [_arg(v) for v in value]
    return value


def fact_definition(fact: Fact) -> dict[str, Any]:
    """A fact by its aggregate, output and arguments; parameters by name, not value."""
    args = {k: _arg(v) for k, v in fact.args.items()}
    return {
        "aggregate": fact.aggregate.name,
        "output": fact.output,
        "args": args,
        "params": list(fact.params),
        "if_absent": fact.if_absent,
    }


def value_set_definition(vs: ValueSet) -> dict[str, Any]:
    return {
        "icd10cm": list(vs.icd10cm),
        "exclude_icd10cm": list(vs.exclude_icd10cm),
        "snomed": sorted(vs.snomed),
        "rxnorm": sorted(vs.rxnorm),
        "loinc": sorted(vs.loinc),
        "text": list(vs.text),
        "attributes": dict(vs.attributes),
        "dose_factors": dict(vs.dose_factors),
    }


def _diff_items(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name in dict.fromkeys([*old, *new]):
        before = _sha(old[name]) if name in old else None
        after = _sha(new[name]) if name in new else None
        if before != after:
            change = "added" if before is None else "removed" if after is None else "changed"
            out.append({"id": name, "change": change, "before_sha256": before, "after_sha256": after})
    return out


def rule_diff(old: RuleSet, new: RuleSet) -> RuleDiff:
    diff = RuleDiff()
    diff.criteria = _diff_items(
        {c.id: criterion_definition(c) for c in old.criteria},
        {c.id: criterion_definition(c) for c in new.criteria},
    )
    diff.facts = _diff_items(
        {n: fact_definition(f) for n, f in old.facts.items()},
        {n: fact_definition(f) for n, f in new.facts.items()},
    )
    diff.value_sets = _diff_items(
        {n: value_set_definition(v) for n, v in old.value_sets.items()},
        {n: value_set_definition(v) for n, v in new.value_sets.items()},
    )
    for name in dict.fromkeys([*old.parameters, *new.parameters]):
        before = old.parameters[name].value if name in old.parameters else None
        after = new.parameters[name].value if name in new.parameters else None
        if before != after:
            used = [c.id for c in new.criteria if name in c.params] or [
                c.id for c in old.criteria if name in c.params
            ]
            diff.parameters.append({"id": name, "before": before, "after": after, "criteria": used})
    # A fact's arguments hold parameter values: say when that is all that changed it.
    changed_params = {p["id"] for p in diff.parameters}
    for item in diff.facts:
        if item["change"] != "changed":
            continue
        before_def, after_def = fact_definition(old.facts[item["id"]]), fact_definition(new.facts[item["id"]])
        same_shape = {k: v for k, v in before_def.items() if k != "args"} == {
            k: v for k, v in after_def.items() if k != "args"
        } and set(before_def["args"]) == set(after_def["args"])
        through = sorted(changed_params & set(new.facts[item["id"]].params))
        if same_shape and through:
            item["change"] = f"changed through parameters {', '.join(through)}"
    return diff


# -- the report ----------------------------------------------------------------------------


def write_report(result: ImpactResult, path: Path | str) -> None:
    Path(path).write_text(render_report(result), encoding="utf-8")


def _e(value: object) -> str:
    return html.escape(str(value))


def render_report(result: ImpactResult) -> str:
    """One self-contained HTML page: the runs, the outcome matrix, who flipped and why, the diff."""
    rows = [*OUTCOMES, NOT_DECIDED]
    used = [o for o in rows if any(result.matrix[o, x] or result.matrix[x, o] for x in rows)]
    shown = [o for o in rows if o in OUTCOMES or o in used]
    head = "".join(f"<th>{_e(o.replace('_', ' '))}</th>" for o in shown)
    body = []
    for was in shown:
        cells = []
        for now in shown:
            n = result.matrix[was, now]
            style = ' class="flip"' if n and was != now else ""
            cells.append(f"<td{style}>{n:,}</td>")
        body.append(f"<tr><th>{_e(was.replace('_', ' '))}</th>{''.join(cells)}</tr>")
    flips = []
    for (was, now), blamed in sorted(result.responsible.items(), key=lambda kv: -result.matrix[kv[0]]):
        names = ", ".join(f"{_e(cid)} ({n:,})" for cid, n in blamed.most_common()) or "none decisive"
        flips.append(
            f"<tr><td>{_e(was)}</td><td>{_e(now)}</td><td>{result.matrix[was, now]:,}</td><td>{names}</td></tr>"
        )
    diff = result.diff

    def table(title: str, items: list[dict[str, Any]]) -> str:
        if not items:
            return f"<h3>{_e(title)}</h3><p>No difference.</p>"
        trs = "".join(
            f"<tr><td>{_e(i['id'])}</td><td>{_e(i['change'])}</td>"
            f"<td><code>{_e((i['before_sha256'] or '-')[:16])}</code></td>"
            f"<td><code>{_e((i['after_sha256'] or '-')[:16])}</code></td></tr>"
            for i in items
        )
        return (
            f"<h3>{_e(title)}</h3><table><tr><th>id</th><th>change</th><th>sha256 before</th>"
            f"<th>sha256 after</th></tr>{trs}</table>"
        )

    params = "".join(
        f"<tr><td>{_e(p['id'])}</td><td>{_e(p['before'])}</td><td>{_e(p['after'])}</td>"
        f"<td>{_e(', '.join(p['criteria']))}</td></tr>"
        for p in diff.parameters
    )
    params_html = (
        "<h3>Parameters</h3><table><tr><th>parameter</th><th>before</th><th>after</th><th>used by</th></tr>"
        f"{params}</table>"
        if params
        else "<h3>Parameters</h3><p>No difference.</p>"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Impact of a rule change</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
td.flip {{ background: #ffe2b3; font-weight: bold; }}
code {{ font-size: 0.9em; }}
</style></head><body>
<h1>Impact of a rule change</h1>
<p>Before: {_e(result.before.describe())}: rule files sha256 <code>{_e(result.before_sha256[:16])}</code>,
parameter values sha256 <code>{_e(result.before_params_sha256[:16])}</code><br>
After: {_e(result.after.describe())}: rule files sha256 <code>{_e(result.after_sha256[:16])}</code>,
parameter values sha256 <code>{_e(result.after_params_sha256[:16])}</code><br>
Screening date {_e(result.as_of)}; {result.records:,} records; {result.changed:,} changed
(outcome, decisive criteria or missing items); {result.seconds:.1f} s with {result.workers} worker(s).</p>
<h2>Outcomes before (rows) and after (columns)</h2>
<table><tr><th>before \\ after</th>{head}</tr>{"".join(body)}</table>
<h2>Criteria responsible for each change of outcome</h2>
<p>Criteria whose status changed and that were decisive before or after, with how many patients.</p>
{"<table><tr><th>before</th><th>after</th><th>patients</th><th>criteria</th></tr>" + "".join(flips) + "</table>" if flips else "<p>No outcome changed.</p>"}
<h2>What differs in the rules</h2>
{params_html}
{table("Criterion definitions", diff.criteria)}
{table("Facts", diff.facts)}
{table("Value sets", diff.value_sets)}
</body></html>
"""
