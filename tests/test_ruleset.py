"""Loading rule files: every problem, at once, with its line; parameters and hashing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from screening import RuleSetError, load_ruleset

from .conftest import RULES

MINIMAL = """\
ruleset: {id: mini, version: "1", title: Mini}
sources:
  s1: {citation: A source}
parameters:
  limit: {default: 10, description: a limit}
value_sets:
  vs: {title: VS, source: test, icd10cm: [F20]}
facts:
  age: {description: age, aggregate: age_years, ask: age}
criteria:
  - id: INC-ADULT
    title: Adult
    effect: require
    sources: [s1]
    when: {fact: age, ge: $limit}
    reason: {met: "age {age}", not_met: "age {age} under {limit}", unknown: unknown age}
"""


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


def problems_of(directory: Path) -> list[str]:
    with pytest.raises(RuleSetError) as caught:
        load_ruleset(directory)
    return [str(p) for p in caught.value.problems]


def test_the_default_rule_set_loads_and_is_complete() -> None:
    ruleset = load_ruleset(RULES)
    ids = {c.id for c in ruleset.criteria}
    expected = {
        "INC-ADULT",
        "INC-CHRONIC",
        "INC-SEVERITY",
        "INC-REFRACTORY",
        "IND-CONDITION",
        "EXC-BP-UNCONTROLLED",
        "EXC-PSYCHOSIS",
        "EXC-MANIA",
        "EXC-SUD-ACTIVE",
        "EXC-PREGNANCY",
        "EXC-CV-UNSTABLE",
        "EXC-HEPATIC-SEVERE",
        "EXC-HYPERSENSITIVITY",
        "EXC-HYPERTHYROID",
        "EXC-KETAMINE-UROPATHY",
        "REV-BP-ELEVATED",
        "REV-PSYCH-HISTORY",
        "REV-SUICIDALITY",
        "REV-SUD-EARLY-REMISSION",
        "REV-HEPATIC-MODERATE",
        "REV-ICP-IOP",
        "REV-CARDIAC",
        "REV-SEIZURE",
        "REV-BREASTFEEDING",
        "REV-BLADDER",
        "CAU-BP-STAGE2",
        "CAU-SUD-REMISSION",
        "CAU-BENZODIAZEPINE",
        "CAU-LAMOTRIGINE",
        "CAU-MAOI-STIMULANT",
        "CAU-LIVER-MONITORING",
        "CAU-CV-RISK",
        "CAU-EVIDENCE-WEAK",
        "CAU-OPIOID-THERAPY",
    }
    assert ids == expected
    assert len(ruleset.sha256) == 64
    for criterion in ruleset.criteria:
        assert criterion.sources, criterion.id
        assert set(criterion.reason) == {"met", "not_met", "unknown"}


def test_a_minimal_rule_set_loads(tmp_path: Path) -> None:
    write(tmp_path / "r", "rules.yaml", MINIMAL)
    ruleset = load_ruleset(tmp_path / "r")
    assert [c.id for c in ruleset.criteria] == ["INC-ADULT"]
    assert ruleset.criteria[0].params == ("limit",)


def test_every_problem_is_reported_at_once_with_its_line(tmp_path: Path) -> None:
    broken = MINIMAL.replace("when: {fact: age, ge: $limit}", "when: {fact: agee, ge: $limitt}")
    broken = broken.replace("sources: [s1]", "sources: [s1, nowhere]")
    broken = broken.replace("effect: require", "effect: require\n    colour: blue")
    write(tmp_path / "r", "rules.yaml", broken)
    found = problems_of(tmp_path / "r")
    assert any(p.startswith("r/rules.yaml:14:") and "unknown_key" in p and "colour" in p for p in found), (
        found
    )


def test_semantic_problems_are_all_listed(tmp_path: Path) -> None:
    broken = MINIMAL.replace(
        "when: {fact: age, ge: $limit}",
        "when: {all: [{fact: agee, ge: 1}, {fact: age, ge: $limitt}, {fact: age, eq: yes}]}",
    )
    broken = broken.replace("sources: [s1]", "sources: [s1, nowhere]")
    broken = broken.replace('not_met: "age {age} under {limit}"', 'not_met: "age {agge}"')
    write(tmp_path / "r", "rules.yaml", broken)
    found = problems_of(tmp_path / "r")
    codes = {p.split(": ")[1] for p in found}
    assert {
        "undefined_fact",
        "undefined_parameter",
        "type_mismatch",
        "undefined_source",
        "undefined_name",
    } <= codes, found
    assert all(p.startswith("r/rules.yaml:") for p in found)
    assert found == sorted(found, key=lambda p: (int(p.split(":")[1]), int(p.split(":")[2])))


def test_duplicates_across_files_name_both_places(tmp_path: Path) -> None:
    write(tmp_path / "r", "a.yaml", MINIMAL)
    write(tmp_path / "r", "b.yaml", "parameters:\n  limit: {default: 3, description: again}\n")
    found = problems_of(tmp_path / "r")
    assert any("b.yaml:2:" in p and "duplicate_id" in p and "a.yaml:5" in p for p in found), found


def test_duplicate_yaml_keys_and_syntax_errors(tmp_path: Path) -> None:
    write(tmp_path / "r", "a.yaml", MINIMAL + "sources:\n  s2: {citation: x}\n")
    write(tmp_path / "r", "b.yaml", "facts: [unclosed\n")
    found = problems_of(tmp_path / "r")
    assert any("a.yaml:17:1: duplicate_key" in p for p in found), found
    assert any("b.yaml:" in p and "yaml_syntax" in p for p in found), found


def test_unknown_aggregates_arguments_and_value_sets(tmp_path: Path) -> None:
    extra = """\
  bad1: {description: x, aggregate: no_such_thing}
  bad2: {description: x, aggregate: has_diagnosis, args: {value_sets: [missing_vs], colour: red}}
  bad3: {description: x, aggregate: latest_blood_pressure, args: {within_days: $limit}, output: mean}
"""
    write(tmp_path / "r", "rules.yaml", MINIMAL.replace("facts:\n", "facts:\n" + extra))
    found = problems_of(tmp_path / "r")
    joined = "\n".join(found)
    for code in ("unknown_aggregate", "invalid_argument", "unknown_argument", "unknown_output"):
        assert code in joined, joined


def test_site_parameters_override_defaults_and_are_recorded(tmp_path: Path) -> None:
    site = write(tmp_path, "site.yaml", "parameters:\n  bp_exclusion_systolic: 170\n")
    ruleset = load_ruleset(RULES, site)
    assert ruleset.params["bp_exclusion_systolic"] == 170
    assert ruleset.overrides == {"bp_exclusion_systolic": 170}
    assert ruleset.sha256 == load_ruleset(RULES).sha256


def test_bad_site_parameters_are_reported_with_lines(tmp_path: Path) -> None:
    site = write(
        tmp_path,
        "site.yaml",
        "parameters:\n  no_such: 1\n  bp_exclusion_systolic: high\n  adult_min_age: -3\n",
    )
    with pytest.raises(RuleSetError) as caught:
        load_ruleset(RULES, site)
    found = [str(p) for p in caught.value.problems]
    assert any(":2:3: unknown_parameter" in p for p in found), found
    assert any(":3:3: invalid_value" in p and "takes a number" in p for p in found), found
    assert any(":4:3: invalid_value" in p and "at least 0" in p for p in found), found


def test_the_hash_changes_with_the_rules(tmp_path: Path) -> None:
    copy = tmp_path / "rules"
    shutil.copytree(RULES, copy)
    before = load_ruleset(copy).sha256
    path = copy / "inclusion.yaml"
    path.write_text(path.read_text().replace("default: 18", "default: 21"))
    assert load_ruleset(copy).sha256 != before


def test_hidden_folders_are_not_read(tmp_path: Path) -> None:
    write(tmp_path / "r", "rules.yaml", MINIMAL)
    write(tmp_path / "r" / ".venv" / "lib", "tool.yaml", "properties: {}\n")
    assert [c.id for c in load_ruleset(tmp_path / "r").criteria] == ["INC-ADULT"]
