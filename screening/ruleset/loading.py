"""Loading a rule directory: read every file with positions, validate each entry against its
schema, merge, and have :mod:`checks` build the :class:`RuleSet`."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from screening.aggregates.base import ANSWER_FIELDS
from screening.errors import Problem, RuleSetError
from screening.ruleset import checks
from screening.ruleset.model import (
    Loaded,
    M,
    RuleSet,
    SiteValue,
)
from screening.ruleset.schema import (
    KEYED_MODELS,
    NAME_PATTERN,
    NAME_RULE,
    SECTIONS,
    CriterionDef,
    DosingDef,
    RulesetMeta,
)
from screening.ruleset.yamlsource import PathKey, Positions, load_yaml


def yaml_files(directory: Path) -> list[Path]:
    """Every ``*.yaml`` below ``directory``, skipping hidden folders (``.venv``, ``.git``)."""
    return sorted(
        path
        for path in directory.rglob("*.yaml")
        if not any(part.startswith(".") for part in path.relative_to(directory).parts)
    )


def rule_files(directory: Path) -> list[Path]:
    """The rule files of a directory (tests excluded), in a stable order."""
    return [p for p in yaml_files(directory) if not p.name.endswith("_test.yaml")]


def content_hash(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in rule_files(directory):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def load_ruleset(directory: Path | str, overrides_file: Path | str | None = None) -> RuleSet:
    """Load, check and build a rule set; raise RuleSetError listing every problem.

    Loading carries on past every problem: a file that does not parse leaves the others to
    be checked, an entry that fails its schema leaves the rest of its file, and uses of a
    broken name are not reported again as undefined.
    """

    directory = Path(directory)
    if not directory.is_dir():
        raise RuleSetError([Problem(str(directory), 0, 0, "not_a_directory", "rule directory not found")])
    files = rule_files(directory)
    if not files:
        raise RuleSetError([Problem(str(directory), 0, 0, "no_rule_files", "no *.yaml rule files found")])
    problems: list[Problem] = []
    loaded = Loaded()
    for path in files:
        _read_file(path, str(path.relative_to(directory.parent)), loaded, problems)
    site = read_overrides(Path(overrides_file), problems) if overrides_file is not None else []
    sha256 = content_hash(directory) if not problems else ""
    ruleset = checks.build(loaded, directory, sha256, site, problems)
    if problems or ruleset is None:
        raise RuleSetError(list(dict.fromkeys(problems)))  # one per place, however many uses
    return ruleset


def _read_file(path: Path, name: str, loaded: Loaded, problems: list[Problem]) -> None:
    data, positions, found = load_yaml(path, name)
    problems.extend(found)
    if data is None:
        loaded.fail(name)
        if isinstance(positions.partial, dict):
            _note_broken(positions.partial, loaded)
        return
    if positions.empty:
        problems.append(positions.problem((), "empty_file", "the file is empty"))
        loaded.fail(name)
        return
    if not isinstance(data, dict):
        problems.append(positions.problem((), "invalid_file", "a rule file must be a mapping of sections"))
        loaded.fail(name)
        return
    for section, value in data.items():
        where: PathKey = (section,)
        if section not in SECTIONS:
            problems.append(positions.problem(where, "unknown_key", f"unknown section {section!r}"))
        elif section == "ruleset":
            loaded.meta_places.append(positions)
            meta = _validate(RulesetMeta, value, positions, where, problems)
            if meta:
                loaded.meta.append((meta, positions))
        elif section == "criteria":
            _read_criteria(value, positions, loaded, problems)
        elif section == "dosing":
            loaded.dosing = _validate(DosingDef, value, positions, where, problems) or loaded.dosing
        elif not isinstance(value, dict):
            problems.append(positions.problem(where, "invalid_value", f"{section}: expected a mapping"))
            loaded.fail(f"the {section} section of {name}", section)
        else:
            for key, entry in value.items():
                _read_entry(section, key, entry, positions, loaded, problems)


def _validate(
    model: type[M], value: Any, positions: Positions, where: PathKey, problems: list[Problem]
) -> M | None:
    try:
        return model.model_validate(value)
    except ValidationError as error:
        problems.extend(pydantic_problems(error, positions, where))
        return None


def _read_entry(
    section: str, key: str, value: Any, positions: Positions, loaded: Loaded, problems: list[Problem]
) -> None:
    where = (section, key)
    defined = loaded.defined.setdefault(section, {})
    if key in defined:
        other, other_path = defined[key]
        problems.append(
            positions.problem(
                where, "duplicate_id", f"{section} {key!r} is already defined at {other.where(other_path)}"
            )
        )
        return
    defined[key] = (positions, where)
    parsed: Any = None
    if section == "answers":
        # The record lists that may be blank: the same names an answered_by argument takes.
        if key not in ANSWER_FIELDS:
            problems.append(
                positions.problem(
                    where, "unknown_key", f"answers: {key!r} is not one of {', '.join(ANSWER_FIELDS)}"
                )
            )
        elif not isinstance(value, str):
            problems.append(positions.problem(where, "invalid_value", f"answers.{key}: expected a string"))
        else:
            parsed = value
    elif not NAME_PATTERN.match(key):
        problems.append(
            positions.problem(
                where, "invalid_name", f"{section}: {key!r} is not a valid name: a name {NAME_RULE}"
            )
        )
    else:
        parsed = _validate(KEYED_MODELS[section], value, positions, where, problems)
    if parsed is None:
        _note_broken({section: {key: value}}, loaded)
        return
    loaded.sections.setdefault(section, {})[key] = (parsed, positions, where)


def _read_criteria(value: Any, positions: Positions, loaded: Loaded, problems: list[Problem]) -> None:
    if not isinstance(value, list):
        problems.append(positions.problem(("criteria",), "invalid_value", "criteria: expected a list"))
        loaded.fail(f"the criteria section of {positions.file}", "criteria")
        return
    for index, item in enumerate(value):
        criterion = _validate(CriterionDef, item, positions, ("criteria", index), problems)
        if criterion:
            loaded.criteria.append((criterion, positions, index))
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            loaded.criterion_ids.append((item["id"], positions, index))


def _note_broken(data: dict[str, Any], loaded: Loaded) -> None:
    """Remember the names a broken file or entry defines, with the facts its ``also:`` adds."""
    for section in KEYED_MODELS:
        entries = data.get(section)
        if not isinstance(entries, dict):
            continue
        names = loaded.broken.setdefault(section, set())
        for key, entry in entries.items():
            names.add(str(key))
            also = entry.get("also") if isinstance(entry, dict) else None
            if section == "facts" and isinstance(also, list):
                names.update(f"{key}_{output}" for output in also if isinstance(output, str))
    criteria = data.get("criteria")
    if isinstance(criteria, list):
        ids = {c["id"] for c in criteria if isinstance(c, dict) and isinstance(c.get("id"), str)}
        loaded.broken.setdefault("criteria", set()).update(ids)


_MESSAGES = {
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "list_type": "expected a list",
    "string_type": "expected a string",
    "bool_type": "expected true or false",
    "int_type": "expected a whole number",
    "float_type": "expected a number",
    "date_type": "expected a date (YYYY-MM-DD)",
    "missing": "is required",
}


def pydantic_problems(error: ValidationError, positions: Positions, prefix: PathKey = ()) -> list[Problem]:
    """Each pydantic error as a positioned problem with a plain message (no class names)."""
    out = []
    seen = set()
    for item in error.errors(include_url=False):
        loc = (*prefix, *(p for p in item["loc"] if p != "[key]"))
        key = ".".join(str(p) for p in loc)
        if item["type"] == "extra_forbidden":
            out.append(positions.problem(loc, "unknown_key", f"unknown key {key!r}"))
            continue
        message = _MESSAGES.get(item["type"]) or item["msg"].removeprefix("Value error, ")
        code = "missing_key" if item["type"] == "missing" else "invalid_value"
        if (loc, message) in seen:
            continue
        seen.add((loc, message))
        out.append(positions.problem(loc, code, f"{key}: {message}" if key else message))
    return out


def read_overrides(path: Path, problems: list[Problem]) -> list[SiteValue]:
    """Read a site parameter file: ``parameters: {name: value}`` (or a flat mapping).

    Only its shape is checked here; :func:`screening.ruleset.checks.build` checks each value
    against the parameter's definition and the order constraints.
    """
    data, positions, found = load_yaml(path, str(path))
    problems.extend(found)
    if data is None:
        return []
    prefix: tuple[str, ...] = ()
    if isinstance(data, dict) and set(data) == {"parameters"}:
        data, prefix = data["parameters"], ("parameters",)
        if data is None:
            data = {}
    if not isinstance(data, dict):
        problems.append(
            positions.problem(prefix, "invalid_file", "expected a mapping of parameter names to values")
        )
        return []
    return [SiteValue(name, value, positions, (*prefix, name)) for name, value in data.items()]
