"""The batch report: its counts are the output file's counts, and it stands alone."""

from __future__ import annotations

import csv
import re
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from screening.cli import main
from screening.generate import write_records
from screening.report import Summary
from screening.ruleset import load_ruleset

from .conftest import AS_OF, RULES


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A batch of 600 generated records plus two bad lines, with its report and summary."""
    folder = tmp_path_factory.mktemp("report")
    patients = folder / "patients.jsonl"
    write_records(patients, 600, 21, AS_OF)
    with patients.open("ab") as file:
        file.write(b"{broken\n" + b'{"id": "x", "sex": "unknown"}\n')
    args = ["batch", str(patients), "--out", str(folder / "results.jsonl"), "--as-of", AS_OF]
    args += ["--rules", str(RULES), "-w", "1", "--report", str(folder / "report.html")]
    args += ["--summary", str(folder / "summary.csv")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.stderr
    return folder


def counted(results: Path) -> dict[str, Counter[str]]:
    """The counts, straight from the JSONL, without the report's code."""
    counts: dict[str, Counter[str]] = {"outcome": Counter(), "criterion": Counter(), "missing": Counter()}
    for raw in results.read_bytes().splitlines():
        line = orjson.loads(raw)
        if "decision" in line:
            decision = line["decision"]
            counts["outcome"][decision["outcome"]] += 1
            for criterion in decision["criteria"]:
                counts["criterion"][f"{criterion['id']}:{criterion['status']}"] += 1
            counts["missing"].update(decision["missing_information"])
        else:
            counts["outcome"]["error" if "error" in line else "not_screened"] += 1
    return counts


class Cells(HTMLParser):
    """The criteria table's cells and the cards' numbers, as a browser would read them."""

    def __init__(self) -> None:
        super().__init__()
        self.criteria: dict[str, dict[str, int]] = {}
        self.cards: dict[str, int] = {}
        self.external: list[str] = []
        self._row: str | None = None
        self._status: str | None = None
        self._card: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for name in ("src", "href"):
            if found.get(name):
                self.external.append(str(found[name]))
        if tag == "link" or (tag == "script" and found.get("src")):
            self.external.append(tag)
        if tag == "tr" and found.get("data-criterion"):
            self._row = found["data-criterion"]
            self.criteria[str(self._row)] = {}
        if tag == "td" and self._row and found.get("data-status"):
            self._status = found["data-status"]
        if tag == "div" and found.get("data-count"):
            self._card = found["data-count"]

    def handle_data(self, data: str) -> None:
        if self._row and self._status:
            self.criteria[self._row][self._status] = int(data.replace(",", ""))
            self._status = None
        elif self._card and data.strip():
            self.cards[self._card] = int(data.replace(",", ""))
            self._card = None

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = None


def test_the_report_shows_the_counts_of_the_output_file(run: Path) -> None:
    html = (run / "report.html").read_text()
    counts = counted(run / "results.jsonl")
    cells = Cells()
    cells.feed(html)
    assert cells.cards["assessed"] == 602
    for outcome in ("ineligible", "needs_information", "needs_review", "eligible_with_cautions", "eligible"):
        assert cells.cards[outcome] == counts["outcome"][outcome] > 0, outcome
    assert cells.cards["failed"] == counts["outcome"]["error"] == 2
    assert cells.cards["not_screened"] == counts["outcome"]["not_screened"]
    assert list(cells.criteria) == [c.id for c in load_ruleset(RULES).criteria]
    for criterion, statuses in cells.criteria.items():
        for status, n in statuses.items():
            assert n == counts["criterion"][f"{criterion}:{status}"], (criterion, status)
    data = orjson.loads(re.search(rb'id="summary-data">(.*?)</script>', html.encode(), re.S)[1])  # type: ignore[index]
    assert data["missing"] == dict(counts["missing"])
    assert data == Summary.from_jsonl(run / "results.jsonl").as_dict()


def test_the_report_needs_no_network_and_shows_the_flow_and_the_run(run: Path) -> None:
    html = (run / "report.html").read_text()
    cells = Cells()
    cells.feed(html)
    assert cells.external == []
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert html.count("<svg") == 1 and "<style>" in html
    for text in (
        "Records assessed",
        "Ineligible",
        "Needs information",
        "Needs clinician review",
        "Eligible with cautions",
        "ketamine-chronic-pain",
        "records/s",
        AS_OF,
        "bp_exclusion_systolic",
    ):
        assert text in html, text
    assert re.search(r"sha256</th><td><code>[0-9a-f]{64}</code>", html)


def test_the_summary_csv_has_the_same_counts(run: Path) -> None:
    counts = counted(run / "results.jsonl")
    with (run / "summary.csv").open() as file:
        rows = list(csv.DictReader(file))
    by_section: dict[str, dict[str, int]] = {}
    for row in rows:
        key = f"{row['item']}:{row['status']}" if row["section"] == "criterion" else row["item"]
        by_section.setdefault(row["section"], {})[key] = int(row["count"])
    assert by_section["total"]["assessed"] == 602
    assert by_section["total"]["failed"] == 2
    for outcome, n in by_section["outcome"].items():
        assert n == counts["outcome"][outcome]
    assert by_section["criterion"] == {k: v for k, v in counts["criterion"].items() if v}
    assert by_section["missing"] == dict(counts["missing"])
