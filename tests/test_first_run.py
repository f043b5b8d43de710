"""What a new user tries first: python -m, --version, the inputs they have at hand
(examples/, one pretty-printed JSON file), --out -, rerunning a command, a curl without a
content type, a missing file, a broken rule set."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from screening import Screener
from screening.batch.inputs import detect_format
from screening.batch.run import run_batch
from screening.cli import main
from screening.errors import InputError
from screening.service.app import create_app

from .conftest import AS_OF, ROOT, RULES, eligible_record

EXAMPLES = ROOT / "examples"
BUNDLES = ROOT / "tests" / "fixtures" / "fhir" / "synthea-r4-bundles"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def batch(*args: str) -> tuple[int, str, str]:
    return run("batch", *args, "--as-of", AS_OF, "--rules", str(RULES), "-w", "1", "-q")


def python_m(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m screening`` in a process of its own (real stdout, real worker processes)."""
    return subprocess.run([sys.executable, "-m", "screening", *args], capture_output=True, text=True)


def lines_of(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_python_m_screening_shows_the_version_and_the_rule_set(screener: Screener) -> None:
    done = python_m("--version")
    assert done.returncode == 0, done.stderr
    ruleset = screener.ruleset
    assert done.stdout.startswith("screening ")
    assert f"{ruleset.id} {ruleset.version}" in done.stdout and ruleset.sha256 in done.stdout


def test_a_missing_or_unreadable_file_is_bad_input_exit_1_not_a_usage_error(tmp_path: Path) -> None:
    code, _, err = run("check", str(tmp_path / "missing.json"))
    assert code == 1 and "missing.json: cannot be read: No such file or directory" in err
    code, _, err = run("check", str(tmp_path))
    assert code == 1 and "cannot be read" in err and "Traceback" not in err


def test_a_folder_of_json_records_is_screened_one_line_per_file(tmp_path: Path) -> None:
    assert detect_format(EXAMPLES) == "json"
    out = tmp_path / "out.jsonl"
    code, _, err = batch(str(EXAMPLES), "--out", str(out))
    assert code == 0, err
    lines = lines_of(out)
    files = sorted(EXAMPLES.glob("*.json"))
    assert [line["source"] for line in lines] == [str(f) for f in files]
    for line, file in zip(lines, files, strict=True):
        decision = line["decision"]
        assert isinstance(decision, dict) and decision["outcome"] == file.stem.split("__")[0]


def test_one_pretty_printed_json_file_is_one_record_and_an_array_is_its_records(tmp_path: Path) -> None:
    example = EXAMPLES / "needs_review.json"
    assert detect_format(example) == "json"
    out = tmp_path / "one.jsonl"
    assert batch(str(example), "--out", str(out))[0] == 0
    [line] = lines_of(out)
    assert line["source"] == str(example) and line["decision"]["outcome"] == "needs_review"  # type: ignore[index]

    records = tmp_path / "records.json"
    records.write_text(json.dumps([eligible_record(id="a"), eligible_record(id="b"), 7], indent=2))
    out = tmp_path / "array.jsonl"
    assert batch(str(records), "--out", str(out))[0] == 2  # the 7 gets an error line
    lines = lines_of(out)
    assert [line["record_id"] for line in lines[:2]] == ["a", "b"]
    assert [line["source"] for line in lines] == [f"{records}[{i}]" for i in range(3)]
    assert "error" in lines[2]


def test_a_record_folder_gives_error_lines_for_files_that_are_not_records(tmp_path: Path) -> None:
    folder = tmp_path / "records"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps(eligible_record(id="a")))
    (folder / "b.json").write_text('{"id": "b",')
    shutil.copy(next(BUNDLES.glob("*.json")), folder / "c.json")
    assert detect_format(folder) == "fhir"  # a Bundle among the first files: a Bundle folder
    out = tmp_path / "out.jsonl"
    assert batch(str(folder), "--out", str(out), "--input-format", "json")[0] == 2
    a, b, c = lines_of(out)
    assert a["decision"]["outcome"] == "eligible"  # type: ignore[index]
    assert "not valid JSON" in b["error"]["message"]  # type: ignore[index]
    assert "a FHIR resource, not a native record" in c["error"]["message"]  # type: ignore[index]


def test_bundle_folders_and_one_line_bundles_are_still_fhir(tmp_path: Path) -> None:
    folder = tmp_path / "bundles"
    shutil.copytree(BUNDLES, folder)
    (folder / "MANIFEST.json").write_text('{"note": "not a resource"}')  # sorts first
    assert detect_format(folder) == "fhir"
    one_line = tmp_path / "bundle.json"
    one_line.write_text(json.dumps(json.loads(next(BUNDLES.glob("*.json")).read_text())))
    assert detect_format(one_line) == "fhir"


def test_inputs_with_no_record_are_refused_before_the_output_is_opened(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    no_records = tmp_path / "none.json"
    no_records.write_text("[]")
    notes_only = tmp_path / "notes"
    notes_only.mkdir()
    (notes_only / "MANIFEST.json").write_text('{"note": "x"}')
    out = tmp_path / "out.jsonl"
    for inputs in ([empty], [no_records], [empty, no_records]):
        code, _, err = batch(*map(str, inputs), "--out", str(out))
        assert code == 1 and "no records were read from" in err and str(inputs[0]) in err, err
        assert not out.exists()
    with pytest.raises(InputError, match="passed over"):  # says why: the notes
        run_batch([notes_only], out, rules=RULES, as_of=AS_OF, workers=1, input_format="fhir")
    assert not out.exists()


def test_out_dash_writes_the_lines_to_stdout_and_the_summary_to_stderr() -> None:
    done = python_m(
        "batch",
        str(EXAMPLES / "eligible.json"),
        "--out",
        "-",
        "--as-of",
        AS_OF,
        "--rules",
        str(RULES),
        "-w",
        "1",
    )
    assert done.returncode == 0, done.stderr
    [line] = [json.loads(text) for text in done.stdout.splitlines()]
    assert line["decision"]["outcome"] == "eligible"
    assert "1 records" in done.stderr and "-> standard output" in done.stderr
    code, _, err = batch(str(EXAMPLES), "--out", "-", "--resume")
    assert code == 1 and "standard output ('-') cannot resume" in err


def test_an_output_with_results_is_overwritten_only_with_force(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    assert batch(str(EXAMPLES / "eligible.json"), "--out", str(out))[0] == 0
    first = out.read_bytes()
    code, _, err = batch(str(EXAMPLES), "--out", str(out))
    assert code == 1 and "already holds results; pass --resume to finish it, or --force" in err
    assert out.read_bytes() == first
    assert batch(str(EXAMPLES), "--out", str(out), "--force")[0] == 0
    assert len(lines_of(out)) == len(list(EXAMPLES.glob("*.json")))
    empty = tmp_path / "empty.jsonl"
    empty.touch()  # an empty file (from mktemp, say) holds nothing to lose
    assert batch(str(EXAMPLES / "eligible.json"), "--out", str(empty))[0] == 0


def test_a_broken_rule_set_is_one_message_from_the_parent_not_a_traceback_per_worker(
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    with (rules / "exclusions.yaml").open("a") as file:
        file.write("criteria: [{id: X\n")
    done = python_m(
        "batch", str(EXAMPLES), "--out", str(tmp_path / "o.jsonl"), "--rules", str(rules), "-w", "2"
    )
    assert done.returncode == 1
    assert "exclusions.yaml" in done.stderr and "yaml_syntax" in done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "o.jsonl").exists()


def test_a_form_content_type_gets_a_415_that_says_how_to_send_json(screener: Screener) -> None:
    client = TestClient(create_app(screener))
    body = json.dumps(eligible_record())
    # What curl -d sends without -H.
    response = client.post(
        "/screen", content=body, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 415
    message = response.json()["message"]
    assert "Content-Type: application/json" in message and "application/x-www-form-urlencoded" in message
    assert "-H 'Content-Type: application/json'" in message and "--json" in message
