"""Screening on a Dask cluster, for populations that outgrow one machine.

Optional: ``pip install 'screening[dask]'``. The results are the lines ``screening batch``
writes, as dicts, one per record and in the bag's order.

    >>> import orjson
    >>> from dask.distributed import Client
    >>> from screening.batch.distributed import read_jsonl, screen_partitions, summarize
    >>> client = Client("scheduler:8786")
    >>> records = read_jsonl(["mnt/part-0001.jsonl", "mnt/part-0002.jsonl"], blocksize="64 MiB")
    >>> results = screen_partitions(records, as_of="2026-11-22")
    >>> results.map(orjson.dumps).map(bytes.decode).to_textfiles("results/*.jsonl")
    >>> summarize(results).outcomes

A large file is read as several partitions, one per ``blocksize`` bytes (each partition
takes the lines that start in its byte range), so it is screened on many workers and no
worker holds more than about a block of it. Positions and ``file:line`` sources are those
``screening batch`` gives, and the bag keeps input order.

Each worker process builds one Screener, the first time one of its tasks needs it, and
keeps it for the rest of its life (:func:`screener_for`); tasks on the threads of one
process share it (its engine calls are serialised). Rules and parameter files must be
readable by every worker at the same path. Pass ``as_of`` explicitly: "today" on a
cluster is whatever each worker's clock says.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from screening.batch.worker import screen_result
from screening.intake import Screener
from screening.present.report import Summary
from screening.screener import parse_as_of

_screeners: dict[tuple[str | None, str | None], Screener] = {}
_lock = threading.Lock()


def screener_for(rules: str | None = None, params: str | None = None) -> Screener:
    """This process's Screener for a rule directory and parameter file, built once."""
    key = (rules, params)
    with _lock:
        screener = _screeners.get(key)
        if screener is None:
            screener = _screeners[key] = Screener(rules, params)
        return screener


def screen_partition(
    items: Iterable[Any], rules: str | None = None, params: str | None = None, as_of: str | None = None
) -> list[dict[str, Any]]:
    """Screen one partition; usable with any framework that maps over partitions.

    An item is a record (a dict, or JSON as str or bytes), a ``(source, record)`` pair or a
    ``(position, source, record)`` triple, as :func:`read_jsonl` makes.
    """
    screener = screener_for(rules, params)
    day = parse_as_of(as_of)
    summary = Summary()  # counts are rebuilt from the results by summarize()
    out = []
    for item in items:
        position, source, payload = _unpack(item)
        out.append(screen_result(screener, day, position, source, payload, summary))
    return out


def screen_partitions(
    records: Any,
    *,
    rules: Path | str | None = None,
    params: Path | str | None = None,
    as_of: date | str | None = None,
) -> Any:
    """Map a ``dask.bag.Bag`` of records to a bag of result dicts, partition by partition."""
    day = parse_as_of(as_of).isoformat()
    return records.map_partitions(
        screen_partition,
        rules=str(rules) if rules else None,
        params=str(params) if params else None,
        as_of=day,
    )


BLOCKSIZE = 64 * 1024 * 1024


def read_jsonl(paths: Sequence[Path | str], blocksize: int | str = BLOCKSIZE) -> Any:
    """A bag of ``(position, source, line)``: each JSONL file cut into byte ranges.

    Each partition holds the lines that start in its range of at most ``blocksize`` bytes
    (an int, or a string such as ``"64 MiB"``). Positions are numbered across the files in
    order, as ``screening batch`` numbers them; each range is counted first (one cheap pass
    on the workers) to know where its positions and line numbers start.
    """
    import dask.bag
    import dask.base
    from dask.delayed import delayed
    from dask.utils import parse_bytes

    size = max(1, int(parse_bytes(blocksize)))
    from_delayed: Any = dask.bag.from_delayed
    compute: Any = dask.base.compute
    ranges = [
        (str(path), start, min(start + size, total))
        for path in paths
        for total in [Path(path).stat().st_size]
        for start in range(0, max(total, 1), size)
    ]
    counts = compute(*(delayed(_count_range)(*part) for part in ranges))
    parts = []
    position, line = 0, 0
    for (name, start, end), (records, lines) in zip(ranges, counts, strict=True):
        if start == 0:  # a new file: its lines count from 1
            line = 0
        parts.append(delayed(_read_range)(name, start, end, position, line))
        position += records
        line += lines
    return from_delayed(parts)


def summarize(results: Any) -> Summary:
    """The report counts of a bag of results (see :mod:`screening.present.report`)."""
    total: Summary = results.reduction(_partition_summary, _merge_summaries).compute()
    return total


def _partition_summary(lines: Iterable[dict[str, Any]]) -> Summary:
    summary = Summary()
    for line in lines:
        summary.add_line(line)
    return summary


def _merge_summaries(summaries: Iterable[Summary]) -> Summary:
    total = Summary()
    for summary in summaries:
        total.merge(summary)
    return total


def _lines_in_range(path: str, start: int, end: int) -> Iterator[bytes]:
    """The lines of a file that start at a byte offset in ``[start, end)``."""
    with open(path, "rb") as file:
        offset = start
        if start > 0:
            file.seek(start - 1)
            offset = start - 1 + len(file.readline())  # the rest of a line begun before
        while offset < end:
            line = file.readline()
            if not line:
                return
            yield line
            offset += len(line)


def _count_range(path: str, start: int, end: int) -> tuple[int, int]:
    """Records (non-blank lines) and lines that start in a byte range."""
    records = lines = 0
    for line in _lines_in_range(path, start, end):
        lines += 1
        records += bool(line.strip())
    return records, lines


def _read_range(
    path: str, start: int, end: int, first: int, line_before: int
) -> list[tuple[int, str, bytes]]:
    """A range's records as ``(position, "file:line", line)``."""
    out: list[tuple[int, str, bytes]] = []
    for number, line in enumerate(_lines_in_range(path, start, end), line_before + 1):
        if line.strip():
            out.append((first + len(out), f"{path}:{number}", line))
    return out


def _unpack(item: Any) -> tuple[int | None, str | None, Any]:
    if isinstance(item, tuple):
        if len(item) == 3:
            return item[0], item[1], item[2]
        if len(item) == 2:
            return None, item[0], item[1]
    return None, None, item
