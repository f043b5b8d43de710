"""The batch output file: whole lines only, in input order, resumable.

Lines reach :class:`LineWriter` as finished blocks (a chunk's lines, in order) and go to
the file with unbuffered ``os.write`` calls, so nothing sits in a buffer when the process
stops. A block is one or a few system calls; Ctrl-C does not interrupt them (the batch
turns SIGINT into a "stop after this block" flag), and a ``SIGKILL`` in the middle of one
can leave at most a partial last line. For ``--resume``, :func:`scan_output` counts the
whole lines already written and the writer cuts off a partial one. Because lines are
written in input order, the whole lines are exactly positions ``0 .. count-1``.
"""

from __future__ import annotations

import os
import stat
import sys
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from screening.errors import InputError
from screening.present.report import Summary

OUTPUT_MODE = 0o600
"""Batch outputs (--out, --report, --summary) hold patient data: readable by their owner only,
whatever the umask, unless the caller asks for another mode (``screening batch --mode``)."""


def open_output(path: Path, mode: int = OUTPUT_MODE, append_at: int | None = None) -> int:
    """Open ``path`` for writing with permissions ``mode``: truncated, or with ``append_at``
    cut there and appended to. Raises OSError."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append_at is not None else os.O_TRUNC)
    fd = os.open(path, flags, mode)
    try:
        # os.open's mode is narrowed by the umask and ignored for an existing file; a
        # device such as /dev/stdout keeps its own.
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fchmod(fd, mode)
        if append_at is not None:
            os.ftruncate(fd, append_at)
    except OSError:
        os.close(fd)
        raise
    return fd


def prepare_output(path: Path, mode: int = OUTPUT_MODE) -> None:
    """Create (or empty) ``path`` with permissions ``mode`` before another writer opens it
    again to write it: the report and the summary keep the mode. Raises InputError."""
    try:
        os.close(open_output(path, mode))
    except OSError as error:
        raise InputError(f"cannot write: {error.strerror or error}", str(path)) from None


@dataclass
class Written:
    """What an existing output file holds: its whole lines, counted."""

    count: int = 0
    end: int = 0
    last_source: str | None = None
    as_of: str | None = None
    ruleset_sha256: str | None = None
    overrides: dict[str, object] | None = None
    detail: str | None = None
    """The ``--detail`` of the decisions already written (None: no decision yet)."""
    truncated: int = 0
    summary: Summary = field(default_factory=Summary)
    # One key per whole line, of its record id (see id_key): --resume checks the input
    # items it skips against them, 8 bytes a line.
    ids: array[int] = field(default_factory=lambda: array("Q"))


def id_key(record_id: object) -> int:
    """A 64-bit key of a record id; an absent or blank id has key 0. Stable in one process."""
    if not record_id:
        return 0
    return hash(str(record_id)) & 0xFFFF_FFFF_FFFF_FFFF or 1


def scan_output(path: Path) -> Written:
    """Check an output file for ``--resume``: count and tally its whole lines.

    The file is not changed; :class:`LineWriter` cuts off a partial last line (at
    ``Written.end``) when the resumed run starts writing."""
    written = Written()
    if not path.exists():
        return written
    with path.open("rb") as file:
        size = file.seek(0, os.SEEK_END)
        written.end = _end_of_last_line(file, size)
        written.truncated = size - written.end
        file.seek(0)
        for number, line in enumerate(file, 1):
            if not line.endswith(b"\n"):
                break  # the partial last line, cut off when the writer opens the file
            try:
                data = orjson.loads(line)
                position = data["position"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                raise InputError("not an output line of screening batch", f"{path}:{number}") from None
            if position != written.count:
                raise InputError(
                    f"position {position} where {written.count} was expected; "
                    "the file was not written by one screening batch",
                    f"{path}:{number}",
                )
            written.count += 1
            written.last_source = data.get("source")
            written.ids.append(id_key(data.get("record_id")))
            decision = data.get("decision")
            if decision is not None and written.as_of is None:
                written.as_of = decision.get("as_of")
                ruleset = decision.get("ruleset") or {}
                written.ruleset_sha256 = ruleset.get("sha256")
                written.overrides = ruleset.get("overrides", {})
                written.detail = line_detail(decision)
            written.summary.add_line(data)
    return written


def line_detail(decision: dict[str, Any]) -> str:
    """The ``--detail`` a written decision was written with."""
    if decision.get("detail") == "outcome":
        return "outcome"
    return "compact" if decision.get("compact") else "full"


def _end_of_last_line(file: BinaryIO, size: int) -> int:
    """The offset just after the file's last newline (0 if it has none)."""
    block = 1 << 16
    end = size
    while end > 0:
        start = max(0, end - block)
        file.seek(start)
        data = file.read(end - start)
        cut = data.rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        end = start
    return 0


class LineWriter:
    """Appends finished blocks of lines to the output with unbuffered writes."""

    def __init__(self, path: Path, append_at: int | None = None, mode: int = OUTPUT_MODE) -> None:
        """Truncate ``path``, or with ``append_at`` cut it there and append after it.

        Both happen at the first write, or when the run ends without an error: a run that
        fails before its first record leaves an existing output as it was."""
        self.path = path
        self._append_at = append_at
        self._mode = mode
        self._fd = -1
        self.lines = 0

    def _open(self) -> None:
        self._fd = open_output(self.path, self._mode, self._append_at)

    @classmethod
    def stdout(cls) -> LineWriter:
        """A writer to standard output (``--out -``), on a copy of its descriptor."""
        sys.stdout.flush()  # anything printed before goes first
        writer = cls.__new__(cls)
        writer.path = Path("-")
        writer._fd = os.dup(sys.stdout.fileno())
        writer._append_at = None
        writer._mode = OUTPUT_MODE
        writer.lines = 0
        return writer

    def write(self, block: bytes, lines: int) -> None:
        if self._fd < 0:
            self._open()
        view = memoryview(block)
        while view:
            done = os.write(self._fd, view)
            view = view[done:]
        self.lines += lines

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> LineWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        if kind is None and self._fd < 0:
            self._open()  # a run with nothing to write still leaves its (empty) output
        self.close()
