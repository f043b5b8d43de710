"""Batch worker processes, each on its own pipe, so a worker that dies loses nothing.

Why not :class:`concurrent.futures.ProcessPoolExecutor`: its workers share one result pipe.
A worker killed while writing a result leaves half a message in that pipe. The executor
then waits for the rest forever, because the other workers keep the pipe open. On this
machine, killing a worker with SIGKILL hung the batch about one time in ten.

Here each worker has its own socket pair, and only the worker holds the far end. When a
worker dies, the parent reads end-of-file, never half a message. The chunks the worker held
are screened again on a fresh worker, each with nothing else in flight there: first whole,
and then, if the worker dies again, record by record. A record that kills a worker on its
own gets an error line (``worker_crashed``). Results come back in input order.
"""

from __future__ import annotations

import multiprocessing
import pickle
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from screening.batch.worker import (
    Chunk,
    ChunkResult,
    failed_line,
    init_worker,
    payload_record_id,
    screen_chunk,
)
from screening.errors import EngineError
from screening.present.report import Summary

IN_FLIGHT_PER_WORKER = 2  # one screening, one waiting in the pipe: a worker never idles
MAX_DEATHS_WITHOUT_PROGRESS = 5
CRASHED = "the worker process died while screening this record"

Work = Callable[[Chunk], ChunkResult]


class StopFlag(Protocol):
    requested: bool


@dataclass
class _Task:
    chunk: Chunk
    size: int  # input bytes, for the progress bar
    alone: bool = False  # a retry after a crash: nothing else is in flight on its worker

    @property
    def position(self) -> int:
        return self.chunk[0]


def chunk_bytes(chunk: Chunk) -> int:
    """The input bytes a chunk's items came from."""
    return sum(item[2] for item in chunk[1])


class _Worker:
    """One process, its end of the pipe, and the tasks it holds, oldest first."""

    def __init__(self, context: Any, initargs: tuple[Any, ...], work: Work) -> None:
        parent, child = context.Pipe(duplex=True)
        self.process: BaseProcess = context.Process(
            target=_serve, args=(child, initargs, work), daemon=True, name="screening-worker"
        )
        self.process.start()
        child.close()  # the worker holds the only far end: its death is end-of-file here
        self.conn: Connection = parent
        self.tasks: deque[_Task] = deque()
        # Sending from a thread: the parent never blocks on a busy worker's full pipe.
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._sender = threading.Thread(target=self._send_loop, daemon=True)
        self._sender.start()

    def _send_loop(self) -> None:
        while (data := self._outbox.get()) is not None:
            try:
                self.conn.send_bytes(data)
            except OSError:  # the worker died; the parent sees it on the pipe
                return

    def send(self, task: _Task) -> None:
        self.tasks.append(task)
        self._outbox.put(pickle.dumps(task.chunk, pickle.HIGHEST_PROTOCOL))

    def accepts(self, task_alone: bool) -> bool:
        if task_alone:
            return not self.tasks
        return len(self.tasks) < IN_FLIGHT_PER_WORKER and not (self.tasks and self.tasks[0].alone)

    def close(self, wait_for_work: bool) -> None:
        self._outbox.put(None)
        if self.tasks and not wait_for_work:
            self.process.terminate()
        self._sender.join(timeout=5)
        self.conn.close()  # an idle worker reads end-of-file and exits
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


def _serve(conn: Connection, initargs: tuple[Any, ...], work: Work) -> None:
    """A worker's life: build the Screener once, then screen chunks until end-of-file."""
    init_worker(*initargs)
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        result = work(pickle.loads(data))
        conn.send_bytes(pickle.dumps(result, pickle.HIGHEST_PROTOCOL))


class WorkerPool:
    """``workers`` processes screening chunks in parallel; results in input order."""

    def __init__(self, workers: int, initargs: tuple[Any, ...], work: Work = screen_chunk) -> None:
        self._context = multiprocessing.get_context("spawn")  # no fork under the progress thread
        self._initargs = initargs
        self._work = work
        self._deaths = 0
        self._window = workers * (IN_FLIGHT_PER_WORKER + 1)
        # Start every worker now, so they load the rules while the parent does.
        self._workers = [self._spawn() for _ in range(workers)]
        self._retries: deque[_Task] = deque()
        self._done: dict[int, tuple[ChunkResult, int]] = {}

    def _spawn(self) -> _Worker:
        return _Worker(self._context, self._initargs, self._work)

    def run(self, chunks: Iterator[Chunk], stop: StopFlag) -> Iterator[tuple[ChunkResult, int]]:
        """Screen ``chunks``, yielding each result and its input bytes, in input order.

        Returns early, without waiting for chunks in flight, once ``stop.requested``.
        """
        first = next(chunks, None)
        if first is None:
            return
        next_position = first[0]
        pending: Iterator[Chunk] | None = _prepend(first, chunks)
        while True:
            pending = self._dispatch(pending, stop)
            if stop.requested:
                return
            while next_position in self._done:
                result, size = self._done.pop(next_position)
                next_position += result.records
                yield result, size
                if stop.requested:
                    return
            busy = [worker for worker in self._workers if worker.tasks]
            if not busy:
                if self._done:  # nothing in flight, and still the next result is missing
                    raise EngineError(f"the batch lost the record at position {next_position}")
                if pending is None and not self._retries:
                    return
                continue
            self._receive(busy)

    def _in_flight(self) -> int:
        return sum(len(worker.tasks) for worker in self._workers)

    def _dispatch(self, chunks: Iterator[Chunk] | None, stop: StopFlag) -> Iterator[Chunk] | None:
        """Hand out retries first (each to an idle worker), then new chunks; None when done."""
        while not stop.requested:
            if self._retries:
                worker = self._pick(alone=True)
                if worker is None:
                    return chunks  # no new chunks until the retries have a worker to themselves
                worker.send(self._retries.popleft())
                continue
            if chunks is None or self._in_flight() + len(self._done) >= self._window:
                return chunks
            worker = self._pick(alone=False)
            if worker is None:
                return chunks
            chunk = next(chunks, None)
            if chunk is None:
                return None
            worker.send(_Task(chunk, chunk_bytes(chunk)))
        return chunks

    def _pick(self, alone: bool) -> _Worker | None:
        ready = [worker for worker in self._workers if worker.accepts(alone)]
        return min(ready, key=lambda worker: len(worker.tasks), default=None)

    def _receive(self, busy: list[_Worker]) -> None:
        """Wait until a busy worker answers or dies; take every whole result it sent."""
        handles: dict[Any, _Worker] = {}
        for worker in busy:
            handles[worker.conn] = worker
            handles[worker.process.sentinel] = worker
        ready = {handles[handle] for handle in wait(list(handles))}
        for worker in busy:
            if worker in ready:
                self._drain(worker)

    def _drain(self, worker: _Worker) -> None:
        while worker.tasks and worker.conn.poll():
            try:
                data = worker.conn.recv_bytes()
            except (EOFError, OSError):  # died, perhaps halfway through a message
                self._replace(worker)
                return
            task = worker.tasks.popleft()
            self._done[task.position] = (pickle.loads(data), task.size)
            self._deaths = 0
        if not worker.process.is_alive():
            self._replace(worker)

    def _replace(self, worker: _Worker) -> None:
        """A worker died: start another, and screen what it held again, in isolation."""
        self._deaths += 1
        if self._deaths > MAX_DEATHS_WITHOUT_PROGRESS:
            raise EngineError("worker processes keep dying without finishing any work; giving up")
        lost = list(worker.tasks)
        worker.tasks.clear()
        worker.close(wait_for_work=False)
        self._workers[self._workers.index(worker)] = self._spawn()
        for task in lost:
            self._retry(task)

    def _retry(self, task: _Task) -> None:
        first, items = task.chunk
        if not task.alone:  # the whole chunk again, alone on its worker
            self._retries.append(_Task(task.chunk, task.size, alone=True))
        elif len(items) > 1:  # it killed a worker by itself: find the record that does
            for position, item in enumerate(items, first):
                self._retries.append(_Task((position, [item]), item[2], alone=True))
        else:  # this record kills a worker on its own
            summary = Summary()
            source, payload, _ = items[0]
            line = failed_line(first, source, "worker_crashed", CRASHED, summary, payload_record_id(payload))
            self._done[first] = (ChunkResult(line, summary, 1), task.size)

    def shutdown(self) -> None:
        """Stop every worker: idle ones finish, busy ones (after a stop) are terminated."""
        for worker in self._workers:
            worker.close(wait_for_work=False)


def _prepend(first: Chunk, rest: Iterator[Chunk]) -> Iterator[Chunk]:
    yield first
    yield from rest
