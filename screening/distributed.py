"""Screening on a Dask cluster, for populations that outgrow one machine.

Optional: ``pip install 'screening[dask]'``. The results are the lines ``screening batch``
writes, as dicts, one per record and in the bag's order.

    >>> from dask.distributed import Client
    >>> from screening.distributed import read_jsonl, screen_partitions
    >>> client = Client("scheduler:8786")
    >>> records = read_jsonl(["s3-mount/part-0001.jsonl", "s3-mount/part-0002.jsonl"])
    >>> results = screen_partitions(records, as_of="2026-11-22")
    >>> results.map(orjson.dumps).map(bytes.decode).to_textfiles("results/*.jsonl")
    >>> summarize(results).outcomes

Each worker process builds one Screener, the first time one of its tasks needs it, and
keeps it for the rest of its life (:func:`screener_for`); tasks on the threads of one
process share it (its engine calls are serialised). Rules and parameter files must be
readable by every worker at the same path. Pass ``as_of`` explicitly: "today" on a
cluster is whatever each worker's clock says.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from .batch_worker import screen_result
from .report import Summary
from .screener import Screener, parse_as_of

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


def read_jsonl(paths: Sequence[Path | str]) -> Any:
    """A bag of ``(position, source, line)`` with one partition per JSONL file.

    Positions are numbered across the files in order, as ``screening batch`` numbers them;
    the files are counted first (one cheap pass on the workers) to know where each starts.
    """
    import dask.bag
    import dask.base
    from dask.delayed import delayed

    from_delayed: Any = dask.bag.from_delayed
    compute: Any = dask.base.compute
    names = [str(p) for p in paths]
    counts = compute(*(delayed(_count_records)(name) for name in names))
    offsets, start = [], 0
    for count in counts:
        offsets.append(start)
        start += count
    parts = [delayed(_read_lines)(name, offset) for name, offset in zip(names, offsets, strict=True)]
    return from_delayed(parts)


def summarize(results: Any) -> Summary:
    """The report counts of a bag of results (see :mod:`screening.report`)."""
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


def _count_records(path: str) -> int:
    with open(path, "rb") as file:
        return sum(1 for line in file if line.strip())


def _read_lines(path: str, first: int) -> list[tuple[int, str, bytes]]:
    out: list[tuple[int, str, bytes]] = []
    with open(path, "rb") as file:
        for number, line in enumerate(file, 1):
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
