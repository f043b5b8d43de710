"""Mutated FHIR input never breaks the reader: results or the package's own errors.

Seeds are the fixtures (FHIR examples, a cut of a Synthea Bundle and of a Synthea Bulk
export, CDS Hooks requests) and a Bundle of the eligible base record. Each example drops
elements, puts values of the wrong JSON type where others belong (objects, lists, numbers,
null where strings are expected) and points references elsewhere, then goes through
``Screener.screen_fhir``, the batch path (Bundle directories and Bulk exports, through the
worker's own screening function) and the HTTP service (``/screen``, ``/screen/batch``, CDS
Hooks). What may come out: decisions, NotScreened, RecordError results and
:class:`~screening.errors.ScreeningError`; never another exception, an ``internal_error``
batch line, or a 500.

The CI budget is a few hundred examples in all; ``--hypothesis-profile=long`` (or
``HYPOTHESIS_PROFILE=long``) runs each test with the profile's many more.
"""

from __future__ import annotations

import copy
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from screening import RecordError, Screener
from screening.batch.inputs import read_bulk, read_bundles
from screening.batch.worker import screen_result
from screening.decision import Decision, NotScreened
from screening.errors import ScreeningError
from screening.present.report import Summary
from screening.service.app import create_app

from .conftest import AS_OF, eligible_record
from .test_fhir import FIXTURES, to_bundle

SYNTHEA_BUNDLE = FIXTURES / "synthea-r4-bundles" / "Jacki_Feil_2dfcf7a9-5fb8-4f56-9cf3-a35a74c60438.json"
BULK = FIXTURES / "synthea-bulk-ndjson"
_READ = {"Patient", "Condition", "Observation", "MedicationStatement", "MedicationRequest", "Procedure"}


def _examples(ci: int) -> int:
    """``ci`` examples, or the loaded profile's number when it asks for more (``long``)."""
    return max(ci, settings.default.max_examples) if settings.default.max_examples > 100 else ci


def _fuzz(ci: int) -> settings:
    return settings(
        max_examples=_examples(ci),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _synthea_cut() -> dict[str, Any]:
    """The Synthea Bundle's Patient and its first 12 resources of each type the screener reads."""
    data = json.loads(SYNTHEA_BUNDLE.read_text())
    kept: dict[str, int] = {}
    entries = []
    for entry in data["entry"]:
        kind = entry["resource"]["resourceType"]
        if kind in _READ and kept.get(kind, 0) < 12:
            kept[kind] = kept.get(kind, 0) + 1
            entries.append(entry)
    return {**data, "entry": entries}


def _bundle_seeds() -> list[dict[str, Any]]:
    examples = FIXTURES / "fhir-r4-examples"
    us_core = FIXTURES / "us-core-examples"
    files = [
        *(p for p in sorted(examples.glob("*.json")) if p.stat().st_size < 10_000),
        *sorted(us_core.glob("*.json")),
    ]
    return [to_bundle(eligible_record(id="p1")), _synthea_cut()] + [json.loads(p.read_text()) for p in files]


def _hook_seeds() -> list[dict[str, Any]]:
    eligible = to_bundle(eligible_record(id="p1"))
    own = {
        "hook": "patient-view",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {"patientId": "p1", "userId": "Practitioner/1"},
        "prefetch": {
            "patient": eligible["entry"][0]["resource"],
            "everything": {"resourceType": "Bundle", "type": "searchset", "entry": eligible["entry"][1:]},
        },
    }
    files = sorted((FIXTURES / "cds-hooks-opioid-cds" / "requests").glob("*.json"))[:3]
    return [own] + [json.loads(p.read_text()) for p in files]


BUNDLES = _bundle_seeds()
HOOKS = _hook_seeds()
BULK_LINES = {
    path.name: path.read_text().splitlines()[: 5 if path.name.startswith("Patient") else 25]
    for path in sorted(BULK.glob("*.ndjson"))
}

# What goes where a value was: mostly the wrong JSON type (objects, lists, numbers, null).
# Fresh objects each time (builds, not just): a later mutation may write into them.
JUNK = st.one_of(
    st.builds(dict),
    st.builds(list),
    st.none(),
    st.dictionaries(
        st.sampled_from(["reference", "value", "code", "system", "coding", "text", "id", "unit", "start"]),
        st.one_of(st.none(), st.integers(), st.text(max_size=6), st.builds(dict), st.builds(list)),
        max_size=3,
    ),
    st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=6), st.builds(dict)), max_size=3),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["", "final", "active", "2026-11-01", "2026", "Patient/p1", "kPa", "mm[Hg]", "1742-6"]),
)
REFERENCES = st.sampled_from(
    [
        {"reference": "https://other.example/fhir/Patient/p1"},
        {"reference": "https://other.example/fhir/Patient/A"},
        {"identifier": {"system": "urn:mrn", "value": "12345"}},
        {"display": "Jane Doe"},
        {"reference": "Patient/"},
        {"reference": "Patient/someone-else"},
        {"reference": "#contained"},
        {"reference": "urn:uuid:"},
        {"reference": "Patient/p1/_history/2"},
        {},
    ]
).map(copy.deepcopy)  # a fresh object: a later mutation may change what it was given


def _slots(node: Any) -> Iterator[tuple[Any, Any]]:
    """Every (container, key or index) pair below ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield node, key
            yield from _slots(value)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield node, index
            yield from _slots(value)


def _resources(node: Any) -> Iterator[dict[str, Any]]:
    """The objects with a resourceType (and the CDS Hooks request itself)."""
    if isinstance(node, dict):
        if "resourceType" in node or "hook" in node:
            yield node
        for value in node.values():
            yield from _resources(value)
    elif isinstance(node, list):
        for value in node:
            yield from _resources(value)


@st.composite
def mutated(draw: st.DrawFn, seed: Any, most: int = 4) -> Any:
    """A deep copy of ``seed`` with 1 to ``most`` elements dropped, retyped or re-pointed.

    Each mutation picks a resource, then one of its own elements (where the reader looks
    most) or any element below it."""
    data = copy.deepcopy(seed)
    for _ in range(draw(st.integers(1, most))):
        resources = list(_resources(data)) or [data]
        resource = draw(st.sampled_from(resources))
        own = draw(st.booleans())
        slots = [(resource, key) for key in resource] if own else list(_slots(resource))
        if not slots:
            continue
        container, key = draw(st.sampled_from(slots))
        action = draw(st.sampled_from(["drop", "junk", "junk", "junk", "reference", "subject"]))
        if action == "drop":
            del container[key]
        elif action == "junk":
            container[key] = draw(JUNK)
        elif action == "reference" and isinstance(container[key], dict):
            container[key] = draw(REFERENCES)
        elif action == "subject" and "resourceType" in resource:
            resource[draw(st.sampled_from(["subject", "patient"]))] = draw(REFERENCES)
    return data


def _check(results: list[Any]) -> None:
    for result in results:
        assert isinstance(result, (Decision, NotScreened, RecordError)), result


@pytest.fixture(scope="module")
def client(screener: Screener) -> TestClient:
    return TestClient(create_app(screener, as_of=AS_OF), raise_server_exceptions=False)


@_fuzz(120)
@given(data=st.sampled_from(BUNDLES).flatmap(mutated))
def test_screen_fhir_gives_results_or_its_own_errors(screener: Screener, data: Any) -> None:
    try:
        results = screener.screen_fhir(data, AS_OF, source="fuzz.json")
    except ScreeningError:
        return
    _check(results)


@_fuzz(40)
@given(data=st.sampled_from(BUNDLES).flatmap(mutated))
def test_a_bundle_directory_gives_a_line_per_patient_never_an_internal_error(
    screener: Screener, data: Any
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "bundle.json").write_text(json.dumps(data))
        _lines_are_results(screener, read_bundles(Path(folder), screener.ruleset))


@_fuzz(40)
@given(
    name=st.sampled_from(sorted(BULK_LINES)),
    index=st.integers(0, 24),
    data=st.data(),
)
def test_a_bulk_export_line_fails_at_most_its_patient(
    screener: Screener, name: str, index: int, data: st.DataObject
) -> None:
    lines = list(BULK_LINES[name])
    index %= len(lines)
    lines[index] = json.dumps(data.draw(mutated(json.loads(lines[index]))))
    with tempfile.TemporaryDirectory() as folder:
        for file, content in BULK_LINES.items():
            (Path(folder) / file).write_text("\n".join(lines if file == name else content) + "\n")
        out = _lines_are_results(screener, read_bulk(Path(folder), screener.ruleset))
    patients = len(BULK_LINES[next(n for n in BULK_LINES if n.startswith("Patient"))])
    # Every patient still has its line (a mutated Patient line may add an error line of its own).
    assert len(out) >= patients - (1 if name.startswith("Patient") else 0)


def _lines_are_results(screener: Screener, items: Iterator[Any]) -> list[dict[str, Any]]:
    summary = Summary()
    lines = [
        screen_result(screener, screener_day(), n, source, payload, summary)
        for n, (source, payload, _) in enumerate(items)
    ]
    for line in lines:
        assert ("decision" in line) + ("error" in line) + ("not_screened" in line) == 1, line
        assert line.get("error", {}).get("code") != "internal_error", line
    return lines


def screener_day() -> Any:
    from screening.screener import parse_as_of

    return parse_as_of(AS_OF)


@_fuzz(60)
@given(data=st.sampled_from(BUNDLES).flatmap(mutated))
def test_the_service_never_answers_500_and_keeps_the_good_records(client: TestClient, data: Any) -> None:
    # json, not orjson: NaN, infinity and integers past 64 bits reach the service as written.
    one = client.post("/screen", content=json.dumps(data))
    assert one.status_code in (200, 400, 413, 415, 422), one.text
    assert "code" in one.json() or "outcome" in one.json() or "not_screened" in one.text
    many = client.post("/screen/batch", content=json.dumps([data, eligible_record(id="good")]))
    if not _is_json(many.request.content):
        assert many.status_code == 400, many.text
        return
    assert many.status_code == 200, many.text
    good = [r for r in many.json()["results"] if r["position"] == 1]
    assert [r["decision"]["record_id"] for r in good] == ["good"]


def _is_json(body: bytes) -> bool:
    """Whether the service's JSON parser reads the body (it refuses NaN and huge integers)."""
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return True


@_fuzz(60)
@given(data=st.sampled_from(HOOKS).flatmap(mutated))
def test_cds_hooks_never_answers_500(client: TestClient, data: Any) -> None:
    response = client.post("/cds-services/ketamine-screening", content=json.dumps(data))
    assert response.status_code in (200, 400, 413, 415, 422), response.text
    if response.status_code == 200:
        assert response.json()["cards"]
