"""The batch report: counts of a screening run, as one self-contained HTML file and a CSV.

:class:`Summary` holds the counts. Batch workers fill one per chunk and the parent merges
them; :meth:`Summary.from_jsonl` rebuilds the same counts from an output file (``--resume``
and the tests use it). :func:`write_html` renders a CONSORT-style flow diagram as inline
SVG, a table per criterion, the top missing items, and the run's rule set, date,
parameters and throughput; it needs no server and no network. :func:`write_csv` writes the
same counts in long form (``section,item,status,count``) for spreadsheets.
"""

from __future__ import annotations

import csv
import html
import re
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
from screening.vocabulary import OUTCOMES, STATUSES

if TYPE_CHECKING:
    from screening.decision import Decision
    from screening.ruleset.model import RuleSet

OUTCOME_LABELS = {
    "ineligible": "Ineligible",
    "needs_information": "Needs information",
    "needs_review": "Needs clinician review",
    "eligible_with_cautions": "Eligible with cautions",
    "eligible": "Eligible",
}


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
        )

    def add_decision_dict(self, decision: Mapping[str, Any]) -> None:
        self._add(
            decision["outcome"],
            ((c["id"], c["status"], c["decisive"]) for c in decision["criteria"]),
            decision["missing_information"],
        )

    def _add(self, outcome: str, criteria: Iterable[tuple[str, str, bool]], missing: Iterable[str]) -> None:
        self.assessed += 1
        self.outcomes[outcome] += 1
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
        return out


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
        missing=_missing_table(summary, Labels(ruleset)),
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


def _missing_table(summary: Summary, labels: Labels, limit: int = 15) -> str:
    if not summary.missing:
        return '<p class="none">No record needed more information.</p>'
    waiting = summary.outcomes.get("needs_information", 0)
    rows = [
        f'<tr data-missing="{_e(item)}"><td>{_e(labels.text(item))}</td><td class="num">{n:,}</td>'
        f'<td class="num">{_pct(n, summary.screened)}</td></tr>'
        for item, n in summary.missing.most_common(limit)
    ]
    more = len(summary.missing) - limit
    tail = f'<p class="note">{more} more items not shown; see the summary CSV.</p>' if more > 0 else ""
    return (
        f'<p class="note">{waiting:,} records need information. A record can miss several items; '
        "percentages are of the screened records.</p>"
        '<table><thead><tr><th>Missing item (what to ask next)</th><th class="num">Records</th>'
        f'<th class="num">Of screened</th></tr></thead><tbody>{"".join(rows)}</tbody></table>{tail}'
    )


def _errors_table(summary: Summary) -> str:
    if not summary.errors and not summary.not_screened:
        return '<p class="none">Every record was read and screened.</p>'
    rows = [
        f'<tr><td>{_e(Labels.error(code))} (<code>{_e(code)}</code>)</td><td class="num">{n:,}</td></tr>'
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
        default = f" (default {Labels.value(parameter.default)})" if changed else ""
        rows.append(
            f"<tr{' class=override' if changed else ''}><td><code>{_e(name)}</code></td>"
            f'<td class="num">{_e(Labels.value(parameter.value))}{_e(default)}</td><td>{_e(parameter.unit or "")}</td>'
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
    titles = {c.id: c.title for c in ruleset.criteria}
    labels = Labels(ruleset)
    outcomes = summary.outcomes

    def by_criterion(outcome: str) -> list[FlowItem]:
        found = [(cid, n) for (o, cid), n in summary.decisive.items() if o == outcome and n]
        found.sort(key=lambda item: (-item[1], item[0]))
        return [(cid, f"{cid} · {titles.get(cid, '')}", n) for cid, n in found]

    failed_items = [
        (code, f"unreadable or invalid: {labels.error(code)}", n) for code, n in summary.errors.most_common()
    ]
    if summary.not_screened:
        failed_items.append(("not_screened", "deceased (not screened)", summary.not_screened))
    missing = [(item, labels.text(item), n) for item, n in summary.missing_of("needs_information")]
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
        lines = textwrap.wrap(text, _WRAP) or [""]
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


# -- words for people: "yes" rather than True, class names rather than codes ------------------

_ERROR_LABELS = {
    "invalid_record": "a field is invalid",
    "invalid_input": "not a readable record",
    "invalid_csv_row": "CSV row with the wrong number of cells",
    "worker_crashed": "crashed the screening process",
    "internal_error": "internal error",
    "no_patient": "no Patient in the FHIR Bundle",
}
_EMPTY_LIST = re.compile(r"\(record \[\] if ([^)]*)\)")


class Labels:
    """Human words for what decisions hold as codes: treatment classes, empty lists, flags."""

    def __init__(self, ruleset: RuleSet) -> None:
        classes: dict[str, str] = {}
        for value_set in ruleset.value_sets.values():
            code = (value_set.attributes or {}).get("treatment_class")
            if code and value_set.title:
                classes.setdefault(str(code), str(value_set.title))
        self._classes = classes
        words = "|".join(map(re.escape, sorted(classes, key=len, reverse=True)))
        self._class_word = re.compile(rf"\b({words})\b") if classes else None

    def text(self, text: str) -> str:
        """A missing item as a clinical lead reads it: class names, and "none" for ``[]``."""
        text = _EMPTY_LIST.sub(lambda m: f"(record \u201cnone\u201d if {m[1]})", text)
        if self._class_word is not None:
            text = self._class_word.sub(lambda m: self._classes[m[1]], text)
        return text

    @staticmethod
    def error(code: str) -> str:
        return _ERROR_LABELS.get(code, code.replace("_", " "))

    @staticmethod
    def value(value: object) -> str:
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, list | tuple):
            return ", ".join(Labels.value(v) for v in value)
        return "" if value is None else str(value)
