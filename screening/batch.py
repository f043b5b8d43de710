"""Batch screening: stream many records through the screener, in parallel, nothing lost.

    >>> from screening.batch import run_batch
    >>> result = run_batch(["patients.jsonl"], "results.jsonl", as_of="2026-11-22", workers=2)
    >>> result.summary.outcomes, result.failed

The pipeline: :mod:`~screening.batch_inputs` reads every input as a stream of raw items;
items go to worker processes in chunks (:mod:`~screening.batch_worker`, one Screener per
process, built once by the pool's initializer); chunks come back in submission order,
which is input order, and :mod:`~screening.batch_output` appends their lines whole.

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

import itertools
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import FrameType
from typing import Any

from .batch_inputs import Item, detect_format, input_size, read_inputs
from .batch_output import LineWriter, Written, scan_output
from .batch_pool import WorkerPool, chunk_bytes
from .batch_worker import Chunk, ChunkResult, init_worker, screen_chunk
from .errors import InputError
from .report import RunInfo, Summary
from .ruleset import RuleSet, load_ruleset
from .screener import default_rules_dir, parse_as_of

CHUNK_SIZE = 250


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
) -> BatchResult:
    """Screen every record of ``inputs`` into the JSONL file ``out``. See the module docstring.

    Raises RuleSetError or InputError when the batch cannot start; record problems never
    raise, they become error lines.
    """
    started = time.perf_counter()
    rules_dir = Path(rules) if rules else default_rules_dir()
    out = Path(out)
    if any(str(path) != "-" and Path(path).resolve() == out.resolve() for path in inputs):
        raise InputError("the output file is also an input", str(out))
    written = scan_output(out) if resume else Written()
    day = _screening_date(as_of, written, out)
    workers = max(1, workers or default_workers())
    if resume and written.compact is not None and written.compact != compact:
        wanted = "with" if written.compact else "without"
        raise InputError(f"was written {wanted} --compact; resume {wanted} it", str(out))
    initargs = (str(rules_dir), str(params) if params else None, day.isoformat(), compact)
    # Workers load the rules while this process does: start them first.
    pool = WorkerPool(workers, initargs) if workers > 1 else None
    try:
        ruleset = load_ruleset(rules_dir, params)
        _check_same_rules(written, ruleset, out)
        formats = [input_format or detect_format(path) for path in inputs]
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
        items, skipped_bytes = _skip_written(
            _chain_inputs(inputs, formats, ruleset, result.notes), written, out
        )
        chunks = _chunks(items, written.count, max(1, chunk_size))
        with (
            LineWriter(out, append_at=written.end if resume else None) as writer,
            _Stop() as stop,
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
            result.interrupted = stop.requested
    finally:
        if pool is not None:
            pool.shutdown()
    result.seconds = time.perf_counter() - started
    return result


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
        yield from read_inputs([path], kind, ruleset, notes)


def _skip_written(items: Iterator[Item], written: Written, out: Path) -> tuple[Iterator[Item], int]:
    """Skip the records already written (and their input bytes), checking the inputs match."""
    if not written.count:
        return items, 0
    skipped = 0
    last: Item | None = None
    for last in itertools.islice(items, written.count):
        skipped += last[2]
    if last is None or last[0] != written.last_source:
        found = "ended" if last is None else f"has {last[0]}"
        raise InputError(
            f"holds {written.count} records ending with {written.last_source}, but the input "
            f"at that position {found}; --resume needs the same inputs in the same order",
            str(out),
        )
    return items, skipped


def _chunks(items: Iterator[Item], first: int, size: int) -> Iterator[Chunk]:
    position = first
    while True:
        batch = list(itertools.islice(items, size))
        if not batch:
            return
        yield position, batch
        position += len(batch)


def _run_inline(
    chunks: Iterator[Chunk],
    initargs: tuple[str, str | None, str, bool],
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
