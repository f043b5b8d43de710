"""Rule tests: the ``*_test.yaml`` files beside the rules, run through the real engine.

A test file has optional named ``records`` (shared by every test file of the directory)
and a list of ``cases``::

    records:
      eligible_adult: {id: base, birth_date: 1975-03-02, ...}
    cases:
      - name: systolic above the limit excludes
        as_of: 2026-11-22
        extends: eligible_adult          # or `record:` with a whole record
        with: {blood_pressure: [{systolic: 186, diastolic: 90, date: 2026-11-01}]}
        expect:
          outcome: ineligible
          criteria: {EXC-BP-UNCONTROLLED: met}
          missing: [a blood pressure reading]   # substrings of missing_information

A case must expect something (an outcome, criteria, decisive, missing or error), and the
criteria it names must exist: either is a load error with its line, like a YAML error.
``screening rules test`` and the pytest suite both run them.
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from screening.decision import NotScreened
from screening.errors import Problem, ScreeningError
from screening.intake import Screener
from screening.ruleset.loading import pydantic_problems, yaml_files
from screening.ruleset.yamlsource import Positions, load_yaml


class Expect(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: (
        Literal["eligible", "eligible_with_cautions", "needs_information", "needs_review", "ineligible"]
        | None
    ) = None
    criteria: dict[str, Literal["met", "not_met", "unknown"]] = {}
    decisive: list[str] = []
    missing: list[str] = []
    error: str | None = None

    @model_validator(mode="after")
    def _expects_something(self) -> Expect:
        if not (self.outcome or self.criteria or self.decisive or self.missing or self.error):
            raise ValueError("a case must expect something: an outcome, criteria, decisive, missing or error")
        return self


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    as_of: date
    record: dict[str, Any] | None = None
    extends: str | None = None
    with_: dict[str, Any] = {}
    expect: Expect

    def __init__(self, **data: Any) -> None:
        if "with" in data:
            data["with_"] = data.pop("with")
        super().__init__(**data)


class TestFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    records: dict[str, dict[str, Any]] = {}
    cases: list[Case] = []


@dataclass
class CaseResult:
    file: str
    line: int
    name: str
    failures: list[str] = field(default_factory=list)
    decision: Any = None
    """The case's decision (None when screening raised): rule coverage is measured on it."""

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class LoadedCases:
    cases: list[tuple[Case, str, int]]
    records: dict[str, dict[str, Any]]
    problems: list[Problem]


def test_files(directory: Path) -> list[Path]:
    return [p for p in yaml_files(directory) if p.name.endswith("_test.yaml")]


def load_cases(directory: Path, criteria: Collection[str] | None = None) -> LoadedCases:
    """Every case of every test file, with problems instead of exceptions.

    A case that fails its schema is reported and the others are still loaded. Given the
    rule set's ``criteria`` ids, a case that expects an unknown criterion is a problem too.
    """
    loaded = LoadedCases([], {}, [])
    for path in test_files(directory):
        name = str(path.relative_to(directory.parent))
        data, positions, problems = load_yaml(path, name)
        loaded.problems.extend(problems)
        if data is None:
            continue
        if not isinstance(data, dict):
            loaded.problems.append(positions.problem((), "invalid_file", "a test file must be a mapping"))
            continue
        try:
            parsed = TestFile.model_validate({k: v for k, v in data.items() if k != "cases"})
        except ValidationError as error:
            loaded.problems.extend(pydantic_problems(error, positions))
        else:
            loaded.records.update(parsed.records)
        cases = data.get("cases", [])
        if not isinstance(cases, list):
            loaded.problems.append(positions.problem(("cases",), "invalid_value", "cases: expected a list"))
            continue
        for index, raw in enumerate(cases):
            where = ("cases", index)
            try:
                case = Case.model_validate(raw)
            except ValidationError as error:
                loaded.problems.extend(pydantic_problems(error, positions, where))
                continue
            loaded.cases.append((case, name, _line(positions, index)))
            if criteria is not None:
                loaded.problems.extend(_unknown_criteria(case, positions, where, criteria))
    for case, name, line in loaded.cases:
        if case.extends and case.extends not in loaded.records:
            loaded.problems.append(
                Problem(
                    name,
                    line,
                    1,
                    "undefined_record",
                    f"case {case.name!r} extends unknown record {case.extends!r}",
                )
            )
        if (case.record is None) == (case.extends is None):
            loaded.problems.append(
                Problem(
                    name,
                    line,
                    1,
                    "invalid_case",
                    f"case {case.name!r} needs exactly one of 'record' or 'extends'",
                )
            )
    loaded.problems.sort()
    return loaded


def _unknown_criteria(
    case: Case, positions: Positions, where: tuple[str, int], criteria: Collection[str]
) -> list[Problem]:
    expect = case.expect
    named = [("criteria", c) for c in expect.criteria] + [
        ("decisive", i) for i in range(len(expect.decisive))
    ]
    out = []
    for key, item in named:
        criterion_id = item if isinstance(item, str) else expect.decisive[item]
        if criterion_id not in criteria:
            out.append(
                positions.problem(
                    (*where, "expect", key, item),
                    "unknown_criterion",
                    f"case {case.name!r} expects {criterion_id}, which the rule set does not define",
                )
            )
    return out


def _line(positions: Positions, index: int) -> int:
    return positions.of(("cases", index))[0]


def case_record(case: Case, records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    base = copy.deepcopy(records[case.extends] if case.extends else case.record or {})
    base.update(copy.deepcopy(case.with_))
    base.setdefault("id", case.name)
    return base


def run_case(
    screener: Screener, case: Case, records: dict[str, dict[str, Any]], file: str, line: int
) -> CaseResult:
    result = CaseResult(file, line, case.name)
    expect = case.expect
    try:
        decision = screener.screen(case_record(case, records), as_of=case.as_of)
    except ScreeningError as error:
        if expect.error and expect.error in str(error):
            return result
        result.failures.append(f"raised {error.code}: {error}")
        return result
    if isinstance(decision, NotScreened):
        if not (expect.error and expect.error in decision.message):
            result.failures.append(f"not screened: {decision.reason}")
        return result
    result.decision = decision
    if expect.error:
        result.failures.append(
            f"expected an error containing {expect.error!r}, got outcome {decision.outcome.value}"
        )
    if expect.outcome and decision.outcome.value != expect.outcome:
        result.failures.append(
            f"outcome: expected {expect.outcome}, got {decision.outcome.value} ({decision.summary})"
        )
    statuses = decision.statuses
    for criterion_id, status in expect.criteria.items():
        if criterion_id not in statuses:
            result.failures.append(f"{criterion_id}: no such criterion")
        elif statuses[criterion_id] != status:
            got = decision.criterion(criterion_id)
            result.failures.append(f"{criterion_id}: expected {status}, got {got.status} ({got.reason})")
    decisive = {c.id for c in decision.criteria if c.decisive}
    for criterion_id in expect.decisive:
        if criterion_id not in decisive:
            result.failures.append(
                f"{criterion_id}: expected to be decisive; decisive were {sorted(decisive)}"
            )
    for wanted in expect.missing:
        if not any(wanted in item for item in decision.missing_information):
            result.failures.append(f"missing_information lacks {wanted!r}: {decision.missing_information}")
    return result


def run_directory(
    screener: Screener, directory: Path, pattern: str | None = None
) -> tuple[list[CaseResult], list[Problem]]:
    """Run every case, or those whose name or file:line contains ``pattern`` (any case)."""
    loaded = load_cases(directory, {c.id for c in screener.ruleset.criteria})
    if loaded.problems:
        return [], loaded.problems
    wanted = pattern.lower() if pattern else None
    return [
        run_case(screener, case, loaded.records, file, line)
        for case, file, line in loaded.cases
        if wanted is None or wanted in case.name.lower() or wanted in f"{file}:{line}".lower()
    ], []
