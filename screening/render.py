"""The decision as text for a clinician: outcome first, then what drove it.

Order: outcome and summary; exclusions; reviews; missing information; cautions; not
checked; then the criteria that passed; next steps; reference dosing. Colour only when
asked (the CLI asks when stdout is a terminal).
"""

from __future__ import annotations

import io
import shutil

from rich.console import Console
from rich.markup import escape

from .decision import CriterionResult, Decision, Outcome
from .errors import NotScreened

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


def render_text(decision: Decision, color: bool = False, width: int | None = None) -> str:
    """The decision as text. Lines are wrapped only at ``width`` (the terminal's, when
    ``color`` is on and no width is given); otherwise each line stays whole, for pipes,
    files and the HTTP service."""
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
    console.print(
        f"[dim]rule set {ruleset['id']} {ruleset['version']} (sha256 {ruleset['sha256'][:12]})"
        + (f", site overrides {ruleset['overrides']}" if ruleset.get("overrides") else "")
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
            for result in results:
                _criterion(console, result, colour, mark)
    if decision.not_checked:
        console.print("\n[bold]Not checked[/]")
        for note in decision.not_checked:
            console.print(f"  - {escape(note)}")
    # A caution left unknown is listed under "Not checked" above, never as passed.
    passed = [r for r in grouped.get(None, []) if r.status != "unknown"]
    if passed:
        console.print("\n[bold green]Criteria passed[/]")
        for result in passed:
            sources = ", ".join(s.get("label", s["id"]) for s in result.sources)
            console.print(
                f"  [green]ok[/] {result.id} {escape(result.title)}: {escape(result.reason)} [dim]({escape(sources)})[/]"
            )
    console.print("\n[bold]Next steps[/]")
    for number, step in enumerate(decision.recommendations, 1):
        console.print(f"  {number}. {escape(step)}")
    if decision.dosing:
        console.print(
            f"\n[bold]Reference dosing for {decision.dosing['weight_kg']:g} kg[/] [dim]({escape(decision.dosing['note'])})[/]"
        )
        for dose in decision.dosing["ranges"]:
            low, high = dose["mg"]
            console.print(
                f"  - {escape(dose['label'])}: {low:g}-{high:g} mg ({escape(dose['detail'])}; {escape(dose['source'])})"
            )
    return buffer.getvalue()


def render_result(result: Decision | NotScreened, color: bool = False) -> str:
    """A decision as text with the notes on what was read but not used (FHIR input), or
    why the patient was not screened."""
    if isinstance(result, NotScreened):
        return f"NOT SCREENED record {result.record_id}: {result.reason}\n"
    notes = "".join(f"  note: {note}\n" for note in result.extra.get("input_notes", []))
    return render_text(result, color=color) + notes


def _criterion(console: Console, result: CriterionResult, colour: str, mark: str) -> None:
    urgent = "[bold red]URGENT[/] " if result.urgent else ""
    console.print(
        f"  [{colour}]{mark}[/] {urgent}[bold]{result.id}[/] {escape(result.title)} [dim]({result.effect}, {result.status})[/]"
    )
    console.print(f"      {escape(result.reason)}")
    for item in result.evidence:
        where = ", ".join(v for v in (item.get("date"), item.get("source")) if v)
        console.print(
            f"      [dim]evidence: {escape(item['what'])}{' (' + escape(where) + ')' if where else ''}[/]"
        )
    if result.missing:
        console.print(f"      [dim]would settle it: {escape('; '.join(result.missing))}[/]")
    sources = "; ".join(s.get("label", s["id"]) for s in result.sources)
    console.print(f"      [dim]sources: {escape(sources)}[/]")
