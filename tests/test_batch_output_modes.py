"""Batch outputs hold patient data: --out, --report and --summary are created 0600 whatever
the umask, unless --mode asks for another."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from screening.batch.output import OUTPUT_MODE, LineWriter
from screening.batch.run import run_batch
from screening.cli import main

from .conftest import AS_OF, RULES, eligible_record


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that narrows nothing: the modes must come from the code, not from it."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def patients(tmp_path: Path) -> Path:
    path = tmp_path / "patients.jsonl"
    path.write_bytes(b"".join(orjson.dumps(eligible_record(id=f"p{i}")) + b"\n" for i in range(3)))
    return path


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _batch(patients: Path, tmp_path: Path, *extra: str) -> list[Path]:
    out, report, summary = tmp_path / "out.jsonl", tmp_path / "report.html", tmp_path / "summary.csv"
    arguments = [str(patients), "--out", str(out), "--report", str(report), "--summary", str(summary)]
    arguments += ["--as-of", AS_OF, "--rules", str(RULES), "--workers", "1", "-q", *extra]
    result = CliRunner().invoke(main, ["batch", *arguments])
    assert result.exit_code == 0, result.output
    return [out, report, summary]


@pytest.mark.usefixtures("open_umask")
def test_outputs_are_readable_by_their_owner_only(patients: Path, tmp_path: Path) -> None:
    for path in _batch(patients, tmp_path):
        assert mode_of(path) == 0o600, path


@pytest.mark.usefixtures("open_umask")
def test_existing_outputs_are_narrowed_too(patients: Path, tmp_path: Path) -> None:
    for name in ("out.jsonl", "report.html", "summary.csv"):
        (tmp_path / name).write_text("old")
        (tmp_path / name).chmod(0o666)
    for path in _batch(patients, tmp_path, "--force"):
        assert mode_of(path) == 0o600, path
        assert path.read_text() != "old"


@pytest.mark.usefixtures("open_umask")
def test_mode_asks_for_another(patients: Path, tmp_path: Path) -> None:
    for path in _batch(patients, tmp_path, "--mode", "640"):
        assert mode_of(path) == 0o640, path


@pytest.mark.parametrize("value", ["999", "rw", "1000"])
def test_a_mode_that_is_not_octal_is_refused(patients: Path, tmp_path: Path, value: str) -> None:
    result = CliRunner().invoke(main, ["batch", str(patients), "--out", str(tmp_path / "o"), "--mode", value])
    assert result.exit_code == 2
    assert "not a file mode in octal" in result.output


@pytest.mark.usefixtures("open_umask")
def test_run_batch_and_resume_keep_the_mode(patients: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    run_batch([patients], out, rules=RULES, as_of=AS_OF, workers=1)
    assert mode_of(out) == OUTPUT_MODE
    out.chmod(0o644)
    run_batch([patients], out, rules=RULES, as_of=AS_OF, workers=1, resume=True)
    assert mode_of(out) == OUTPUT_MODE


def test_a_device_keeps_its_own_mode(tmp_path: Path) -> None:
    before = mode_of(Path(os.devnull))
    with LineWriter(Path(os.devnull)) as writer:
        writer.write(b"x\n", 1)
    assert mode_of(Path(os.devnull)) == before
