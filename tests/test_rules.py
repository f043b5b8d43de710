"""The rule tests beside the rules (``rules/*_test.yaml``), one pytest case each.

Adding a case to a test file adds a test here. The coverage test checks that together
they exercise every criterion as met, not met and unknown, and as decisive at least once.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

from screening import Screener
from screening.casetests import case_record, load_cases, run_case

from .conftest import RULES

LOADED = load_cases(RULES)


def test_the_test_files_load() -> None:
    assert [str(p) for p in LOADED.problems] == []
    assert len(LOADED.cases) >= 100


@pytest.mark.parametrize(
    ("case", "file", "line"), LOADED.cases, ids=[f"{file}:{line}" for _, file, line in LOADED.cases]
)
def test_rule_case(screener: Screener, case: object, file: str, line: int) -> None:
    result = run_case(screener, case, LOADED.records, file, line)  # type: ignore[arg-type]
    assert result.failures == []


def test_every_criterion_is_met_not_met_unknown_and_decisive(screener: Screener) -> None:
    seen: dict[str, set[str]] = defaultdict(set)
    for case, _, _ in LOADED.cases:
        if case.expect.error:
            continue
        decision = screener.screen(case_record(case, LOADED.records), as_of=case.as_of)
        for result in decision.criteria:
            if result.id in case.expect.criteria:
                seen[result.id].add(result.status)
            if result.decisive and result.id in case.expect.criteria:
                seen[result.id].add("decisive")
    missing = {}
    for criterion in screener.ruleset.criteria:
        # The spec makes absent medications, allergies and problem-list diagnoses "absent",
        # not unknown; criteria built only on those cannot be unknown, and are not asked to be.
        wanted = {"met", "not_met", "decisive"}
        if screener.ruleset.may_be_unknown(criterion):
            wanted.add("unknown")
        if wanted - seen[criterion.id]:
            missing[criterion.id] = sorted(wanted - seen[criterion.id])
    assert missing == {}


def test_criteria_that_cannot_be_unknown_are_the_ones_the_spec_says(screener: Screener) -> None:
    never = sorted(c.id for c in screener.ruleset.criteria if not screener.ruleset.may_be_unknown(c))
    assert never == [
        "CAU-BENZODIAZEPINE",
        "CAU-LAMOTRIGINE",
        "CAU-MAOI-STIMULANT",
        "CAU-OPIOID-THERAPY",
        "EXC-HEPATIC-SEVERE",
        "EXC-HYPERSENSITIVITY",
        "EXC-HYPERTHYROID",
        "EXC-KETAMINE-UROPATHY",
        "REV-BLADDER",
        "REV-BREASTFEEDING",
        "REV-HEPATIC-MODERATE",
        "REV-ICP-IOP",
        "REV-SEIZURE",
    ]
