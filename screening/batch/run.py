"""Batch screening: stream many records through the screener, in parallel, nothing lost.

    >>> from screening.batch.run import run_batch
    >>> result = run_batch(["patients.jsonl"], "results.jsonl", as_of="2026-11-22", workers=2)
    >>> result.summary.outcomes, result.failed

The pipeline: :mod:`~screening.batch.inputs` reads every input as a stream of raw items;
items go to worker processes in chunks (:mod:`~screening.batch.worker`, one Screener per
process, built once by the pool's initializer); chunks come back in submission order,
which is input order, and :mod:`~screening.batch.output` appends their lines whole.

* Exactly one output line per input record, with its position (0-based across all inputs),
  its source (``file:line``) and its record id, and a ``decision``, a ``not_screened`` or
  an ``error``.
* Memory stays flat: inputs are streamed and at most ``3 × workers`` chunks are in flight or waiting.
* Ctrl-C (or SIGTERM) stops after the chunk being written; a killed batch leaves at most a
  partial last line, which ``resume=True`` drops before skipping what is already written.
* A worker that dies is replaced; its chunks are screened again in isolation, and a
  record that kills a worker on its own gets an error line (``worker_crashed``).
"""

from __future__ import annotations

import csv
import itertools
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import FrameType
from typing import Any

from screening.batch.inputs import FORMATS, Item, csv_header, detect_format, input_size, read_inputs
from screening.batch.options import DETAILS, OUT_FORMATS, ROW_GROUP_SIZE
from screening.batch.output import OUTPUT_MODE, LineWriter, Written, id_key, scan_output
from screening.batch.parquet import ParquetWriter, holds_results, scan_parquet
from screening.batch.pool import WorkerPool, chunk_bytes
from screening.batch.worker import Chunk, ChunkResult, init_worker, payload_record_id, screen_chunk
from screening.errors import InputError
from screening.present.report import RunInfo, Summary
from screening.ruleset.loading import load_ruleset
from screening.ruleset.model import RuleSet
from screening.screener import default_rules_dir, parse_as_of

CHUNK_SIZE = 250
STDOUT = "-"  # as the output: the lines go to standard output


@dataclass
class BatchResult:
    """What a batch did: its counts (including resumed records) and how long it took."""

    summary: Summary
    ruleset: RuleSet
    as_of: str
    inputs: list[str]
    output: str
    workers: int
    records: int = 0
    resumed: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    truncated_bytes: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        """Records with an error line (unreadable or invalid)."""
        return self.summary.failed

    def run_info(self) -> RunInfo:
        return RunInfo(
            ruleset=self.ruleset,
            as_of=self.as_of,
            inputs=self.inputs,
            output=self.output,
            workers=self.workers,
            seconds=self.seconds,
            records=self.records,
            resumed=self.resumed,
            interrupted=self.interrupted,
        )


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def run_batch(
    inputs: Sequence[Path | str],
    out: Path | str,
    *,
    input_format: str | None = None,
    rules: Path | str | None = None,
    params: Path | str | None = None,
    as_of: date | str | None = None,
    workers: int | None = None,
    resume: bool = False,
    chunk_size: int = CHUNK_SIZE,
    progress: bool = False,
    compact: bool = False,
    reports: Sequence[Path | str] | None = None,
    mode: int = OUTPUT_MODE,
    force: bool = False,
    detail: str | None = None,
    out_format: str | None = None,
    row_group_size: int = ROW_GROUP_SIZE,
) -> BatchResult:
    """Screen every record of ``inputs`` into the JSONL file ``out``. See the module docstring.

    ``detail``: how much of each decision a line holds (:data:`~screening.batch.options.DETAILS`,
    default ``full``; ``compact=True`` is ``detail="compact"``). ``out_format`` ``parquet``
    (or an ``out`` ending in ``.parquet``) writes a Parquet file instead, in row groups of
    ``row_group_size`` records (:mod:`~screening.batch.parquet`).

    ``reports`` are the files the caller will write after the run (the HTML report, the
    summary CSV): they are checked up front with the output, so that a bad path fails at
    once, not after the whole run. ``mode``: the output file's permissions (owner only).

    ``out`` ``"-"`` writes the lines to standard output. An output file that already holds
    lines is not overwritten unless ``force`` (or appended to, with ``resume``).

    Raises RuleSetError or InputError when the batch cannot start: every input (its
    existence, format and CSV header), every output path and the rules are checked before
    the output file is opened, so a batch that cannot start leaves an existing output as it
    was, and so does one whose inputs hold no record at all. Record problems never raise,
    they become error lines.
    """
    started = time.perf_counter()
    rules_dir = Path(rules) if rules else default_rules_dir()
    out = Path(out)
    parquet = _out_format(out, out_format) == "parquet"
    detail = _detail(detail, compact, parquet)
    if str(out) == STDOUT:
        if resume:
            raise InputError("--resume appends to an output file; standard output ('-') cannot resume")
    else:
        _check_writable(out, "output")
    for report in reports or ():
        if Path(report).resolve() == out.resolve():
            raise InputError("the report would overwrite the output", str(report))
        _check_writable(Path(report), "report")
    formats = check_inputs(inputs, input_format, out)
    held = holds_results(out) if parquet else str(out) != STDOUT and out.is_file() and out.stat().st_size
    if not (resume or force) and held:
        raise InputError(
            "already holds results; pass --resume to finish it, or --force to overwrite it", str(out)
        )
    written = _scan_output(out, parquet) if resume else Written()
    day = _screening_date(as_of, written, out)
    workers = max(1, workers or default_workers())
    if resume and written.detail is not None and written.detail != detail:
        raise InputError(
            f"was written with {_DETAIL_FLAG[written.detail]}, not {_DETAIL_FLAG[detail]}; "
            f"resume with {_DETAIL_FLAG[written.detail]}",
            str(out),
        )
    initargs = (str(rules_dir), str(params) if params else None, day.isoformat(), detail)
    # The rules are checked here, once, before any worker starts: a broken rule set is one
    # clear message, not a traceback from every worker's initializer.
    ruleset = load_ruleset(rules_dir, params)
    _check_same_rules(written, ruleset, out)
    # Ctrl-C is a request to stop from here until the workers are shut down.
    with _Stop() as stop:
        pool = WorkerPool(workers, initargs) if workers > 1 else None
        try:
            result = BatchResult(
                summary=written.summary,
                ruleset=ruleset,
                as_of=day.isoformat(),
                inputs=[str(p) for p in inputs],
                output=str(out),
                workers=workers,
                resumed=written.count,
                truncated_bytes=written.truncated,
            )
            items, skipped_bytes = _skip_written(inputs, formats, ruleset, result.notes, written, out)
            if not written.count:
                items = _not_empty(items, inputs, result.notes)
            chunks = _Chunks(items, written.count, max(1, chunk_size))
            with (
                _opened(out, written.end if resume else None, mode)
                if not parquet
                else ParquetWriter(
                    out,
                    ruleset,
                    day.isoformat(),
                    resume=resume,
                    first=written.count,
                    mode=mode,
                    row_group_size=row_group_size,
                ) as writer,
                _Progress(progress, inputs) as bar,
            ):
                bar.skip(written.count, skipped_bytes)

                def emit(chunk_result: ChunkResult, size: int) -> None:
                    writer.write(chunk_result.lines, chunk_result.records)
                    result.summary.merge(chunk_result.summary)
                    result.records += chunk_result.records
                    bar.advance(chunk_result.records, size)

                if pool is None:
                    _run_inline(chunks, initargs, ruleset, emit, stop)
                else:
                    for chunk_result, size in pool.run(chunks, stop):
                        emit(chunk_result, size)
                # A stop that came when every record was written interrupted nothing.
                result.interrupted = stop.requested and not chunks.finished(written.count + result.records)
                if isinstance(writer, ParquetWriter) and not result.interrupted:
                    writer.finish()
        except OSError as error:
            raise _os_error(error) from None
        finally:
            if pool is not None:
                pool.shutdown()
    result.seconds = time.perf_counter() - started
    return result


def _not_empty(items: Iterator[Item], inputs: Sequence[Path | str], notes: list[str]) -> Iterator[Item]:
    """The items, after checking that there is a first one: a run that reads no record is
    refused before the output is opened, never a success with nothing screened."""
    first = next(items, None)
    if first is None:
        why = f" ({'; '.join(notes[:3])})" if notes else ""
        raise InputError(f"no records were read from {', '.join(map(str, inputs))}{why}")
    return itertools.chain([first], items)


def check_inputs(inputs: Sequence[Path | str], input_format: str | None, out: Path) -> list[str]:
    """Each input's format, after checking that it exists and can be read as that format."""
    formats = []
    for path in inputs:
        if str(path) == "-":
            if input_format not in (None, "jsonl"):
                raise InputError(f"standard input ('-') is read as JSONL, not {input_format}")
            formats.append("jsonl")
            continue
        path = Path(path)
        if path.resolve() == out.resolve():
            raise InputError("the output file is also an input", str(out))
        try:
            kind = input_format or detect_format(path)
            _check_input(path, kind)
        except OSError as error:
            raise _os_error(error, path) from None
        except (UnicodeDecodeError, csv.Error) as error:
            raise InputError(
                f"cannot be read as {input_format or 'its format'}: {error}", str(path)
            ) from None
        formats.append(kind)
    return formats


def _check_input(path: Path, kind: str) -> None:
    if kind not in FORMATS:
        raise InputError(f"unknown input format {kind!r} (expected one of {', '.join(FORMATS)})")
    if not path.exists():
        raise InputError("no such file or directory", str(path))
    if kind in ("jsonl", "csv") and not path.is_file():
        raise InputError(f"is not a file; --input-format {kind} reads one file", str(path))
    if kind == "bulk" and not path.is_dir():
        raise InputError("a Bulk Data export must be a directory of NDJSON files", str(path))
    if kind == "csv":
        csv_header(path)
    elif path.is_file():
        with path.open("rb") as file:
            file.read(1)
    elif not os.access(path, os.R_OK | os.X_OK):
        raise InputError("permission denied", str(path))


def _check_writable(path: Path, what: str) -> None:
    """An output path must be a file that can be written, in a directory that exists."""
    if path.is_dir():
        raise InputError(f"is a directory; the {what} must be a file", str(path))
    parent = path.parent
    if not parent.is_dir():
        raise InputError(f"cannot write the {what}: no directory {parent}", str(path))
    writable = os.access(path, os.W_OK) if path.exists() else os.access(parent, os.W_OK | os.X_OK)
    if not writable:
        raise InputError(f"cannot write the {what}: permission denied", str(path))


def _os_error(error: OSError, path: Path | str | None = None) -> InputError:
    """A failed read or write as a message that names the file, not a traceback."""
    where = error.filename if error.filename is not None else path
    reason = error.strerror or str(error)
    return InputError(f"cannot be read or written: {reason}", str(where) if where is not None else None)


_DETAIL_FLAG = {"full": "--detail full", "compact": "--compact", "outcome": "--detail outcome"}


def _out_format(out: Path, out_format: str | None) -> str:
    """The output's format: as asked, or Parquet for a ``.parquet`` name, else JSONL."""
    chosen = out_format or ("parquet" if out.suffix.lower() == ".parquet" else "jsonl")
    if chosen not in OUT_FORMATS:
        raise InputError(f"unknown output format {chosen!r} (expected one of {', '.join(OUT_FORMATS)})")
    if chosen == "parquet" and str(out) == STDOUT:
        raise InputError(
            "Parquet cannot be written to standard output ('-'): its footer is written last, "
            "so it needs a file; pass --out results.parquet"
        )
    return chosen


def _detail(detail: str | None, compact: bool, parquet: bool) -> str:
    """The ``--detail`` of the run, after checking it goes with ``--compact`` and the format."""
    if compact and detail not in (None, "compact"):
        raise InputError(f"--compact is --detail compact; it cannot go with --detail {detail}")
    chosen = detail or ("compact" if compact else None)
    if parquet:
        if chosen not in (None, "outcome"):
            raise InputError(
                f"--detail {chosen} is for JSONL; a Parquet row holds the outcome, the decisive "
                "criteria, the missing items and each status (--detail outcome)"
            )
        return "outcome"
    chosen = chosen or "full"
    if chosen not in DETAILS:
        raise InputError(f"unknown detail {chosen!r} (expected one of {', '.join(DETAILS)})")
    return chosen


def _scan_output(out: Path, parquet: bool) -> Written:
    try:
        return scan_parquet(out) if parquet else scan_output(out)
    except OSError as error:
        raise _os_error(error, out) from None


@contextmanager
def _opened(out: Path, append_at: int | None, mode: int) -> Iterator[LineWriter]:
    try:
        writer = (
            LineWriter(out, append_at=append_at, mode=mode) if str(out) != STDOUT else LineWriter.stdout()
        )
    except OSError as error:
        raise _os_error(error, out) from None
    with writer:
        yield writer


def _check_same_rules(written: Written, ruleset: RuleSet, out: Path) -> None:
    """A resumed run must use the rule set and parameters of the lines already written."""
    if written.overrides is not None and written.overrides != dict(ruleset.overrides):
        raise InputError(
            f"was written with parameters {written.overrides}, not {dict(ruleset.overrides)}; "
            "resume with the same --params",
            str(out),
        )
    if written.ruleset_sha256 and written.ruleset_sha256 != ruleset.sha256:
        raise InputError(
            f"was written with rule set sha256 {written.ruleset_sha256}, not {ruleset.sha256}; "
            "resume with the same rules and parameters, or start a new output",
            str(out),
        )


def _screening_date(as_of: date | str | None, written: Written, out: Path) -> date:
    """The run's date; a resumed run keeps the date of the lines already written."""
    if written.as_of:
        recorded = date.fromisoformat(written.as_of)
        if as_of is not None and parse_as_of(as_of) != recorded:
            raise InputError(f"was screened as of {recorded}, not {parse_as_of(as_of)}", str(out))
        return recorded
    return parse_as_of(as_of)


def _chain_inputs(
    inputs: Sequence[Path | str], formats: list[str], ruleset: RuleSet, notes: list[str]
) -> Iterator[Item]:
    for path, kind in zip(inputs, formats, strict=True):
        items = read_inputs([path], kind, ruleset, notes)
        yield from _bulk_sizes(items, Path(path)) if kind == "bulk" else items


def _bulk_sizes(items: Iterator[Item], path: Path) -> Iterator[Item]:
    """A Bulk Data export's bytes shared out over its records, for the progress bar.

    An export is read whole before its first record comes out, so its records stand for
    equal shares of its size (by the number of lines of its Patient files), and the last
    one for what is left: the bar ends at 100% and its ETA holds while records come out.
    """
    from screening.fhir.bulk import export_files

    total = input_size([path]) or 0
    patients = sum(_count_lines(p) for p in export_files(path).get("Patient", []))
    given = 0
    previous: Item | None = None
    for index, item in enumerate(items, 1):
        if previous is not None:
            yield previous
        share = total * index // patients - given if index <= patients else 0
        given += share
        previous = (item[0], item[1], share)
    if previous is not None:
        yield previous[0], previous[1], previous[2] + total - given


def _count_lines(path: Path) -> int:
    """Non-empty lines of a file, counted in blocks."""
    count, last = 0, b"\n"
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            count += block.count(b"\n") - block.count(b"\n\n")
            last = block[-1:]
    return count + (last != b"\n")


def _skip_written(
    inputs: Sequence[Path | str],
    formats: list[str],
    ruleset: RuleSet,
    notes: list[str],
    written: Written,
    out: Path,
) -> tuple[Iterator[Item], int]:
    """Skip the records already written (and their input bytes), checking the inputs match.

    Every skipped item's record id must be the one written at its position (a shuffled or
    edited input is refused), and the last one's source must be the last line's, with its
    file named by any path to the same file."""
    items = _chain_inputs(inputs, formats, ruleset, notes)
    if not written.count:
        return items, 0
    skipped = 0
    last: Item | None = None
    for position, last in enumerate(itertools.islice(items, written.count)):
        skipped += last[2]
        expected = written.ids[position]
        if expected and id_key(payload_record_id(last[1])) != expected:
            raise InputError(
                f"holds another record at position {position} than the input has there "
                f"({last[0]}, record id {payload_record_id(last[1])!r}); "
                "--resume needs the same inputs in the same order",
                str(out),
            )
    if last is None or not _same_source(last[0], written.last_source):
        found = "ended" if last is None else f"has {last[0]}"
        raise InputError(
            f"holds {written.count} records ending with {written.last_source}, but the input "
            f"at that position {found}; --resume needs the same inputs in the same order",
            str(out),
        )
    return items, skipped


_SOURCE = re.compile(r"(.*?)(:\d+|#Patient/.*)?", re.S)


def _same_source(found: str, recorded: str | None) -> bool:
    """Two sources (``file:line``, ``dir#Patient/id``, ``file``) name the same record."""
    if recorded is None or found == recorded:
        return found == recorded
    a, b = _SOURCE.fullmatch(found), _SOURCE.fullmatch(recorded)
    if a is None or b is None or a[2] != b[2]:
        return False
    return Path(a[1]).resolve() == Path(b[1]).resolve()


class _Chunks:
    """The chunks of a run, and whether they ran out (so a stop interrupted nothing)."""

    def __init__(self, items: Iterator[Item], first: int, size: int) -> None:
        self._items = items
        self._size = size
        self.end = first  # the position after the last chunk handed out
        self.exhausted = False

    def __iter__(self) -> _Chunks:
        return self

    def __next__(self) -> Chunk:
        batch = list(itertools.islice(self._items, self._size))
        if not batch:
            self.exhausted = True
            raise StopIteration
        chunk = (self.end, batch)
        self.end += len(batch)
        return chunk

    def finished(self, written: int) -> bool:
        """Every input record has its line (looks one chunk ahead, if need be)."""
        if written != self.end:
            return False
        if not self.exhausted:
            ahead = list(itertools.islice(self._items, 1))
            self.exhausted = not ahead
        return self.exhausted


def _run_inline(
    chunks: Iterator[Chunk],
    initargs: tuple[str, str | None, str, str],
    ruleset: RuleSet,
    emit: Callable[[ChunkResult, int], None],
    stop: _Stop,
) -> None:
    init_worker(*initargs, ruleset=ruleset)
    for chunk in chunks:
        emit(screen_chunk(chunk), chunk_bytes(chunk))
        if stop.requested:
            return


class _Stop:
    """SIGINT and SIGTERM become a request to stop after the current chunk; twice, at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            self._restore()
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> _Stop:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def __exit__(self, *exc: object) -> None:
        self._restore()


class _Progress:
    """A rich progress bar on stderr (records, records/s, ETA by input bytes), or nothing."""

    def __init__(self, enabled: bool, inputs: Sequence[Path | str]) -> None:
        self._bar: Any = None
        self._task: Any = None
        self._records = 0
        self._skipped = 0
        self._started = time.perf_counter()
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn("screening"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[records]:>12,} records"),
            TextColumn("{task.fields[rate]:>8,.0f} rec/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._task = self._bar.add_task("screening", total=input_size(inputs), records=0, rate=0.0)

    def skip(self, records: int, size: int) -> None:
        """Count records written by an earlier run, without counting them in the rate."""
        self._skipped = records
        self.advance(records, size)

    def advance(self, records: int, size: int) -> None:
        if self._bar is None:
            return
        self._records += records
        rate = (self._records - self._skipped) / max(time.perf_counter() - self._started, 1e-9)
        self._bar.update(self._task, advance=size, records=self._records, rate=rate)

    def __enter__(self) -> _Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
