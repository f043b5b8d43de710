"""``screening impact``: the same cohort under two rule sets, through the batch machinery."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from screening import Screener
from screening.batch.synthetic import write_records
from screening.cli import main
from screening.ruleset.conditions import ParamRef, comparisons, operands

from .conftest import AS_OF, RULES, eligible_record

LIMIT = "bp_exclusion_systolic"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated cohort, with readings on and around both limits added."""
    path = tmp_path_factory.mktemp("impact") / "cohort.jsonl"
    write_records(path, 400, 11, AS_OF, "jsonl")
    extra = []
    for systolic, diastolic in [(170, 85), (171, 85), (175, 88), (180, 90), (181, 85), (176, 104)]:
        record = eligible_record(
            blood_pressure=[{"systolic": systolic, "diastolic": diastolic, "date": "2026-11-10"}]
        )
        record["id"] = f"edge-{systolic}-{diastolic}"
        extra.append(json.dumps(record))
    with path.open("a") as out:
        out.write("\n".join(extra) + "\n")
    return path


def _limited_fact(screener: Screener) -> str:
    """The fact EXC-BP-UNCONTROLLED compares with the limit (found in the rules, not assumed)."""
    criterion = next(c for c in screener.ruleset.criteria if c.id == "EXC-BP-UNCONTROLLED")
    return next(c.fact for c in comparisons(criterion.when) if ParamRef(LIMIT) in operands(c))


def test_lowering_the_systolic_limit_moves_exactly_the_171_to_180_patients(
    screener: Screener, cohort: Path, tmp_path: Path
) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(f"parameters:\n  {LIMIT}: 170\n")
    changes, report = tmp_path / "changes.jsonl", tmp_path / "impact.html"
    code, _, err = run(
        "impact", str(cohort), "--params", str(site), "--as-of", AS_OF,
        "--out", str(changes), "--report", str(report), "--workers", "2",
    )  # fmt: skip
    assert code == 0, err
    lines = [json.loads(line) for line in changes.read_text().splitlines()]
    moved = {line["record_id"] for line in lines}
    # Who should move, from the baseline decisions: systolic in 171-180, not excluded already.
    fact = _limited_fact(screener)
    expected = set()
    for text in cohort.read_text().splitlines():
        record = json.loads(text)
        if record.get("deceased"):
            continue
        result = screener.screen(record, as_of=AS_OF).criterion("EXC-BP-UNCONTROLLED")
        value = result.facts[fact]
        if value is not None and 170 < float(value) <= 180 and result.status == "not_met":
            expected.add(record["id"])
    assert {"edge-171-85", "edge-175-88", "edge-180-90"} <= expected
    assert moved == expected
    assert "edge-170-85" not in moved and "edge-181-85" not in moved and "edge-176-104" not in moved
    for line in lines:
        bp = next(c for c in line["criteria"] if c["id"] == "EXC-BP-UNCONTROLLED")
        assert (bp["before"]["status"], bp["after"]["status"]) == ("not_met", "met")
        assert line["after"]["outcome"] == "ineligible" and "EXC-BP-UNCONTROLLED" in line["after"]["decisive"]
        assert "170/100 mmHg limit" in bp["after"]["reason"]
    page = report.read_text()
    assert "Outcomes before (rows) and after (columns)" in page and LIMIT in page
    assert "EXC-BP-UNCONTROLLED (" in page
    assert f"{LIMIT} 180 -> 170" in err


def test_the_same_rules_on_both_sides_change_nobody(cohort: Path, tmp_path: Path) -> None:
    changes = tmp_path / "changes.jsonl"
    code, _, err = run(
        "impact", str(cohort), "--baseline-rules", str(RULES), "--as-of", AS_OF, "--out", str(changes)
    )
    assert code == 0, err
    assert changes.read_text() == ""
    assert "rule diff: none" in err and "406 records" in err and " 0 changed" in err


def test_a_reason_only_change_is_in_the_diff_and_moves_nobody(cohort: Path, tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    exclusions = rules / "exclusions.yaml"
    text = exclusions.read_text()
    assert "Not a candidate for ketamine (psychotomimetic)" in text
    exclusions.write_text(text.replace("Not a candidate for ketamine (psychotomimetic)", "Not a candidate"))
    changes, report = tmp_path / "changes.jsonl", tmp_path / "impact.html"
    code, _, err = run(
        "impact", str(cohort), "--rules", str(rules), "--as-of", AS_OF,
        "--out", str(changes), "--report", str(report),
    )  # fmt: skip
    assert code == 0, err
    assert changes.read_text() == ""
    assert "rule diff: criterion EXC-PSYCHOSIS changed" in err
    assert "<td>EXC-PSYCHOSIS</td><td>changed</td>" in report.read_text()


def test_impact_needs_a_date_and_names_a_bad_site_file(cohort: Path, tmp_path: Path) -> None:
    code, _, err = run("impact", str(cohort), "--out", str(tmp_path / "c.jsonl"))
    assert code == 2 and "--as-of" in err
    site = tmp_path / "site.yaml"
    site.write_text(f"parameters:\n  {LIMIT}: 90\n")
    code, _, err = run(
        "impact", str(cohort), "--params", str(site), "--as-of", AS_OF, "--out", str(tmp_path / "c.jsonl")
    )
    assert code == 1 and "site.yaml" in err and LIMIT in err
