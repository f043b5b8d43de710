"""Synthetic native intake records for demos, benchmarks and tests.

    >>> from screening.batch.synthetic import generate_records
    >>> records = list(generate_records(1000, seed=7, as_of="2026-11-22"))

Each record starts as a complete, clean candidate (CRPS, chronic and severe pain, failed
trials in two or more classes, controlled blood pressure, histories taken) and is then
given a profile: it stays clean, or gains cautions, findings for clinician review, gaps
(missing or stale data, histories not taken), or an exclusion. About one record in twenty
also carries an edge case: a birthday today, a reading exactly on a threshold, an age
instead of a birth date, a SNOMED CT code, an undotted ICD-10-CM code. Some carry noise
that changes nothing: older readings, past medications, unrelated diagnoses. A few
patients are deceased.

The same ``seed``, ``count`` and ``as_of`` always give the same records. Codes come from the
default rule set's value sets; every generated record is valid and screens without error.
"""

from __future__ import annotations

import csv
import io
import random
import sys
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson

from screening.batch.csv_layout import CSV_COLUMNS, csv_row_of
from screening.record import years_between
from screening.screener import parse_as_of

Record = dict[str, Any]

PROFILES = {"eligible": 26, "cautions": 24, "review": 16, "missing": 19, "ineligible": 15}
DECEASED_RATE = 0.003
EDGE_CASE_RATE = 0.05

_CLASSES = {
    "gabapentinoid_anticonvulsant": ["gabapentin", "pregabalin", "carbamazepine", "topiramate"],
    "snri_tca": ["duloxetine", "amitriptyline", "nortriptyline", "venlafaxine"],
    "nsaid_nonopioid": ["ibuprofen", "naproxen", "celecoxib", "diclofenac"],
    "opioid": ["tramadol", "oxycodone", "morphine", "tapentadol"],
    "topical": ["lidocaine 5% patch", "capsaicin 8% patch"],
    "physical_therapy": ["physiotherapy", "graded motor imagery", "mirror therapy"],
    "interventional": ["stellate ganglion block", "lumbar sympathetic block", "spinal cord stimulator trial"],
    "psychological": ["cognitive behavioral therapy for pain", "acceptance and commitment therapy"],
}
_FAILED = ["ineffective", "ineffective", "not_tolerated", "partial_response"]
_BENIGN_CONDITIONS = [
    ("K21.9", "Gastro-esophageal reflux disease without esophagitis"),
    ("J45.909", "Unspecified asthma, uncomplicated"),
    ("E03.9", "Hypothyroidism, unspecified"),
    ("G47.33", "Obstructive sleep apnea"),
    ("E78.5", "Hyperlipidemia, unspecified"),
    ("M81.0", "Age-related osteoporosis"),
]
_BENIGN_PSYCH = [
    ("F41.1", "Generalized anxiety disorder"),
    ("F33.1", "Major depressive disorder, recurrent, moderate"),
]
_BENIGN_MEDS = [("omeprazole", 20.0), ("levothyroxine", 0.1), ("atorvastatin", 20.0), ("naproxen", 1000.0)]
_WEAK_INDICATIONS = [
    ("M79.7", "Fibromyalgia"),
    ("B02.29", "Postherpetic neuralgia"),
    ("E11.42", "Type 2 diabetes mellitus with diabetic polyneuropathy"),
    ("G89.3", "Neoplasm related pain"),
    ("M54.16", "Radiculopathy, lumbar region"),
    ("S34.109S", "Injury of lumbar spinal cord, sequela"),
    ("G43.709", "Chronic migraine without aura"),
]
_NOT_INDICATED = [
    ("M17.11", "Unilateral primary osteoarthritis, right knee"),
    ("M16.11", "Primary osteoarthritis, right hip"),
]


def generate_records(count: int, seed: int = 0, as_of: date | str | None = None) -> Iterator[Record]:
    """``count`` synthetic records; the same seed, count and date give the same records."""
    day = parse_as_of(as_of)
    rng = random.Random(seed)
    names = list(PROFILES)
    weights = list(PROFILES.values())
    for n in range(count):
        record = _Builder(rng, day).base(f"syn-{seed}-{n:07d}")
        profile = rng.choices(names, weights)[0]
        _PROFILE_STEPS[profile](record, rng, day)
        if rng.random() < EDGE_CASE_RATE:
            rng.choice(_EDGE_CASES)(record, rng, day)
        if rng.random() < 0.3:
            _noise(record, rng, day)
        if rng.random() < DECEASED_RATE:
            record["deceased"] = True
        yield record


def _days_ago(day: date, days: int) -> str:
    return (day - timedelta(days=days)).isoformat()


def _age(record: Record, day: date) -> int:
    if "birth_date" in record:
        return years_between(date.fromisoformat(record["birth_date"]), day)
    return int(record.get("age") or 0)


class _Builder:
    def __init__(self, rng: random.Random, day: date) -> None:
        self.rng = rng
        self.day = day

    def base(self, record_id: str) -> Record:
        """A complete record that meets every criterion with no caution."""
        rng, day = self.rng, self.day
        sex = rng.choices(["female", "male", "other"], [58, 41, 1])[0]
        age = rng.randint(19, 63)
        birth = date(day.year - age - 1, rng.randint(1, 12), rng.randint(1, 28))
        onset_months = rng.randint(6, 120)
        classes = rng.sample([c for c in _CLASSES if c != "opioid"], rng.randint(2, 4))
        treatments = [
            {"name": rng.choice(_CLASSES[c]), "outcome": rng.choice(_FAILED)}
            | ({"treatment_class": c} if c in ("physical_therapy", "interventional", "psychological") else {})
            for c in classes
        ]
        if rng.random() < 0.3:
            treatments.append({"name": "naproxen", "outcome": rng.choice(["effective", "ongoing"])})
        record: Record = {
            "id": record_id,
            "birth_date": birth.isoformat(),
            "sex": sex,
            "weight_kg": round(rng.uniform(48, 125), 1),
            "pain_conditions": [
                {
                    "code": rng.choice(["G90.511", "G90.512", "G90.521", "G90.522", "G56.41", "G57.71"]),
                    "display": "Complex regional pain syndrome",
                    "onset": _days_ago(day, int(onset_months * 30.5)),
                    "primary": True,
                }
            ],
            "pain_scores": [
                {"score": rng.randint(5, 9), "date": _days_ago(day, rng.randint(0, 60))}
                for _ in range(rng.randint(1, 3))
            ],
            "treatments": treatments,
            "psychiatric_history": [
                {"code": c, "display": d, "status": "active"}
                for c, d in rng.sample(_BENIGN_PSYCH, rng.randint(0, 1))
            ],
            "substance_use_history": [],
            "conditions": [
                {"code": c, "display": d} for c, d in rng.sample(_BENIGN_CONDITIONS, rng.randint(0, 2))
            ],
            "blood_pressure": [
                {
                    "systolic": rng.randint(104, 138),
                    "diastolic": rng.randint(60, 86),
                    "date": _days_ago(day, rng.randint(0, 25)),
                }
            ],
            "medications": [
                {"name": n, "daily_dose_mg": dose} for n, dose in rng.sample(_BENIGN_MEDS, rng.randint(0, 2))
            ],
            "allergies": rng.choice(
                [[], [], [{"substance": "penicillin", "code": "7980"}], [{"substance": "sulfonamides"}]]
            ),
        }
        if rng.random() < 0.6:
            record["phq9"] = [
                {"item9": 0, "total": rng.randint(2, 14), "date": _days_ago(day, rng.randint(0, 28))}
            ]
        if rng.random() < 0.5:
            record["labs"] = [
                {
                    "test": "ALT",
                    "code": "1742-6",
                    "value": rng.randint(12, 38),
                    "unit": "U/L",
                    "upper_limit": 41,
                    "date": _days_ago(day, rng.randint(0, 80)),
                }
            ]
        if sex == "female" and 12 <= age <= 55:
            record["pregnancy_status"] = [
                {"status": "not_pregnant", "date": _days_ago(day, rng.randint(0, 25))}
            ]
            record["breastfeeding"] = False
        elif rng.random() < 0.5:
            record["breastfeeding"] = False
        return record


def _set_bp(record: Record, day: date, systolic: int, diastolic: int, days: int = 3) -> None:
    record["blood_pressure"] = [{"systolic": systolic, "diastolic": diastolic, "date": _days_ago(day, days)}]


def _add_dx(record: Record, field: str, code: str, display: str, **extra: Any) -> None:
    items = record.get(field)
    record[field] = [*(items or []), {"code": code, "display": display, **extra}]


def _drop_onsets(record: Record) -> None:
    for condition in record["pain_conditions"]:
        condition.pop("onset", None)


def _add_med(record: Record, name: str, dose: float | None) -> None:
    med: dict[str, Any] = {"name": name}
    if dose is not None:
        med["daily_dose_mg"] = dose
    record["medications"] = [*record["medications"], med]


# -- profiles ----------------------------------------------------------------------------


def _eligible(record: Record, rng: random.Random, day: date) -> None:
    return None


def _cautions(record: Record, rng: random.Random, day: date) -> None:
    steps: list[Callable[[], None]] = [
        lambda: _set_bp(record, day, rng.randint(142, 158), rng.randint(70, 95)),
        lambda: _add_med(
            record, rng.choice(["lorazepam", "clonazepam", "diazepam"]), rng.choice([1.0, 2.0, 10.0])
        ),
        lambda: _add_med(record, "lamotrigine", 200.0),
        lambda: _add_med(
            record, rng.choice(["oxycodone", "tramadol", "morphine"]), rng.choice([20.0, 100.0])
        ),
        lambda: _add_med(record, "methylphenidate", 36.0),
        lambda: _add_dx(
            record,
            "substance_use_history",
            "F11.21",
            "Opioid dependence, in remission",
            status="remission",
            last_active=_days_ago(day, rng.randint(400, 3000)),
        ),
        lambda: _add_dx(record, "conditions", "I10", "Essential hypertension"),
        lambda: _add_dx(record, "conditions", "E11.9", "Type 2 diabetes mellitus without complications"),
        lambda: record.update(
            birth_date=date(day.year - rng.randint(66, 84), rng.randint(1, 12), 1).isoformat(),
            pregnancy_status=[],
        ),
        lambda: record["pain_conditions"][0].update(
            zip(("code", "display"), rng.choice(_WEAK_INDICATIONS), strict=True)
        ),
        lambda: record.update(
            labs=[
                {
                    "test": "ALT",
                    "code": "1742-6",
                    "value": rng.randint(50, 110),
                    "unit": "U/L",
                    "upper_limit": 40,
                    "date": _days_ago(day, 10),
                }
            ]
        ),
    ]
    for step in rng.sample(steps, rng.choice([1, 1, 1, 2, 2, 3])):
        step()


def _review(record: Record, rng: random.Random, day: date) -> None:
    steps: list[Callable[[], None]] = [
        lambda: _set_bp(record, day, rng.randint(162, 180), rng.randint(80, 99)),
        lambda: _add_dx(
            record,
            "psychiatric_history",
            "F31.75",
            "Bipolar disorder, in full remission, most recent episode depressed",
            status="remission",
        ),
        lambda: _add_dx(record, "psychiatric_history", "F60.3", "Borderline personality disorder"),
        lambda: _add_dx(
            record,
            "psychiatric_history",
            "F12.959",
            "Cannabis use with psychotic disorder",
            status="resolved",
        ),
        lambda: record.update(
            phq9=[{"item9": rng.randint(1, 2), "total": rng.randint(14, 22), "date": _days_ago(day, 5)}]
        ),
        lambda: _add_dx(
            record,
            "substance_use_history",
            "F10.21",
            "Alcohol dependence, in remission",
            status="remission",
            last_active=_days_ago(day, rng.randint(200, 330)),
        ),
        lambda: _add_dx(
            record,
            "substance_use_history",
            "F16.21",
            "Hallucinogen dependence, in remission",
            status="remission",
            last_active=_days_ago(day, 2000),
        ),
        lambda: _add_dx(record, "conditions", "K74.60", "Unspecified cirrhosis of liver"),
        lambda: _add_dx(record, "conditions", "H40.11X1", "Primary open-angle glaucoma, mild stage"),
        lambda: _add_dx(record, "conditions", "I48.91", "Unspecified atrial fibrillation"),
        lambda: _add_dx(record, "conditions", "I25.2", "Old myocardial infarction"),
        lambda: _add_dx(record, "conditions", "G40.909", "Epilepsy, unspecified, not intractable"),
        lambda: _add_dx(record, "conditions", "N30.10", "Interstitial cystitis (chronic) without hematuria"),
        lambda: record.update(breastfeeding=True) if record["sex"] == "female" else None,
        lambda: record["pain_conditions"][0].update(
            zip(("code", "display"), rng.choice(_NOT_INDICATED), strict=True)
        ),
    ]
    rng.choice(steps)()


def _missing(record: Record, rng: random.Random, day: date) -> None:
    steps: list[Callable[[], None]] = [
        lambda: record.update(blood_pressure=[]),
        lambda: _set_bp(record, day, 128, 80, days=rng.randint(45, 300)),
        lambda: record.update(pain_scores=[{"score": 7, "date": _days_ago(day, rng.randint(100, 400))}]),
        lambda: record.update(psychiatric_history=None),
        lambda: record.update(substance_use_history=None),
        lambda: record.update(treatments=None),
        lambda: record.update(
            treatments=[{"name": "gabapentin", "outcome": "ineffective"}, {"name": "duloxetine"}]
        ),
        lambda: record.pop("birth_date"),
        lambda: _drop_onsets(record),
        lambda: record.update(pain_conditions=[]),
        lambda: _add_dx(record, "conditions", "I63.9", "Cerebral infarction, unspecified"),
        lambda: record.update(
            sex="female", birth_date=date(day.year - 35, 5, 5).isoformat(), pregnancy_status=[]
        ),
    ]
    for step in rng.sample(steps, rng.choice([1, 1, 2, 3])):
        step()


def _ineligible(record: Record, rng: random.Random, day: date) -> None:
    steps: list[Callable[[], None]] = [
        lambda: record.update(birth_date=date(day.year - rng.randint(13, 17), 3, 3).isoformat()),
        lambda: record["pain_conditions"][0].update(onset=_days_ago(day, rng.randint(20, 80))),
        lambda: record.update(pain_scores=[{"score": rng.randint(1, 3), "date": _days_ago(day, 7)}]),
        lambda: record.update(
            treatments=[
                {"name": "gabapentin", "outcome": "ineffective"},
                {"name": "duloxetine", "outcome": "effective"},
            ]
        ),
        lambda: _set_bp(record, day, rng.randint(182, 205), rng.randint(95, 115)),
        lambda: _add_dx(record, "psychiatric_history", "F20.9", "Schizophrenia, unspecified"),
        lambda: _add_dx(
            record, "psychiatric_history", "F31.12", "Bipolar disorder, current episode manic, moderate"
        ),
        lambda: _add_dx(record, "substance_use_history", "F11.20", "Opioid dependence, uncomplicated"),
        lambda: record.update(
            sex="female",
            birth_date=date(day.year - 29, 2, 2).isoformat(),
            pregnancy_status=[{"status": "pregnant", "date": _days_ago(day, 9)}],
        ),
        lambda: _add_dx(
            record,
            "conditions",
            "I21.4",
            "Non-ST elevation myocardial infarction",
            onset=_days_ago(day, rng.randint(20, 150)),
        ),
        lambda: _add_dx(record, "conditions", "I50.23", "Acute on chronic systolic heart failure"),
        lambda: _add_dx(record, "conditions", "K72.90", "Hepatic failure, unspecified without coma"),
        lambda: record.update(allergies=[{"substance": "ketamine"}]),
        lambda: _add_dx(record, "conditions", "E05.90", "Thyrotoxicosis, unspecified"),
    ]
    rng.choice(steps)()


_PROFILE_STEPS: dict[str, Callable[[Record, random.Random, date], None]] = {
    "eligible": _eligible,
    "cautions": _cautions,
    "review": _review,
    "missing": _missing,
    "ineligible": _ineligible,
}


# -- edge cases and noise ----------------------------------------------------------------


def _birthday_today(record: Record, rng: random.Random, day: date) -> None:
    try:
        record["birth_date"] = day.replace(year=day.year - 18).isoformat()
    except ValueError:  # 29 February
        record["birth_date"] = date(day.year - 18, 3, 1).isoformat()


def _on_thresholds(record: Record, rng: random.Random, day: date) -> None:
    _set_bp(record, day, rng.choice([140, 160, 180]), rng.choice([90, 100]))
    record["pain_scores"] = [{"score": 4, "date": _days_ago(day, 90)}]


def _age_not_birth_date(record: Record, rng: random.Random, day: date) -> None:
    if "birth_date" in record:
        record["age"] = _age(record, day)
        del record["birth_date"]


def _snomed_pain(record: Record, rng: random.Random, day: date) -> None:
    if record["pain_conditions"]:
        record["pain_conditions"][0].update(code="128200000", system="snomed")


def _undotted_code(record: Record, rng: random.Random, day: date) -> None:
    if record["pain_conditions"]:
        condition = record["pain_conditions"][0]
        condition["code"] = (
            condition["code"].replace(".", "").lower()
            if condition.get("system") != "snomed"
            else condition["code"]
        )


def _duration_not_onset(record: Record, rng: random.Random, day: date) -> None:
    if record["pain_conditions"] and "onset" in record["pain_conditions"][0]:
        condition = record["pain_conditions"][0]
        onset = date.fromisoformat(condition.pop("onset"))
        condition["duration_months"] = round((day - onset).days / 30.4375, 1)


_EDGE_CASES = [
    _birthday_today,
    _on_thresholds,
    _age_not_birth_date,
    _snomed_pain,
    _undotted_code,
    _duration_not_onset,
]


def _noise(record: Record, rng: random.Random, day: date) -> None:
    """Data that changes no outcome: older readings, past drugs, sources, a heart rate."""
    record["blood_pressure"] = [
        *record["blood_pressure"],
        {
            "systolic": rng.randint(110, 150),
            "diastolic": rng.randint(65, 92),
            "date": _days_ago(day, rng.randint(120, 700)),
        },
    ]
    record["pain_scores"] = [
        *record["pain_scores"],
        {"score": rng.randint(3, 9), "date": _days_ago(day, rng.randint(200, 900))},
    ]
    record["heart_rate"] = [{"bpm": rng.randint(58, 96), "date": _days_ago(day, rng.randint(0, 30))}]
    record["medications"] = [*record["medications"], {"name": "prednisolone", "status": "past"}]
    for condition in record["pain_conditions"]:
        condition["source"] = f"Condition/{rng.getrandbits(48):012x}"


def write_records(
    out: Path, count: int, seed: int, as_of: date | str | None, output_format: str = "jsonl"
) -> None:
    """Write ``count`` records to a file (``-`` for stdout), as JSONL or the batch CSV layout."""
    records = generate_records(count, seed, as_of)
    binary = sys.stdout.buffer if str(out) == "-" else out.open("wb")
    try:
        if output_format == "csv":
            text = io.TextIOWrapper(binary, encoding="utf-8", newline="", write_through=True)
            writer = csv.writer(text, lineterminator="\n")
            writer.writerow(CSV_COLUMNS)
            writer.writerows(csv_row_of(record) for record in records)
            text.detach()
        else:
            dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
            for record in records:
                binary.write(dumps(record, option=newline))
    finally:
        if binary is not sys.stdout.buffer:
            binary.close()
        else:
            binary.flush()
