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


# Every problem at once, across stages ------------------------------------------------------


def rules_copy(tmp_path: Path) -> Path:
    """A copy of the real rule directory, to break."""
    copy = tmp_path / "rules"
    shutil.copytree(RULES, copy)
    return copy


def edit(path: Path, old: str, new: str) -> int:
    """Replace ``old`` (which must be there) by ``new``; the line where it was."""
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))
    return text[: text.index(old)].count("\n") + 1


def site_problems(directory: Path, site: Path) -> list[str]:
    with pytest.raises(RuleSetError) as caught:
        load_ruleset(directory, site)
    return [str(p) for p in caught.value.problems]


def test_a_syntax_error_in_one_file_does_not_hide_an_undefined_fact_in_another(tmp_path: Path) -> None:
    rules = rules_copy(tmp_path)
    (rules / "indication.yaml").write_text((rules / "indication.yaml").read_text() + "\nextra: [oops\n")
    line = edit(
        rules / "review.yaml", "{fact: seizure_disorder, eq: true}", "{fact: seizure_disorderz, eq: true}"
    )
    found = problems_of(rules)
    assert any(p.startswith("rules/indication.yaml:") and ": yaml_syntax: " in p for p in found), found
    assert any(
        p.startswith(f"rules/review.yaml:{line}:") and "undefined_fact" in p and "seizure_disorderz" in p
        for p in found
    ), found
    # IND-CONDITION is read before the error, so nothing cascades from the broken file.
    assert len(found) == 2, found


def test_an_unknown_key_does_not_hide_a_duplicate_criterion(tmp_path: Path) -> None:
    rules = rules_copy(tmp_path)
    (rules / "ruleset.yaml").write_text((rules / "ruleset.yaml").read_text() + "foo: 1\n")
    review = rules / "review.yaml"
    duplicate = """
  - id: REV-SEIZURE
    title: x
    effect: review
    sources: [clinic_practice]
    when: {fact: seizure_disorder, eq: true}
    reason: {met: a, not_met: b, unknown: c}
"""
    review.write_text(review.read_text() + duplicate)
    found = problems_of(rules)
    assert any("rules/ruleset.yaml:" in p and "unknown_key" in p and "'foo'" in p for p in found), found
    assert any(
        p.startswith("rules/review.yaml:") and "duplicate_id" in p and "REV-SEIZURE" in p for p in found
    ), found
    assert len(found) == 2, found


def test_schema_errors_do_not_hide_reference_errors_and_broken_names_do_not_cascade(tmp_path: Path) -> None:
    rules = rules_copy(tmp_path)
    colour = edit(
        rules / "inclusion.yaml", "    effect: require\n", "    effect: require\n    colour: blue\n"
    )
    edit(rules / "exclusions.yaml", "sources: [ketamine_smpc,", "sources: [ketamine_smpc, seed_999,")
    aggregate = edit(rules / "facts.yaml", "aggregate: age_years", "aggregate: age_yearz")
    found = problems_of(rules)
    joined = "\n".join(found)
    assert f"rules/inclusion.yaml:{colour + 1}:5: unknown_key" in joined, joined
    assert "undefined_source: no source named 'seed_999'" in joined, joined
    assert f"rules/facts.yaml:{aggregate}:5: unknown_aggregate" in joined, joined
    # 'age' is broken, not undefined: its uses in templates and conditions are not reported.
    assert "'age'" not in joined.replace("age_yearz", ""), joined
    assert "{age}" not in joined, joined
    assert len(found) == 3, found


def test_a_broken_fact_hides_the_facts_its_also_adds(tmp_path: Path) -> None:
    rules = rules_copy(tmp_path)
    assert "{hyperthyroid_names}" in (rules / "exclusions.yaml").read_text()
    edit(rules / "facts.yaml", "args: {value_sets: [hyperthyroidism]", "args: {value_sets: [hyperthyroidsm]")
    found = problems_of(rules)
    assert len(found) == 1 and "hyperthyroidsm" in found[0], found


def test_undefined_names_say_when_a_file_could_not_be_read(tmp_path: Path) -> None:
    rules = rules_copy(tmp_path)
    (rules / "facts.yaml").write_bytes(b"facts:\n  x: {description: caf\xe9}\n")
    found = problems_of(rules)
    assert any("rules/facts.yaml:2:" in p and "not_utf8" in p for p in found), found
    undefined = [p for p in found if "undefined_fact" in p]
    assert undefined, found
    assert all("it may be defined in rules/facts.yaml, which could not be read" in p for p in undefined)


def test_problems_are_sorted_by_file_and_position(tmp_path: Path) -> None:
    rules = rules_copy(tmp_path)
    edit(rules / "review.yaml", "{fact: seizure_disorder, eq: true}", "{fact: seizure_disorderz, eq: true}")
    edit(rules / "inclusion.yaml", "    effect: require\n", "    effect: require\n    colour: blue\n")
    edit(rules / "cautions.yaml", "    default: 140\n", "    default: 140\n    maximum: 100\n")
    found = problems_of(rules)

    def key(p: str) -> tuple[str, int, int]:
        file, line, column = p.split(":")[:3]
        return file, int(line), int(column)

    assert len(found) == 3 and found == sorted(found, key=key), found


# A parameter's type is its default's: reported there, once ---------------------------------


def test_a_wrong_default_is_reported_at_the_default_not_at_its_uses(tmp_path: Path) -> None:
    rules = rules_copy(tmp_path)
    line = edit(rules / "inclusion.yaml", "default: 18\n", "default: eighteen\n")
    found = problems_of(rules)
    assert found == [
        f"rules/inclusion.yaml:{line}:5: invalid_value: parameter 'adult_min_age' takes a number, "
        "not 'eighteen'"
    ], found


def test_a_default_used_as_another_type_is_reported_once_at_the_default(tmp_path: Path) -> None:
    broken = MINIMAL.replace("limit: {default: 10,", "limit: {default: ten,")
    write(tmp_path / "r", "rules.yaml", broken)
    found = problems_of(tmp_path / "r")
    assert found == [
        "r/rules.yaml:5:11: type_mismatch: parameter 'limit' is a string ('ten'), "
        "but it is compared with number fact 'age' at r/rules.yaml:15"
    ], found


def test_messages_show_values_as_yaml_not_python(tmp_path: Path) -> None:
    broken = MINIMAL.replace(
        "when: {fact: age, ge: $limit}", "when: {all: [{fact: age, eq: yes}, {fact: age, in: [1, x]}]}"
    )
    write(tmp_path / "r", "rules.yaml", broken)
    joined = "\n".join(problems_of(tmp_path / "r"))
    assert "but true is a boolean" in joined and "but 'x' is a string" in joined, joined
    assert "True" not in joined and "ParamRef" not in joined, joined


# Nothing escapes as a YAML or pydantic traceback -------------------------------------------

UNUSABLE = [
    ("a list at the top", b"- a\n- b\n", "1:1: invalid_file"),
    ("a scalar at the top", b"just words\n", "1:1: invalid_file"),
    ("a list for a section", b"facts: [1, 2]\n", "1:1: invalid_value: facts: expected a mapping"),
    ("a list for an entry", b"facts:\n  x: [1]\n", "2:3: invalid_value: facts.x: expected a mapping"),
    ("a mapping for criteria", b"criteria: {a: 1}\n", "1:1: invalid_value: criteria: expected a list"),
    ("a scalar criterion", b"criteria: [1]\n", "1:12: invalid_value: criteria.0: expected a mapping"),
    ("a bad name", b"facts:\n  Bad: {description: x, aggregate: age_years}\n", "2:3: invalid_name"),
    ("a list default", b"parameters:\n  p: {default: [1], description: x}\n", "2:7: invalid_value"),
    ("a date default", b"parameters:\n  p: {default: 2026-01-01, description: x}\n", "2:7: invalid_value"),
    ("a nan default", b"parameters:\n  p: {default: .nan, description: x}\n", "2:7: invalid_value"),
    ("binary", b"a: 1\nb: \x00\x01\x02", "2:4: yaml_syntax"),
    ("not UTF-8", b"facts:\n  x: {description: caf\xe9}\n", "2:23: not_utf8"),
    ("empty", b"", "empty_file"),
    ("comments only", b"# nothing yet\n", "empty_file"),
    ("a python tag", b'sources: !!python/name:os.system ""\n', "1:10: unsupported_tag"),
    ("an unknown tag", b"sources: {s: !foo x}\n", "1:14: unsupported_tag"),
    ("a recursive alias", b"sources: &a [*a]\n", "recursive_alias"),
    ("a non-scalar key", b"? [a, b]\n: 1\n", "1:3: invalid_key"),
    ("a second document", b"a: 1\n---\nb: 2\n", "2:1: yaml_syntax"),
]


@pytest.mark.parametrize(("content", "expected"), [u[1:] for u in UNUSABLE], ids=[u[0] for u in UNUSABLE])
def test_an_unusable_file_is_a_positioned_problem(tmp_path: Path, content: bytes, expected: str) -> None:
    write(tmp_path / "r", "rules.yaml", MINIMAL)
    (tmp_path / "r" / "extra.yaml").write_bytes(content)
    found = problems_of(tmp_path / "r")
    assert any(p.startswith("r/extra.yaml") and expected in p for p in found), found
    assert not any(p.startswith("r/rules.yaml") for p in found), found
    assert not any(word in p for p in found for word in ("Input should", "instance of", "[key]", "Def")), (
        found
    )


def test_aliases_that_expand_too_far_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from screening.ruleset import yamlsource

    monkeypatch.setattr(yamlsource, "MAX_NODES", 1000)
    laughs = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
    for name, previous in zip("bcd", "abc", strict=True):
        laughs += f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 10) + "]\n"
    write(tmp_path / "r", "rules.yaml", MINIMAL)
    write(tmp_path / "r", "extra.yaml", laughs)
    assert any("r/extra.yaml" in p and "too_large" in p for p in problems_of(tmp_path / "r"))


SITES = [
    (
        "a boolean",
        "parameters:\n  bp_exclusion_systolic: true\n",
        "2:3: invalid_value: parameter 'bp_exclusion_systolic' takes a number, not true",
    ),
    ("a date", "parameters:\n  cv_risk_age: 2026-01-01\n", "takes a number, not 2026-01-01 (a date)"),
    ("nan", "parameters:\n  bp_exclusion_systolic: .nan\n", "takes a finite number, not .nan"),
    ("a list", "parameters: [1, 2]\n", "1:1: invalid_file"),
    ("an unknown name", "parameters:\n  bp_exclusion_systolc: 170\n", "2:3: unknown_parameter"),
    (
        "a python tag",
        'parameters:\n  bp_exclusion_systolic: !!python/name:os.system ""\n',
        "2:26: unsupported_tag",
    ),
    ("not UTF-8", "parameters:\n  x: caf\udce9\n", "2:9: not_utf8"),
    (
        "fractional days",
        "parameters:\n  bp_window_days: 30.5\n",
        "2:3: invalid_value: parameter 'bp_window_days' is used as a number of days",
    ),
]


@pytest.mark.parametrize(("text", "expected"), [s[1:] for s in SITES], ids=[s[0] for s in SITES])
def test_a_bad_site_file_is_a_positioned_problem(tmp_path: Path, text: str, expected: str) -> None:
    site = tmp_path / "site.yaml"
    site.write_bytes(text.encode("utf-8", "surrogateescape"))
    found = site_problems(RULES, site)
    assert all(p.startswith(f"{site}:") for p in found), found
    assert any(expected in p for p in found), found


def test_names_read_before_a_syntax_error_are_not_reported_as_undefined(tmp_path: Path) -> None:
    rules = rules_copy(tmp_path)
    facts = rules / "facts.yaml"
    facts.write_text(facts.read_text() + "\n  late: {description: [unclosed\n")
    found = problems_of(rules)
    assert len(found) == 1 and found[0].startswith("rules/facts.yaml:") and "yaml_syntax" in found[0], found


def test_the_answers_a_rule_file_may_give_are_the_lists_a_record_may_leave_blank() -> None:
    from screening.aggregates.base import ANSWER_FIELDS
    from screening.ruleset.schema import ANSWER_KEYS

    assert sorted(ANSWER_KEYS) == sorted(ANSWER_FIELDS)
