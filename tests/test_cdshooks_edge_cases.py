"""CDS Hooks and the HTTP service: unavailable or mismatched prefetch, partial fetches, hooks, media types.

In-process, on the real engine and rule files; the remote FHIR server is an httpx
MockTransport.
"""

from __future__ import annotations

import copy
import json
from datetime import date
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from screening import Screener
from screening.service import cdshooks
from screening.service.app import create_app
from screening.service.cdshooks import SUMMARY_LIMIT, _clip
from screening.service.fhir_fetch import FhirFetcher

from .conftest import AS_OF
from .test_cdshooks import SERVICE, check_cards, hook_request, prefetch_of
from .test_fhir import NATIVE_CASES, to_bundle

DAY = date.fromisoformat(AS_OF)
SERVER = "https://fhir.example.org/r4"


@pytest.fixture(scope="module")
def client(screener: Screener) -> TestClient:
    return TestClient(create_app(screener, as_of=DAY))


def eligible_prefetch() -> tuple[dict[str, Any], str]:
    data = to_bundle(NATIVE_CASES["base_eligible"])
    prefetch = prefetch_of(data)
    return prefetch, prefetch["patient"]["id"]


def test_the_base_case_gets_an_info_card(client: TestClient) -> None:
    prefetch, patient = eligible_prefetch()
    [card] = check_cards(client.post(SERVICE, json=hook_request(prefetch, patient)).json())
    assert card["indicator"] == "info" and "criteria met" in card["summary"]


# -- data not provided is not "criteria met" --------------------------------------------


@pytest.mark.parametrize(
    ("key", "criterion"),
    [
        ("allergies", "EXC-HYPERSENSITIVITY"),
        ("conditions", "EXC-CV-UNSTABLE"),
        ("medicationStatements", "CAU-BENZODIAZEPINE"),
    ],
)
def test_a_missing_prefetch_kind_leaves_its_criteria_unchecked(
    client: TestClient, key: str, criterion: str
) -> None:
    prefetch, patient = eligible_prefetch()
    del prefetch[key]
    main, unavailable = check_cards(client.post(SERVICE, json=hook_request(prefetch, patient)).json())
    assert main["indicator"] == "warning" and "criteria met" not in main["summary"]
    assert main["summary"].startswith("Ketamine screening incomplete")
    # The list that was not provided is "not available" in the record: the criterion is
    # unknown (an exclusion among the findings, a caution among what was not checked).
    if criterion.startswith("CAU-"):
        section = main["detail"].split("### Not checked\n")[1].split("###")[0]
        assert f"{criterion} " in section and "not available" in section
    else:
        section = main["detail"].split("### Findings")[1].split("###")[0]
        assert f"**{criterion}**" in section and ": unknown" in section.split(f"**{criterion}**")[1]
    assert "Criteria without findings" not in main["detail"], "the card lists no passed criteria"
    assert unavailable["indicator"] == "warning"


# -- a partial fetch is unavailable data -------------------------------------------------


def _fetching_app(screener: Screener, handler: Any, max_pages: int = 10) -> TestClient:
    fetcher = FhirFetcher([SERVER], transport=httpx.MockTransport(handler), max_pages=max_pages)
    return TestClient(create_app(screener, as_of=DAY, fetcher=fetcher))


def _fetch_request(prefetch: dict[str, Any], patient: str) -> dict[str, Any]:
    return hook_request(prefetch, patient, fhirServer=SERVER, fhirAuthorization={"access_token": "t"})


def _searchset(resources: list[dict[str, Any]], next_url: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r} for r in resources],
    }
    if next_url:
        out["link"] = [{"relation": "next", "url": next_url}]
    return out


def test_a_search_with_a_failed_page_is_unavailable(screener: Screener) -> None:
    prefetch, patient = eligible_prefetch()
    first = [e["resource"] for e in prefetch.pop("conditions")["entry"]]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/Condition"):
            if request.url.params.get("page") == "2":
                return httpx.Response(500)
            return httpx.Response(200, json=_searchset(first, f"{SERVER}/Condition?patient={patient}&page=2"))
        return httpx.Response(404)

    main, unavailable = check_cards(
        _fetching_app(screener, handler).post(SERVICE, json=_fetch_request(prefetch, patient)).json()
    )
    assert main["indicator"] == "warning" and "criteria met" not in main["summary"]
    assert unavailable["summary"].endswith(": Condition")
    assert "the FHIR server answered 500" in unavailable["detail"]
    assert "**EXC-PSYCHOSIS** Psychosis or psychotic disorder: unknown" in main["detail"]


def test_a_search_past_the_page_limit_is_unavailable(screener: Screener) -> None:
    prefetch, patient = eligible_prefetch()
    allergies = prefetch.pop("allergies")

    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", "0"))
        next_url = f"{SERVER}/AllergyIntolerance?patient={patient}&page={page + 1}"
        return httpx.Response(200, json=_searchset([e["resource"] for e in allergies["entry"]], next_url))

    main, unavailable = check_cards(
        _fetching_app(screener, handler, max_pages=2)
        .post(SERVICE, json=_fetch_request(prefetch, patient))
        .json()
    )
    assert (
        unavailable["summary"].endswith(": AllergyIntolerance")
        and "more than 2 pages" in unavailable["detail"]
    )
    assert "criteria met" not in main["summary"]


# -- a prefetch about another patient ------------------------------------------------------


def test_a_prefetch_for_another_patient_gets_a_clear_card(client: TestClient) -> None:
    prefetch, _ = eligible_prefetch()
    [card] = check_cards(client.post(SERVICE, json=hook_request(prefetch, "someone-else")).json())
    assert card["indicator"] == "warning" and "does not match the patient" in card["summary"]
    assert "not eligible" not in card["summary"]
    prefetch, patient = eligible_prefetch()
    stranger = copy.deepcopy(prefetch["conditions"]["entry"][0])
    stranger["resource"] |= {"id": "theirs", "subject": {"reference": "Patient/someone-else"}}
    prefetch["conditions"]["entry"].append(stranger)
    [card] = check_cards(client.post(SERVICE, json=hook_request(prefetch, patient)).json())
    assert "does not match" in card["summary"] and "Condition/theirs" in card["detail"]


# -- the needs_information summary names what applies ----------------------------------


def test_the_incomplete_summary_names_the_missing_pain_condition(client: TestClient) -> None:
    prefetch, patient = eligible_prefetch()
    prefetch["conditions"]["entry"] = []
    main = check_cards(client.post(SERVICE, json=hook_request(prefetch, patient)).json())[0]
    assert main["indicator"] == "warning"
    assert main["summary"].startswith("Ketamine screening incomplete: missing the primary pain condition")
    assert "onset" not in main["summary"]


# -- only patient-view, and a hookInstance ---------------------------------------------------


def test_the_hook_and_hook_instance_are_checked(client: TestClient) -> None:
    prefetch, patient = eligible_prefetch()
    order_sign = {**hook_request(prefetch, patient), "hook": "order-sign"}
    response = client.post(SERVICE, json=order_sign)
    assert response.status_code == 400 and response.json()["field"] == "hook"
    assert "patient-view" in response.json()["message"]
    anonymous = hook_request(prefetch, patient)
    del anonymous["hookInstance"]
    response = client.post(SERVICE, json=anonymous)
    assert response.status_code == 400 and response.json()["field"] == "hookInstance"


# -- summaries cut at a word ---------------------------------------------------------------


def test_summaries_are_cut_at_a_word_boundary() -> None:
    text = "Ketamine infusion not eligible: combined opioid with other drug dependence, continuous; " + (
        "sedative hypnotic or anxiolytic dependence " * 3
    )
    clipped = _clip(text)
    assert len(clipped) <= SUMMARY_LIMIT < 140 and clipped.endswith("…")
    assert text.startswith(clipped[:-1]) and text[len(clipped) - 1] == " "
    assert _clip("short") == "short"


# -- the content type ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "kind", "body"),
    [
        ("/screen", "application/xml", b"<Bundle/>"),
        ("/screen", "application/x-www-form-urlencoded", b"id=1"),
        ("/screen/batch", "text/plain", b"[]"),
        (SERVICE, "application/xml", b"<hook/>"),
    ],
)
def test_a_body_that_is_not_json_is_a_415(client: TestClient, path: str, kind: str, body: bytes) -> None:
    response = client.post(path, content=body, headers={"Content-Type": kind})
    assert response.status_code == 415
    assert response.json() == {
        "code": "unsupported_media_type",
        "message": f"the body must be sent as JSON, with the header Content-Type: application/json "
        f"(or application/fhir+json), not {kind}; with curl, add -H 'Content-Type: application/json' "
        "(or use --json instead of -d)",
        "field": "Content-Type",
        "record_id": None,
        "problems": [],
    }


@pytest.mark.parametrize("kind", [None, "application/json", "application/fhir+json; charset=utf-8"])
def test_json_content_types_are_accepted(client: TestClient, kind: str | None) -> None:
    prefetch, patient = eligible_prefetch()
    headers = {"Content-Type": kind} if kind else {}
    response = client.post(SERVICE, content=json.dumps(hook_request(prefetch, patient)), headers=headers)
    assert response.status_code == 200, response.text


# -- OpenAPI says what the service answers ---------------------------------------------------


def test_openapi_documents_errors_answers_and_bodies(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert set(schemas["ErrorBody"]["required"]) == {"code", "message", "field"}
    assert "HTTPValidationError" not in schemas
    for path in ("/screen", "/screen/batch", "/cds-services/{service_id}"):
        post = spec["paths"][path]["post"]
        for status in ("400", "401", "413", "415", "422"):
            schema = post["responses"][status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (path, status)
        assert post["responses"]["200"]["content"]["application/json"]["schema"] != {}
        assert set(post["requestBody"]["content"]) == {"application/json", "application/fhir+json"}
    hook = spec["paths"]["/cds-services/{service_id}"]["post"]["requestBody"]["content"]["application/json"]
    assert hook["schema"] == {"$ref": "#/components/schemas/HookRequestBody"}
    assert {"hook", "hookInstance", "context"} <= set(schemas["HookRequestBody"]["required"])
    batch = spec["paths"]["/screen/batch"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert batch["oneOf"][0]["type"] == "array"
    assert "DecisionBody" in json.dumps(spec["paths"]["/screen"]["post"]["responses"]["200"])


# -- resources that cannot be tied to the context patient ----------------------------------


def _with_schizophrenia(
    subject: dict[str, Any] | None, element: str = "subject"
) -> tuple[dict[str, Any], str]:
    """The eligible prefetch with an active F20.0 Condition naming its patient as given."""
    prefetch, patient = eligible_prefetch()
    theirs = {
        "resourceType": "Condition",
        "id": "theirs",
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "F20.0"}]},
        "onsetDateTime": "2020-01-01",
    }
    if subject is not None:
        theirs[element] = subject
    prefetch["conditions"]["entry"].append({"resource": theirs})
    return prefetch, patient


def _screened(screener: Screener, request: dict[str, Any]) -> Any:
    hook = cdshooks.read_hook(request)
    assert hook.mismatch() is None
    return cdshooks.screen_hook(screener, hook, AS_OF)


@pytest.mark.parametrize(
    ("subject", "why"),
    [
        (
            {"reference": "https://other.example/fhir/Patient/{patient}"},
            "is not on the request's FHIR server",
        ),
        ({"identifier": {"system": "urn:mrn", "value": "123"}}, "has only an identifier"),
        ({"display": "J. Doe"}, "has only a display"),
        (None, "has no subject"),
    ],
)
def test_a_resource_not_tied_to_the_patient_is_left_out_and_said_so(
    screener: Screener, client: TestClient, subject: dict[str, Any] | None, why: str
) -> None:
    prefetch, patient = _with_schizophrenia(None)
    if subject is not None:
        subject = json.loads(json.dumps(subject).replace("{patient}", patient))
        prefetch["conditions"]["entry"][-1]["resource"]["subject"] = subject
    decision = _screened(screener, hook_request(prefetch, patient))
    assert decision.criterion("EXC-PSYCHOSIS").status != "met"
    notes = [n for n in decision.extra["input_notes"] if n.startswith("Condition/theirs")]
    assert notes and why in notes[0] and f"not tied to Patient/{patient}" in notes[0]
    # The problem list is then not complete: no psychiatric history is "not known", not "none".
    assert decision.criterion("EXC-PSYCHOSIS").status == "unknown"
    cards = check_cards(client.post(SERVICE, json=hook_request(prefetch, patient)).json())
    assert "Condition/theirs" in cards[0]["detail"] and "not tied" in cards[0]["detail"]


def test_an_absolute_reference_on_the_request_s_own_server_is_the_patient(screener: Screener) -> None:
    prefetch, patient = _with_schizophrenia(None)
    prefetch["conditions"]["entry"][-1]["resource"]["subject"] = {"reference": f"{SERVER}/Patient/{patient}"}
    decision = _screened(screener, hook_request(prefetch, patient, fhirServer=SERVER + "/"))
    assert decision.criterion("EXC-PSYCHOSIS").status == "met"


def test_another_patient_named_in_the_wrong_element_refuses_the_request(client: TestClient) -> None:
    prefetch, patient = _with_schizophrenia({"reference": "Patient/someone-else"}, element="patient")
    [card] = check_cards(client.post(SERVICE, json=hook_request(prefetch, patient)).json())
    assert "does not match" in card["summary"] and "Condition/theirs" in card["detail"]
    allergy = {
        "resourceType": "AllergyIntolerance",
        "id": "a1",
        "subject": {"reference": "Patient/someone-else"},
    }
    prefetch, patient = eligible_prefetch()
    prefetch["allergies"]["entry"].append({"resource": allergy | {"code": {"text": "ketamine"}}})
    [card] = check_cards(client.post(SERVICE, json=hook_request(prefetch, patient)).json())
    assert "does not match" in card["summary"] and "AllergyIntolerance/a1" in card["detail"]


def test_the_patient_named_in_the_wrong_element_only_is_left_out(screener: Screener) -> None:
    prefetch, patient = eligible_prefetch()
    allergy = {
        "resourceType": "AllergyIntolerance",
        "id": "a1",
        "subject": {"reference": f"Patient/{patient}"},
    }
    prefetch["allergies"]["entry"].append({"resource": allergy | {"code": {"text": "ketamine"}}})
    decision = _screened(screener, hook_request(prefetch, patient))
    assert decision.criterion("EXC-HYPERSENSITIVITY").status == "unknown"
    assert any(
        n.startswith("AllergyIntolerance/a1") and "has no patient" in n for n in decision.extra["input_notes"]
    )


@pytest.mark.parametrize("link", [5, "next", {"relation": "next", "url": SERVER}, [5, None]])
def test_a_fetched_search_with_a_malformed_link_is_read_without_a_next_page(
    screener: Screener, link: Any
) -> None:
    prefetch, patient = eligible_prefetch()
    conditions = [e["resource"] for e in prefetch.pop("conditions")["entry"]]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/Condition"):
            return httpx.Response(200, json=_searchset(conditions) | {"link": link})
        return httpx.Response(404)

    response = _fetching_app(screener, handler).post(SERVICE, json=_fetch_request(prefetch, patient))
    assert response.status_code == 200, response.text
    [card] = check_cards(response.json())
    assert card["indicator"] == "info" and "criteria met" in card["summary"]
