"""The reference engine: a Screener deciding with it gives byte-identical decisions."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from screening import NotScreened, Screener
from screening.batch.synthetic import generate_records
from screening.engine.compiler import FACT_TYPE
from screening.engine.durable import DurableEngine
from screening.engine.reference import ReferenceEngine
from screening.errors import EngineError

from ..conftest import AS_OF, RULES


def _screened(screener: Screener, record: dict[str, Any]) -> tuple[str, bytes]:
    """The outcome and the decision's JSON, or why the record was not screened."""
    try:
        decision = screener.screen(record, AS_OF)
    except NotScreened as error:
        return "not screened", str(error).encode()
    return decision.outcome.value, decision.to_json()


def test_a_generated_cohort_gets_the_same_decisions_from_both_engines(screener: Screener) -> None:
    reference = Screener(RULES, engine=ReferenceEngine)
    assert isinstance(reference.engine, ReferenceEngine)
    assert isinstance(screener.engine, DurableEngine)
    outcomes: Counter[str] = Counter()
    for record in generate_records(400, seed=11, as_of=AS_OF):
        outcome, durable = _screened(screener, record)
        assert _screened(reference, record) == (outcome, durable), record["id"]
        outcomes[outcome] += 1
    # The cohort is worth comparing only if it reaches every outcome.
    assert set(outcomes) >= {
        "eligible",
        "eligible_with_cautions",
        "needs_review",
        "needs_information",
        "ineligible",
    }, outcomes


@pytest.mark.parametrize(
    "definition",
    [
        {"bad": {"all": [{"m": {"$iall": {"x": []}}}]}},
        {"bad": {"all": "not a list"}},
    ],
)
def test_a_definition_durable_rules_refuses_the_reference_engine_refuses(
    definition: dict[str, object],
) -> None:
    with pytest.raises(EngineError, match="durable-rules failed"):
        DurableEngine(definition, label="refused")
    with pytest.raises(EngineError, match="reference engine cannot evaluate"):
        ReferenceEngine(definition)


def test_the_reference_engine_has_nothing_to_close() -> None:
    engine = ReferenceEngine({"r:met": {"all": [{"m": {"$and": [{"t": FACT_TYPE}, {"x": 1}]}}]}})
    engine.close()
    engine.close()
    assert engine.fired({"t": FACT_TYPE, "x": 1}) == {"r:met"}
