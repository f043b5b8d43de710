"""Order constraints between parameters (``below``, ``above``, ``at_most``, ``at_least``):
checked for the defaults, and again for a site's values, each reported with both places."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from screening import RuleSetError, load_ruleset

from .conftest import RULES

ORDERED = """\
ruleset: {id: mini, version: "1", title: Mini}
sources:
  s1: {citation: A source}
parameters:
  low:
    default: 10
    description: the lower limit
    below: high
  high:
    default: 20
    description: the upper limit
  floor:
    default: 5
    description: at most low
    at_most: [low]
facts:
  age: {description: age, aggregate: age_years, ask: age}
criteria:
  - id: INC-ADULT
    title: Adult
    effect: require
    sources: [s1]
    when: {all: [{fact: age, ge: $low}, {fact: age, le: $high}, {fact: age, ge: $floor}]}
    reason: {met: "age {age}", not_met: "age {age}", unknown: unknown age}
"""


def problems_of(directory: Path, site: Path | None = None) -> list[str]:
    with pytest.raises(RuleSetError) as caught:
        load_ruleset(directory, site)
    return [str(p) for p in caught.value.problems]


def rules_dir(tmp_path: Path, text: str = ORDERED) -> Path:
    directory = tmp_path / "r"
    directory.mkdir()
    (directory / "rules.yaml").write_text(text)
    return directory


def site_file(tmp_path: Path, **values: object) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text("parameters:\n" + "".join(f"  {k}: {v}\n" for k, v in values.items()))
    return path


def test_ordered_defaults_load_and_equal_values_meet_at_most(tmp_path: Path) -> None:
    directory = rules_dir(tmp_path)
    assert load_ruleset(directory).params == {"low": 10, "high": 20, "floor": 5}
    assert load_ruleset(directory, site_file(tmp_path, floor=10)).params["floor"] == 10


def test_defaults_out_of_order_are_reported_at_the_constraint(tmp_path: Path) -> None:
    directory = rules_dir(tmp_path, ORDERED.replace("default: 10\n", "default: 20\n"))
    assert problems_of(directory) == [
        "r/rules.yaml:8:5: parameter_order: low (default 20) must be below high (default 20, r/rules.yaml:10)"
    ]


def test_a_site_value_out_of_order_names_the_site_line_and_both_parameters(tmp_path: Path) -> None:
    site = site_file(tmp_path, low=25)
    found = problems_of(rules_dir(tmp_path), site)
    assert found == [
        f"{site}:2:3: parameter_order: low 25 (set at {site}:2) must be below "
        "high 20 (the default, r/rules.yaml:10)",
    ], found


def test_site_values_on_both_sides(tmp_path: Path) -> None:
    site = site_file(tmp_path, high=8, low=9, floor=10)
    found = problems_of(rules_dir(tmp_path), site)
    assert found == [
        f"{site}:3:3: parameter_order: low 9 (set at {site}:3) must be below high 8 (set at {site}:2)",
        f"{site}:4:3: parameter_order: floor 10 (set at {site}:4) must be at most low 9 (set at {site}:3)",
    ], found


def test_a_constraint_on_an_unknown_or_non_numeric_parameter(tmp_path: Path) -> None:
    text = ORDERED.replace("below: high", "below: [high, nowhere, label]").replace(
        "  high:\n", "  label: {default: x, description: a label}\n  high:\n"
    )
    found = problems_of(rules_dir(tmp_path, text))
    assert any(":8:5: undefined_parameter: no parameter named 'nowhere'" in p for p in found), found
    assert any(
        ":8:5: type_mismatch: 'low' is ordered against 'label', which is not a number" in p for p in found
    )
    assert len(found) == 2, found


def test_a_constrained_parameter_must_be_a_number(tmp_path: Path) -> None:
    found = problems_of(rules_dir(tmp_path, ORDERED.replace("default: 10\n", "default: ten\n")))
    assert found == ["r/rules.yaml:6:5: invalid_value: parameter 'low' takes a number, not 'ten'"], found


def test_a_bad_order_key_is_a_schema_problem(tmp_path: Path) -> None:
    found = problems_of(rules_dir(tmp_path, ORDERED.replace("below: high", "below: {high: 1}")))
    assert found == [
        "r/rules.yaml:8:5: invalid_value: parameters.low.below: expected a parameter name or a list of them"
    ]


# The real rule set, with the constraints the lead is asked to add to rules/ ----------------

CONSTRAINTS = {
    "exclusions.yaml": [("  pregnancy_min_age:\n", "at_most: pregnancy_max_age")],
    "review.yaml": [("  bp_review_systolic:\n", "below: bp_exclusion_systolic")],
    "cautions.yaml": [
        ("  bp_caution_systolic:\n", "below: bp_review_systolic"),
        ("  bp_caution_diastolic:\n", "below: bp_exclusion_diastolic"),
    ],
}


@pytest.fixture
def constrained(tmp_path: Path) -> Path:
    """A copy of rules/ with the order constraints added (unless they are there already)."""
    copy = tmp_path / "rules"
    shutil.copytree(RULES, copy)
    for name, additions in CONSTRAINTS.items():
        path = copy / name
        text = path.read_text()
        for header, line in additions:
            if line in text:
                continue
            assert header in text, header
            text = text.replace(header, f"{header}    {line}\n", 1)
        path.write_text(text)
    return copy


def test_the_real_rule_set_satisfies_its_constraints(constrained: Path) -> None:
    load_ruleset(constrained)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {"pregnancy_min_age": 60},
            "pregnancy_min_age 60 (set at {site}:2) must be at most pregnancy_max_age 55",
        ),
        ({"bp_exclusion_systolic": 150}, "bp_review_systolic 160 (the default, rules/review.yaml:"),
        ({"bp_review_systolic": 130}, "bp_caution_systolic 140 (the default, rules/cautions.yaml:"),
        ({"bp_exclusion_diastolic": 85}, "must be below bp_exclusion_diastolic 85 (set at {site}:2)"),
    ],
)
def test_site_values_that_break_the_real_constraints(
    constrained: Path, tmp_path: Path, values: dict[str, int], expected: str
) -> None:
    site = site_file(tmp_path, **values)
    found = problems_of(constrained, site)
    assert len(found) == 1 and found[0].startswith(f"{site}:2:3: parameter_order: "), found
    assert expected.format(site=site) in found[0], found
