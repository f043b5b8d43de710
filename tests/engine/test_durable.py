"""The durable-rules boundary: session ids, isolation, silence, and error translation."""

from __future__ import annotations

import resource
import threading

import pytest

from screening import Screener
from screening.engine.compiler import FACT_TYPE
from screening.engine.durable import DurableEngine
from screening.engine.reference import ReferenceEngine
from screening.errors import EngineError

from ..conftest import AS_OF, eligible_record


def test_five_thousand_records_in_one_process_hold_no_state(screener: Screener) -> None:
    """Well past the 1,024 sessions a ruleset can hold; the one session keeps no fact."""
    for index in range(1000):
        screener.screen(eligible_record(id=f"warm-{index}"), as_of=AS_OF)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcomes = set()
    for index in range(5000):
        systolic = 110 + index % 90
        record = eligible_record(
            id=f"r{index}", blood_pressure=[{"systolic": systolic, "diastolic": 70, "date": "2026-11-10"}]
        )
        outcomes.add(screener.screen(record, as_of=AS_OF).outcome.value)
        assert screener.engine.held_facts() == 0
    rss_growth_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    assert outcomes == {"eligible", "eligible_with_cautions", "needs_review", "ineligible"}
    assert rss_growth_kib < 20 * 1024, f"peak RSS grew {rss_growth_kib} KiB over 5,000 records"


def test_interleaved_records_do_not_see_each_others_facts(screener: Screener) -> None:
    hypertensive = eligible_record(
        id="high", blood_pressure=[{"systolic": 190, "diastolic": 105, "date": "2026-11-10"}]
    )
    unknown_bp = eligible_record(id="none", blood_pressure=[])
    for _ in range(50):
        high = screener.screen(hypertensive, as_of=AS_OF)
        none = screener.screen(unknown_bp, as_of=AS_OF)
        assert high.criterion("EXC-BP-UNCONTROLLED").status == "met"
        assert none.criterion("EXC-BP-UNCONTROLLED").status == "unknown"
        assert none.outcome.value == "needs_information"


def test_threads_sharing_a_screener_each_get_their_own_decision(screener: Screener) -> None:
    errors: list[str] = []

    def work(systolic: int, expected: str) -> None:
        for index in range(300):
            record = eligible_record(
                id=f"t{systolic}-{index}",
                blood_pressure=[{"systolic": systolic, "diastolic": 70, "date": "2026-11-10"}],
            )
            decision = screener.screen(record, as_of=AS_OF)
            if decision.record_id != record["id"] or decision.outcome.value != expected:
                errors.append(f"{record['id']}: {decision.outcome.value}")

    threads = [
        threading.Thread(target=work, args=args)
        for args in ((190, "ineligible"), (120, "eligible"), (170, "needs_review"))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_a_fact_that_matches_no_rule_fires_nothing() -> None:
    engine = DurableEngine(
        {"r:met": {"all": [{"m": {"$and": [{"t": FACT_TYPE}, {"$gt": {"x": 5}}]}}]}}, label="test_nothing"
    )
    for _ in range(3):
        assert engine.fired({"t": FACT_TYPE}) == frozenset()
        assert engine.fired({"t": FACT_TYPE, "x": 1}) == frozenset()
    assert engine.fired({"t": FACT_TYPE, "x": 9}) == {"r:met"}
    assert engine.held_facts() == 0


def test_a_failure_mid_record_discards_the_session_and_the_next_record_is_clean(
    screener: Screener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """durable-rules failing between assert and retract: the fact and its pending actions
    must not reach the next record."""
    import durable_rules_engine

    hypertensive = eligible_record(
        id="high", blood_pressure=[{"systolic": 190, "diastolic": 105, "date": "2026-11-10"}]
    )
    healthy = eligible_record(id="fine")
    before = screener.engine.session

    def broken(*args: object) -> None:
        raise RuntimeError("simulated failure inside durable-rules")

    with monkeypatch.context() as patch:
        patch.setattr(durable_rules_engine, "retract_fact", broken)
        with pytest.raises(EngineError, match="retract a fact: RuntimeError: simulated"):
            screener.screen(hypertensive, as_of=AS_OF)
    assert screener.engine.session is None  # the dirty session was deleted
    decision = screener.screen(healthy, as_of=AS_OF)
    assert decision.outcome.value == "eligible"
    assert decision.criterion("EXC-BP-UNCONTROLLED").status == "not_met"
    assert screener.engine.session not in (None, before)
    assert screener.engine.held_facts() == 0


def test_a_record_with_nothing_known_is_all_unknown(screener: Screener) -> None:
    decision = screener.screen({"id": "empty"}, as_of=AS_OF)
    assert decision.outcome.value == "needs_information"
    assert decision.criterion("INC-ADULT").status == "unknown"
    assert "date of birth (or age)" in decision.missing_information


def test_engine_fires_what_the_reference_engine_fires_for_a_whole_record(screener: Screener) -> None:
    from screening.engine.facts import compute_facts
    from screening.record import parse_record
    from screening.screener import parse_as_of

    day = parse_as_of(AS_OF)
    sheet = compute_facts(screener.ruleset, parse_record(eligible_record(), day), day)
    fact = sheet.known()
    assert screener.engine.fired(fact) == ReferenceEngine(screener.definition).fired(fact)


def test_same_ruleset_name_twice_is_fine() -> None:
    definition = {"r:met": {"all": [{"m": {"$and": [{"t": FACT_TYPE}, {"x": 1}]}}]}}
    first, second = DurableEngine(definition, label="twice"), DurableEngine(definition, label="twice")
    assert first.name != second.name
    assert first.fired({"t": FACT_TYPE, "x": 1}) == second.fired({"t": FACT_TYPE, "x": 1}) == {"r:met"}


@pytest.mark.parametrize(
    "definition",
    [
        {"bad": {"all": [{"m": {"$iall": {"x": []}}}]}},
        {"bad": {"all": "not a list"}},
    ],
)
def test_engine_failures_become_engine_errors(definition: dict[str, object]) -> None:
    with pytest.raises(EngineError, match="durable-rules failed"):
        DurableEngine(definition, label="broken")
