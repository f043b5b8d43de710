"""The batch's worker pool: results in input order, and a record that kills its worker is found.

The pool runs real worker processes with the real Screener. The work function here screens
a chunk with the real `screen_chunk`, except that a record whose id is ``kill-me`` ends
its process on the spot, as a segfault or an out-of-memory kill would.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import orjson
import pytest

from screening.batch.inputs import Item
from screening.batch.pool import WorkerPool
from screening.batch.synthetic import generate_records
from screening.batch.worker import Chunk, ChunkResult, init_worker, screen_chunk
from screening.errors import EngineError
from screening.ruleset.loading import load_ruleset

from .conftest import AS_OF, RULES

KILLER = b'{"id": "kill-me"}'


def screen_or_die(chunk: Chunk) -> ChunkResult:
    """`screen_chunk`, but a process that meets the killer record dies at once."""
    if any(KILLER in item[1] for item in chunk[1] if isinstance(item[1], bytes)):
        os._exit(9)
    return screen_chunk(chunk)


def always_die(chunk: Chunk) -> ChunkResult:
    os._exit(9)


class Go:
    requested = False


def items(count: int, killers: set[int]) -> list[Item]:
    records = generate_records(count, seed=5, as_of=AS_OF)
    found: list[Item] = []
    for index in range(count):
        payload = KILLER if index in killers else orjson.dumps(next(records))
        found.append((f"input.jsonl:{index + 1}", payload, len(payload) + 1))
    return found


def chunks(all_items: list[Item], size: int) -> Iterator[Chunk]:
    for first in range(0, len(all_items), size):
        yield first, all_items[first : first + size]


def screened(all_items: list[Item], size: int, work: object) -> list[dict[str, object]]:
    pool = WorkerPool(2, (str(RULES), None, AS_OF), work)  # type: ignore[arg-type]
    try:
        out = b"".join(result.lines for result, _ in pool.run(chunks(all_items, size), Go()))
    finally:
        pool.shutdown()
    return [orjson.loads(line) for line in out.splitlines()]


def test_records_that_kill_their_worker_get_an_error_line_and_the_rest_are_screened() -> None:
    all_items = items(120, killers={13, 14, 77})
    lines = screened(all_items, size=10, work=screen_or_die)
    assert [line["position"] for line in lines] == list(range(120))
    assert [line["source"] for line in lines] == [item[0] for item in all_items]
    crashed = [line["position"] for line in lines if "error" in line]
    assert crashed == [13, 14, 77]
    assert all(lines[p]["error"]["code"] == "worker_crashed" for p in crashed)  # type: ignore[index]
    assert sum("decision" in line or "not_screened" in line for line in lines) == 117


def test_the_same_lines_as_one_process_without_crashes() -> None:
    all_items = items(300, killers=set())
    lines = screened(all_items, size=7, work=screen_or_die)
    single = [orjson.loads(line) for _, chunk in chunks(all_items, 300) for line in _inline(chunk)]
    assert lines == single


def _inline(chunk: list[Item]) -> list[bytes]:
    """The chunk's lines screened in this process, the reference for the pool."""
    init_worker(str(RULES), None, AS_OF, ruleset=load_ruleset(RULES))
    return screen_chunk((0, chunk)).lines.splitlines()


def test_workers_that_always_die_give_up_with_a_clear_error() -> None:
    with pytest.raises(EngineError, match="keep dying"):
        screened(items(20, killers=set()), size=5, work=always_die)
