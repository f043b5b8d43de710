"""The rule tests beside the rules (``rules/*_test.yaml``), one pytest case each.

Adding a case to a test file adds a test here. The coverage test checks that together
they exercise every criterion as met, not met and unknown, and as decisive at least once.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

from screening import Screener
from screening.aggregates.base import ANSWER_FIELDS, DIAGNOSES
from screening.authoring.casetests import case_record, load_cases, run_case

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
        # Criteria built only on facts that are never unknown (e.g. breastfeeding, taken as
        # false when not recorded) cannot be unknown, and are not asked to be.
        wanted = {"met", "not_met", "decisive"}
        if screener.ruleset.may_be_unknown(criterion):
            wanted.add("unknown")
        if wanted - seen[criterion.id]:
            missing[criterion.id] = sorted(wanted - seen[criterion.id])
    assert missing == {}


def test_criteria_that_cannot_be_unknown_are_the_ones_the_spec_says(screener: Screener) -> None:
    # Problem-list, medication and allergy criteria can be unknown: `null` for those lists
    # says "not available" (left out, they are none).
    never = sorted(c.id for c in screener.ruleset.criteria if not screener.ruleset.may_be_unknown(c))
    assert never == ["REV-BREASTFEEDING"]


def test_every_fact_on_a_list_that_can_be_blank_says_which_answer_settles_it(screener: Screener) -> None:
    """A fact read from a list that may be null (not asked, or not available) must be unknown
    then, not "none": its aggregate takes ``answered_by``, and the fact names a list it reads."""
    ruleset = screener.ruleset
    unanswered = {}
    without_answered_by = set()
    for name, fact in ruleset.facts.items():
        aggregate = fact.aggregate
        lists = set(aggregate.reads or ()) & set(ANSWER_FIELDS)
        if DIAGNOSES in (aggregate.reads or ()):
            lists |= {"psychiatric_history", "substance_use_history", "conditions"}
        if not lists:
            continue
        if "answered_by" not in aggregate.args:
            without_answered_by.add(aggregate.name)
        elif fact.args.get("answered_by") not in lists:
            unanswered[name] = sorted(lists)
    assert unanswered == {}
    # treatment_classes is unknown whenever the treatment history is blank; pregnancy_status
    # reads a pregnancy diagnosis too, but what the spec requires is a dated pregnancy status.
    assert without_answered_by == {"treatment_classes", "pregnancy_status"}
    # Every list an answered_by names has an answer: what to ask for.
    named = {fact.args["answered_by"] for fact in ruleset.facts.values() if "answered_by" in fact.args}
    assert named == {"psychiatric_history", "substance_use_history", "conditions", "medications", "allergies"}
    assert set(ruleset.answers) == set(ANSWER_FIELDS)
    assert "say so explicitly if there are none" in ruleset.answers["conditions"]
