"""The clinician's text (``screening check``) and the CDS Hooks card detail, read as a pain
physician would: what to act on, in plain words, with outcome-aware next steps."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from screening import Screener
from screening.cli import main
from screening.service.cdshooks import detail

from .conftest import AS_OF, ROOT, eligible_record

EXAMPLES = sorted((ROOT / "examples").glob("*.json"))


def check(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(main, ["check", *args], input=input, env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


def text_of(record: dict[str, object], *args: str) -> str:
    return check("-", "--as-of", AS_OF, *args, input=json.dumps(record))


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_the_default_text_is_what_a_clinician_acts_on(example: Path) -> None:
    short = check(str(example), "--as-of", AS_OF)
    full = check(str(example), "--as-of", AS_OF, "--all")
    assert len(short.splitlines()) < len(full.splitlines())
    assert len(short.splitlines()) <= 40, short
    # One line counts the passed criteria; no citations on them, no per-criterion list.
    assert re.search(r"^\d+ of \d+ criteria passed", short, re.M)
    assert "Criteria passed" not in short and "sources:" not in short
    assert "Criteria passed" in full


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_plain_words_no_json_or_python_spellings(example: Path) -> None:
    out = check(str(example), "--as-of", AS_OF, "--all")
    assert [line for line in out.splitlines() if "[]" in line] == []
    assert not re.search(r"\{'|'\}|\bNone\b|\bTrue\b|\bFalse\b", out)


def test_site_values_are_words_not_a_python_dict(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("parameters:\n  bp_exclusion_systolic: 170\n")
    out = check(str(ROOT / "examples" / "eligible.json"), "--as-of", AS_OF, "--params", str(site))
    assert "site values: bp_exclusion_systolic 170" in out
    assert "{" not in out


def test_a_criterion_outranked_by_a_stronger_one_is_superseded_not_passed() -> None:
    record = eligible_record(blood_pressure=[{"systolic": 186, "diastolic": 104, "date": "2026-11-01"}])
    short = text_of(record)
    assert "Superseded by EXC-BP-UNCONTROLLED: REV-BP-ELEVATED, CAU-BP-STAGE2" in short
    full = text_of(record, "--all")
    passed = full.split("Criteria passed", 1)[1].split("Next steps", 1)[0]
    assert "REV-BP-ELEVATED Elevated blood pressure: superseded by EXC-BP-UNCONTROLLED" in passed
    assert "above the exclusion limit" not in passed


def test_superseded_only_when_the_stronger_finding_reads_the_same_facts(screener: Screener) -> None:
    # BP in the review band: the caution band is superseded by the review, not by anything else.
    record = eligible_record(blood_pressure=[{"systolic": 170, "diastolic": 95, "date": "2026-11-01"}])
    decision = screener.screen(record, as_of=AS_OF)
    assert decision.criterion("REV-BP-ELEVATED").status == "met"
    assert decision.criterion("CAU-BP-STAGE2").superseded_by == "REV-BP-ELEVATED"
    assert decision.criterion("EXC-BP-UNCONTROLLED").superseded_by is None
    # A normal BP: nothing is superseded, whatever else the patient has.
    normal = screener.screen(eligible_record(), as_of=AS_OF)
    assert all(c.superseded_by is None for c in normal.criteria)
    assert normal.as_dict()["criteria"][0]["superseded_by"] is None


def test_next_steps_follow_the_outcome(screener: Screener) -> None:
    # Ineligible by BP, with cardiovascular risk: no "baseline ECG before the first infusion".
    ineligible = json.loads((ROOT / "examples" / "ineligible.json").read_text())
    decision = screener.screen(ineligible, as_of=AS_OF)
    assert decision.outcome == "ineligible"
    assert decision.criterion("CAU-CV-RISK").status == "met"
    assert not any("ECG" in step or "infusion." in step for step in decision.recommendations[1:-1])
    assert decision.recommendations == [
        "Defer; refer for BP control; re-screen once BP is at or below 180/100 mmHg.",
        "Not eligible under the documented criteria; see the exclusions above.",
    ]
    # Pending a review, a caution's step is conditional on going ahead.
    review = json.loads((ROOT / "examples" / "needs_review.json").read_text())
    steps = screener.screen(review, as_of=AS_OF).recommendations
    cautions = [s for s in steps if s.startswith("If the patient goes ahead: ")]
    assert cautions and steps[-1].startswith("Refer for clinician review")
    # Eligible with cautions: the caution steps stand as they are.
    cautioned = json.loads((ROOT / "examples" / "eligible_with_cautions.json").read_text())
    steps = screener.screen(cautioned, as_of=AS_OF).recommendations
    assert "Baseline ECG before the first infusion." in steps


def test_urgent_steps_stay_whatever_the_outcome(screener: Screener) -> None:
    record = eligible_record(
        blood_pressure=[{"systolic": 190, "diastolic": 104, "date": "2026-11-01"}],
        phq9=[{"item9": 2, "total": 18, "date": "2026-11-10"}],
    )
    decision = screener.screen(record, as_of=AS_OF)
    assert decision.outcome == "ineligible"
    assert decision.recommendations[0].startswith("URGENT: ")


def test_dosing_shows_the_mg_per_kg_basis_in_one_unit() -> None:
    out = check(str(ROOT / "examples" / "eligible.json"), "--as-of", AS_OF)
    assert "Starting IV infusion: 0.1-0.3 mg/kg x 82 kg = 8.2-24.6 mg (" in out
    assert "0.5-2 mg/kg/h x 82 kg = 41-164 mg/h (" in out


def test_colour_follows_the_flags_and_no_color() -> None:
    path = str(ROOT / "examples" / "ineligible.json")
    assert "\x1b[" in check(path, "--as-of", AS_OF, "--color")
    assert "\x1b[" not in check(path, "--as-of", AS_OF, "--no-color")
    # Not a terminal (the runner's output), so no colour by default; NO_COLOR never colours.
    assert "\x1b[" not in check(path, "--as-of", AS_OF, env={"NO_COLOR": "1"})


def test_no_color_beats_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from screening import cli

    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    monkeypatch.setenv("NO_COLOR", "1")
    assert cli._use_color(None) is False
    monkeypatch.delenv("NO_COLOR")
    assert cli._use_color(None) is True
    assert cli._use_color(False) is False


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_card_detail_is_short_decisive_findings_and_next_steps(screener: Screener, example: Path) -> None:
    decision = screener.screen(json.loads(example.read_text()), as_of=AS_OF)
    text = detail(decision)
    assert len(text) < 2500, len(text)
    for result in decision.criteria:
        if result.decisive:
            assert f"**{result.id}**" in text
    assert "### Next steps" in text and decision.recommendations[-1] in text
    assert "Sources:" not in text and "Criteria without findings" not in text
    assert "[Full explanation](https://screening.example/x)" in detail(
        decision, link="https://screening.example/x"
    )
