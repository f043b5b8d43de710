"""Compare builds of screening: compiled (mypyc) against pure Python, or two commits.

    python bench/builds.py TREE [TREE ...]             # e.g. this checkout and a pure copy
    python bench/builds.py . /tmp/pure --rounds 7 --records 3000

Each TREE is a checkout whose ``screening`` package a child process imports (compiled when
the tree holds the extension modules of an editable install; see README, "Compiled or pure
Python"). Round after round, each tree in turn screens the same generated records in
process (parse, screen, serialise: ``bench.py``'s in-process path), times the facts and
decision steps (``bench.py``'s by-step figures) and then runs the records as a batch with
two workers. Trees alternate within every round, so a load that comes and goes affects
them alike; the medians over the rounds are reported, in CPU time as well as wall time,
since CPU time is what a busy machine distorts least. A batch's CPU time includes its
worker processes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# Runs in a child per tree and round: that tree's bench.py (which puts the tree first on
# sys.path) screens the records, then runs them as a batch.
CHILD = """
import json, resource, sys, time, types
from pathlib import Path
tree, source, workers = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
sys.path.insert(0, str(tree / "bench"))
import bench
from screening.build import build_name
lines = source.read_bytes().splitlines()
screener = bench.Screener(tree / "rules")
for line in lines[:200]:
    bench._screen_line(screener, line, bench.AS_OF)
wall, cpu = time.perf_counter(), time.process_time()
for line in lines:
    bench._screen_line(screener, line, bench.AS_OF)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
bench.time = types.SimpleNamespace(perf_counter=time.process_time)  # bench.steps in CPU time
steps = bench.steps(screener, lines)
bench.time = time
children = resource.getrusage(resource.RUSAGE_CHILDREN)
before = children.ru_utime + children.ru_stime
out = source.with_suffix(".out.jsonl")
out.unlink(missing_ok=True)  # run_batch keeps an output it was not told to overwrite
result = bench.batch(source, workers, out)
children = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({
    "build": build_name(),
    "in_wall_us": 1e6 * wall / len(lines),
    "in_cpu_us": 1e6 * cpu / len(lines),
    "facts_cpu_us": steps["facts"],
    "decision_cpu_us": steps["decision"],
    "batch_wall_s": result["seconds"],
    "batch_worker_cpu_s": children.ru_utime + children.ru_stime - before,
    "errors": result["errors"],
}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("trees", nargs="+", type=Path, help="checkouts to compare")
    parser.add_argument("--records", type=int, default=3000, help="records per run (default 3000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--workers", type=int, default=2, help="batch workers (default 2)")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from screening.batch.synthetic import write_records

    source = Path(tempfile.mkdtemp(prefix="screening-builds-")) / "records.jsonl"
    write_records(source, args.records, 42, "2026-11-22")
    trees = [tree.resolve() for tree in args.trees]
    runs: dict[Path, list[dict[str, Any]]] = {tree: [] for tree in trees}
    for round_ in range(args.rounds):
        for tree in trees:
            done = subprocess.run(
                [sys.executable, "-c", CHILD, str(tree), str(source), str(args.workers)],
                capture_output=True,
                text=True,
                check=True,
            )
            runs[tree].append(json.loads(done.stdout.splitlines()[-1]))
        print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)

    print(f"python {sys.version.split()[0]}, {args.records:,} records, {args.rounds} rounds, medians")
    keys = {
        "in_wall_us": "in-proc wall us",
        "in_cpu_us": "in-proc cpu us",
        "facts_cpu_us": "facts cpu us",
        "decision_cpu_us": "decision cpu us",
        "batch_wall_s": "batch wall s",
        "batch_worker_cpu_s": "batch worker cpu s",
    }
    print(f"{'tree':<36}{'build':<18}" + "".join(f"{h:>19}" for h in keys.values()))
    for tree, results in runs.items():
        medians = [statistics.median(r[key] for r in results) for key in keys]
        errors = sum(r["errors"] for r in results)
        print(
            f"{tree!s:<36}{results[0]['build']:<18}"
            + "".join(f"{m:>19.2f}" for m in medians)
            + (f"   errors: {errors}" if errors else "")
        )


if __name__ == "__main__":
    main()
