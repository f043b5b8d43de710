"""Prove that two versions of the code give byte-identical output on the same inputs.

    python bench/same_output.py --before main                      # main against this working tree
    python bench/same_output.py --before HEAD~3 --after HEAD --records 20000
    python bench/same_output.py --before main --after ../other-checkout --keep /tmp/same

A side (--before, --after) is a directory, used as it is, or else a git ref of the
repository this script is in, checked out with ``git worktree add --detach`` into a
temporary folder and removed at the end (on Ctrl-C and SIGTERM too). --after defaults to
this working tree. Each side runs its own code: ``python -m screening ...`` with this
interpreter, in a subprocess whose cwd and PYTHONPATH are the side's tree; the script
stops (exit 2) if ``screening`` is not imported from that tree.

Inputs are made once, from the --before side, and both sides read the same files:

* a cohort of --records records (``screening generate --seed --as-of``), as JSONL and as CSV;
* for ``screening batch``: ``examples/`` (native records) and every folder under
  ``tests/fixtures`` that holds FHIR resources (``*.json``) or a Bulk Data export (``*.ndjson``);
* for ``screening check``: every ``*.json`` under ``examples/`` and ``tests/fixtures/``
  (records, Bundles, single resources, CDS Hooks requests and the malformed ones, whose
  error message is output as well).

What each side writes, the artefacts compared:

* ``screening batch --workers 2 --as-of AS_OF --quiet`` of the JSONL cohort and of the
  fixtures in every output mode that both sides offer (full, ``--compact``, and
  ``--detail outcome`` and Parquet once they exist), and of the CSV cohort in full: the
  output, the HTML report (``--report``) and the CSV summary (``--summary``) of each run;
* ``batch-status.txt``: the exit code and standard error of each batch run;
* ``check-json.txt`` and ``check-text.txt``: ``screening check --format json`` and
  ``--format text --no-color`` of each check input, each under a ``### path (exit N)``
  line, with its standard error;
* ``rules-compiled.json``: ``screening rules show --compiled``.

Normalised, because they change from one run to the next and not with the code (each
value becomes ``(normalised)``):

* in each HTML report, the values of the run table's "Time", "Throughput" and "Report
  generated" rows (:data:`RUN_TIME_ROWS`);
* in ``check-json.txt``, the ``"uuid"`` of each CDS Hooks card (a random UUID4 per card,
  as the CDS Hooks specification asks).

Nothing else is: the CSV summary holds counts only, and both
sides write to the same paths, one side after the other, so that the paths outputs name
(``source``, the report's inputs and output) are equal as they stand.

It prints a table (artefact, lines, sha256, same or different), the first differing line
of each side of each artefact that differs, and the time each side took; progress goes to
standard error. Exit code 0 when every artefact is the same, 1 when one differs, 2 when
the script cannot run (a bad ref, a side that is not a tree of this project).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parent.parent
AS_OF = "2026-11-22"
SEED = 1
WORKERS = "2"

# Rows of the report's run table that say how this run went, not what the code does.
RUN_TIME_ROWS = ("Time", "Throughput", "Report generated")
_RUN_TIME_NAMES = "|".join(map(re.escape, RUN_TIME_ROWS))
_RUN_TIME = re.compile(rf"(<tr><th>(?:{_RUN_TIME_NAMES})</th><td>)[^<]*(</td></tr>)")
_CARD_UUID = re.compile(rb'("uuid": ")[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(")')

# Output modes of `screening batch`: name, arguments, the word its --help must show on both
# sides for the mode to be run (None: always there), and the output's suffix.
MODES: tuple[tuple[str, tuple[str, ...], str | None, str], ...] = (
    ("full", (), None, ".jsonl"),
    ("compact", ("--compact",), "--compact", ".jsonl"),
    ("outcome", ("--detail", "outcome"), "--detail", ".jsonl"),
    ("parquet", (), "parquet", ".parquet"),
)


class SameOutputError(Exception):
    """The comparison cannot be made: a bad ref, or a side that does not run this project."""


@dataclasses.dataclass(frozen=True)
class Inputs:
    """The files both sides read: the cohort, the folders batch reads, the files check reads."""

    root: Path
    cohort_jsonl: Path
    cohort_csv: Path
    batch_fixtures: tuple[Path, ...]
    check_files: tuple[Path, ...]


@dataclasses.dataclass(frozen=True)
class Row:
    """One artefact of the comparison."""

    name: str
    before: bytes | None
    after: bytes | None

    @property
    def same(self) -> bool:
        return self.before is not None and self.before == self.after


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def python_in(tree: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """This interpreter run with ``tree``'s code first on its path (cwd and PYTHONPATH)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(tree), env.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, *args], cwd=tree, env=env, input=stdin, capture_output=True, check=False
    )


def screening(tree: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """``python -m screening ARGS`` run from ``tree``'s own code."""
    return python_in(tree, "-m", "screening", *args)


# Runs `python -m screening ARGS` for each ARGS list read (as JSON) from stdin, in this one
# process, as runpy runs a module for `-m`; writes "EXIT OUTLEN ERRLEN\n", stdout, stderr
# for each. A process per check would cost 87 x 2 interpreter starts and rule loads a side.
CHECK_DRIVER = """
import io, json, runpy, sys, traceback
out = sys.stdout.buffer
for args in json.load(sys.stdin):
    stdout, stderr = io.BytesIO(), io.BytesIO()
    sys.stdout = io.TextIOWrapper(stdout, encoding="utf-8", write_through=True)
    sys.stderr = io.TextIOWrapper(stderr, encoding="utf-8", write_through=True)
    sys.argv = ["screening", *args]
    code = 0
    try:
        runpy.run_module("screening", run_name="__main__", alter_sys=True)
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else 0 if exit.code is None else 1
    except Exception:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    # Read before the wrappers go: a collected TextIOWrapper closes its BytesIO.
    printed, errors = stdout.getvalue(), stderr.getvalue()
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    out.write(b"%d %d %d\\n" % (code, len(printed), len(errors)) + printed + errors)
out.flush()
"""


def run_checks(tree: Path, inputs: Inputs, extra: Sequence[str]) -> bytes:
    """``screening check FILE --as-of AS_OF EXTRA`` of every check input, each under a
    ``### path (exit N)`` line and followed by its standard error, if any."""
    jobs = [["check", str(path), "--as-of", AS_OF, *extra] for path in inputs.check_files]
    done = python_in(tree, "-c", CHECK_DRIVER, stdin=json.dumps(jobs).encode())
    if done.returncode != 0:
        raise SameOutputError(
            f"{tree}: the check driver failed: {done.stderr.decode(errors='replace')[-2000:]}"
        )
    data, at, parts = done.stdout, 0, []
    for path in inputs.check_files:
        end = data.index(b"\n", at)
        code, out_len, err_len = map(int, data[at:end].split())
        stdout = data[end + 1 : end + 1 + out_len]
        stderr = data[end + 1 + out_len : end + 1 + out_len + err_len]
        at = end + 1 + out_len + err_len
        parts.append(f"### {path.relative_to(inputs.root)} (exit {code})\n".encode() + stdout)
        parts.append(b"--- stderr\n" + stderr if stderr else b"")
    return b"".join(parts)


def check_tree(tree: Path) -> None:
    """Make sure a side imports ``screening`` from its own tree, not from an installed copy."""
    found = python_in(tree, "-c", "import screening; print(screening.__file__)")
    where = Path(found.stdout.decode().strip() or ".").resolve()
    if found.returncode != 0 or not where.is_relative_to(tree.resolve()):
        detail = found.stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"imported from {where}"]
        raise SameOutputError(f"{tree}: does not run its own screening package ({detail[0]})")


def git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SameOutputError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


@contextmanager
def side_tree(spec: str | None, scratch: Path, name: str) -> Iterator[Path]:
    """The tree of one side: a directory as it is, or a ref checked out for the duration."""
    if spec is None:
        yield REPO
        return
    if Path(spec).expanduser().is_dir():
        yield Path(spec).expanduser().resolve()
        return
    commit = git("rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}")
    path = scratch / name
    progress(f"[{name}] git worktree add --detach {path} {spec} ({commit[:12]})")
    git("worktree", "add", "--quiet", "--detach", str(path), commit)
    try:
        yield path
    finally:
        removed = subprocess.run(
            ["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)],
            capture_output=True,
            check=False,
        )
        if removed.returncode != 0:
            shutil.rmtree(path, ignore_errors=True)
            subprocess.run(["git", "-C", str(REPO), "worktree", "prune"], capture_output=True, check=False)


def make_inputs(tree: Path, root: Path, records: int, seed: int = SEED, as_of: str = AS_OF) -> Inputs:
    """Generate the cohort with ``tree``'s code and copy its examples and fixtures to ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for part in ("examples", "tests/fixtures"):
        if (tree / part).is_dir():
            shutil.copytree(tree / part, root / part, ignore=shutil.ignore_patterns("__pycache__"))
    cohort_jsonl, cohort_csv = root / "cohort.jsonl", root / "cohort.csv"
    for out, form in ((cohort_jsonl, "jsonl"), (cohort_csv, "csv")):
        progress(f"[inputs] screening generate --count {records} --format {form}")
        done = screening(
            tree,
            "generate",
            "--count",
            str(records),
            "--seed",
            str(seed),
            "--as-of",
            as_of,
            "--format",
            form,
            "--out",
            str(out),
        )
        if done.returncode != 0:
            raise SameOutputError(
                f"screening generate failed: {done.stderr.decode(errors='replace').strip()}"
            )
    batch_fixtures = [root / "examples"] if any((root / "examples").glob("*.json")) else []
    fixtures = root / "tests" / "fixtures"
    folders = sorted(p for p in fixtures.rglob("*") if p.is_dir()) if fixtures.is_dir() else []
    batch_fixtures += [folder for folder in folders if _batch_reads(folder)]
    check_files = sorted(p for part in ("examples", "tests/fixtures") for p in (root / part).rglob("*.json"))
    return Inputs(root, cohort_jsonl, cohort_csv, tuple(batch_fixtures), tuple(check_files))


def _batch_reads(folder: Path) -> bool:
    """A folder batch reads: a Bulk Data export, or FHIR resources (not CDS Hooks material)."""
    if any(folder.glob("*.ndjson")):
        return True
    bodies = [p.read_bytes() for p in folder.glob("*.json")]
    return any(b'"resourceType"' in body for body in bodies) and not any(b'"hook"' in body for body in bodies)


def batch_modes(tree: Path) -> set[str]:
    """The output modes this side's ``screening batch`` offers, read from its --help."""
    text = screening(tree, "batch", "--help").stdout.decode(errors="replace").lower()
    return {name for name, _, needs, _ in MODES if needs is None or needs.lower() in text}


def run_side(tree: Path, inputs: Inputs, work: Path, name: str, modes: set[str]) -> float:
    """Write every artefact of one side to ``work/name``; the seconds it took.

    The side writes into ``work/out`` and that folder is then renamed, so that every side
    names the same output paths in what it writes."""
    started = time.monotonic()
    out = work / "out"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    jobs: list[tuple[str, tuple[Path, ...], set[str]]] = [
        ("cohort-jsonl", (inputs.cohort_jsonl,), modes),
        ("cohort-csv", (inputs.cohort_csv,), {"full"}),
        ("fixtures", inputs.batch_fixtures, modes),
    ]
    status: list[str] = []
    for label, paths, wanted in jobs:
        for mode, extra, _, suffix in MODES:
            if mode not in wanted or not paths:
                continue
            stem = f"batch-{label}-{mode}"
            progress(f"[{name}] screening batch {label} ({mode})")
            done = screening(
                tree,
                "batch",
                *map(str, paths),
                "--out",
                str(out / f"{stem}{suffix}"),
                *extra,
                "--report",
                str(out / f"{stem}-report.html"),
                "--summary",
                str(out / f"{stem}-summary.csv"),
                "--as-of",
                AS_OF,
                "--workers",
                WORKERS,
                "--quiet",
            )
            status.append(f"### {stem} (exit {done.returncode})\n{done.stderr.decode(errors='replace')}")
    (out / "batch-status.txt").write_text("".join(status), encoding="utf-8")
    for report in out.glob("*-report.html"):
        report.write_text(normalise_report(report.read_text(encoding="utf-8")), encoding="utf-8")
    progress(f"[{name}] screening check of {len(inputs.check_files)} files, json and text")
    forms = {"json": ("--format", "json"), "text": ("--format", "text", "--no-color")}
    pool = ThreadPoolExecutor(len(forms))
    try:
        checked = pool.map(lambda form: (form, run_checks(tree, inputs, forms[form])), forms)
        for form, text in checked:
            (out / f"check-{form}.txt").write_bytes(normalise_cards(text) if form == "json" else text)
    finally:
        pool.shutdown(cancel_futures=True)
    progress(f"[{name}] screening rules show --compiled")
    compiled = screening(tree, "rules", "show", "--compiled")
    (out / "rules-compiled.json").write_bytes(compiled.stdout + compiled.stderr)
    target = work / name
    if target.exists():
        shutil.rmtree(target)
    out.rename(target)
    seconds = time.monotonic() - started
    progress(f"[{name}] done in {seconds:.1f} s")
    return seconds


def normalise_cards(text: bytes) -> bytes:
    """``check --format json`` output without the random uuid of each CDS Hooks card."""
    return _CARD_UUID.sub(rb"\1(normalised)\2", text)


def normalise_report(text: str) -> str:
    """The HTML report without what changes between two runs of the same code."""
    return _RUN_TIME.sub(r"\1(normalised)\2", text)


def compare(before: Path, after: Path) -> list[Row]:
    """Every artefact of either side, with its bytes on each (None where a side lacks it)."""
    names = sorted({p.name for p in before.iterdir()} | {p.name for p in after.iterdir()})
    return [Row(n, _read(before / n), _read(after / n)) for n in names]


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


def first_difference(before: bytes, after: bytes) -> tuple[int, str, str, str]:
    """The first line (1-based) where two outputs differ, each side's text of it, and the
    nearest ``### `` heading above it (which check input or batch run it belongs to).

    A long line is shown from a little before its first differing character, so that a
    difference deep in a JSONL line is not clipped away."""
    left, right = before.split(b"\n"), after.split(b"\n")
    heading = ""
    for number, (a, b) in enumerate(zip(left, right, strict=False), 1):
        if a != b:
            column = next(
                (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
            )
            start = max(0, column - 80)
            return number, _text(a, start), _text(b, start), heading
        if a.startswith(b"### "):
            heading = _text(a)
    number = min(len(left), len(right)) + 1
    return (
        number,
        _text(left[number - 1]) if number <= len(left) else "(end of file)",
        (_text(right[number - 1]) if number <= len(right) else "(end of file)"),
        heading,
    )


def _text(line: bytes, start: int = 0, limit: int = 240) -> str:
    # Not screening.errors.clip: this script must not import either side's package.
    text = ("…" if start else "") + line[start:].decode(errors="replace")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _lines(data: bytes | None) -> str:
    return "-" if data is None else str(data.count(b"\n"))


def _sha(data: bytes | None) -> str:
    return "missing" if data is None else hashlib.sha256(data).hexdigest()[:16]


def report(rows: Sequence[Row]) -> str:
    """The table of artefacts, then the first difference of each that differs."""
    width = max([len("artefact"), *(len(r.name) for r in rows)])
    out = [f"{'artefact':<{width}}  {'lines':>13}  {'sha256 (before / after)':<35}  result"]
    for row in rows:
        lines = _lines(row.before) if row.same else f"{_lines(row.before)}/{_lines(row.after)}"
        sha = _sha(row.before) if row.same else f"{_sha(row.before)} / {_sha(row.after)}"
        out.append(f"{row.name:<{width}}  {lines:>13}  {sha:<35}  {'same' if row.same else 'DIFFERENT'}")
    for row in rows:
        if row.same:
            continue
        if row.before is None or row.after is None:
            out.append(f"\n{row.name}: only the {'after' if row.before is None else 'before'} side has it")
            continue
        number, left, right, heading = first_difference(row.before, row.after)
        out.append(
            f"\n{row.name}: first difference at line {number}" + (f", under {heading}" if heading else "")
        )
        out.append(f"  before: {left}")
        out.append(f"  after:  {right}")
    return "\n".join(out)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM ends the run as Ctrl-C does, so that the temporary worktrees are removed.
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--before", required=True, help="a git ref or a directory")
    parser.add_argument("--after", help="a git ref or a directory (default: this working tree)")
    parser.add_argument("--records", type=int, default=20000, help="generated records (default: 20000)")
    parser.add_argument("--seed", type=int, default=SEED, help=f"seed of the cohort (default: {SEED})")
    parser.add_argument("--keep", type=Path, help="keep inputs and both sides' artefacts in this folder")
    args = parser.parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    scratch = Path(tempfile.mkdtemp(prefix="same-output-"))
    work = args.keep.resolve() if args.keep else scratch / "work"
    try:
        if args.keep and args.keep.exists() and any(args.keep.iterdir()):
            raise SameOutputError(f"{args.keep}: --keep wants a new or empty folder")
        with (
            side_tree(args.before, scratch, "before") as before,
            side_tree(args.after, scratch, "after") as after,
        ):
            check_tree(before)
            check_tree(after)
            progress(f"before: {before}\nafter:  {after}")
            modes = batch_modes(before) & batch_modes(after)
            progress(f"batch output modes on both sides: {', '.join(m for m, *_ in MODES if m in modes)}")
            inputs = make_inputs(before, work / "inputs", args.records, args.seed)
            seconds = {
                name: run_side(tree, inputs, work, name, modes)
                for name, tree in (("before", before), ("after", after))
            }
        rows = compare(work / "before", work / "after")
    except SameOutputError as error:
        print(f"same_output: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("same_output: interrupted; the temporary worktrees are removed", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous)
    print(report(rows))
    differ = sum(not row.same for row in rows)
    times = f"before {seconds['before']:.1f} s, after {seconds['after']:.1f} s"
    if args.keep:
        print(f"artefacts kept in {work}")
    if differ:
        print(f"different: {differ} of {len(rows)} artefacts differ ({times})")
        return 1
    print(f"same: all {len(rows)} artefacts are byte-identical ({times})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
