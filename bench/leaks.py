"""Memory kept by loading the rule set and building Screeners, over and over.

    python bench/leaks.py                 # 200 loads and 200 Screeners
    python bench/leaks.py --count 500

A long-lived process (the service, a notebook, a test session) may load a rule set or
build a Screener many times; each must give its memory back once it is dropped. This
loads the default rule set ``--count`` times, then builds ``--count`` Screeners (each
dropped before the next), and prints, per step, the growth of the Python heap
(``tracemalloc``, which sees Python objects only) and of the process's resident memory
(``VmRSS`` from ``/proc``, which also sees durable-rules' C allocations), in all and per
iteration, after a warm-up of a few iterations. The RSS pass runs first, without
tracemalloc; the heap pass then runs ``--count`` more. Each step runs in a fresh process.
Linux only for the RSS figure.
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from screening import Screener, load_ruleset  # noqa: E402

RULES = ROOT / "rules"
WARM_UP = 5


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def measure(name: str, step: Callable[[], object], count: int) -> None:
    """Two passes: the resident memory without tracemalloc (whose own records would count),
    then the Python heap with it."""
    for _ in range(WARM_UP):
        step()
    gc.collect()
    rss_before = rss_kib()
    for _ in range(count):
        step()
    gc.collect()
    rss = rss_kib() - rss_before
    tracemalloc.start()
    heap_before = tracemalloc.get_traced_memory()[0]
    for _ in range(count):
        step()
    gc.collect()
    heap = (tracemalloc.get_traced_memory()[0] - heap_before) / 1024
    tracemalloc.stop()
    print(
        f"{name:<22} x{count}: RSS {rss / 1024:+8.1f} MiB ({rss / count:+7.1f} KiB each), "
        f"Python heap {heap / 1024:+8.1f} MiB ({heap / count:+7.1f} KiB each)"
    )


def _loads() -> Callable[[], object]:
    return lambda: load_ruleset(RULES)


def _screeners() -> Callable[[], object]:
    ruleset = load_ruleset(RULES)  # loaded once: this step measures the Screener alone
    return lambda: Screener(ruleset=ruleset)


STEPS = {"load_ruleset(rules/)": _loads, "Screener(ruleset=...)": _screeners}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        measure(args.step, STEPS[args.step](), args.count)
        return
    # Each step in a fresh process: memory one step frees (tracemalloc's own records, say)
    # would otherwise be reused by the next and hide its growth.
    for step in STEPS:
        subprocess.run([sys.executable, __file__, "--count", str(args.count), "--step", step], check=True)


if __name__ == "__main__":
    main()
