"""Screening on Dask: a LocalCluster of two processes gives what `screening batch` gives."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from screening.batch.run import run_batch
from screening.batch.synthetic import write_records
from screening.present.report import Summary

from .conftest import AS_OF, RULES

distributed = pytest.importorskip("dask.distributed", reason="the dask extra is not installed")


def test_screen_partitions_on_a_local_cluster_matches_batch(tmp_path: Path) -> None:
    from screening.batch.distributed import read_jsonl, screen_partitions, summarize

    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_records(first, 120, 8, AS_OF)
    write_records(second, 80, 9, AS_OF)
    with second.open("ab") as file:
        file.write(b"{oops\n")
    out = tmp_path / "batch.jsonl"
    run_batch([first, second], out, rules=RULES, as_of=AS_OF, workers=1)
    expected = [orjson.loads(line) for line in out.read_bytes().splitlines()]

    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        records = read_jsonl([first, second], blocksize=first.stat().st_size // 3)
        assert records.npartitions >= 6  # a large file is cut into byte ranges, not one partition
        results = screen_partitions(records, rules=RULES, as_of=AS_OF)
        lines = results.compute()
        counts = summarize(results)
        pids = set(client.run(lambda: __import__("os").getpid()).values())
        screeners = client.run(
            lambda: len(__import__("screening.batch.distributed").batch.distributed._screeners)
        )

    assert lines == expected
    assert counts.as_dict() == Summary.from_jsonl(out).as_dict()
    assert len(pids) == 2 and list(screeners.values()) == [1, 1]  # one Screener per worker process


def test_byte_ranges_keep_every_line_once_in_order(tmp_path: Path) -> None:
    """Ranges cut anywhere, even inside a line or at a newline, give batch's positions and sources."""
    from screening.batch.distributed import read_jsonl

    path = tmp_path / "a.jsonl"
    write_records(path, 40, 3, AS_OF)
    with path.open("ab") as file:
        file.write(b"\n\n{oops\n")
    lines = path.read_bytes().splitlines(keepends=True)
    numbered = [(number, line) for number, line in enumerate(lines, 1) if line.strip()]
    expected = [(position, f"{path}:{number}", line) for position, (number, line) in enumerate(numbered)]
    again = [(position + len(expected), source, line) for position, source, line in expected]
    first = len(lines[0])
    for blocksize in (first - 1, first, first + 1, 5000, 10**9):
        bag = read_jsonl([path, path], blocksize=blocksize)
        assert bag.compute(scheduler="sync") == expected + again, blocksize
