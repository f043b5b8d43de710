"""``screening rules test --coverage``: statuses, decisiveness and branches of each criterion,
measured on the decisions of the real rule-test cases; -k, JSON and JUnit for CI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from xml.etree import ElementTree as ET

from click.testing import CliRunner

from screening import Screener
from screening.authoring.casetests import run_directory
from screening.authoring.coverage import measure
from screening.cli import main

from .conftest import AS_OF, RULES, eligible_record


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_coverage_counts_what_the_cases_gave(screener: Screener) -> None:
    results, _ = run_directory(screener, RULES)
    coverage = measure(screener.ruleset, [r.decision for r in results if r.decision is not None])
    by_id = {c.id: c for c in coverage.criteria}
    bp = by_id["EXC-BP-UNCONTROLLED"]
    assert bp.counts["met"] > 0 and bp.counts["not_met"] > 0 and bp.counts["unknown"] > 0
    assert [b.where for b in bp.branches] == ["when.any[0]", "when.any[1]"]
    assert all(b.taken for b in bp.branches) and [b.wanted for b in bp.branches] == [True, True]
    # Breastfeeding is never unknown (absent is taken as not breastfeeding): not a goal.
    assert not by_id["REV-BREASTFEEDING"].can_be_unknown
    assert "unknown" not in by_id["REV-BREASTFEEDING"].goals


def test_a_subset_of_cases_leaves_gaps_and_min_coverage_fails() -> None:
    code, out, _ = run("rules", "test", str(RULES), "-k", "systolic above 180", "--min-coverage", "100")
    assert code == 2
    assert "1 passed, 0 failed" in out
    row = next(line for line in out.splitlines() if line.startswith("EXC-BP-UNCONTROLLED "))
    assert (
        "not met" in row
        and "branch when.any[1] (bp_diastolic > 100 ($bp_exclusion_diastolic)) never true" in row
    )


def test_a_branch_no_decision_takes_is_named(screener: Screener) -> None:
    high = eligible_record(blood_pressure=[{"systolic": 186, "diastolic": 90, "date": "2026-11-01"}])
    decisions = [screener.screen(eligible_record(), as_of=AS_OF), screener.screen(high, as_of=AS_OF)]
    bp = next(c for c in measure(screener.ruleset, decisions).criteria if c.id == "EXC-BP-UNCONTROLLED")
    assert bp.counts == {"met": 1, "not_met": 1, "unknown": 0, "decisive": 1}
    assert [b.taken for b in bp.branches] == [1, 0]
    assert bp.missing == [
        "unknown",
        "branch when.any[1] (bp_diastolic > 100 ($bp_exclusion_diastolic)) never true",
    ]
    assert bp.covered == 4 and bp.total == 6


def test_json_and_junit_for_ci(tmp_path: Path) -> None:
    junit = tmp_path / "rules.xml"
    code, out, _ = run("rules", "test", str(RULES), "--coverage", "--format", "json", "--junit", str(junit))
    assert code == 0
    body = json.loads(out)
    assert body["failed"] == 0 and body["passed"] > 200
    assert 0 < body["coverage"]["percent"] <= 100
    assert len(body["coverage"]["criteria"]) == 34
    suite = ET.parse(junit).getroot()
    assert suite.tag == "testsuite" and int(suite.get("tests", "0")) == body["passed"]
    assert suite.get("failures") == "0"


def test_a_failing_case_is_a_junit_failure(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    cases = rules / "inclusion_test.yaml"
    cases.write_text(cases.read_text().replace("outcome: ineligible", "outcome: eligible", 1))
    junit = tmp_path / "rules.xml"
    code, _, _ = run("rules", "test", str(rules), "--junit", str(junit))
    assert code == 2
    failures = ET.parse(junit).getroot().findall("testcase/failure")
    assert len(failures) == 1 and "outcome: expected eligible" in (failures[0].get("message") or "")
