"""The batch report: counts of a screening run, as one self-contained HTML file and a CSV.

:class:`Summary` holds the counts. Batch workers fill one per chunk and the parent merges
them; :meth:`Summary.from_jsonl` rebuilds the same counts from an output file (``--resume``
and the tests use it). :func:`write_html` renders a CONSORT-style flow diagram as inline
SVG, a table per criterion, the top missing items, and the run's rule set, date,
parameters and throughput; it needs no server and no network. :func:`write_csv` writes the
same counts in long form (``section,item,status,count``) for spreadsheets.

Every label comes from the rule set: criterion titles and ``label_when_failed``, the missing
items as the rules ask for them, value-set attributes for the indication grades. The
breakdowns (outcome by indication grade, age band and sex) read the decision's facts, which
every output line keeps, ``--compact`` ones included.
"""

from __future__ import annotations

import csv
import html
import textwrap
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any

import orjson

from screening.errors import InputError
from screening.present.worklist import ItemIds
from screening.vocabulary import OUTCOMES, STATUSES

if TYPE_CHECKING:
    from screening.decision import Decision
    from screening.ruleset.model import Criterion, RuleSet

OUTCOME_LABELS = {
    "ineligible": "Ineligible",
    "needs_information": "Needs information",
    "needs_review": "Needs clinician review",
    "eligible_with_cautions": "Eligible with cautions",
    "eligible": "Eligible",
}

# The breakdowns: (dimension, the fact it reads, its heading). Facts, not reasons or
# evidence texts: they are values, the same in full and --compact lines.
BREAKDOWNS = (
    (
        "indication",
        "indication_grade",
        "Outcome by indication (evidence grade of the primary pain condition)",
    ),
    ("age", "age", "Outcome by age"),
    ("sex", "sex", "Outcome by sex"),
)
AGE_BANDS: tuple[tuple[int | None, int | None, str], ...] = (
    (None, 17, "under 18"),
    (18, 34, "18-34"),
    (35, 49, "35-49"),
    (50, 64, "50-64"),
    (65, None, "65+"),
)
UNKNOWN_GROUP = "unknown"


@dataclass
class Summary:
    """The counts of a batch: outcomes, criterion statuses, decisive criteria, missing items."""

    assessed: int = 0
    not_screened: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    statuses: Counter[tuple[str, str]] = field(default_factory=Counter)
    decisive: Counter[tuple[str, str]] = field(default_factory=Counter)
    missing: Counter[str] = field(default_factory=Counter)
    # (outcome, item): the missing items of the records with that outcome. The flow
    # diagram's "needs information" box counts only its own records' items.
    missing_by_outcome: Counter[tuple[str, str]] = field(default_factory=Counter)
    # (dimension, group, outcome): see BREAKDOWNS.
    groups: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    @property
    def screened(self) -> int:
        return self.assessed - self.not_screened - self.failed

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    def add_decision(self, decision: Decision) -> None:
        self._add(
            decision.outcome.value,
            ((c.id, c.status, c.decisive) for c in decision.criteria),
            decision.missing_information,
            [c.facts for c in decision.criteria],
        )

    def add_decision_dict(self, decision: Mapping[str, Any]) -> None:
        criteria = decision["criteria"]
        self._add(
            decision["outcome"],
            ((c["id"], c["status"], c["decisive"]) for c in criteria),
            decision["missing_information"],
            # The outcome form has no facts per criterion, only the profile facts.
            [c["facts"] for c in criteria if "facts" in c] or [decision.get("facts", {})],
        )

    def _add(
        self,
        outcome: str,
        criteria: Iterable[tuple[str, str, bool]],
        missing: Iterable[str],
        facts: list[Mapping[str, Any]],
    ) -> None:
        self.assessed += 1
        self.outcomes[outcome] += 1
        for dimension, group in profile(facts).items():
            self.groups[dimension, group, outcome] += 1
        statuses, decisive = self.statuses, self.decisive
        for criterion_id, status, is_decisive in criteria:
            statuses[criterion_id, status] += 1
            if is_decisive:
                decisive[outcome, criterion_id] += 1
        items = list(missing)
        self.missing.update(items)
        self.missing_by_outcome.update((outcome, item) for item in items)

    def add_error(self, code: str) -> None:
        self.assessed += 1
        self.errors[code] += 1

    def add_not_screened(self) -> None:
        self.assessed += 1
        self.not_screened += 1

    def add_line(self, line: Mapping[str, Any]) -> None:
        """Count one output line of ``screening batch``."""
        if "decision" in line:
            self.add_decision_dict(line["decision"])
        elif "not_screened" in line:
            self.add_not_screened()
        else:
            self.add_error(str(line["error"]["code"]))

    def merge(self, other: Summary) -> None:
        self.assessed += other.assessed
        self.not_screened += other.not_screened
        self.outcomes.update(other.outcomes)
        self.errors.update(other.errors)
        self.statuses.update(other.statuses)
        self.decisive.update(other.decisive)
        self.missing.update(other.missing)
        self.missing_by_outcome.update(other.missing_by_outcome)
        self.groups.update(other.groups)

    @classmethod
    def from_jsonl(cls, path: Path | str) -> Summary:
        """The counts of an output file of ``screening batch``."""
        summary = cls()
        with Path(path).open("rb") as file:
            for line in file:
                if line.endswith(b"\n"):
                    summary.add_line(orjson.loads(line))
        return summary

    def as_dict(self) -> dict[str, Any]:
        """The counts as plain JSON-able data (embedded in the HTML report)."""
        criteria: dict[str, dict[str, int]] = {}
        for (criterion_id, status), count in sorted(self.statuses.items()):
            criteria.setdefault(criterion_id, dict.fromkeys(STATUSES, 0))[status] = count
        decisive: dict[str, dict[str, int]] = {}
        for (outcome, criterion_id), count in sorted(self.decisive.items()):
            decisive.setdefault(outcome, {})[criterion_id] = count
        missing_by_outcome: dict[str, dict[str, int]] = {}
        for (outcome, item), count in self.missing_by_outcome.most_common():
            missing_by_outcome.setdefault(outcome, {})[item] = count
        groups: dict[str, dict[str, dict[str, int]]] = {}
        for (dimension, group, outcome), count in sorted(self.groups.items()):
            groups.setdefault(dimension, {}).setdefault(group, {})[outcome] = count
        return {
            "assessed": self.assessed,
            "screened": self.screened,
            "not_screened": self.not_screened,
            "failed": self.failed,
            "outcomes": {o.value: self.outcomes.get(o.value, 0) for o in OUTCOMES},
            "errors": dict(self.errors.most_common()),
            "criteria": criteria,
            "decisive": decisive,
            "missing": dict(self.missing.most_common()),
            "missing_by_outcome": missing_by_outcome,
            "groups": groups,
        }

    def missing_of(self, outcome: str) -> list[tuple[str, int]]:
        """The missing items of the records with ``outcome``, most frequent first."""
        found = [(item, n) for (o, item), n in self.missing_by_outcome.items() if o == outcome and n]
        found.sort(key=lambda pair: (-pair[1], pair[0]))
        return found

    def rows(self) -> list[tuple[str, str, str, int]]:
        """The counts in long form: (section, item, status, count)."""
        out: list[tuple[str, str, str, int]] = [
            ("total", "assessed", "", self.assessed),
            ("total", "screened", "", self.screened),
            ("total", "not_screened", "", self.not_screened),
            ("total", "failed", "", self.failed),
        ]
        out += [("outcome", o.value, "", self.outcomes.get(o.value, 0)) for o in OUTCOMES]
        out += [("error", code, "", n) for code, n in self.errors.most_common()]
        out += [("criterion", cid, status, n) for (cid, status), n in sorted(self.statuses.items())]
        out += [("decisive", cid, outcome, n) for (outcome, cid), n in sorted(self.decisive.items())]
        out += [("missing", item, "", n) for item, n in self.missing.most_common()]
        out += [
            ("missing_by_outcome", item, outcome, n)
            for (outcome, item), n in sorted(self.missing_by_outcome.items())
            if n
        ]
        out += [
            (f"by_{dimension}", group, outcome, n)
            for (dimension, group, outcome), n in sorted(self.groups.items())
        ]
        return out


_BREAKDOWN_FACTS = {fact: dimension for dimension, fact, _ in BREAKDOWNS}


def profile(criteria_facts: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The record's group in each breakdown, from the facts its criteria report.

    A fact a criterion did not report, or reported as unknown, puts the record in the
    "unknown" group (age, indication grade) or "not recorded" (sex)."""
    wanted = _BREAKDOWN_FACTS
    values: dict[str, Any] = {}
    for facts in criteria_facts:
        for fact in wanted.keys() & facts.keys():
            if facts[fact] is not None:
                values.setdefault(fact, facts[fact])
        if len(values) == len(wanted):
            break
    return {dimension: _group(dimension, values.get(fact)) for fact, dimension in wanted.items()}


def _group(dimension: str, value: Any) -> str:
    if value is None:
        return "not recorded" if dimension == "sex" else UNKNOWN_GROUP
    if dimension != "age":
        return str(value)
    age = int(value)
    return next(
        label
        for low, high, label in AGE_BANDS
        if (low is None or age >= low) and (high is None or age <= high)
    )


@dataclass
class RunInfo:
    """What a report says about the run: rule set, date, parameters, inputs and throughput."""

    ruleset: RuleSet
    as_of: str
    inputs: list[str]
    output: str
    workers: int
    seconds: float
    records: int
    resumed: int = 0
    interrupted: bool = False
    generated: str = field(default_factory=lambda: datetime.now().astimezone().isoformat(timespec="seconds"))

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


def write_csv(summary: Summary, path: Path | str) -> None:
    """The counts as CSV: ``section,item,status,count``."""
    try:
        with Path(path).open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(("section", "item", "status", "count"))
            writer.writerows(summary.rows())
    except OSError as error:
        raise InputError(f"cannot write the summary: {error.strerror or error}", str(path)) from None


def write_html(summary: Summary, run: RunInfo, path: Path | str) -> None:
    """The report as one self-contained HTML file."""
    try:
        Path(path).write_text(render_html(summary, run), encoding="utf-8")
    except OSError as error:
        raise InputError(f"cannot write the report: {error.strerror or error}", str(path)) from None


def render_html(summary: Summary, run: RunInfo) -> str:
    template = Template(
        resources.files("screening.present").joinpath("report_template.html").read_text("utf-8")
    )
    ruleset = run.ruleset
    counts = summary.as_dict()
    return template.substitute(
        title=_e(ruleset.title),
        subtitle=_e(f"{ruleset.id} {ruleset.version} · screening date {run.as_of}"),
        cards=_cards(summary),
        flow=flow_diagram(summary, ruleset),
        criteria=_criteria_table(summary, ruleset),
        missing=_missing_table(summary, ItemIds(ruleset)),
        breakdowns=_breakdowns(summary, ruleset),
        errors=_errors_table(summary),
        run=_run_table(run),
        parameters=_parameters_table(ruleset),
        data=orjson.dumps(counts).decode().replace("</", "<\\/"),
    )


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "–"


def _cards(summary: Summary) -> str:
    cards = [("assessed", "Records assessed", summary.assessed, "")]
    cards += [(o.value, OUTCOME_LABELS[o.value], summary.outcomes.get(o.value, 0), "") for o in OUTCOMES]
    cards.append(("not_screened", "Not screened (deceased)", summary.not_screened, ""))
    cards.append(("failed", "Unreadable or invalid", summary.failed, ""))
    out = []
    for key, label, count, _ in cards:
        share = "" if key == "assessed" else f'<span class="pct">{_pct(count, summary.assessed)}</span>'
        out.append(
            f'<div class="card {key}" data-count="{key}"><span class="n">{count:,}</span>'
            f'<span class="label">{_e(label)}</span>{share}</div>'
        )
    return "\n".join(out)


def _criteria_table(summary: Summary, ruleset: RuleSet) -> str:
    rows = []
    for criterion in ruleset.criteria:
        counts = [summary.statuses.get((criterion.id, s), 0) for s in STATUSES]
        total = sum(counts) or 1
        bar = "".join(
            f'<span class="seg {s}" style="width:{100 * n / total:.2f}%"></span>'
            for s, n in zip(STATUSES, counts, strict=True)
            if n
        )
        decisive = sum(n for (_, cid), n in summary.decisive.items() if cid == criterion.id)
        cells = "".join(
            f'<td class="num" data-status="{s}">{n:,}</td>' for s, n in zip(STATUSES, counts, strict=True)
        )
        rows.append(
            f'<tr data-criterion="{_e(criterion.id)}"><td><code>{_e(criterion.id)}</code></td>'
            f"<td>{_e(criterion.title)}</td><td>{_e(criterion.effect)}</td>{cells}"
            f'<td class="num">{decisive:,}</td><td class="bar">{bar}</td></tr>'
        )
    return "\n".join(rows)


def _missing_table(summary: Summary, item_ids: ItemIds, limit: int = 15) -> str:
    """The missing items; the first count is the flow diagram's (records needing information)."""
    if not summary.missing:
        return '<p class="none">No record needed more information.</p>'
    waiting = summary.outcomes.get("needs_information", 0)
    own = dict(summary.missing_of("needs_information"))
    items = sorted(summary.missing, key=lambda item: (-own.get(item, 0), -summary.missing[item], item))
    rows = [
        f'<tr data-missing="{_e(item)}"><td>{_e(item)}<br><code class="id">{_e(item_ids(item))}</code></td>'
        f'<td class="num" data-count="needs_information">{own.get(item, 0):,}</td>'
        f'<td class="num">{_pct(own.get(item, 0), waiting)}</td>'
        f'<td class="num" data-count="all">{summary.missing[item]:,}</td></tr>'
        for item in items[:limit]
    ]
    more = len(items) - limit
    tail = f'<p class="note">{more} more items not shown; see the summary CSV.</p>' if more > 0 else ""
    return (
        f'<p class="note">{waiting:,} records need information; a record can miss several items. '
        "The first count is the flow diagram's: the records whose outcome is needs information. "
        "The last also counts the records with another outcome that miss the item (an ineligible "
        "record can miss items too, but they would not change its outcome). Under each item, its "
        "<code>item</code> in the worklist (<code>screening batch --worklist</code>).</p>"
        '<table><thead><tr><th>Missing item (what to ask next)</th><th class="num">Records needing information</th>'
        '<th class="num">Of them</th><th class="num">All records missing it</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>{tail}"
    )


def _breakdowns(summary: Summary, ruleset: RuleSet) -> str:
    """One table per breakdown: its groups by outcome, with each group's share eligible."""
    names = _grade_names(ruleset)
    out = []
    for dimension, fact, heading in BREAKDOWNS:
        counts = {
            (group, outcome): n for (d, group, outcome), n in summary.groups.items() if d == dimension and n
        }
        found = {group for group, _ in counts}
        order = _group_order(dimension, found, names)
        head = "".join(f'<th class="num">{_e(OUTCOME_LABELS[o.value])}</th>' for o in OUTCOMES)
        rows = []
        for group in order:
            cells = [counts.get((group, o.value), 0) for o in OUTCOMES]
            total = sum(cells)
            eligible = counts.get((group, "eligible"), 0) + counts.get((group, "eligible_with_cautions"), 0)
            label = names.get(group, group) if dimension == "indication" else group
            rows.append(
                f'<tr data-group="{_e(group)}"><td>{_e(label)}</td>'
                + "".join(
                    f'<td class="num" data-outcome="{o.value}">{n:,}</td>'
                    for o, n in zip(OUTCOMES, cells, strict=True)
                )
                + f'<td class="num">{total:,}</td><td class="num">{_pct(eligible, total)}</td></tr>'
            )
        body = "".join(rows) or f'<tr><td colspan="{len(OUTCOMES) + 3}">No screened records.</td></tr>'
        out.append(
            f'<h3>{_e(heading)}</h3><p class="note">From the fact <code>{_e(fact)}</code> of each decision.</p>'
            f'<table class="breakdown" data-breakdown="{dimension}"><thead><tr><th></th>{head}'
            '<th class="num">Total</th><th class="num">Eligible (with or without cautions)</th></tr></thead>'
            f"<tbody>{body}</tbody></table>"
        )
    return "\n".join(out)


def _grade_names(ruleset: RuleSet) -> dict[str, str]:
    """Each indication grade as the value sets that carry it say it: "B (moderate): CRPS"."""
    evidence: dict[str, str] = {}
    conditions: dict[str, list[str]] = {}
    for value_set in ruleset.value_sets.values():
        attributes = value_set.attributes or {}
        grade = attributes.get("grade")
        if grade:
            evidence.setdefault(grade, attributes.get("evidence", ""))
            conditions.setdefault(grade, []).append(attributes.get("label") or value_set.title)
    names = {
        grade: f"grade {grade}"
        + (f" ({evidence[grade]})" if evidence[grade] else "")
        + f": {', '.join(found)}"
        for grade, found in conditions.items()
    }
    names["none"] = "no graded evidence (outside the evidence base)"
    names[UNKNOWN_GROUP] = "no primary pain condition recorded"
    return names


def _group_order(dimension: str, found: set[str], names: Mapping[str, str]) -> list[str]:
    """Groups in their natural order (grades, then none; age bands), unknown last."""
    if dimension == "age":
        known = [label for _, _, label in AGE_BANDS]
    elif dimension == "indication":
        known = [*sorted(g for g in names if g not in ("none", UNKNOWN_GROUP)), "none"]
    else:
        known = []
    last = (UNKNOWN_GROUP, "not recorded")
    ordered = [g for g in known if g in found]
    ordered += sorted(found - set(ordered) - set(last))
    return ordered + [g for g in last if g in found]


def _errors_table(summary: Summary) -> str:
    if not summary.errors and not summary.not_screened:
        return '<p class="none">Every record was read and screened.</p>'
    rows = [
        f'<tr><td>{_e(error_label(code))} (<code>{_e(code)}</code>)</td><td class="num">{n:,}</td></tr>'
        for code, n in summary.errors.most_common()
    ]
    if summary.not_screened:
        rows.append(
            f'<tr><td><code>not_screened</code> (deceased)</td><td class="num">{summary.not_screened:,}</td></tr>'
        )
    return (
        '<p class="note">Each of these records has its own line in the output, with the field and the reason.</p>'
        f'<table><thead><tr><th>Code</th><th class="num">Records</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def _run_table(run: RunInfo) -> str:
    ruleset = run.ruleset
    rows = [
        ("Rule set", f"{ruleset.id} {ruleset.version}"),
        ("Rule set sha256", f"<code>{_e(ruleset.sha256)}</code>"),
        ("Screening date (as_of)", run.as_of),
        ("Site overrides", ", ".join(f"{k}={v}" for k, v in ruleset.overrides.items()) or "none"),
        ("Inputs", "<br>".join(_e(i) for i in run.inputs)),
        ("Output", run.output),
        ("Workers", str(run.workers)),
        (
            "Records this run",
            f"{run.records:,}" + (f" (plus {run.resumed:,} from an earlier run)" if run.resumed else ""),
        ),
        ("Time", f"{run.seconds:.1f} s"),
        ("Throughput", f"{run.rate:,.0f} records/s"),
        ("Report generated", run.generated),
    ]
    if run.interrupted:
        rows.insert(0, ("Status", "<strong>interrupted</strong>: rerun with --resume to finish"))
    return "\n".join(
        f"<tr><th>{_e(k)}</th><td>{v if k in ('Rule set sha256', 'Inputs', 'Status') else _e(v)}</td></tr>"
        for k, v in rows
    )


def _parameters_table(ruleset: RuleSet) -> str:
    rows = []
    for name, parameter in sorted(ruleset.parameters.items()):
        changed = name in ruleset.overrides
        default = f" (default {value_label(parameter.default)})" if changed else ""
        rows.append(
            f"<tr{' class=override' if changed else ''}><td><code>{_e(name)}</code></td>"
            f'<td class="num">{_e(value_label(parameter.value))}{_e(default)}</td><td>{_e(parameter.unit or "")}</td>'
            f"<td>{_e(parameter.description)}</td></tr>"
        )
    return "\n".join(rows)


# -- the CONSORT-style flow diagram, as inline SVG ------------------------------------------

_COLORS = {
    "neutral": ("#334155", "#f8fafc"),
    "failed": ("#475569", "#f1f5f9"),
    "ineligible": ("#b91c1c", "#fef2f2"),
    "needs_information": ("#b45309", "#fffbeb"),
    "needs_review": ("#6d28d9", "#f5f3ff"),
    "eligible_with_cautions": ("#0369a1", "#f0f9ff"),
    "eligible": ("#15803d", "#f0fdf4"),
}
_W, _MAIN_X, _MAIN_W, _SIDE_X, _SIDE_W, _MAIN_H, _LINE = 1000, 20, 330, 420, 560, 58, 19
_WRAP = 64  # characters per line of an item in a side box (13 px text, about 460 px wide)
_ITEM_GAP = 4  # extra space after a wrapped item, so that its lines read as one

FlowItem = tuple[str, str, int]  # key (criterion id, missing item, error code), label, count


def flow_diagram(summary: Summary, ruleset: RuleSet, limit: int = 8) -> str:
    """The screening flow: assessed, then each outcome as an exit, ending with the eligible.

    Each exit box lists what put its own records there: the decisive criteria of the
    records with that outcome, or (needs information) the items those records miss."""
    params = ruleset.params
    criteria = {c.id: c for c in ruleset.criteria}
    outcomes = summary.outcomes

    def by_criterion(outcome: str) -> list[FlowItem]:
        found = [(cid, n) for (o, cid), n in summary.decisive.items() if o == outcome and n]
        found.sort(key=lambda item: (-item[1], item[0]))
        return [
            (cid, f"{failed_label(criteria[cid], params)} ({cid})" if cid in criteria else cid, n)
            for cid, n in found
        ]

    failed_items = [
        (code, f"unreadable or invalid: {error_label(code)}", n) for code, n in summary.errors.most_common()
    ]
    if summary.not_screened:
        failed_items.append(("not_screened", "deceased (not screened)", summary.not_screened))
    missing = [(item, item, n) for item, n in summary.missing_of("needs_information")]
    remaining = summary.screened
    stages: list[tuple[str, str, int, str, str, int, list[FlowItem], str]] = [
        (
            "assessed",
            "Records assessed",
            summary.assessed,
            "failed",
            "Not screened",
            summary.failed + summary.not_screened,
            failed_items,
            "",
        ),
    ]
    exits = [
        (
            "screened",
            "Screened",
            "ineligible",
            by_criterion("ineligible"),
            "by criterion; a record can have several",
        ),
        (
            "not_ineligible",
            "Not ineligible",
            "needs_information",
            missing,
            "by missing item; a record can miss several",
        ),
        ("complete", "Information complete", "needs_review", by_criterion("needs_review"), "by criterion"),
        (
            "meet",
            "Meet the criteria",
            "eligible_with_cautions",
            by_criterion("eligible_with_cautions"),
            "by caution",
        ),
    ]
    for stage, label, outcome, items, note in exits:
        n = outcomes.get(outcome, 0)
        stages.append((stage, label, remaining, outcome, OUTCOME_LABELS[outcome], n, items, note))
        remaining -= n
    parts: list[str] = []
    y: float = 16
    for stage, label, count, kind, side_label, side_count, items, note in stages:
        parts.append(_box(_MAIN_X, y, _MAIN_W, _MAIN_H, "neutral", label, f"n = {count:,}", stage, count))
        top = y + _MAIN_H
        side_y = top + 18
        side, side_h = _side_box(side_y, kind, side_label, side_count, summary, items, limit, note)
        parts.append(side)
        middle = side_y + side_h / 2
        next_y = side_y + side_h + 18
        cx = _MAIN_X + _MAIN_W / 2
        parts.append(
            f'<line stroke="#64748b" stroke-width="1.5" x1="{cx}" y1="{top}" x2="{cx}" y2="{next_y - 2}" marker-end="url(#arrow)"/>'
        )
        parts.append(
            f'<line stroke="#64748b" stroke-width="1.5" x1="{cx}" y1="{middle}" x2="{_SIDE_X - 2}" y2="{middle}" marker-end="url(#arrow)"/>'
        )
        y = next_y
    parts.append(
        _box(
            _MAIN_X,
            y,
            _MAIN_W,
            _MAIN_H,
            "eligible",
            OUTCOME_LABELS["eligible"],
            f"n = {remaining:,} ({_pct(remaining, summary.assessed)})",
            "eligible",
            remaining,
        )
    )
    height = y + _MAIN_H + 16
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {height}" width="{_W}" height="{height}" '
        'role="img" aria-label="Screening flow diagram" font-family="system-ui, sans-serif" font-size="13">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#64748b"/></marker></defs>'
        f"{''.join(parts)}</svg>"
    )


def _box(
    x: float, y: float, w: float, h: float, kind: str, title: str, detail: str, stage: str, count: int
) -> str:
    stroke, fill = _COLORS[kind]
    return (
        f'<g data-stage="{stage}"><rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6" '
        f'fill="{fill}" stroke="{stroke}" stroke-width="1.5"/>'
        f'<text x="{x + w / 2}" y="{y + 24}" text-anchor="middle" font-weight="600" fill="{stroke}">{_e(title)}</text>'
        f'<text class="count" x="{x + w / 2}" y="{y + 44}" text-anchor="middle" fill="#0f172a">{_e(detail)}</text></g>'
    )


def _side_box(
    y: float,
    kind: str,
    label: str,
    count: int,
    summary: Summary,
    items: list[FlowItem],
    limit: int,
    note: str,
) -> tuple[str, float]:
    """An exit box and its height; each item's label wraps over as many lines as it needs."""
    stroke, fill = _COLORS[kind]
    body: list[str] = []
    line_y: float = y + 24 + _LINE + 4
    for key, text, n in items[:limit]:
        lines = textwrap.wrap(text, _WRAP, break_on_hyphens=False) or [""]
        spans = "".join(
            f'<tspan x="{_SIDE_X + 24}" dy="{0 if i == 0 else _LINE}">{_e(part)}</tspan>'
            for i, part in enumerate(lines)
        )
        body.append(
            f'<g data-item="{_e(key)}"><text x="{_SIDE_X + 24}" y="{line_y}" fill="#334155">{spans}</text>'
            f'<text class="count" x="{_SIDE_X + _SIDE_W - 14}" y="{line_y}" text-anchor="end" fill="#334155">'
            f"{n:,}</text></g>"
        )
        line_y += _LINE * len(lines) + (_ITEM_GAP if len(lines) > 1 else 0)
    more = len(items) - limit
    if more > 0:
        body.append(
            f'<text x="{_SIDE_X + 24}" y="{line_y}" fill="#64748b">and {more} more (see the tables below)</text>'
        )
        line_y += _LINE
    if note and items:
        body.append(
            f'<text x="{_SIDE_X + 24}" y="{line_y}" fill="#64748b" font-size="11.5" font-style="italic">{_e(note)}</text>'
        )
        line_y += _LINE
    h = line_y - _LINE + 14 - y
    head = [
        f'<g data-outcome="{kind}"><rect x="{_SIDE_X}" y="{y}" width="{_SIDE_W}" height="{h}" '
        f'rx="6" fill="{fill}" stroke="{stroke}" stroke-width="1.5"/>',
        f'<text x="{_SIDE_X + 14}" y="{y + 24}" font-weight="600" fill="{stroke}">{_e(label)}</text>',
        f'<text class="count" x="{_SIDE_X + _SIDE_W - 14}" y="{y + 24}" text-anchor="end" font-weight="600" '
        f'fill="#0f172a">n = {count:,} ({_pct(count, summary.assessed)})</text>',
    ]
    return "".join([*head, *body, "</g>"]), h


# -- words for people: "yes" rather than True, what failed rather than a criterion's title ---

_ERROR_LABELS = {
    "invalid_record": "a field is invalid",
    "invalid_input": "not a readable record",
    "invalid_csv_row": "CSV row with the wrong number of cells",
    "worker_crashed": "crashed the screening process",
    "internal_error": "internal error",
    "no_patient": "no Patient in the FHIR Bundle",
}


def failed_label(criterion: Criterion, params: Mapping[str, Any]) -> str:
    """What a record that a criterion put out failed, in a few words: its rule's
    ``label_when_failed`` ("under 18"); without one, "not met: TITLE" for a requirement and
    the title for a finding (an exclusion, review or caution whose title names it)."""
    if criterion.label_when_failed is not None:
        return criterion.label_when_failed.render(params)
    if criterion.effect in ("require", "indication"):
        return f"not met: {criterion.title}"
    return criterion.title


def error_label(code: str) -> str:
    return _ERROR_LABELS.get(code, code.replace("_", " "))


def value_label(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(value_label(v) for v in value)
    return "" if value is None else str(value)
