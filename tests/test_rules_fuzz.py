"""Broken rule files: every mutation of the real rule directory either loads and screens the
examples, or is refused with positioned problems (``RuleSetError``), never another exception.

Each example mutates one rule file (any of them, ``valuesets/`` included) of a copy of
``rules/``: a key deleted or misspelt, a value of another type, an id duplicated, a
reference broken, a list emptied, a number written as a string, the text cut short.
Bounded in CI; ``pytest --hypothesis-profile=long tests/test_rules_fuzz.py`` runs longer.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from screening import RuleSetError, Screener, load_ruleset
from screening.cli import main
from screening.decision import Decision
from screening.ruleset.loading import rule_files

from .conftest import AS_OF, ROOT, RULES

EXAMPLES = [orjson.loads(p.read_bytes()) for p in sorted((ROOT / "examples").glob("*.json"))]
FILES = [p.relative_to(RULES) for p in rule_files(RULES)]
ORIGINAL = {name: (RULES / name).read_text() for name in FILES}
DATA = {name: yaml.safe_load(text) for name, text in ORIGINAL.items()}
# Directory-level problems (no file holds the ruleset section, or no criteria at all) have
# no line; every other problem points into a file.
DIRECTORY_CODES = {"missing_ruleset", "no_criteria"}
# 120 examples of one to three mutations each keep CI under about 30 s; a profile with
# more examples (the "long" one in conftest) runs more.
EXAMPLES_TO_RUN = max(120, settings.default.max_examples)

DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml: the big value sets dump 10x faster
PathKey = tuple[Any, ...]


def paths(value: Any, prefix: PathKey = ()) -> Iterator[PathKey]:
    """Every path to a value inside a loaded document, containers included."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, (*prefix, index))


PATHS = {name: [p for p in paths(data) if p] for name, data in DATA.items()}
OTHER_VALUES = [
    None,
    True,
    False,
    0,
    -1,
    1.5,
    1e-7,
    1e300,
    2**64,
    "",
    "text",
    "$no_such_parameter",
    "no_such_name",
    "INC-ADULT",
    "2026-01-01",
    [],
    [1, "a"],
    {},
    {"fact": "age_years", "ge": 18},
    {"unexpected": 1},
    "x" * 5000,
]


def _get(data: Any, path: PathKey) -> Any:
    for key in path:
        data = data[key]
    return data


def mutate(data: Any, path: PathKey, kind: str, other: Any) -> Any:
    """A deep copy of ``data`` with one change at ``path``."""
    data = orjson.loads(orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS, default=str))
    parent, key = _get(data, path[:-1]), path[-1]
    value = parent[key]
    if kind == "delete":
        del parent[key]
    elif kind == "rename" and isinstance(parent, dict):
        renamed = {(f"{k}x" if k == key else k): v for k, v in parent.items()}
        parent.clear()
        parent.update(renamed)
    elif kind == "duplicate" and isinstance(parent, list):
        parent.append(value)  # a criterion twice: a duplicate id
    elif kind == "duplicate" and isinstance(parent, dict):
        parent[f"{key}_copy"] = value
    elif kind == "empty":
        parent[key] = type(value)() if isinstance(value, (list, dict, str)) else None
    elif kind == "stringify":
        parent[key] = str(value)
    elif kind == "break_reference" and isinstance(value, str):
        parent[key] = value + "_undefined"
    else:
        parent[key] = other
    return data


def check(directory: Path) -> None:
    """The rule directory loads and screens every example, or is refused with positions."""
    try:
        ruleset = load_ruleset(directory)
    except RuleSetError as error:
        assert error.problems
        for problem in error.problems:
            assert problem.code and problem.message
            if problem.code not in DIRECTORY_CODES:
                assert problem.file.endswith(".yaml"), problem
                assert problem.line >= 1, problem
        return
    screener = Screener(ruleset=ruleset)
    try:
        for record in EXAMPLES:  # none of them is deceased
            assert isinstance(screener.screen(record, AS_OF), Decision)
    finally:
        screener.engine.close()


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "rules"
        shutil.copytree(RULES, directory)
        yield directory


def _restore(directory: Path) -> None:
    for name, text in ORIGINAL.items():
        (directory / name).write_text(text)
    for extra in directory.rglob("*.extra.yaml"):
        extra.unlink()


@st.composite
def mutations(draw: st.DrawFn) -> tuple[Path, str, str]:
    name = draw(st.sampled_from(FILES))
    kind = draw(
        st.sampled_from(
            ["delete", "rename", "retype", "duplicate", "empty", "stringify", "break_reference", "truncate"]
        )
    )
    if kind == "truncate":
        text = ORIGINAL[name]
        return name, kind, text[: draw(st.integers(0, len(text)))]
    path = draw(st.sampled_from(PATHS[name]))
    other = draw(st.sampled_from(OTHER_VALUES))
    mutated = mutate(DATA[name], path, kind, other)
    return name, f"{kind} {path}", yaml.dump(mutated, Dumper=DUMPER, sort_keys=False, allow_unicode=True)


@settings(
    max_examples=EXAMPLES_TO_RUN,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(changes=st.lists(mutations(), min_size=1, max_size=3, unique_by=lambda m: m[0]))
def test_a_mutated_rule_directory_loads_and_screens_or_is_refused_with_positions(
    workdir: Path, changes: list[tuple[Path, str, str]]
) -> None:
    # Up to three files changed at once: the loader must carry on past each of them.
    try:
        for name, _, text in changes:
            (workdir / name).write_text(text)
        check(workdir)
    finally:
        _restore(workdir)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    section=st.sampled_from(["sources", "parameters", "value_sets", "facts"]),
    index=st.integers(0, 1000),
)
def test_an_entry_copied_into_another_file_is_a_duplicate_id(workdir: Path, section: str, index: int) -> None:
    found = [(name, key, v) for name, d in DATA.items() for key, v in (d.get(section) or {}).items()]
    _, key, value = found[index % len(found)]
    try:
        (workdir / "zz.extra.yaml").write_text(yaml.safe_dump({section: {key: value}}))
        with pytest.raises(RuleSetError) as caught:
            load_ruleset(workdir)
        assert any(
            p.code == "duplicate_id" and p.file.endswith("zz.extra.yaml") for p in caught.value.problems
        )
    finally:
        _restore(workdir)


def test_a_misspelt_key_in_a_source_is_a_positioned_problem_not_a_traceback(workdir: Path) -> None:
    text = ORIGINAL[Path("ruleset.yaml")]
    assert "    label: ASRA" in text
    try:
        (workdir / "ruleset.yaml").write_text(text.replace("    label: ASRA", "    lable: ASRA", 1))
        result = CliRunner().invoke(main, ["rules", "validate", str(workdir)])
        assert result.exit_code == 1, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert "rules/ruleset.yaml:14:5: unknown_key: unknown key 'sources.cohen2018.lable'" in result.output
        assert "Traceback" not in result.output
        served = CliRunner().invoke(main, ["serve", "--rules", str(workdir), "--port", "0"])
        assert served.exit_code == 1, served.output  # refused before the server starts
        assert "rules/ruleset.yaml:14:5: unknown_key" in served.output
    finally:
        _restore(workdir)


def test_the_unmutated_copy_loads_and_screens(workdir: Path) -> None:
    check(workdir)
    assert load_ruleset(workdir).sha256 == load_ruleset(RULES).sha256


def test_a_list_or_mapping_where_a_name_belongs_is_a_positioned_problem(workdir: Path) -> None:
    """Found by the long fuzz run: an unhashable argument was a TypeError in checks.py."""
    facts = DATA[Path("facts.yaml")]["facts"]
    changed = orjson.loads(orjson.dumps(DATA[Path("facts.yaml")]))
    for kind, value in (
        ("value_sets", [["opioids"]]),
        ("value_set", {"a": 1}),
        ("answered_by", ["conditions"]),
    ):
        name = next(n for n, f in facts.items() if kind in (f.get("args") or {}))
        changed["facts"][name]["args"][kind] = value
    try:
        (workdir / "facts.yaml").write_text(yaml.dump(changed, Dumper=DUMPER, sort_keys=False))
        with pytest.raises(RuleSetError) as caught:
            load_ruleset(workdir)
        found = [p for p in caught.value.problems if p.code == "invalid_argument"]
        assert {p.message.split(":")[0] for p in found} >= {"value_sets", "value_set", "answered_by"}
        assert all(p.file.endswith("facts.yaml") and p.line > 1 for p in found)
    finally:
        _restore(workdir)
