"""Benchmark: validating a JSONL record from its bytes (pydantic ``model_validate_json``)
against the batch's path (``orjson.loads``, then ``parse_record`` on the dict).

    python bench/validate_json.py                 # 5,000 generated records, 5 rounds
    python bench/validate_json.py --records 20000

Prints microseconds per record of each path (best round), and whether the two accept and
refuse the same records over the generated ones and a set of altered ones (a number as
text, a boolean for a number, a float for a whole number, a bad date, an unknown field,
duplicate keys, NaN), and how long each takes to refuse a record with 200,000 unknown
keys (the batch's path counts the keys before pydantic sees them). Only a path that agrees everywhere and is faster is worth having.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from screening.batch.synthetic import generate_records  # noqa: E402
from screening.errors import ScreeningError  # noqa: E402
from screening.record import Record, parse_record  # noqa: E402

AS_OF = date(2026, 11, 22)


def via_orjson(line: bytes) -> Any:
    return parse_record(orjson.loads(line), AS_OF)


def via_pydantic(line: bytes) -> Any:
    return Record.model_validate_json(line, context={"as_of": AS_OF})


def altered(record: dict[str, Any]) -> list[bytes]:
    """Variants of a valid record that test the two paths' strictness."""
    out = []
    for change in (
        {"weight_kg": "82"},
        {"weight_kg": True},
        {"pain_scores": [{"score": 7.0, "date": "2026-11-01"}]},
        {"pain_scores": [{"score": 7, "date": "2026-11-31"}]},
        {"pain_scores": [{"score": 7, "date": 20261101}]},
        {"pain_scores": [{"score": 7, "date": "2026-11-01T10:00:00"}]},
        {"deceased": 0},
        {"sex": "MALE"},
        {"favourite_colour": "blue"},
    ):
        out.append(orjson.dumps({**record, **change}))
    text = orjson.dumps(record)
    out.append(text[:-1] + b',"id":"duplicate"}')
    out.append(text.replace(b'"weight_kg":', b'"weight_kg":NaN,"x":', 1))
    return out


def accepts(validate: Callable[[bytes], Any], line: bytes) -> Any:
    try:
        return validate(line).model_dump()
    except (ScreeningError, ValidationError, orjson.JSONDecodeError, ValueError):
        return "refused"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    records = list(generate_records(args.records, seed=42, as_of=AS_OF.isoformat()))
    lines = [orjson.dumps(r) for r in records if not r.get("deceased")]
    valid = [line for line in lines if accepts(via_orjson, line) != "refused"]
    print(f"{len(valid):,} valid generated records (of {len(lines):,})")
    paths = {"orjson.loads + parse_record": via_orjson, "model_validate_json": via_pydantic}
    best = dict.fromkeys(paths, float("inf"))
    for _ in range(args.rounds):  # interleaved, so that a busy moment slows both
        for name, validate in paths.items():
            started = time.perf_counter()
            for line in valid:
                validate(line)
            best[name] = min(best[name], time.perf_counter() - started)
    for name, seconds in best.items():
        print(f"  {name:<32}{1e6 * seconds / len(valid):>8.1f} us per record")
    hostile = orjson.dumps({**records[0], **{f"k{i}": i for i in range(200_000)}})
    for name, validate in (
        ("orjson.loads + parse_record", via_orjson),
        ("model_validate_json", via_pydantic),
    ):
        started = time.perf_counter()
        accepts(validate, hostile)
        print(f"  200,000 unknown keys, {name:<28}{1e3 * (time.perf_counter() - started):>8.1f} ms to refuse")
    cases = valid[:200] + [variant for record in records[:50] for variant in altered(record)]
    disagree = [line for line in cases if accepts(via_orjson, line) != accepts(via_pydantic, line)]
    print(
        f"{len(disagree)} of {len(cases)} records accepted by one path and refused by the other (or read differently)"
    )
    for line in disagree[:5]:
        print(
            f"  {line[:160]!r}...: orjson path {str(accepts(via_orjson, line))[:60]}, pydantic {str(accepts(via_pydantic, line))[:60]}"
        )


if __name__ == "__main__":
    main()
