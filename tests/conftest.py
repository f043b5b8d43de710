from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from screening import Screener

# `pytest --hypothesis-profile=long` runs the property tests far longer than CI does.
settings.register_profile("long", max_examples=20_000, deadline=None)

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rules"
AS_OF = "2026-11-22"

# A long fuzz run: --hypothesis-profile=long, or HYPOTHESIS_PROFILE=long.
settings.register_profile("long", max_examples=20000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session")
def screener() -> Screener:
    """One engine for the whole session, on the real rule files."""
    return Screener(RULES)


def eligible_record(**changes: object) -> dict[str, object]:
    """A complete record that meets every criterion with no caution; override fields."""
    record: dict[str, object] = {
        "id": "base-eligible",
        "birth_date": "1975-03-02",
        "sex": "male",
        "weight_kg": 82,
        "pain_conditions": [
            {
                "code": "G90.512",
                "display": "Complex regional pain syndrome I of left upper limb",
                "onset": "2023-05-10",
                "primary": True,
            }
        ],
        "pain_scores": [{"score": 7, "date": "2026-11-01"}],
        "treatments": [
            {
                "name": "gabapentin",
                "treatment_class": "gabapentinoid_anticonvulsant",
                "outcome": "ineffective",
            },
            {"name": "duloxetine", "treatment_class": "snri_tca", "outcome": "not_tolerated"},
        ],
        "psychiatric_history": [],
        "substance_use_history": [],
        "conditions": [],
        "blood_pressure": [{"systolic": 128, "diastolic": 78, "date": "2026-11-10"}],
        "medications": [],
        "allergies": [],
    }
    record.update(changes)
    return record


# `pytest --hypothesis-profile=long`: the fuzz tests run many more examples.
settings.register_profile("long", max_examples=3000, deadline=None)


def write_cohort(path: Path, count: int, seed: int, malformed: dict[int, bytes]) -> Path:
    """A JSONL file of ``count`` lines: generated records, with the ``malformed`` lines at their
    (0-based) positions."""
    import orjson

    from screening.batch.synthetic import generate_records

    records = generate_records(count - len(malformed), seed=seed, as_of=AS_OF)
    with path.open("wb") as file:
        for index in range(count):
            file.write(malformed.get(index) or orjson.dumps(next(records)) + b"\n")
    return path
