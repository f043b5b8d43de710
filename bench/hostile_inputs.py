"""How long a hostile record takes to be refused, and how big its error is.

    python bench/hostile_inputs.py            # every case, once each
    python bench/hostile_inputs.py --only conditions_2_5m

Each case is a JSON body that a client could send to ``POST /screen`` or put on a line
of a batch input. It is screened the way the service and the batch worker do it
(``Screener.screen(bytes)``: orjson, then the record model in Python mode), and through
``parse_record(bytes)`` (before the strict-input change, pydantic's JSON mode; since, orjson
and Python mode as well). For each it prints the seconds
until the error is raised, the error's class, how many problems it lists and the length
of its JSON (``RecordError.as_dict()``, what a batch line or an HTTP 422 body carries).
One run per case: these are seconds, not microseconds, and the GIL is held throughout.

It ends with what the checks cost a valid record: ``parse_record`` over 2,000 generated
records, the best of 15 rounds, in µs per record.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import get_args

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from screening import Screener, ScreeningError  # noqa: E402
from screening.batch.synthetic import generate_records  # noqa: E402
from screening.record import Record, parse_record  # noqa: E402

AS_OF = date(2026, 11, 22)


def empty_items(count: int) -> bytes:
    """The issue's body: ``{"id":"k","conditions":[{}, {}, ...]}``."""
    return b'{"id":"k","conditions":[' + b",".join([b"{}"] * count) + b"]}"


def huge_display(megabytes: int) -> bytes:
    text = "x" * (megabytes * 1_000_000)
    return orjson.dumps({"id": "k", "conditions": [{"code": "I10", "display": text}]})


def deep_nesting(depth: int) -> bytes:
    return b'{"id":"k","conditions":' + b"[" * depth + b"]" * depth + b"}"


def every_list_full(items: int) -> bytes:
    """Every list of the record at ``items`` empty items: the most per-item errors a body
    within the list limit can ask for."""
    lists = [name for name, field in Record.model_fields.items() if str(field.annotation).startswith("list")]
    return orjson.dumps({"id": "k", **{name: [{}] * items for name in lists}})


def late_problems(good: int, bad: int) -> bytes:
    """Every list with ``good`` valid items, then ``bad`` empty ones: the problems come
    after many items that are fine."""
    valid = {"date": "2026-01-01", "code": "I10", "name": "x", "substance": "x", "test": "ALT", "value": 1}
    valid |= {"score": 1, "systolic": 120, "diastolic": 80, "bpm": 70, "status": "pregnant"}
    record: dict[str, object] = {"id": "k"}
    for name, field in Record.model_fields.items():
        if str(field.annotation).startswith("list"):
            inner = get_args(field.annotation)[0]  # list[X], or list[X] | None
            model = get_args(inner)[0] if get_args(inner) else get_args(field.annotation)[0]
            item = {key: value for key, value in valid.items() if key in model.model_fields}
            if name != "pregnancy_status":
                item.pop("status", None)
            record[name] = [item] * good + [{}] * bad
    return orjson.dumps(record)


def unknown_keys(count: int) -> bytes:
    return orjson.dumps({"id": "k", **{f"k{i}": 1 for i in range(count)}})


CASES: dict[str, Callable[[], bytes]] = {
    "conditions_2_5m": lambda: empty_items(2_500_000),
    "conditions_1m": lambda: empty_items(1_000_000),
    "display_5mb": lambda: huge_display(5),
    "nesting_100k": lambda: deep_nesting(100_000),
    "nesting_500": lambda: deep_nesting(500),
    "every_list_10k": lambda: every_list_full(10_000),
    "unknown_keys_1m": lambda: unknown_keys(1_000_000),
    "late_problems": lambda: late_problems(20, 9_980),
    "sources_1m": lambda: orjson.dumps({"id": "k", "sources": {f"k{i}": "x" for i in range(1_000_000)}}),
}


def attempt(call: Callable[[], object]) -> tuple[float, str, int, int]:
    """Seconds to the error, its class, its problem count and the size of its JSON."""
    started = time.perf_counter()
    try:
        call()
    except ScreeningError as error:
        elapsed = time.perf_counter() - started
        details = error.as_dict() if hasattr(error, "as_dict") else {"message": str(error)}
        problems = len(getattr(error, "problems", []))
        return elapsed, type(error).__name__, problems, len(orjson.dumps(details))
    except Exception as error:
        return time.perf_counter() - started, f"escaped {type(error).__name__}", 0, 0
    return time.perf_counter() - started, "accepted", 0, 0


def valid_record_cost(rounds: int = 15) -> float:
    """µs per record to validate generated (valid) records: the price of the checks."""
    records = list(generate_records(2_000, seed=3, as_of=AS_OF))
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for record in records:
            parse_record(record, AS_OF)
        best = min(best, (time.perf_counter() - started) / len(records))
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--only", choices=sorted(CASES), action="append", help="run only these cases")
    args = parser.parse_args()
    screener = Screener()
    print(
        f"{'case':<18} {'body':>10} {'path':<22} {'seconds':>8}  {'error':<14} {'problems':>9} {'error JSON':>12}"
    )
    for name in args.only or CASES:
        body = CASES[name]()
        paths: dict[str, Callable[[], object]] = {
            "Screener.screen(bytes)": lambda body=body: screener.screen(body, AS_OF),  # type: ignore[misc]
            "parse_record(bytes)": lambda body=body: parse_record(body, AS_OF),  # type: ignore[misc]
        }
        for path, call in paths.items():
            seconds, kind, problems, size = attempt(call)
            print(
                f"{name:<18} {len(body):>10,} {path:<22} {seconds:>8.3f}  {kind:<14} {problems:>9,} {size:>12,}",
                flush=True,
            )
    print(f"valid records: parse_record {valid_record_cost():.1f} µs a record (best of 15 rounds of 2,000)")


if __name__ == "__main__":
    main()
