"""The decision as text for a clinician: outcome first, then what drove it.

Order: outcome and summary; exclusions; reviews; missing information; cautions; not
checked; next steps; a count of the criteria that passed (each one with ``full``);
reference dosing. Colour only when asked (the CLI asks when stdout is a terminal and
``NO_COLOR`` is not set).
"""

from __future__ import annotations

import io
import re
import shutil
from typing import Any

from rich.console import Console
from rich.markup import escape

from screening.decision import CriterionResult, Decision, NotScreened
from screening.vocabulary import Outcome, Status

_STYLE = {
    Outcome.ineligible: "bold white on red",
    Outcome.needs_information: "bold black on yellow",
    Outcome.needs_review: "bold black on dark_orange",
    Outcome.eligible_with_cautions: "bold black on green_yellow",
    Outcome.eligible: "bold white on green",
}
_SECTIONS = (
    (Outcome.ineligible, "Exclusions and unmet requirements", "red", "x"),
    (Outcome.needs_review, "Needs clinician review", "dark_orange", "!"),
    (Outcome.needs_information, "Cannot be decided yet", "yellow", "?"),
    (Outcome.eligible_with_cautions, "Cautions", "green_yellow", "~"),
)


def render_text(decision: Decision, color: bool = False, width: int | None = None, full: bool = False) -> str:
    """The decision as text. Lines are wrapped only at ``width`` (the terminal's, when
    ``color`` is on and no width is given); otherwise each line stays whole, for pipes,
    files and the HTTP service.

    By default it shows what a clinician acts on: the findings with their evidence, what
    is missing, what was not checked, the next steps, and one line counting the criteria
    that passed. ``full`` (``--all``) adds every passed criterion and each finding's
    sources and what would settle it."""
    buffer = io.StringIO()
    if width is None and color:
        width = shutil.get_terminal_size((100, 24)).columns
    console = Console(
        file=buffer,
        force_terminal=color,
        no_color=not color,
        width=width or 100,
        soft_wrap=width is None,
        highlight=False,
    )
    outcome = decision.outcome
    label = outcome.value.replace("_", " ").upper()
    console.print(
        f"[{_STYLE[outcome]}] {label} [/] record {escape(decision.record_id)}, as of {decision.as_of}"
    )
    console.print(escape(decision.summary))
    ruleset = decision.ruleset
    overrides = ruleset.get("overrides") or {}
    site = ", ".join(f"{name} {_plain(value)}" for name, value in overrides.items())
    console.print(
        f"[dim]rule set {ruleset['id']} {ruleset['version']} (sha256 {ruleset['sha256'][:12]})"
        + (f"; site values: {escape(site)}" if site else "")
        + "[/]"
    )
    grouped: dict[Outcome | None, list[CriterionResult]] = {}
    for result in decision.criteria:
        grouped.setdefault(result.level, []).append(result)
    for level, title, colour, mark in _SECTIONS:
        results = grouped.get(level, [])
        if level == Outcome.needs_information and decision.missing_information:
            console.print(f"\n[bold {colour}]Missing information (ask next)[/]")
            for item in decision.missing_information:
                console.print(f"  - {escape(item)}")
        if results:
            console.print(f"\n[bold {colour}]{title}[/]")
            if full or level != Outcome.needs_information:
                for result in results:
                    _criterion(console, result, colour, mark, full)
            else:
                _unknowns(console, results, colour, mark)
    if decision.not_checked:
        console.print("\n[bold]Not checked[/]")
        for note in decision.not_checked:
            console.print(f"  - {escape(note)}")
    # A caution left unknown is listed under "Not checked" above, never as passed; a
    # criterion outranked by a stronger finding on the same facts is superseded, not passed.
    settled = [r for r in grouped.get(None, []) if r.status != Status.unknown]
    passed = [r for r in settled if r.superseded_by is None]
    superseded = [r for r in settled if r.superseded_by is not None]
    if full and settled:
        console.print("\n[bold green]Criteria passed[/]")
        for result in settled:
            if result.superseded_by:
                console.print(
                    f"  [dim]--[/] {result.id} {escape(result.title)}: superseded by {result.superseded_by}"
                )
                continue
            sources = ", ".join(s.get("label", s["id"]) for s in result.sources)
            console.print(
                f"  [green]ok[/] {result.id} {escape(result.title)}: {escape(result.reason)} [dim]({escape(sources)})[/]"
            )
    console.print("\n[bold]Next steps[/]")
    for number, step in enumerate(decision.recommendations, 1):
        console.print(f"  {number}. {escape(step)}")
    if not full:
        console.print()
        by: dict[str, list[str]] = {}
        for result in superseded:
            by.setdefault(result.superseded_by or "", []).append(result.id)
        for stronger, ids in by.items():
            console.print(f"[dim]Superseded by {stronger}: {', '.join(ids)}[/]")
        count = len(passed)
        console.print(
            f"[green]{count} of {len(decision.criteria)} criteria passed[/] [dim](--all lists every criterion)[/]"
        )
    if decision.dosing:
        _dosing(console, decision.dosing)
    return buffer.getvalue()


def _unknowns(console: Console, results: list[CriterionResult], colour: str, mark: str) -> None:
    """Criteria left open for the same reason and evidence (four psychiatric criteria,
    "the psychiatric history has not been taken") as one entry."""
    groups: dict[tuple[str, str], list[CriterionResult]] = {}
    for result in results:
        key = (result.reason, repr(result.evidence))
        groups.setdefault(key, []).append(result)
    for group in groups.values():
        first = group[0]
        if len(group) == 1:
            _criterion(console, first, colour, mark, False)
            continue
        names = ", ".join(f"[bold]{r.id}[/]" for r in group)
        console.print(f"  [{colour}]{mark}[/] {names}")
        console.print(f"      {escape(first.reason)}")
        _evidence(console, first)


def _dosing(console: Console, dosing: dict[str, Any]) -> None:
    """Each range as its mg/kg basis and the amount for this weight, in the same unit."""
    weight = dosing["weight_kg"]
    console.print(f"\n[bold]Reference dosing for {weight:g} kg[/] [dim]({escape(dosing['note'])})[/]")
    for dose in dosing["ranges"]:
        low, high = dose["mg"]
        per_kg_low, per_kg_high = dose["mg_per_kg"]
        detail = dose["detail"]
        # A detail that starts with its unit ("mg/kg/h; ...") makes the range a rate.
        unit = _RATE.match(detail)
        per = unit.group(1) if unit else ""
        if unit:
            detail = detail[unit.end() :]
        basis = f"{per_kg_low:g}-{per_kg_high:g} mg/kg{per} x {weight:g} kg = {low:g}-{high:g} mg{per}"
        notes = "; ".join(part for part in (detail, dose["source"]) if part)
        console.print(f"  - {escape(dose['label'])}: {basis} ({escape(notes)})")


_RATE = re.compile(r"^mg/kg(/[a-z]+)\b;?\s*")


def _plain(value: Any) -> str:
    """A parameter value in words: no Python or JSON spellings."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def render_result(result: Decision | NotScreened, color: bool = False, full: bool = False) -> str:
    """A decision as text with the notes on what was read but not used (FHIR input), or
    why the patient was not screened."""
    if isinstance(result, NotScreened):
        return f"NOT SCREENED record {result.record_id}: {result.reason}\n"
    notes = "".join(f"  note: {note}\n" for note in result.extra.get("input_notes", []))
    return render_text(result, color=color, full=full) + notes


def _criterion(console: Console, result: CriterionResult, colour: str, mark: str, full: bool) -> None:
    urgent = "[bold red]URGENT[/] " if result.urgent else ""
    status = f" [dim]({result.effect}, {result.status.replace('_', ' ')})[/]" if full else ""
    console.print(f"  [{colour}]{mark}[/] {urgent}[bold]{result.id}[/] {escape(result.title)}{status}")
    console.print(f"      {escape(result.reason)}")
    _evidence(console, result)
    if not full:
        return
    if result.missing:
        console.print(f"      [dim]would settle it: {escape('; '.join(result.missing))}[/]")
    sources = "; ".join(s.get("label", s["id"]) for s in result.sources)
    console.print(f"      [dim]sources: {escape(sources)}[/]")


def _evidence(console: Console, result: CriterionResult) -> None:
    for item in result.evidence:
        where = ", ".join(v for v in (item.get("date"), item.get("source")) if v)
        console.print(
            f"      [dim]evidence: {escape(item['what'])}{' (' + escape(where) + ')' if where else ''}[/]"
        )
