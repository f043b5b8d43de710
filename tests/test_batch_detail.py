"""screening batch --detail, and decisions that decide before they explain.

``full`` and ``compact`` lines stay byte for byte what they were; ``outcome`` lines hold
the outcome, the decisive criteria, the missing items and each status, and are built
without rendering a single reason template."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from screening import Screener
from screening import decision as decision_module
from screening.batch.run import run_batch
from screening.batch.synthetic import generate_records
from screening.build import PURE, build_name
from screening.cli import main
from screening.decision import Decision
from screening.errors import InputError, ScreeningError

from .conftest import AS_OF, RULES, write_cohort

MALFORMED = {5: b"{not json\n", 40: b'{"id": "bad-bp", "blood_pressure": [{"systolic": 40000}]}\n'}
MALFORMED[70] = b'{"id": "dead", "deceased": true}\n'
COUNT = 240


@pytest.fixture(scope="module")
def patients(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cohort(tmp_path_factory.mktemp("detail") / "patients.jsonl", COUNT, 5, MALFORMED)


def _run(patients: Path, out: Path, **options: Any) -> bytes:
    run_batch([patients], out, rules=RULES, as_of=AS_OF, workers=1, **options)
    return out.read_bytes()


@pytest.fixture(scope="module")
def full(patients: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return _run(patients, tmp_path_factory.mktemp("full") / "full.jsonl")


def test_detail_full_and_compact_are_the_default_and_compact_byte_for_byte(
    patients: Path, full: bytes, tmp_path: Path
) -> None:
    assert _run(patients, tmp_path / "f.jsonl", detail="full") == full
    compact = _run(patients, tmp_path / "c.jsonl", compact=True)
    assert _run(patients, tmp_path / "d.jsonl", detail="compact") == compact != full


def test_outcome_lines_hold_what_the_full_decision_decided(
    patients: Path, full: bytes, tmp_path: Path
) -> None:
    out = tmp_path / "outcome.jsonl"
    result = run_batch([patients], out, rules=RULES, as_of=AS_OF, workers=2, detail="outcome")
    reference = run_batch([patients], tmp_path / "again.jsonl", rules=RULES, as_of=AS_OF, workers=1)
    assert result.summary.as_dict() == reference.summary.as_dict()
    whole = full.splitlines()
    lean = out.read_bytes().splitlines()
    assert len(lean) == len(whole) == COUNT
    outcomes = set()
    for big, small in zip(whole, lean, strict=True):
        line, short = orjson.loads(big), orjson.loads(small)
        if "decision" not in line:  # errors and not_screened lines are unchanged
            assert small == big
            continue
        decision, kept = line["decision"], short["decision"]
        assert {k: v for k, v in short.items() if k != "decision"} == {
            k: v for k, v in line.items() if k != "decision"
        }
        outcomes.add(kept["outcome"])
        assert kept["outcome"] == decision["outcome"]
        assert kept["missing_information"] == decision["missing_information"]
        assert kept["decisive"] == [c["id"] for c in decision["criteria"] if c["decisive"]]
        assert kept["criteria"] == [
            {"id": c["id"], "status": c["status"], "decisive": c["decisive"]} for c in decision["criteria"]
        ]
        assert kept["ruleset"] == decision["ruleset"] and kept["detail"] == "outcome"
        assert "reason" not in small.decode() and "summary" not in kept
    assert len(outcomes) == 5, outcomes  # the cohort has every outcome


@pytest.mark.skipif(
    build_name() != PURE,
    reason="a module compiled by mypyc cannot be patched; the pure build (make smoke-pure) runs this",
)
def test_outcome_detail_renders_no_explanation(
    patients: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One worker screens in this process: an explanation rendered would fail its record."""

    def refuse(*args: object) -> None:
        raise AssertionError("the explanation was rendered")

    monkeypatch.setattr(decision_module, "_explain", refuse)
    result = run_batch(
        [patients], tmp_path / "o.jsonl", rules=RULES, as_of=AS_OF, workers=1, detail="outcome"
    )
    assert result.failed == 2 and result.summary.screened == COUNT - 3
    # The same run with full decisions does render them: the patch is in effect.
    with pytest.raises(AssertionError, match="explanation was rendered"):
        run_batch([patients], tmp_path / "f.jsonl", rules=RULES, as_of=AS_OF, workers=1)


def test_resume_keeps_the_detail(patients: Path, tmp_path: Path) -> None:
    out = tmp_path / "outcome.jsonl"
    first = _run(patients, out, detail="outcome")
    with pytest.raises(InputError, match="was written with --detail outcome, not --detail full"):
        run_batch([patients], out, rules=RULES, workers=1, resume=True)
    with pytest.raises(InputError, match="was written with --detail outcome, not --compact"):
        run_batch([patients], out, rules=RULES, workers=1, resume=True, compact=True)
    lines = first.splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:100]) + lines[100][:30])  # killed mid-line
    resumed = run_batch([patients], out, rules=RULES, workers=1, resume=True, detail="outcome")
    assert resumed.resumed == 100 and out.read_bytes() == first


def test_compact_with_another_detail_is_refused(patients: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--compact is --detail compact"):
        run_batch([patients], tmp_path / "o.jsonl", rules=RULES, workers=1, compact=True, detail="outcome")
    result = CliRunner().invoke(
        main, ["batch", str(patients), "--out", str(tmp_path / "o.jsonl"), "--detail", "terse"]
    )
    assert result.exit_code == 2 and "'terse' is not one of" in result.output


def test_cli_detail_outcome(patients: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    arguments = ["batch", str(patients), "--out", str(out), "--detail", "outcome", "--as-of", AS_OF]
    result = CliRunner().invoke(main, [*arguments, "--rules", str(RULES), "-w", "1", "-q"])
    assert result.exit_code == 2, result.output  # two malformed records
    assert orjson.loads(out.read_bytes().splitlines()[0])["decision"]["detail"] == "outcome"


def _decisions(screener: Screener, count: int) -> list[tuple[dict[str, Any], Decision]]:
    out = []
    for record in generate_records(count, seed=23, as_of=AS_OF):
        try:
            result = screener.screen(record, AS_OF)
        except ScreeningError:
            continue
        if isinstance(result, Decision):  # not a deceased patient's NotScreened
            out.append((record, result))
    return out


def test_lazy_explanation_is_byte_identical_to_an_eager_one(screener: Screener) -> None:
    """Over a generated cohort: deciding first, then explaining, writes exactly what
    explaining at once writes, and the outcome form never explains."""
    decisions = _decisions(screener, 600)
    assert len({d.outcome for _, d in decisions}) == 5
    for record, lazy in decisions:
        lean = lazy.as_outcome_dict()
        assert lazy.explanation._value is None, "the outcome form rendered the explanation"
        eager = screener.screen(record, AS_OF)
        eager.explanation.get()
        for compact in (False, True):
            assert orjson.dumps(lazy.as_dict(compact)) == orjson.dumps(eager.as_dict(compact))
        assert lazy == eager == pickle.loads(pickle.dumps(screener.screen(record, AS_OF)))
        # What was decided first agrees with what the explanation says.
        assert lean["criteria"] == [
            {"id": c.id, "status": c.status, "decisive": c.decisive} for c in lazy.criteria
        ]
        assert lazy.statuses == {c.id: c.status for c in lazy.criteria}
        missing = [
            m for c in lazy.criteria if c.status == "unknown" and c.effect != "caution" for m in c.missing
        ]
        assert lazy.missing_information == list(dict.fromkeys(missing))
