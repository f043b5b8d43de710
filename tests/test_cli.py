"""The command line, through click's runner: outputs, exit codes and help."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from screening.cli import main

from .conftest import AS_OF, ROOT, RULES, eligible_record

EXAMPLES = sorted((ROOT / "examples").glob("*.json"))


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_examples_decide_as_their_names_say(example: Path) -> None:
    code, out, _ = run("check", str(example), "--as-of", AS_OF, "--format", "json")
    assert code == 0
    decision = json.loads(out)
    expected = example.stem.split("__")[0]
    assert decision["outcome"] == expected


def test_check_reads_stdin_and_renders_text() -> None:
    code, out, _ = run("check", "-", "--as-of", AS_OF, input=json.dumps(eligible_record()))
    assert code == 0
    assert out.startswith(" ELIGIBLE ")
    assert "criteria passed" in out and "Next steps" in out


def test_bad_input_exits_1_with_a_message_not_a_traceback() -> None:
    record = eligible_record(blood_pressure=[{"systolic": 40000, "diastolic": 80, "date": "2026-11-01"}])
    code, _out, err = run("check", "-", "--as-of", AS_OF, input=json.dumps(record))
    assert code == 1
    assert "blood_pressure[0].systolic" in err and "Traceback" not in err
    code, _, err = run("check", "-", input="{oops")
    assert code == 1 and "not valid JSON" in err


def test_rules_validate_test_and_show() -> None:
    code, out, _ = run("rules", "validate", str(RULES))
    assert code == 0 and out.startswith("ok: ketamine-chronic-pain")
    code, out, _ = run("rules", "test", str(RULES))
    assert code == 0 and " passed, 0 failed" in out
    code, out, _ = run("rules", "show", "--rules", str(RULES), "--compiled")
    assert code == 0 and "EXC-BP-UNCONTROLLED:met" in json.loads(out)


def test_rules_test_exit_codes(tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "rules"
    shutil.copytree(RULES, broken)
    cases = broken / "inclusion_test.yaml"
    cases.write_text(cases.read_text().replace("outcome: ineligible", "outcome: eligible", 1))
    code, out, _ = run("rules", "test", str(broken))
    assert code == 2 and "FAIL" in out
    (broken / "inclusion.yaml").write_text("criteria: [oops\n")
    code, _, err = run("rules", "test", str(broken))
    assert code == 1 and "yaml_syntax" in err


def test_schema_is_json_schema() -> None:
    code, out, _ = run("schema")
    schema = json.loads(out)
    assert code == 0 and schema["title"] == "Record" and "psychiatric_history" in schema["properties"]


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    out = []
    for name, command in group.commands.items():
        out.append((f"{prefix}{name}", command))
        if isinstance(command, click.Group):
            out.extend(_commands(command, f"{prefix}{name} "))
    return out


@pytest.mark.parametrize(("name", "command"), _commands(main), ids=[n for n, _ in _commands(main)])
def test_every_command_has_help_with_an_example(name: str, command: click.Command) -> None:
    code, out, _ = run(*name.split(), "--help")
    assert code == 0
    assert "Example" in out, f"{name} --help has no example"


@pytest.mark.parametrize(
    ("body", "kind"), [('"hello"', "a string"), ("[1, 2]", "an array"), ("7", "a number")]
)
def test_check_names_the_file_when_the_json_is_not_an_object(tmp_path: Path, body: str, kind: str) -> None:
    path = tmp_path / "not-a-record.json"
    path.write_text(body)
    code, _, err = run("check", str(path))
    assert code == 1
    assert f"{path}: a record must be a JSON object, not {kind}" in err
    assert "not valid JSON" not in err and "Traceback" not in err


def test_check_names_the_file_of_an_invalid_record(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(eligible_record(sex="robot")))
    code, _, err = run("check", str(path), "--as-of", AS_OF)
    assert code == 1
    headline, *problems = err.splitlines()
    assert headline == f"error: {path}: invalid_record: record 'base-eligible' has 1 invalid field:"
    assert len(problems) == 1 and problems[0].startswith("  sex: ")


def test_text_never_lists_an_unknown_caution_as_passed() -> None:
    # No blood pressure: CAU-BP-STAGE2 is unknown, and must appear under "Not checked" only.
    record = eligible_record(blood_pressure=[])
    code, out, _ = run("check", "-", "--as-of", AS_OF, "--all", input=json.dumps(record))
    assert code == 0
    passed = out.split("Criteria passed", 1)[1].split("Next steps", 1)[0]
    not_checked = out.split("Not checked", 1)[1].split("Criteria passed", 1)[0]
    assert "CAU-BP-STAGE2" not in passed
    assert "CAU-BP-STAGE2" in not_checked


def test_rules_test_reports_the_test_files_problems_with_the_rule_files(tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "rules"
    shutil.copytree(RULES, broken)
    (broken / "inclusion.yaml").write_text("criteria: [oops\n")
    (broken / "review_test.yaml").write_text("cases: [oops\n")
    code, _, err = run("rules", "test", str(broken))
    assert code == 1
    assert "inclusion.yaml:2" in err and "review_test.yaml:2" in err


CDS_EXAMPLES = ROOT / "tests" / "fixtures" / "fhir" / "cds-hooks-spec-examples"


@pytest.mark.parametrize(
    "name",
    [
        "hl7_cds_hooks_index__patient-view-request-with-prefetch.L220.json",
        "hl7_cds_hooks_index__order-sign-request.L307.json",
    ],
)
def test_check_screens_the_patient_of_a_cds_hooks_request(name: str) -> None:
    code, out, err = run("check", str(CDS_EXAMPLES / name), "--as-of", AS_OF, "--format", "json")
    assert code == 0, err
    answer = json.loads(out)
    assert answer["decision"]["outcome"] in {"needs_information", "ineligible"}
    assert answer["cards"] and answer["cards"][0]["indicator"] in {"warning", "critical"}
    code, out, _ = run("check", str(CDS_EXAMPLES / name), "--as-of", AS_OF)
    assert code == 0 and "record " in out.splitlines()[0]


def test_check_names_the_file_and_field_of_a_bad_cds_hooks_request(tmp_path: Path) -> None:
    path = tmp_path / "hook.json"
    path.write_text(json.dumps({"hook": "patient-view", "hookInstance": "x", "context": {}, "prefetch": {}}))
    code, _, err = run("check", str(path))
    assert code == 1
    assert f"{path}:context.patientId: the request's context has no patientId" in err


def test_text_lines_are_not_hard_wrapped_when_piped() -> None:
    code, out, _ = run("check", str(ROOT / "examples" / "eligible.json"), "--as-of", AS_OF, "--all")
    assert code == 0
    passed = [line for line in out.splitlines() if line.startswith("  ok ")]
    assert len(passed) >= 20  # one line per criterion, each whole with its sources
    assert all(line.endswith(")") for line in passed)
