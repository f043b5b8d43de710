"""Benchmark: our batch path against plain Python and naive durable-rules Host usage.

    python bench/bench.py                       # about 30 s: every variant, 2,000-20,000 records
    python bench/bench.py --seconds 10          # longer runs per variant
    python bench/bench.py --profile 20000       # cProfile of the in-process path, top costs

Every variant runs the same pipeline, JSONL in and decisions JSONL out, over the same
generated records with the same compiled rules. Only the step that decides which rules
fire differs:

``batch, 1 worker`` / ``batch, 2 workers``
    ``screening.batch.run.run_batch``, end to end (rule loading, worker start-up, output file).
``batch, full|compact|outcome JSONL|outcome Parquet, N workers``
    the same, for each output detail (``--detail``, and ``--out x.parquet``): ``outcome`` and
    Parquet decide without rendering any reason.
``floor: orjson.loads``
    parsing the same JSONL lines and nothing else: no screening can be faster.
``builds side by side``
    ``bench/builds.py`` over this checkout and a pure-Python copy of it (``git archive
    HEAD``, no extension modules), round by round: the compiled build against the pure one
    in one run (skip with ``--no-builds``).
``in-process, engine``
    one Screener in this process: the durable-rules C-level path of ``screening.engine.durable``.
``in-process, plain Python``
    the same, with ``Screener(engine=ReferenceEngine)``: the compiled rules as plain Python
    closures, built once (``screening.engine.reference``, no durable-rules).
``in-process, Host API``
    the same, with an engine that uses the naive durable-rules ``Host`` API: ``assert_fact``
    and ``delete_state`` per record, a Python callback per fired rule. This file is the one
    place outside ``screening/engine/durable.py`` that imports durable-rules, because it
    measures it.

Latency is per record in this process (parse, screen, serialise), after a warm-up.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import itertools
import os
import pstats
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from screening import Screener  # noqa: E402
from screening.batch.run import run_batch  # noqa: E402
from screening.batch.synthetic import write_records  # noqa: E402
from screening.build import build_name  # noqa: E402
from screening.engine.reference import ReferenceEngine  # noqa: E402
from screening.errors import ScreeningError  # noqa: E402

AS_OF = "2026-11-22"
Fired = Callable[[Mapping[str, Any]], frozenset[str]]


class HostApiEngine:
    """Naive durable-rules usage as a RuleEngine: a Host, a fresh sid per record, assert_fact,
    delete_state. Its ruleset name is global: one per process."""

    def __init__(self, definition: Mapping[str, Any]) -> None:
        from durable.engine import Host

        self._fired: list[str] = []
        rules = {name: {"all": rule["all"], "run": self._action(name)} for name, rule in definition.items()}
        self._host = Host()
        self._host.register_rulesets({"bench_host": rules})
        self._sids = itertools.count(1)

    def _action(self, name: str) -> Callable[[Any], None]:
        return lambda c: self._fired.append(name)

    def fired(self, fact: Mapping[str, Any]) -> frozenset[str]:
        from durable.engine import MessageNotHandledException

        self._fired.clear()
        sid = str(next(self._sids))
        with contextlib.suppress(MessageNotHandledException):  # nothing fired
            self._host.assert_fact("bench_host", {**fact, "sid": sid})
        self._host.delete_state("bench_host", sid)
        return frozenset(self._fired)

    def close(self) -> None:
        """The Host keeps its ruleset until the process ends."""


def in_process(lines: list[bytes], screener: Screener, seconds: float, out: Path) -> dict[str, Any]:
    """Records/s and per-record latency of parse + screen + serialise, for at most ``seconds``."""
    for line in lines[:200]:  # warm-up: caches, allocator
        _screen_line(screener, line, AS_OF)
    timings: list[float] = []
    errors = 0
    clock = time.perf_counter
    started = clock()
    deadline = started + seconds
    with out.open("wb") as file:
        for line in itertools.cycle(lines):
            t0 = clock()
            data, failed = _screen_line(screener, line, AS_OF)
            file.write(data)
            t1 = clock()
            timings.append(t1 - t0)
            errors += failed
            if t1 > deadline:
                break
    elapsed = clock() - started
    timings.sort()
    return {
        "records": len(timings),
        "seconds": elapsed,
        "rate": len(timings) / elapsed,
        "p50_ms": 1000 * timings[len(timings) // 2],
        "p99_ms": 1000 * timings[int(len(timings) * 0.99)],
        "errors": errors,
    }


def _screen_line(screener: Screener, line: bytes, as_of: str) -> tuple[bytes, int]:
    try:
        decision = screener.screen(orjson.loads(line), as_of)
    except ScreeningError as error:  # the Host API sometimes loses fired rules: EngineError
        return orjson.dumps({"error": str(error)}, option=orjson.OPT_APPEND_NEWLINE), 1
    return orjson.dumps(decision.as_dict(), option=orjson.OPT_APPEND_NEWLINE), 0


def batch(path: Path, workers: int, out: Path, detail: str = "full") -> dict[str, Any]:
    started = time.perf_counter()
    result = run_batch([path], out, rules=ROOT / "rules", as_of=AS_OF, workers=workers, detail=detail)
    elapsed = time.perf_counter() - started
    return {
        "records": result.records,
        "seconds": elapsed,
        "rate": result.records / elapsed,
        "errors": result.failed,
    }


def engine_only(screener: Screener, lines: list[bytes], deciders: dict[str, Fired]) -> dict[str, float]:
    """Microseconds per record of the deciding step alone, over precomputed facts."""
    from screening.engine.facts import compute_facts
    from screening.screener import parse_as_of

    day = parse_as_of(AS_OF)
    facts = []
    for line in lines[:2000]:
        record = screener.validate(orjson.loads(line), day)
        if not record.deceased:
            sheet = compute_facts(screener.ruleset, record, day, screener._classify, screener._plan)
            facts.append(screener._reader.fact(sheet.values))  # the fact the engine sees, gates and all
    out = {}
    for name, fired in deciders.items():
        started = time.perf_counter()
        for fact in facts:
            fired(fact)
        out[name] = 1e6 * (time.perf_counter() - started) / len(facts)
    return out


STEPS = ("parse JSON", "validate", "facts", "engine", "decision", "as_dict", "serialise")


def steps(screener: Screener, lines: list[bytes], rounds: int = 2) -> dict[str, float]:
    """Microseconds per record of each step of the in-process path (the last round counts)."""
    from screening.decision import decide
    from screening.engine.facts import compute_facts
    from screening.screener import parse_as_of

    day = parse_as_of(AS_OF)
    clock = time.perf_counter
    totals = dict.fromkeys(STEPS, 0.0)
    count = 0
    for round_ in range(rounds):
        for line in lines:
            t0 = clock()
            data = orjson.loads(line)
            t1 = clock()
            record = screener.validate(data, day)
            if record.deceased:
                continue
            t2 = clock()
            sheet = compute_facts(screener.ruleset, record, day, screener._classify, screener._plan)
            t3 = clock()
            statuses = screener.statuses(sheet)
            t4 = clock()
            decision = decide(screener.ruleset, record, day, sheet, statuses)
            t5 = clock()
            as_dict = decision.as_dict()
            t6 = clock()
            orjson.dumps(as_dict, option=orjson.OPT_APPEND_NEWLINE)
            t7 = clock()
            if round_ == rounds - 1:
                count += 1
                for name, start, end in zip(
                    STEPS, (t0, t1, t2, t3, t4, t5, t6), (t1, t2, t3, t4, t5, t6, t7), strict=True
                ):
                    totals[name] += end - start
    return {name: 1e6 * total / count for name, total in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--input", type=Path, help="JSONL of native records (default: generated)")
    parser.add_argument("--records", type=int, default=20000, help="records to generate (default 20000)")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per in-process variant (default 3)")
    parser.add_argument(
        "--batch-records", type=int, help="records per batch variant (default: ~2x --seconds of work)"
    )
    parser.add_argument(
        "--profile", type=int, metavar="N", help="profile the in-process path over N records instead"
    )
    parser.add_argument("--no-builds", action="store_true", help="skip the compiled/pure side by side")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="screening-bench-"))
    source = args.input or workdir / "records.jsonl"
    if not args.input:
        write_records(source, args.records, 42, AS_OF)
    lines = source.read_bytes().splitlines()
    screener = Screener(ROOT / "rules")
    if args.profile:
        profile(screener, lines[: args.profile], workdir / "profile.jsonl")
        return

    print(
        f"python {sys.version.split()[0]} ({build_name()}), {os.cpu_count()} cores, {len(screener.ruleset.criteria)} criteria "
        f"({len(screener.definition)} rules), rule set {screener.ruleset.id} {screener.ruleset.version}"
    )
    print(
        f"records: {len(lines):,} generated (seed 42, as of {AS_OF}); mean line {sum(map(len, lines)) / len(lines):,.0f} B"
    )
    print(
        f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (other processes skew the 2-worker figure)"
    )
    results: dict[str, dict[str, Any]] = {}
    results["in-process, engine"] = in_process(lines, screener, args.seconds, workdir / "engine.jsonl")
    reference = Screener(ROOT / "rules", engine=ReferenceEngine)
    results["in-process, plain Python"] = in_process(lines, reference, args.seconds, workdir / "plain.jsonl")
    host = Screener(ROOT / "rules", engine=HostApiEngine)
    results["in-process, Host API"] = in_process(lines, host, args.seconds, workdir / "host.jsonl")

    count = args.batch_records or min(
        len(lines), max(2000, int(results["in-process, engine"]["rate"] * args.seconds * 2))
    )
    subset = workdir / "batch.jsonl"
    subset.write_bytes(b"\n".join(lines[:count]) + b"\n")
    for workers in (1, 2):
        for label, detail, suffix in FORMS:
            out = workdir / f"{detail}-{workers}{suffix}"
            results[f"batch {label}, {workers}w"] = batch(subset, workers, out, detail)
    results["floor: orjson.loads"] = floor(lines, args.seconds)

    plain = results["in-process, plain Python"]["rate"]
    print()
    print(
        f"{'variant':<30}{'records':>9}{'seconds':>9}{'rec/s':>9}{'vs plain':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
    )
    for name, r in results.items():
        p50 = f"{r['p50_ms']:.3f}" if "p50_ms" in r else "-"
        p99 = f"{r['p99_ms']:.3f}" if "p99_ms" in r else "-"
        print(
            f"{name:<30}{r['records']:>9,}{r['seconds']:>9.2f}{r['rate']:>9,.0f}{r['rate'] / plain:>9.2f}x"
            f"{p50:>9}{p99:>9}{r['errors']:>8}"
        )
    print()
    for label, _, _ in FORMS:
        one, two = results[f"batch {label}, 1w"]["rate"], results[f"batch {label}, 2w"]["rate"]
        print(f"2 workers / 1 worker, {label}: {two / one:.2f}x")
    print(
        "targets (issue 11): outcome Parquet >= 10,000 rec/s on 1 worker, compact JSONL >= 6,000, "
        "full >= 1.5x the pure build, 2 workers >= 1.7x, p99 < 1 ms"
    )
    micro = engine_only(
        screener,
        lines,
        {
            "durable-rules C-level (DurableEngine)": screener.engine.fired,
            "plain Python (ReferenceEngine)": reference.engine.fired,
            "durable-rules Host API": host.engine.fired,
        },
    )
    print("\ndeciding step alone, per record (facts precomputed):")
    for name, us in micro.items():
        print(f"  {name:<42}{us:>8.1f} us")
    breakdown = steps(screener, lines[:5000])
    print("\nin-process path by step, per record (5,000 records, second round):")
    for name, us in breakdown.items():
        print(f"  {name:<42}{us:>8.1f} us")
    total = sum(breakdown.values())
    print(f"  {'all steps':<42}{total:>8.1f} us  ({1e6 / total:,.0f} records/s)")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of this process: {rss:.0f} MiB; outputs in {workdir}")
    if not args.no_builds:
        side_by_side(workdir)


FORMS = (
    ("full JSONL", "full", ".jsonl"),
    ("compact JSONL", "compact", ".jsonl"),
    ("outcome JSONL", "outcome", ".jsonl"),
    ("outcome Parquet", "outcome", ".parquet"),
)


def floor(lines: list[bytes], seconds: float) -> dict[str, Any]:
    """Parsing the lines with orjson and nothing else, for at least ``seconds``."""
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for line in lines:
            orjson.loads(line)
        count += len(lines)
    elapsed = time.perf_counter() - started
    return {"records": count, "seconds": elapsed, "rate": count / elapsed, "errors": 0}


def side_by_side(workdir: Path) -> None:
    """The compiled and the pure-Python build in one run, through bench/builds.py."""
    import subprocess

    pure = workdir / "pure"
    pure.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "HEAD"], capture_output=True, check=False)
    if archive.returncode != 0:
        print("\nbuilds side by side: skipped (not a git checkout)")
        return
    subprocess.run(["tar", "-x", "-C", str(pure)], input=archive.stdout, check=True)
    print(
        "\nbuilds side by side (bench/builds.py: this checkout, then a pure-Python copy of HEAD):", flush=True
    )
    command = [sys.executable, str(ROOT / "bench" / "builds.py"), str(ROOT), str(pure), "--rounds", "3"]
    subprocess.run([*command, "--records", "2000"], check=False)


def profile(screener: Screener, lines: list[bytes], out: Path) -> None:
    """cProfile of parse + screen + serialise over the given records."""
    profiler = cProfile.Profile()
    started = time.perf_counter()
    with out.open("wb") as file:
        profiler.enable()
        for line in lines:
            file.write(_screen_line(screener, line, AS_OF)[0])
        profiler.disable()
    elapsed = time.perf_counter() - started
    print(
        f"{len(lines):,} records in {elapsed:.2f} s under cProfile ({len(lines) / elapsed:,.0f} rec/s profiled)"
    )
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(40)
    print(text.getvalue())


if __name__ == "__main__":
    main()
