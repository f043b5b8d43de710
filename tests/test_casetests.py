"""Loading the ``*_test.yaml`` cases: every problem is a load error with its line (exit 1)."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from screening.authoring.casetests import load_cases
from screening.cli import main

from .conftest import RULES

CASES = """\
cases:
  - name: checks the outcome
    as_of: 2026-11-22
    extends: eligible_adult
    expect: {outcome: eligible}

  - name: vacuous
    as_of: 2026-11-22
    extends: eligible_adult
    expect: {}

  - name: an unknown criterion
    as_of: 2026-11-22
    extends: eligible_adult
    expect: {criteria: {INC-ADULT: met, NOPE-X: met}, decisive: [NOPE-Y]}

  - name: only an error
    as_of: 2026-11-22
    extends: eligible_adult
    expect: {error: something}
"""


def rules_with(tmp_path: Path, name: str, text: str) -> Path:
    copy = tmp_path / "rules"
    shutil.copytree(RULES, copy)
    (copy / name).write_text(text)
    return copy


def test_a_case_must_expect_something(tmp_path: Path) -> None:
    loaded = load_cases(rules_with(tmp_path, "extra_test.yaml", CASES))
    assert [str(p) for p in loaded.problems] == [
        "rules/extra_test.yaml:10:5: invalid_value: cases.1.expect: a case must expect something: "
        "an outcome, criteria, decisive, missing or error"
    ]
    names = [case.name for case, file, _ in loaded.cases if file == "rules/extra_test.yaml"]
    assert names == ["checks the outcome", "an unknown criterion", "only an error"]


def test_an_unknown_criterion_is_a_load_error(tmp_path: Path) -> None:
    directory = rules_with(tmp_path, "extra_test.yaml", CASES)
    loaded = load_cases(directory, {"INC-ADULT"})
    found = [str(p) for p in loaded.problems if p.file == "rules/extra_test.yaml"]
    assert (
        "rules/extra_test.yaml:15:41: unknown_criterion: case 'an unknown criterion' expects NOPE-X, which the rule set does not define"
        in found
    ), found
    assert any(
        p.startswith("rules/extra_test.yaml:15:66: unknown_criterion") and "NOPE-Y" in p for p in found
    )
    assert len(found) == 3, found
    assert found == sorted(found, key=lambda p: (p.split(":")[0], int(p.split(":")[1]), int(p.split(":")[2])))


def test_rules_test_exits_1_on_a_load_error_and_lists_them_all(tmp_path: Path) -> None:
    directory = rules_with(tmp_path, "extra_test.yaml", CASES)
    result = CliRunner().invoke(main, ["rules", "test", str(directory)])
    assert result.exit_code == 1, result.output
    assert "extra_test.yaml:10:5: invalid_value" in result.output
    assert "extra_test.yaml:15:41: unknown_criterion" in result.output
    assert "extra_test.yaml:15:66: unknown_criterion" in result.output


def test_unusable_test_files_are_problems_not_tracebacks(tmp_path: Path) -> None:
    directory = rules_with(tmp_path, "a_test.yaml", "- just\n- a list\n")
    (directory / "b_test.yaml").write_text("cases: {a: 1}\n")
    (directory / "c_test.yaml").write_text(
        "cases:\n  - [1]\n  - name: x\n    as_of: soon\n    extends: eligible_adult\n    expect: {outcome: maybe}\n"
    )
    (directory / "d_test.yaml").write_bytes(b"cases: \xff\n")
    found = [str(p) for p in load_cases(directory).problems]
    assert "rules/a_test.yaml:1:1: invalid_file: a test file must be a mapping" in found, found
    assert "rules/b_test.yaml:1:1: invalid_value: cases: expected a list" in found, found
    assert "rules/c_test.yaml:2:5: invalid_value: cases.0: expected a mapping" in found, found
    assert any(p.startswith("rules/c_test.yaml:4:") and "as_of" in p for p in found), found
    assert any(p.startswith("rules/c_test.yaml:6:") and "outcome" in p for p in found), found
    assert any(p.startswith("rules/d_test.yaml:1:8: not_utf8") for p in found), found
    assert not any("Case" in p or "Expect" in p or "TestFile" in p for p in found), found
