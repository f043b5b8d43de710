"""CDS Hooks (screening.service.cdshooks, over screening.service.app): discovery, cards, prefetch, fetching.

The spec examples and the CDC opioid CDS requests are copies in tests/fixtures/fhir; the
FHIR server that missing prefetch is fetched from is a fake one on 127.0.0.1.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from screening import InputError, Screener
from screening.decision import Decision
from screening.record import load_json
from screening.service.app import create_app
from screening.service.cdshooks import PREFETCH_TYPES, SERVICE_ID
from screening.service.fhir_fetch import FhirFetcher

from .conftest import AS_OF
from .test_fhir import FIXTURES, NATIVE_CASES, _comparable, bundle, to_bundle
from .test_server import running

DAY = date.fromisoformat(AS_OF)
SPEC = FIXTURES / "cds-hooks-spec-examples"
OPIOID = FIXTURES / "cds-hooks-opioid-cds"
MALFORMED = {
    "request-example-rec-03-patient-view-long-acting-opioid.json",
    "request-example-rec-10-patient-view-illicit-drugs.json",
    "request-example-rec-12-patient-view-out-opioid-misuse.json",
}
SERVICE = f"/cds-services/{SERVICE_ID}"
INDICATORS = {
    "ineligible": "critical",
    "needs_information": "warning",
    "needs_review": "warning",
    "eligible_with_cautions": "info",
    "eligible": "info",
}


@pytest.fixture(scope="module")
def client(screener: Screener) -> TestClient:
    return TestClient(create_app(screener, as_of=DAY))


def hook_request(prefetch: dict[str, Any], patient_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "hook": "patient-view",
        "context": {"userId": "Practitioner/example", "patientId": patient_id},
        "prefetch": prefetch,
        **extra,
    }


def prefetch_of(data: dict[str, Any]) -> dict[str, Any]:
    """What an EHR would prefetch for our templates from a patient's Bundle."""
    resources = [entry["resource"] for entry in data["entry"]]
    out: dict[str, Any] = {"patient": next(r for r in resources if r["resourceType"] == "Patient")}
    for key, kind in PREFETCH_TYPES.items():
        if kind != "Patient":
            entries = [{"resource": r} for r in resources if r["resourceType"] == kind]
            out[key] = {
                "resourceType": "Bundle",
                "type": "searchset",
                "total": len(entries),
                "entry": entries,
            }
    return out


def check_cards(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The response shape of the specification: cards with summary, indicator and source."""
    cards = body["cards"]
    assert isinstance(cards, list) and cards
    for card in cards:
        assert isinstance(card["summary"], str) and 0 < len(card["summary"]) < 140
        assert card["indicator"] in ("info", "warning", "critical")
        assert card["source"]["label"]
        assert isinstance(card["detail"], str) and card["uuid"]
    return cards


def test_discovery(client: TestClient, screener: Screener) -> None:
    [service] = client.get("/cds-services").json()["services"]
    assert service["hook"] == "patient-view" and service["id"] == SERVICE_ID
    prefetch = service["prefetch"]
    assert set(prefetch) == set(PREFETCH_TYPES)
    assert prefetch["patient"] == "Patient/{{context.patientId}}"
    for key, kind in PREFETCH_TYPES.items():
        assert prefetch[key].startswith(kind) and "{{context.patientId}}" in prefetch[key]
    for code in screener.ruleset.value_sets["bp_panel"].loinc:
        assert f"http://loinc.org|{code}" in prefetch["observations"]


@pytest.mark.parametrize("path", sorted(SPEC.glob("*.json")), ids=lambda p: p.name)
def test_every_spec_example_gets_cards_or_a_clear_error(client: TestClient, path: Path) -> None:
    response = client.post(SERVICE, content=path.read_bytes())
    if response.status_code == 200:
        check_cards(response.json())
        return
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["code"] == "invalid_input"
    assert error["field"] in ("hook", "hookInstance", "context", "context.patientId")


def test_spec_patient_view_example(client: TestClient) -> None:
    path = SPEC / "hl7_cds_hooks_index__patient-view-request-with-prefetch.L220.json"
    cards = check_cards(client.post(SERVICE, content=path.read_bytes()).json())
    main, unavailable = cards
    assert main["indicator"] == "warning" and main["summary"].startswith("Ketamine screening incomplete")
    assert "Condition" in unavailable["summary"] and "Patient" not in unavailable["summary"]
    request_minimal = client.post(
        SERVICE, content=(SPEC / "hl7_cds_hooks_index__request-minimal.L1436.json").read_bytes()
    )
    assert request_minimal.json()["field"] == "context.patientId"


def test_spec_prefetch_with_snipped_members(client: TestClient) -> None:
    filled = json.loads((SPEC / "hl7_cds_hooks_index__prefetch-filled.L671.json").read_bytes())
    cards = check_cards(client.post(SERVICE, json=hook_request(filled["prefetch"], "1288992")).json())
    assert cards[0]["indicator"] == "warning"


@pytest.mark.parametrize("path", sorted(OPIOID.rglob("*.json")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_opioid_cds_requests(client: TestClient, path: Path) -> None:
    response = client.post(SERVICE, content=path.read_bytes())
    if path.parent.name == "head" and path.name in MALFORMED:
        assert response.status_code == 400
        error = response.json()
        assert error["code"] == "invalid_input" and error["field"] and ":" in error["field"]
        line, column = (int(n) for n in error["field"].split(":"))
        assert line > 1 and column >= 1 and "not valid JSON" in error["message"]
        with pytest.raises(InputError) as caught:
            load_json(path.read_bytes(), source=str(path))
        assert str(caught.value).startswith(f"{path}:{line}:{column}: not valid JSON")
        return
    if json.loads(path.read_bytes()).get("hook") != "patient-view":
        # order-sign and order-select requests: this service declares patient-view only.
        assert response.status_code == 400 and response.json()["field"] == "hook", response.text
        return
    assert response.status_code == 200, response.text
    cards = check_cards(response.json())
    if path.name == "HelloWorld.json":  # no prefetch at all, and no usable fhirServer
        assert cards[-1]["summary"].startswith("Ketamine screening without some data: Patient, Condition")


def test_opioid_misuse_prefetch_is_read(client: TestClient) -> None:
    path = OPIOID / "requests" / "request-example-rec-12-patient-view-out-opioid-misuse.json"
    [main, unavailable] = check_cards(client.post(SERVICE, content=path.read_bytes()).json())
    assert main["indicator"] == "critical"
    assert "Combined opioid with other drug dependence" in main["detail"]
    assert "`Condition/example-rec-12-criteria-invalid`" in main["detail"]
    assert set(unavailable["summary"].split(": ")[1].split(", ")) == {
        "Observation",
        "MedicationStatement",
        "Procedure",
        "AllergyIntolerance",
    }


@pytest.mark.parametrize(
    "name", sorted(n for n, r in NATIVE_CASES.items() if _comparable(r) and r.get("treatments"))
)
def test_cards_from_our_fhir_fixtures(client: TestClient, screener: Screener, name: str) -> None:
    data = to_bundle(NATIVE_CASES[name])
    [decision] = screener.screen_fhir(data, AS_OF)
    assert isinstance(decision, Decision)
    [card] = check_cards(
        client.post(
            SERVICE, json=hook_request(prefetch_of(data), f"Patient/{NATIVE_CASES[name]['id']}")
        ).json()
    )
    assert card["indicator"] == INDICATORS[decision.outcome.value]
    decisive = [c for c in decision.criteria if c.decisive]
    if decision.outcome.value == "needs_information":
        assert "missing" in card["summary"]
    elif decisive:
        assert decisive[0].reason[:30] in card["summary"]
    assert f"**{decision.outcome.value.replace('_', ' ').capitalize()}**" in card["detail"]
    for result in decisive:
        assert f"**{result.id}**" in card["detail"]
    if card["indicator"] != "info":
        assert card["source"].get("url", "").startswith("https://") or card["source"]["label"]


def test_bp_exclusion_card_names_the_reading(client: TestClient) -> None:
    data = to_bundle(NATIVE_CASES["ineligible"])
    [card] = client.post(SERVICE, json=hook_request(prefetch_of(data), "example-ineligible-bp")).json()[
        "cards"
    ]
    assert card["indicator"] == "critical"
    assert card["summary"].startswith("Ketamine infusion not eligible: BP 186/104")
    assert "Observation/" in card["detail"] and card["source"]["label"]


@pytest.mark.parametrize(
    "path", sorted((FIXTURES / "synthea-r4-bundles").glob("*.json")), ids=lambda p: p.name[:20]
)
def test_cards_from_synthea_prefetch(client: TestClient, screener: Screener, path: Path) -> None:
    data = json.loads(path.read_bytes())
    prefetch = prefetch_of(data)
    [card] = check_cards(client.post(SERVICE, json=hook_request(prefetch, prefetch["patient"]["id"])).json())
    [decision] = screener.screen_fhir(data, AS_OF)
    assert isinstance(decision, Decision)
    assert card["indicator"] == INDICATORS[decision.outcome.value]


def test_null_prefetch_means_no_data_and_a_missing_key_means_unavailable(client: TestClient) -> None:
    data = to_bundle(NATIVE_CASES["eligible"])
    prefetch = prefetch_of(data)
    prefetch["allergies"] = None
    [card] = client.post(SERVICE, json=hook_request(prefetch, "example-eligible-crps")).json()["cards"]
    assert card["indicator"] == "info"
    del prefetch["conditions"]
    main, unavailable = client.post(SERVICE, json=hook_request(prefetch, "example-eligible-crps")).json()[
        "cards"
    ]
    assert main["indicator"] == "warning", "without conditions the psychiatric history is unknown"
    assert "psychiatric" in main["summary"] or "missing" in main["summary"]
    assert unavailable["summary"] == "Ketamine screening without some data: Condition"


def test_an_empty_medication_search_is_no_treatment_history(client: TestClient) -> None:
    data = to_bundle(NATIVE_CASES["no_treatment_history"])
    [card] = client.post(SERVICE, json=hook_request(prefetch_of(data), "nt")).json()["cards"]
    assert card["indicator"] == "critical" and "INC-REFRACTORY" in card["detail"]
    prefetch = prefetch_of(data)
    del prefetch["medicationStatements"]
    main, unavailable = client.post(SERVICE, json=hook_request(prefetch, "nt")).json()["cards"]
    assert main["indicator"] == "warning" and unavailable["summary"].endswith(": MedicationStatement")


def test_deceased_patient_card(client: TestClient) -> None:
    patient = {"resourceType": "Patient", "id": "gone", "deceasedDateTime": "2020-01-01"}
    [card, _] = client.post(SERVICE, json=hook_request({"patient": patient}, "gone")).json()["cards"]
    assert card["indicator"] == "info" and "deceased" in card["summary"]


def test_unknown_service_and_bad_prefetch(client: TestClient) -> None:
    unknown = client.post("/cds-services/other", json=hook_request({}, "p1"))
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_service"
    bad = client.post(SERVICE, json=hook_request({"conditions": [1, 2]}, "p1"))
    assert bad.status_code == 400 and bad.json()["field"] == "prefetch.conditions"


# -- fetching missing prefetch from the FHIR server -----------------------------------------


def fake_fhir(data: dict[str, Any], calls: list[dict[str, str]], broken: str | None = None) -> FastAPI:
    """A tiny FHIR server: Patient read and type searches by patient, paged by 1 resource."""
    app = FastAPI()
    resources = [entry["resource"] for entry in data["entry"]]

    @app.get("/r4/Patient/{pid}")
    def read(pid: str, request: Request) -> dict[str, Any]:
        calls.append({"path": request.url.path, "auth": request.headers.get("authorization", "")})
        return next(r for r in resources if r["resourceType"] == "Patient" and r["id"] == pid)

    @app.get("/r4/{kind}")
    def search(kind: str, request: Request, patient: str, page: int = 0) -> Any:
        calls.append({"path": request.url.path, "auth": request.headers.get("authorization", "")})
        if kind == broken:
            from fastapi.responses import JSONResponse

            return JSONResponse({"resourceType": "OperationOutcome"}, status_code=500)
        found = [r for r in resources if r["resourceType"] == kind]
        page_items = found[page : page + 1]
        out: dict[str, Any] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": r} for r in page_items],
        }
        if page + 1 < len(found):
            base = str(request.base_url).rstrip("/")
            out["link"] = [{"relation": "next", "url": f"{base}/r4/{kind}?patient={patient}&page={page + 1}"}]
        return out

    return app


def test_missing_prefetch_is_fetched_from_an_allowed_fhir_server(screener: Screener) -> None:
    data = to_bundle(NATIVE_CASES["eligible"])
    calls: list[dict[str, str]] = []
    with running(fake_fhir(data, calls)) as fhir_url:
        server = f"{fhir_url}/r4"
        app = create_app(screener, as_of=DAY, fetcher=FhirFetcher([server]))
        request = hook_request(
            {},
            "example-eligible-crps",
            fhirServer=server,
            fhirAuthorization={"access_token": "tok", "token_type": "Bearer"},
        )
        with running(app) as url:
            body = httpx.post(f"{url}{SERVICE}", json=request, timeout=30).json()
    [card] = check_cards(body)
    assert card["indicator"] == "info", card
    assert {c["auth"] for c in calls} == {"Bearer tok"}
    assert any(c["path"] == "/r4/Patient/example-eligible-crps" for c in calls)
    assert sum(c["path"] == "/r4/Observation" for c in calls) > 1, "paged searches are followed"


def test_fetch_failures_become_an_unavailable_card(screener: Screener) -> None:
    data = to_bundle(NATIVE_CASES["eligible"])
    calls: list[dict[str, str]] = []
    with running(fake_fhir(data, calls, broken="AllergyIntolerance")) as fhir_url:
        server = f"{fhir_url}/r4"
        app = TestClient(create_app(screener, as_of=DAY, fetcher=FhirFetcher([server])))
        request = hook_request(
            {}, "example-eligible-crps", fhirServer=server, fhirAuthorization={"access_token": "tok"}
        )
        main, unavailable = check_cards(app.post(SERVICE, json=request).json())
    assert unavailable["summary"].endswith(": AllergyIntolerance")
    assert "AllergyIntolerance could not be fetched: the FHIR server answered 500" in main["detail"]


def test_no_fetch_without_an_allowed_server_or_a_token(screener: Screener) -> None:
    seen: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda request: seen.append(request) or httpx.Response(500))
    app = TestClient(
        create_app(
            screener, as_of=DAY, fetcher=FhirFetcher(["https://ehr.example/fhir"], transport=transport)
        )
    )
    other = hook_request(
        {}, "p1", fhirServer="https://elsewhere.example/fhir", fhirAuthorization={"access_token": "t"}
    )
    no_token = hook_request({}, "p1", fhirServer="https://ehr.example/fhir")
    for request in (other, no_token):
        cards = check_cards(app.post(SERVICE, json=request).json())
        assert cards[-1]["summary"].startswith("Ketamine screening without some data: Patient, Condition")
    assert seen == []
    allowed = hook_request(
        {}, "p1", fhirServer="https://ehr.example/fhir/", fhirAuthorization={"access_token": "t"}
    )
    check_cards(app.post(SERVICE, json=allowed).json())
    assert seen and all(str(r.url).startswith("https://ehr.example/fhir/") for r in seen)


def test_fetcher_does_not_follow_links_to_other_hosts() -> None:
    import asyncio

    def answer(request: httpx.Request) -> httpx.Response:
        page = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [],
            "link": [{"relation": "next", "url": "https://evil.example/steal"}],
        }
        return httpx.Response(200, json=page)

    fetcher = FhirFetcher(["https://ehr.example/fhir"], transport=httpx.MockTransport(answer))
    found, failed = asyncio.run(
        fetcher.fetch(
            "https://ehr.example/fhir", "t", "p1", {"Condition": "Condition?patient={{context.patientId}}"}
        )
    )
    assert len(found) == 1 and failed == {}


def test_cds_hooks_over_a_real_http_server(screener: Screener) -> None:
    spec = (SPEC / "cds_hooks_docs_current__patient-view-request-with-prefetch.L168.json").read_bytes()
    malformed = (OPIOID / "head" / "request-example-rec-12-patient-view-out-opioid-misuse.json").read_bytes()
    with running(create_app(screener, as_of=DAY)) as url, httpx.Client(base_url=url) as http:
        assert http.get("/cds-services").json()["services"][0]["id"] == SERVICE_ID
        check_cards(http.post(SERVICE, content=spec).json())
        response = http.post(SERVICE, content=malformed)
        assert response.status_code == 400 and response.json()["field"] == "94:6"
        data = to_bundle(NATIVE_CASES["needs_review"])
        [card] = http.post(
            SERVICE, json=hook_request(prefetch_of(data), "example-needs-review-bipolar")
        ).json()["cards"]
        assert card["indicator"] == "warning" and card["summary"].startswith(
            "Ketamine infusion needs clinician review"
        )


def test_bundle_helper_builds_a_patient() -> None:
    assert bundle()["entry"][0]["resource"]["id"] == "p1"
