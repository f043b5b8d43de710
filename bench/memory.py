"""Peak memory of a large batch: the whole process tree, sampled while it runs.

    python bench/memory.py                      # 200,000 generated records, 2 workers
    python bench/memory.py --records 1000000    # the issue's million (a few minutes)
    python bench/memory.py --input big.jsonl --workers 4

Runs ``screening batch`` as a child process and samples, every 0.2 s, the resident set
size (``VmRSS``) of it and of each of its worker processes, from ``/proc`` (Linux only).
It reports the peak of their sum, each process's own high-water mark (``VmHWM``), the
records/s and the error count, and checks that the output has one line per input line.
Memory that stays flat as the record count grows is the claim; run two sizes to see it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from screening.batch.synthetic import write_records  # noqa: E402

AS_OF = "2026-11-22"


def _status(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` field in KiB, or 0 once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _tree(pid: int) -> list[int]:
    found = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    for child in children:
        found.extend(_tree(int(child)))
    return found


class Sampler(threading.Thread):
    """Samples the process tree's RSS until the root exits."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        super().__init__(daemon=True)
        self.process = process
        self.peak_total_kib = 0
        self.high_water_kib: dict[int, int] = {}

    def run(self) -> None:
        while self.process.poll() is None:
            pids = _tree(self.process.pid)
            self.peak_total_kib = max(self.peak_total_kib, sum(_status(p, "VmRSS") for p in pids))
            for pid in pids:
                self.high_water_kib[pid] = max(self.high_water_kib.get(pid, 0), _status(pid, "VmHWM"))
            time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--input", type=Path, help="JSONL of native records (default: generated)")
    parser.add_argument("--records", type=int, default=200_000, help="records to generate (default 200,000)")
    parser.add_argument("--workers", type=int, default=2, help="batch worker processes (default 2)")
    args = parser.parse_args()
    if not Path("/proc/self/status").exists():
        sys.exit("bench/memory.py reads /proc: Linux only")

    workdir = Path(tempfile.mkdtemp(prefix="screening-memory-"))
    source = args.input or workdir / "records.jsonl"
    if not args.input:
        print(f"generating {args.records:,} records ...", flush=True)
        write_records(source, args.records, 42, AS_OF)
    out = workdir / "results.jsonl"
    command = [
        sys.executable, "-m", "screening.cli", "batch", str(source), "--out", str(out),
        "--as-of", AS_OF, "--workers", str(args.workers), "-q",
    ]  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE)
    sampler = Sampler(process)
    sampler.start()
    _, err = process.communicate()
    seconds = time.perf_counter() - started
    sampler.join()
    if process.returncode not in (0, 2):  # 2: some records failed, which is not a crash
        sys.exit(f"screening batch exited {process.returncode}: {err.decode()[-2000:]}")

    inputs = _count_lines(source)
    outputs = _count_lines(out)
    errors = _count_errors(out)
    print(f"records: {inputs:,} in, {outputs:,} out, {errors:,} error lines, exit code {process.returncode}")
    print(f"time: {seconds:,.1f} s, {outputs / seconds:,.0f} records/s with {args.workers} workers")
    print(
        f"peak RSS of the process tree (sum, sampled every 0.2 s): {sampler.peak_total_kib / 1024:,.0f} MiB"
    )
    for pid, kib in sorted(sampler.high_water_kib.items()):
        role = "batch" if pid == process.pid else "child"  # workers, and the resource tracker
        print(f"  {role:<7} pid {pid:<8} VmHWM {kib / 1024:>7,.0f} MiB")
    print(
        f"input {source.stat().st_size / 2**20:,.0f} MiB, output {out.stat().st_size / 2**20:,.0f} MiB in {workdir}"
    )
    if inputs != outputs:
        sys.exit("the output does not have one line per input line")


def _count_lines(path: Path) -> int:
    count = 0
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            count += block.count(b"\n")
    return count


def _count_errors(path: Path) -> int:
    with path.open("rb") as file:
        return sum(1 for line in file if b'"error":{' in line[:400])


if __name__ == "__main__":
    main()
