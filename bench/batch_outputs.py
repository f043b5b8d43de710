"""Benchmark: screening batch by output form, over the same generated records.

    python bench/batch_outputs.py                      # 6,000 records, 1 worker, every form
    python bench/batch_outputs.py --records 20000 --workers 2

Each form runs ``screening.batch.run_batch`` end to end (rule loading, the output file):
JSONL ``--detail full`` (the default), ``compact`` and ``outcome``, and Parquet. The two
last ones never render a reason (decide before explaining), so the difference between
``full`` and ``outcome`` is what the explanation and its serialisation cost. Also prints
the output's bytes per record and, with one worker (which screens in this process), the
CPU time per record: on a shared machine it moves far less than the wall-clock rate.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from screening.batch.run import run_batch  # noqa: E402
from screening.batch.synthetic import write_records  # noqa: E402

AS_OF = "2026-11-22"
FORMS: dict[str, tuple[str, dict[str, Any]]] = {
    "jsonl --detail full": ("full.jsonl", {}),
    "jsonl --detail compact": ("compact.jsonl", {"detail": "compact"}),
    "jsonl --detail outcome": ("outcome.jsonl", {"detail": "outcome"}),
    "parquet": ("results.parquet", {}),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=6000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2, help="runs per form; the best counts")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="screening-bench-outputs-"))
    source = workdir / "records.jsonl"
    write_records(source, args.records, 42, AS_OF)
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {args.records:,} records, {args.workers} worker(s)"
    )
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"\n{'form':<26}{'seconds':>9}{'rec/s':>9}{'CPU us/rec':>12}{'bytes/rec':>11}")
    for name, (file, options) in FORMS.items():
        best = cpu = float("inf")
        for _ in range(args.rounds):
            out = workdir / file
            started, cpu_started = time.perf_counter(), time.process_time()
            result = run_batch(
                [source], out, rules=ROOT / "rules", as_of=AS_OF, workers=args.workers, force=True, **options
            )
            best = min(best, time.perf_counter() - started)
            cpu = min(cpu, time.process_time() - cpu_started)
        size = out.stat().st_size
        cpu_us = f"{1e6 * cpu / result.records:,.0f}" if args.workers == 1 else "-"
        print(
            f"{name:<26}{best:>9.2f}{result.records / best:>9,.0f}{cpu_us:>12}{size / result.records:>11,.0f}"
        )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
