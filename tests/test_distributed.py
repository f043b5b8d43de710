"""Screening on Dask: a LocalCluster of two processes gives what `screening batch` gives."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from screening.batch import run_batch
from screening.generate import write_records
from screening.report import Summary

from .conftest import AS_OF, RULES

distributed = pytest.importorskip("dask.distributed", reason="the dask extra is not installed")


def test_screen_partitions_on_a_local_cluster_matches_batch(tmp_path: Path) -> None:
    from screening.distributed import read_jsonl, screen_partitions, summarize

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
        results = screen_partitions(read_jsonl([first, second]), rules=RULES, as_of=AS_OF)
        lines = results.compute()
        counts = summarize(results)
        pids = set(client.run(lambda: __import__("os").getpid()).values())
        screeners = client.run(lambda: len(__import__("screening.distributed").distributed._screeners))

    assert lines == expected
    assert counts.as_dict() == Summary.from_jsonl(out).as_dict()
    assert len(pids) == 2 and set(screeners.values()) <= {1}  # one Screener per worker process
