"""The HTTP service (screening.service.app): endpoints, errors, limits, auth, logs, concurrency."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from screening import Screener
from screening.service.app import create_app

from .conftest import AS_OF, eligible_record
from .test_fhir import FIXTURES, bp_panel, bundle, to_bundle

DAY = date.fromisoformat(AS_OF)
SYNTHEA = sorted((FIXTURES / "synthea-r4-bundles").glob("*.json"))


@contextmanager
def running(app: FastAPI) -> Iterator[str]:
    """A real uvicorn server for the app on 127.0.0.1 and a free port, in a thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, log_level="info", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()


@pytest.fixture(scope="module")
def client(screener: Screener) -> TestClient:
    return TestClient(create_app(screener, as_of=DAY))


def test_health_and_rules(client: TestClient, screener: Screener) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["ruleset"]["sha256"] == screener.ruleset.sha256
    rules = client.get("/rules").json()
    assert rules["id"] == screener.ruleset.id and rules["version"] == screener.ruleset.version
    assert rules["sha256"] == screener.ruleset.sha256
    assert rules["parameters"]["bp_exclusion_systolic"]["value"] == 180
    assert rules["parameters"]["fhir_inferred_trial_min_weeks"]["value"] == 4
    assert {c["id"] for c in rules["criteria"]} >= {"INC-ADULT", "EXC-BP-UNCONTROLLED"}


def test_screen_native_record(client: TestClient, screener: Screener) -> None:
    record = eligible_record()
    response = client.post("/screen", json=record)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    answer = response.json()
    assert answer.pop("decision_id") == response.headers["x-decision-id"]
    assert answer == json.loads(screener.screen(record, AS_OF).to_json())
    text = client.post("/screen?format=text", json=record)
    assert text.status_code == 200 and text.text.startswith(" ELIGIBLE ") and "base-eligible" in text.text
    other_day = client.post("/screen?as_of=2026-12-31", json=record).json()
    assert other_day["as_of"] == "2026-12-31"


def test_screen_fhir_bundle(client: TestClient, screener: Screener) -> None:
    record = eligible_record(
        id="fhir-p", blood_pressure=[{"systolic": 186, "diastolic": 104, "date": "2026-11-10"}]
    )
    body = client.post("/screen", json=to_bundle(record)).json()
    assert body["record_id"] == "fhir-p" and body["outcome"] == "ineligible"
    assert body["input_notes"] == []
    evidence = next(c for c in body["criteria"] if c["id"] == "EXC-BP-UNCONTROLLED")["evidence"]
    assert evidence[0]["source"].startswith("Observation/")
    synthea = client.post("/screen?as_of=2021-01-01", content=SYNTHEA[0].read_bytes())
    assert synthea.status_code == 200 and synthea.json()["outcome"]


def test_screen_answers_not_screened_for_a_deceased_patient(client: TestClient) -> None:
    patient = {"resourceType": "Patient", "id": "gone", "deceasedBoolean": True}
    response = client.post("/screen", json=bundle(patient=patient))
    assert response.status_code == 200
    assert response.json()["code"] == "not_screened" and response.json()["record_id"] == "gone"
    assert client.post("/screen?format=text", json=eligible_record(deceased=True)).text.startswith(
        "NOT SCREENED"
    )


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        (b'{"id": "x",', 400, "invalid_input", "1:12"),
        (b"[1, 2]", 400, "invalid_input", None),
        (
            b'{"id": "x", "blood_pressure": [{"systolic": 500, "diastolic": 80, "date": "2026-11-01"}]}',
            422,
            "invalid_record",
            "blood_pressure[0].systolic",
        ),
        (json.dumps({"resourceType": "Bundle", "entry": ["x"]}).encode(), 400, "invalid_input", "entry[0]"),
        (json.dumps({"resourceType": "Observation"}).encode(), 400, "invalid_input", None),
    ],
)
def test_errors_are_clear_json(
    client: TestClient, body: bytes, status: int, code: str, field: str | None
) -> None:
    response = client.post("/screen", content=body)
    assert response.status_code == status
    payload = response.json()
    assert payload["code"] == code and payload["field"] == field and payload["message"]
    assert "Traceback" not in response.text


def test_request_errors_use_the_same_shape(client: TestClient) -> None:
    assert client.post("/screen?format=xml", json={}).json() == {
        "code": "invalid_request",
        "message": "Input should be 'json' or 'text'",
        "field": "query.format",
        "record_id": None,
        "problems": [],
    }
    assert client.post("/screen?as_of=tomorrow", json=eligible_record()).json()["field"] == "as_of"
    assert client.get("/nowhere").json()["code"] == "not_found"
    assert client.get("/screen").json()["code"] == "method_not_allowed"
    two = {
        "resourceType": "Bundle",
        "entry": [{"resource": {"resourceType": "Patient", "id": i}} for i in "ab"],
    }
    assert client.post("/screen", json=two).json()["code"] == "multiple_patients"


def test_body_size_limit(screener: Screener) -> None:
    small = TestClient(create_app(screener, max_body=2000, as_of=DAY))
    assert small.post("/screen", json=eligible_record()).status_code == 200
    response = small.post("/screen", content=b" " * 3000)
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"
    chunked = small.post("/screen", content=iter([b" " * 1500, b" " * 1500]))  # no Content-Length
    assert chunked.status_code == 413 and chunked.json()["code"] == "payload_too_large"


def test_batch(client: TestClient) -> None:
    two_patients = bundle(bp_panel(186, 104))
    two_patients["entry"].append(
        {"resource": {"resourceType": "Patient", "id": "p2", "birthDate": "1990-01-01"}}
    )
    items = [
        eligible_record(id="a"),
        two_patients,
        {"id": "bad", "sex": "unknown"},
        eligible_record(id="dead", deceased=True),
    ]
    body = client.post("/screen/batch", json={"records": items}).json()
    results = body["results"]
    assert body["count"] == len(results) == 5
    assert [r["position"] for r in results] == [0, 1, 1, 2, 3]
    assert results[0]["decision"]["record_id"] == "a"
    assert {r["decision"]["record_id"] for r in results[1:3]} == {"p1", "p2"}
    assert results[3]["error"]["code"] == "invalid_record" and results[3]["error"]["field"] == "sex"
    assert results[4]["not_screened"]["record_id"] == "dead"
    assert client.post("/screen/batch", json=[eligible_record()]).json()["count"] == 1


def test_batch_limit(screener: Screener) -> None:
    limited = TestClient(create_app(screener, batch_limit=2, as_of=DAY))
    assert limited.post("/screen/batch", json=[eligible_record()] * 2).status_code == 200
    response = limited.post("/screen/batch", json=[eligible_record()] * 3)
    assert response.status_code == 413 and response.json()["code"] == "batch_too_large"
    assert limited.post("/screen/batch", json={"records": "x"}).json()["code"] == "invalid_batch"


def test_bearer_token(screener: Screener) -> None:
    guarded = TestClient(create_app(screener, token="s3cret", as_of=DAY))
    refused = guarded.post("/screen", json=eligible_record())
    assert refused.status_code == 401 and refused.json()["code"] == "unauthorized"
    assert refused.headers["www-authenticate"] == "Bearer"
    wrong = guarded.post("/screen", json=eligible_record(), headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    odd = guarded.post(
        "/screen", json=eligible_record(), headers={"Authorization": "Bearer caf\u00e9".encode("latin-1")}
    )
    assert odd.status_code == 401
    ok = guarded.post("/screen", json=eligible_record(), headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200
    assert guarded.get("/cds-services").status_code == 401 and guarded.get("/rules").status_code == 401
    assert guarded.get("/health").status_code == 200 and guarded.get("/openapi.json").status_code == 200


def test_openapi_documents_every_endpoint(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert set(spec["paths"]) >= {
        "/screen",
        "/screen/batch",
        "/rules",
        "/health",
        "/cds-services",
        "/cds-services/{service_id}",
    }
    assert "Record" in spec["components"]["schemas"] and "BloodPressure" in spec["components"]["schemas"]
    body = spec["paths"]["/screen"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"$ref": "#/components/schemas/Record"} in body["oneOf"]
    assert client.get("/docs").status_code == 200


def test_internal_errors_are_logged_with_their_frames_and_no_patient_data(
    screener: Screener, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import screening.service.app

    def explode(*args: Any) -> Any:
        raise RuntimeError("secret-patient-777 blew up")

    monkeypatch.setattr(screening.service.app, "_screen_one", explode)
    caplog.set_level(logging.DEBUG)
    with running(create_app(screener, as_of=DAY)) as url:
        response = httpx.post(f"{url}/screen", json=eligible_record(id="secret-patient-777"))
        good = httpx.post(f"{url}/screen/batch", json=[eligible_record(id="secret-patient-888")])
    assert response.status_code == 500
    assert response.json() == {
        "code": "internal_error",
        "message": "internal error; the error was logged",
        "field": None,
        "record_id": None,
        "problems": [],
    }
    assert good.status_code == 200
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "internal error RuntimeError on POST /screen" in logged
    assert "POST /screen/batch" in logged, "requests are logged, by method and path"
    assert "secret-patient" not in logged and "secret-patient" not in caplog.text
    assert "Traceback (most recent call last)" in logged and "in explode" in logged
    assert "secret" not in response.text and "Traceback" not in response.text


def _record(index: int) -> dict[str, Any]:
    """A distinct patient per index, whose outcome depends on the index."""
    systolic = (120, 150, 170, 190)[index % 4]
    return eligible_record(
        id=f"patient-{index:04d}",
        blood_pressure=[{"systolic": systolic, "diastolic": 80, "date": "2026-11-10"}],
        birth_date=f"{1950 + index % 40}-03-02",
    )


def test_concurrent_requests_each_get_their_own_decision(screener: Screener) -> None:
    records = [_record(i) for i in range(400)]
    expected = {r["id"]: screener.screen(r, AS_OF).outcome.value for r in records}
    assert len(set(expected.values())) >= 3
    with running(create_app(screener, as_of=DAY)) as url:
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
        with httpx.Client(base_url=url, limits=limits, timeout=60) as http:

            def post(index: int) -> tuple[str, str, str]:
                record = records[index]
                body = to_bundle(record) if index % 5 == 0 else record  # some as FHIR
                answer = http.post("/screen", json=body)
                assert answer.status_code == 200, answer.text
                return record["id"], answer.json()["record_id"], answer.json()["outcome"]

            with ThreadPoolExecutor(max_workers=50) as pool:
                results = list(pool.map(post, range(len(records))))
    assert len(results) == len(records)
    for sent, got, outcome in results:
        assert got == sent
        assert outcome == expected[sent]


def test_app_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from screening.service.app import app_from_env

    monkeypatch.setenv("SCREENING_RULES", str(Path(__file__).parent.parent / "rules"))
    monkeypatch.setenv("SCREENING_TOKEN", "t0ken")
    monkeypatch.setenv("SCREENING_MAX_BODY", "100")
    app = TestClient(app_from_env())
    assert app.post("/screen", content=b" " * 200).status_code == 413
    assert app.get("/rules").status_code == 401
    assert app.get("/rules", headers={"Authorization": "Bearer t0ken"}).status_code == 200


@pytest.mark.parametrize(("body", "kind"), [(b'"hi"', "a string"), (b"[1]", "an array"), (b"null", "null")])
def test_json_that_is_not_an_object_is_refused_clearly(client: TestClient, body: bytes, kind: str) -> None:
    response = client.post("/screen", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["message"] == f"request body: a record must be a JSON object, not {kind}"


def test_the_docs_work_on_a_closed_network(client: TestClient) -> None:
    import re

    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assert "http://" not in html and "https://" not in html, page  # no CDN, no web fonts
        assets = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+\.(?:js|css))['"]""", html)
        assert assets, page
        for url in assets:  # served by this service, not by a CDN
            assert url.startswith("/"), url
            response = client.get(url)
            assert response.status_code == 200 and len(response.content) > 10_000, url
