"""The batch report: its counts are the output file's counts, and it stands alone."""

from __future__ import annotations

import csv
import re
import shutil
from collections import Counter
from dataclasses import replace
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from screening.batch.synthetic import write_records
from screening.cli import main
from screening.errors import RuleSetError
from screening.present.report import Summary, failed_label, value_label
from screening.ruleset.loading import load_ruleset

from .conftest import AS_OF, RULES, eligible_record


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


class Flow(HTMLParser):
    """The flow diagram's boxes as a browser shows them: each box's n and its items' counts."""

    def __init__(self) -> None:
        super().__init__()
        self.stages: dict[str, int] = {}
        self.exits: dict[str, int] = {}
        self.items: dict[str, dict[str, int]] = {}
        self.more: dict[str, int] = {}
        self._stage: str | None = None
        self._exit: str | None = None
        self._item: str | None = None
        self._count = False
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "g" and found.get("data-stage"):
            self._stage = found["data-stage"]
        elif tag == "g" and found.get("data-outcome"):
            self._exit = found["data-outcome"]
            self.items[str(self._exit)] = {}
        elif tag == "g" and found.get("data-item"):
            self._item = found["data-item"]
        self._count = tag == "text" and found.get("class") == "count"
        self._text = ""

    def handle_data(self, data: str) -> None:
        self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "text":
            text = self._text.strip()
            if self._count:
                number = int(re.match(r"(?:n = )?([\d,]+)", text)[1].replace(",", ""))  # type: ignore[index]
                if self._item is not None and self._exit is not None:
                    self.items[self._exit][self._item] = number
                elif self._stage is not None:
                    self.stages[self._stage] = number
                elif self._exit is not None:
                    self.exits[self._exit] = number
            elif self._exit and (more := re.match(r"and (\d+) more", text)):
                self.more[self._exit] = int(more[1])
            self._count = False
        if tag == "g":
            if self._item is not None:
                self._item = None
            elif self._stage is not None:
                self._stage = None
            else:
                self._exit = None


def check_flow(results: Path, report: Path) -> None:
    """Each box's numbers, recounted from the JSONL: an exit box counts only its own records."""
    outcomes: Counter[str] = Counter()
    decisive: dict[str, Counter[str]] = {}
    missing: dict[str, Counter[str]] = {}
    errors: Counter[str] = Counter()
    for raw in results.read_bytes().splitlines():
        line = orjson.loads(raw)
        if "decision" not in line:
            errors["not_screened" if "not_screened" in line else line["error"]["code"]] += 1
            continue
        decision = line["decision"]
        outcome = decision["outcome"]
        outcomes[outcome] += 1
        decisive.setdefault(outcome, Counter()).update(c["id"] for c in decision["criteria"] if c["decisive"])
        missing.setdefault(outcome, Counter()).update(decision["missing_information"])
    flow = Flow()
    flow.feed(report.read_text())

    screened = sum(outcomes.values())
    assert flow.stages == {
        "assessed": screened + sum(errors.values()),
        "screened": screened,
        "not_ineligible": screened - outcomes["ineligible"],
        "complete": screened - outcomes["ineligible"] - outcomes["needs_information"],
        "meet": outcomes["eligible_with_cautions"] + outcomes["eligible"],
        "eligible": outcomes["eligible"],
    }
    exits = ("ineligible", "needs_information", "needs_review", "eligible_with_cautions")
    assert flow.exits == {"failed": sum(errors.values()), **{o: outcomes[o] for o in exits}}
    assert flow.items["failed"] == dict(errors)
    expected = {o: decisive.get(o, Counter()) for o in exits}
    expected["needs_information"] = missing.get("needs_information", Counter())
    for outcome, counts in expected.items():
        shown = flow.items[outcome]
        assert len(shown) == min(8, len(counts)), outcome
        assert flow.more.get(outcome, 0) == len(counts) - len(shown), outcome
        assert shown == {key: counts[key] for key in shown}, outcome
        if len(counts) > len(shown):  # the most frequent are shown
            assert min(shown.values()) >= max(n for k, n in counts.items() if k not in shown)
        assert not shown or max(shown.values()) <= outcomes[outcome], outcome


def test_the_flow_diagram_shows_the_counts_of_the_output_file(run: Path) -> None:
    check_flow(run / "results.jsonl", run / "report.html")


def test_the_needs_information_box_counts_only_its_own_records(tmp_path: Path) -> None:
    """Ineligible records that also miss an item: the box listed them (n = 2, items 15, 15)."""
    patients = tmp_path / "patients.jsonl"
    blood_pressure = [{"systolic": 200, "diastolic": 80, "date": "2026-11-01"}]
    with patients.open("wb") as file:
        for index in range(15):  # ineligible (blood pressure) and missing a pain score
            record = eligible_record(id=f"bp-{index}", blood_pressure=blood_pressure, pain_scores=[])
            file.write(orjson.dumps(record) + b"\n")
        for index in range(2):  # needs information: the pain score alone
            file.write(orjson.dumps(eligible_record(id=f"ni-{index}", pain_scores=[])) + b"\n")
    out, report = tmp_path / "results.jsonl", tmp_path / "report.html"
    args = ["batch", str(patients), "--out", str(out), "--as-of", AS_OF, "--rules", str(RULES)]
    result = CliRunner().invoke(main, [*args, "-w", "1", "--report", str(report), "-q"])
    assert result.exit_code == 0, result.stderr
    check_flow(out, report)
    flow = Flow()
    flow.feed(report.read_text())
    assert flow.exits["needs_information"] == 2 and flow.exits["ineligible"] == 15
    assert flow.items["needs_information"] == {"a pain intensity score (0-10) from the last 90 days": 2}
    summary = Summary.from_jsonl(out)
    assert summary.missing["a pain intensity score (0-10) from the last 90 days"] == 17
    assert summary.missing_of("needs_information") == [
        ("a pain intensity score (0-10) from the last 90 days", 2)
    ]


def test_the_report_speaks_to_a_clinical_lead(run: Path) -> None:
    html = (run / "report.html").read_text()
    visible = re.sub(r"<[^>]*>", " ", html.split('id="summary-data"')[0])  # text, not attributes
    assert "record []" not in visible and "snri_tca" not in visible
    assert "say so explicitly if there is none" in html
    assert not re.search(r'<td class="num">(True|False)', html)
    assert re.search(r"fhir_infer_failed_trials</code></td><td class=\"num\">(yes|no)</td>", html)
    # labels wrap onto more lines rather than being cut, so nothing is lost in print
    assert "…" not in re.sub(r"<[^>]*>", " ", html.split("<svg", 1)[1].split("</svg>", 1)[0])
    assert "<tspan" in html


def batch_of(folder: Path, records: list[dict[str, object]], *extra: str) -> Path:
    """Screen ``records`` through the CLI into ``folder`` (results.jsonl, report.html, summary.csv)."""
    patients = folder / "patients.jsonl"
    patients.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record in records))
    args = ["batch", str(patients), "--out", str(folder / "results.jsonl"), "--as-of", AS_OF]
    args += ["--rules", str(RULES), "-w", "1", "-q", "--force", "--report", str(folder / "report.html")]
    result = CliRunner().invoke(main, [*args, "--summary", str(folder / "summary.csv"), *extra])
    assert result.exit_code == 0, result.stderr
    return folder


def visible_text(html: str) -> str:
    """The report's text as a reader sees it: no tags, no embedded data, one space."""
    text = re.sub(r"<[^>]*>", " ", html.split('id="summary-data"')[0])
    return re.sub(r"\s+", " ", unescape(text))


def test_missing_items_are_shown_as_the_rules_ask_for_them(tmp_path: Path) -> None:
    """The class label of the value set, as the rule set words it: no rewriting of the
    "opioid" inside "non-opioid" (it was "NSAID/non-Opioid analgesics analgesic")."""
    treatments = [
        {"name": "gabapentin", "treatment_class": "gabapentinoid_anticonvulsant", "outcome": "ineffective"},
        {"name": "naproxen", "outcome": "unknown"},
    ]
    batch_of(tmp_path, [eligible_record(id="n1", treatments=treatments)])
    text = visible_text((tmp_path / "report.html").read_text())
    ruleset = load_ruleset(RULES)
    label = next(
        vs.attributes["label"]
        for vs in ruleset.value_sets.values()
        if vs.attributes.get("treatment_class") == "nsaid_nonopioid"
    )
    assert label == "NSAID/non-opioid analgesic"
    asked = f"for the treatment trials: the outcome of naproxen ({label})"
    assert Summary.from_jsonl(tmp_path / "results.jsonl").missing == Counter({asked: 1})
    assert text.count(asked) == 2  # the flow diagram and the table
    assert "Opioid analgesics" not in text and "non-Opioid" not in text
    assert f"{asked} criterion:INC-REFRACTORY" in text  # the table names its worklist item


def test_every_requirement_and_exclusion_says_what_failed() -> None:
    ruleset = load_ruleset(RULES)
    for criterion in ruleset.criteria:
        if criterion.effect in ("require", "exclude", "indication"):
            assert criterion.label_when_failed is not None, criterion.id
            assert criterion.label_when_failed.text != criterion.title, criterion.id
    adult = next(c for c in ruleset.criteria if c.id == "INC-ADULT")
    assert failed_label(adult, ruleset.params) == "under 18"
    assert failed_label(replace(adult, label_when_failed=None), ruleset.params) == "not met: Adult"
    review = next(c for c in ruleset.criteria if c.id == "REV-SEIZURE")
    assert failed_label(review, ruleset.params) == "Seizure disorder"  # a finding is its title


def test_a_label_when_failed_that_names_a_fact_is_refused(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    inclusion = rules / "inclusion.yaml"
    inclusion.write_text(inclusion.read_text().replace('"under {adult_min_age}"', '"aged {age}"'))
    with pytest.raises(RuleSetError) as error:
        load_ruleset(rules)
    assert "label_when_failed names the fact {age}" in str(error.value)
    assert "inclusion.yaml" in str(error.value)


def test_the_flow_names_each_box_by_what_failed(tmp_path: Path) -> None:
    """Under 18 and pain of two months: the boxes say so, with the site's parameters."""
    records = [
        eligible_record(id="young", birth_date="2010-01-01"),
        eligible_record(
            id="recent",
            pain_conditions=[{"code": "G90.512", "display": "CRPS", "onset": "2026-09-20", "primary": True}],
        ),
    ]
    params = tmp_path / "site.yaml"
    params.write_text("parameters:\n  adult_min_age: 17\n")
    batch_of(tmp_path, records)
    flow = Flow()
    flow.feed((tmp_path / "report.html").read_text())
    assert flow.items["ineligible"] == {"INC-ADULT": 1, "INC-CHRONIC": 1}
    svg = visible_text((tmp_path / "report.html").read_text().split("<svg", 1)[1].split("</svg>", 1)[0])
    assert "under 18 (INC-ADULT)" in svg and "pain not chronic (under 3 months) (INC-CHRONIC)" in svg
    assert "Adult" not in svg and "Chronic pain" not in svg
    records[0]["birth_date"] = "2012-01-01"  # 14: under 17 too
    batch_of(tmp_path, records, "--params", str(params))
    svg = visible_text((tmp_path / "report.html").read_text().split("<svg", 1)[1].split("</svg>", 1)[0])
    assert "under 17 (INC-ADULT)" in svg and "Adult" not in svg


class MissingTable(HTMLParser):
    """The missing-information table: each item's two counts."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, int]] = {}
        self._item: str | None = None
        self._count: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "tr" and found.get("data-missing"):
            self._item = str(found["data-missing"])
            self.rows[self._item] = {}
        elif tag == "td" and self._item and found.get("data-count"):
            self._count = found["data-count"]

    def handle_data(self, data: str) -> None:
        if self._item and self._count:
            self.rows[self._item][self._count] = int(data.replace(",", ""))
            self._count = None

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._item = None


def test_the_flow_and_the_table_count_the_missing_items_alike(run: Path) -> None:
    """Recounted from the JSONL: the flow's needs-information box and the table's first
    column count the records needing information; the last column counts every record."""
    waiting: Counter[str] = Counter()
    every: Counter[str] = Counter()
    for raw in (run / "results.jsonl").read_bytes().splitlines():
        decision = orjson.loads(raw).get("decision")
        if decision:
            every.update(decision["missing_information"])
            if decision["outcome"] == "needs_information":
                waiting.update(decision["missing_information"])
    assert every != waiting  # some ineligible records miss items too: the two counts differ
    html = (run / "report.html").read_text()
    flow, table = Flow(), MissingTable()
    flow.feed(html)
    table.feed(html)
    assert len(flow.items["needs_information"]) == 8 and len(table.rows) == min(15, len(every))
    for item, n in flow.items["needs_information"].items():
        assert table.rows[item]["needs_information"] == n == waiting[item], item
    for item, counts in table.rows.items():
        assert counts == {"needs_information": waiting[item], "all": every[item]}, item


def recount_groups(results: Path) -> Counter[tuple[str, str, str]]:
    """Outcome by indication grade, age band and sex, read from each line's facts here."""
    bands = [(17, "under 18"), (34, "18-34"), (49, "35-49"), (64, "50-64"), (200, "65+")]
    groups: Counter[tuple[str, str, str]] = Counter()
    for raw in results.read_bytes().splitlines():
        decision = orjson.loads(raw).get("decision")
        if not decision:
            continue
        facts: dict[str, object] = {}
        for criterion in decision["criteria"]:
            facts.update({k: v for k, v in criterion["facts"].items() if v is not None})
        age = facts.get("age")
        band = "unknown" if age is None else next(label for top, label in bands if int(str(age)) <= top)
        outcome = decision["outcome"]
        groups["indication", str(facts.get("indication_grade", "unknown")), outcome] += 1
        groups["age", band, outcome] += 1
        groups["sex", str(facts.get("sex", "not recorded")), outcome] += 1
    return groups


def test_the_breakdowns_are_the_counts_of_the_output_file(run: Path) -> None:
    groups = recount_groups(run / "results.jsonl")
    screened = sum(n for (dimension, _, _), n in groups.items() if dimension == "age")
    assert screened == 600 - Summary.from_jsonl(run / "results.jsonl").not_screened
    assert {g for d, g, _ in groups if d == "age"} >= {"18-34", "35-49", "50-64", "65+", "unknown"}
    assert {g for d, g, _ in groups if d == "indication"} >= {"B", "none", "unknown"}
    with (run / "summary.csv").open() as file:
        rows = {
            (row["section"].removeprefix("by_"), row["item"], row["status"]): int(row["count"])
            for row in csv.DictReader(file)
            if row["section"].startswith("by_")
        }
    assert rows == groups
    html = (run / "report.html").read_text()
    for dimension in ("indication", "age", "sex"):
        table = html.split(f'data-breakdown="{dimension}"', 1)[1].split("</table>", 1)[0]
        for group, cells in re.findall(r'<tr data-group="([^"]*)">(.*?)</tr>', table):
            shown = dict(re.findall(r'data-outcome="(\w+)">([\d,]+)<', cells))
            for outcome, n in shown.items():
                assert int(n.replace(",", "")) == groups[dimension, unescape(group), outcome], (
                    dimension,
                    group,
                )
    text = visible_text(html)
    assert "grade B (moderate): Complex regional pain syndrome" in text
    assert "no primary pain condition recorded" in text


def test_compact_lines_give_the_same_breakdowns(run: Path, tmp_path: Path) -> None:
    args = ["batch", str(run / "patients.jsonl"), "--out", str(tmp_path / "compact.jsonl"), "--compact"]
    result = CliRunner().invoke(main, [*args, "--as-of", AS_OF, "--rules", str(RULES), "-w", "1", "-q"])
    assert result.exit_code == 2, result.stderr  # the two bad lines
    compact = Summary.from_jsonl(tmp_path / "compact.jsonl")
    assert (
        compact.groups
        == Summary.from_jsonl(run / "results.jsonl").groups
        == recount_groups(run / "results.jsonl")
    )


def test_values_have_human_words() -> None:
    assert (value_label(True), value_label(False), value_label(None), value_label([3, "a"])) == (
        "yes",
        "no",
        "",
        "3, a",
    )


def test_breakdowns_read_the_profile_facts_and_count_the_same_from_every_detail(tmp_path: Path) -> None:
    from screening.decision import PROFILE_FACTS
    from screening.present.report import BREAKDOWNS

    assert {fact for _, fact, _ in BREAKDOWNS} == set(PROFILE_FACTS)
    patients = tmp_path / "patients.jsonl"
    write_records(patients, 300, seed=3, as_of=AS_OF)
    summaries = []
    for detail in ("full", "outcome"):
        out = tmp_path / f"{detail}.jsonl"
        args = [
            "batch",
            str(patients),
            "--out",
            str(out),
            "--as-of",
            AS_OF,
            "-w",
            "1",
            "-q",
            "--detail",
            detail,
        ]
        result = CliRunner().invoke(main, [*args, "--rules", str(RULES)])
        assert result.exit_code in (0, 2), result.output
        summaries.append(Summary.from_jsonl(out))
    full, outcome = summaries
    assert full.groups == outcome.groups and sum(full.groups.values()) > 0
