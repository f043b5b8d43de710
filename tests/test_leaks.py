"""Loading a rule set and building engines give their memory back once dropped.

Before, each load kept ~1.7 MiB of YAML nodes in a module-level constructor, and each
engine's durable-rules ruleset (~0.9 MiB of C memory) stayed until close(), which nothing
called. ``bench/leaks.py`` measures both over 200 iterations.
"""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

from screening import Screener, load_ruleset
from screening.engine.durable import DurableEngine

from .conftest import RULES


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def test_loading_the_rule_set_again_and_again_keeps_no_python_memory() -> None:
    load_ruleset(RULES)
    tracemalloc.start()
    try:
        load_ruleset(RULES)
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(10):
            load_ruleset(RULES)
        gc.collect()
        growth = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert growth < 10 * 100 * 1024, f"{growth / 10 / 1024:.0f} KiB kept per load"


def test_dropped_engines_free_their_durable_rules_ruleset(screener: Screener) -> None:
    for _ in range(5):
        DurableEngine(screener.definition)
    before = _rss_kib()
    for _ in range(150):
        DurableEngine(screener.definition)
    growth = _rss_kib() - before
    assert growth < 150 * 200, f"{growth / 150:.0f} KiB kept per engine"


def test_closing_an_engine_twice_is_harmless(screener: Screener) -> None:
    engine = DurableEngine(screener.definition)
    engine.close()
    engine.close()
    del engine
    gc.collect()
