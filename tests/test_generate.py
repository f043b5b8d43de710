"""Synthetic records: deterministic, valid, and covering every outcome."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
from click.testing import CliRunner

from screening import NotScreened, Screener
from screening.batch.csv_layout import CSV_COLUMNS
from screening.batch.synthetic import generate_records
from screening.cli import main

from .conftest import AS_OF


def test_the_same_seed_gives_the_same_records(tmp_path: Path) -> None:
    runner = CliRunner()
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        result = runner.invoke(
            main, ["generate", "-n", "200", "--seed", seed, "--as-of", AS_OF, "-o", str(tmp_path / name)]
        )
        assert result.exit_code == 0, result.output
    first = (tmp_path / "a").read_bytes()
    assert first == (tmp_path / "b").read_bytes()
    assert first != (tmp_path / "c").read_bytes()
    assert len(first.splitlines()) == 200
    assert list(generate_records(3, seed=5, as_of=AS_OF)) == [orjson.loads(x) for x in first.splitlines()[:3]]


def test_generated_records_screen_without_errors_and_cover_every_outcome(screener: Screener) -> None:
    outcomes: Counter[str] = Counter()
    for record in generate_records(1500, seed=1, as_of=AS_OF):
        result = screener.screen(record, as_of=AS_OF)
        outcomes["not_screened" if isinstance(result, NotScreened) else result.outcome.value] += 1
    assert set(outcomes) >= {
        "ineligible",
        "needs_information",
        "needs_review",
        "eligible_with_cautions",
        "eligible",
    }
    for outcome in ("ineligible", "needs_information", "needs_review", "eligible_with_cautions", "eligible"):
        assert outcomes[outcome] >= 150, outcomes  # a mix, not a trickle


def test_generate_writes_the_batch_csv_layout(tmp_path: Path) -> None:
    out = tmp_path / "registry.csv"
    result = CliRunner().invoke(
        main, ["generate", "-n", "50", "--format", "csv", "--as-of", AS_OF, "-o", str(out)]
    )
    assert result.exit_code == 0
    lines = out.read_text().splitlines()
    assert lines[0] == ",".join(CSV_COLUMNS) and len(lines) == 51
