"""``screening explain`` and ``screening rules show ID``: the condition tree agrees with the
engine's status for every criterion of every rule-test case, and the CLI prints it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from screening import Screener
from screening.authoring.casetests import run_directory
from screening.cli import main
from screening.engine.explain import decisive_comparisons, explain_decision, pruned, walk

from .conftest import AS_OF, ROOT, RULES, eligible_record

INELIGIBLE = str(ROOT / "examples" / "ineligible.json")


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


def test_the_tree_gives_the_engines_status_for_every_criterion_of_every_case(screener: Screener) -> None:
    results, problems = run_directory(screener, RULES)
    assert not problems
    decisions = [r.decision for r in results if r.decision is not None]
    assert len(decisions) > 200
    seen = set()
    for decision in decisions:
        for criterion in screener.ruleset.criteria:
            explanation = explain_decision(screener.ruleset, decision, criterion.id)
            assert explanation.tree_status == explanation.status, (decision.record_id, criterion.id)
            seen.add((criterion.id, explanation.status))
    assert {status for _, status in seen} == {"met", "not_met", "unknown"}


def test_fails_keeps_only_the_branches_that_decided(screener: Screener) -> None:
    record = eligible_record(blood_pressure=[{"systolic": 186, "diastolic": 90, "date": "2026-11-01"}])
    decision = screener.screen(record, as_of=AS_OF)
    explanation = explain_decision(screener.ruleset, decision, "REV-BP-ELEVATED")
    assert explanation.status == "not_met" and explanation.superseded_by == "EXC-BP-UNCONTROLLED"
    full = [n.label() for n in walk(explanation.when)]
    kept = [n.label() for n in walk(pruned(explanation.when))]
    assert len(full) == 4 and len(kept) == 2
    assert kept[1] == "bp_systolic <= 180 ($bp_exclusion_systolic)   [bp_systolic: 186]"
    assert [n.condition.fact for n in decisive_comparisons(explanation.when)] == ["bp_systolic"]  # type: ignore[union-attr]


def test_explain_cli_text_and_json() -> None:
    code, out, _ = run("explain", INELIGIBLE, "--criterion", "EXC-BP-UNCONTROLLED", "--as-of", AS_OF)
    assert code == 0
    assert out.splitlines()[0] == "EXC-BP-UNCONTROLLED Uncontrolled blood pressure (exclude): met"
    assert "  true     any of" in out
    assert "    true     bp_systolic > 180 ($bp_exclusion_systolic)   [bp_systolic: 186]" in out
    code, out, _ = run(
        "explain", INELIGIBLE, "-c", "CAU-BP-STAGE2", "--as-of", AS_OF, "--fails", "--format", "json"
    )
    assert code == 0
    [body] = json.loads(out)
    assert body["status"] == "not_met" and body["superseded_by"] == "EXC-BP-UNCONTROLLED"
    items = body["when"]["items"]
    assert all(item["result"] == "false" for item in items), "--fails keeps what made it false"
    assert {(i["fact"], i["expected"]) for i in items} == {("bp_systolic", 160), ("bp_diastolic", 100)}


def test_explain_unknown_shows_unknown_facts() -> None:
    record = eligible_record(psychiatric_history=None)
    code, out, _ = run(
        "explain", "-", "-c", "EXC-PSYCHOSIS", "--as-of", AS_OF, "--fails", input=json.dumps(record)
    )
    assert code == 0 and "(exclude): unknown" in out
    assert "unknown  any of" in out and "[psychotic_disorder: unknown]" in out


def test_explain_defaults_to_the_decisive_criteria_and_names_a_wrong_id() -> None:
    code, out, _ = run("explain", INELIGIBLE, "--as-of", AS_OF)
    assert code == 0 and out.startswith("EXC-BP-UNCONTROLLED ")
    code, _, err = run("explain", INELIGIBLE, "-c", "EXC-NOPE", "--as-of", AS_OF)
    assert code == 1 and "no criterion 'EXC-NOPE'" in err and "EXC-BP-UNCONTROLLED" in err


def test_rules_show_one_criterion_as_a_clinician_reads_it() -> None:
    code, out, _ = run("rules", "show", "EXC-BP-UNCONTROLLED")
    assert code == 0
    assert out.startswith("EXC-BP-UNCONTROLLED  Uncontrolled blood pressure\n")
    assert "effect: exclude (met: ineligible; unknown: needs information)" in out
    assert "    bp_systolic > 180 ($bp_exclusion_systolic)" in out
    assert "window/limit: bp_window_days = 30 days" in out
    # A name that exists only through also: is named with the fact it comes from.
    assert "bp_band_over: the 'over' output of fact bp_band (through also:)" in out
    assert "reasons:\n  met: BP {bp_systolic}/{bp_diastolic}" in out
    assert "sources:\n  ketamine_smpc: Ketamine SmPC" in out


def test_rules_show_takes_the_directory_site_values_and_codes(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("parameters:\n  bp_exclusion_systolic: 170\n")
    code, out, _ = run("rules", "show", "EXC-BP-UNCONTROLLED", str(RULES), "--params", str(site))
    assert code == 0 and "bp_systolic > 170 ($bp_exclusion_systolic)" in out
    # The report's label for the failure takes the site's value too.
    assert "in the batch report, when it fails: blood pressure above 170/" in out
    assert "bp_exclusion_systolic = 170 mmHg (site value; default 180)" in out
    code, out, _ = run("rules", "show", "EXC-PSYCHOSIS", "--codes")
    assert code == 0
    assert "psychotic_disorders: Schizophrenia-spectrum and other psychotic disorders (8 ICD-10-CM" in out
    assert "ICD-10-CM: F20, F21" in out
    code, _, err = run("rules", "show", "EXC-NOPE")
    assert code == 1 and "no criterion 'EXC-NOPE'" in err


@pytest.mark.parametrize("criterion", ["INC-REFRACTORY", "REV-BREASTFEEDING", "CAU-CV-RISK"])
def test_rules_show_every_kind_of_criterion(screener: Screener, criterion: str) -> None:
    code, out, _ = run("rules", "show", criterion)
    assert code == 0 and "met when:" in out and "unknown when:" in out and "sources:" in out


def test_explain_a_fhir_bundle_explains_each_patient() -> None:
    bundle = sorted((ROOT / "tests" / "fixtures" / "fhir" / "synthea-r4-bundles").glob("*.json"))[0]
    code, out, _ = run(
        "explain", str(bundle), "-c", "EXC-BP-UNCONTROLLED", "--as-of", "2021-06-01", "--format", "json"
    )
    assert code == 0
    [body] = json.loads(out)
    assert body["criterion"] == "EXC-BP-UNCONTROLLED" and body["record_id"]
    assert body["status"] in ("met", "not_met", "unknown") and body["when"]["node"] == "any"
