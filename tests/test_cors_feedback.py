"""CORS, CDS Hooks feedback, and the card's link to the full explanation (GET /decisions/{id})."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from screening import Screener
from screening.service.app import create_app
from screening.service.cdshooks import OVERRIDE_REASONS, OVERRIDE_SYSTEM, SERVICE_ID
from screening.service.decision_log import open_log

from .conftest import AS_OF, eligible_record
from .test_cdshooks import hook_request
from .test_cdshooks_edge_cases import eligible_prefetch

ORIGIN = "https://ehr-app.example.org"
BASE = "https://cds.example.org"
SERVICE = f"/cds-services/{SERVICE_ID}"
FEEDBACK = f"{SERVICE}/feedback"
CARD = "0b4f6e9a-3c1d-4d0e-9f59-3d7f1f9a1b2c"


# -- CORS ------------------------------------------------------------------------------------


def preflight(client: TestClient, origin: str) -> httpx.Response:
    return client.options(
        "/screen",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


@pytest.fixture(scope="module")
def cors(screener: Screener) -> TestClient:
    return TestClient(create_app(screener, token="s3cret", cors_origins=[ORIGIN]))


def test_preflight_from_an_allowed_origin(cors: TestClient) -> None:
    answer = preflight(cors, ORIGIN)
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    allowed = {h.strip().lower() for h in answer.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert "POST" in answer.headers["access-control-allow-methods"]


def test_preflight_from_another_origin_is_refused(cors: TestClient) -> None:
    answer = preflight(cors, "https://evil.example.org")
    assert answer.status_code == 400 and "access-control-allow-origin" not in answer.headers


def test_nothing_is_allowed_by_default(screener: Screener) -> None:
    answer = preflight(TestClient(create_app(screener)), ORIGIN)
    assert "access-control-allow-origin" not in answer.headers


def test_a_real_answer_carries_the_header(cors: TestClient) -> None:
    headers = {"Origin": ORIGIN, "Authorization": "Bearer s3cret"}
    answer = cors.post(f"/screen?as_of={AS_OF}", json=eligible_record(), headers=headers)
    assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == ORIGIN
    assert "x-decision-id" in answer.headers["access-control-expose-headers"].lower()
    # A refusal too, so the browser can show why.
    refused = cors.post("/screen", json=eligible_record(), headers={"Origin": ORIGIN})
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == ORIGIN
    other = cors.post(
        "/screen", json=eligible_record(), headers={**headers, "Origin": "https://evil.example.org"}
    )
    assert "access-control-allow-origin" not in other.headers


# -- feedback --------------------------------------------------------------------------------


@pytest.fixture
def service(screener: Screener, tmp_path: Path) -> Iterator[tuple[TestClient, Path]]:
    path = tmp_path / "decisions.jsonl"
    log = open_log(str(path), b"k")
    yield TestClient(create_app(screener, decision_log=log, base_url=BASE + "/", decision_cache=2)), path
    log.close()


def cards(client: TestClient) -> tuple[list[dict[str, Any]], str]:
    prefetch, patient = eligible_prefetch()
    answer = client.post(SERVICE, json=hook_request(prefetch, patient))
    assert answer.status_code == 200
    return answer.json()["cards"], answer.headers["x-decision-id"]


def overridden(card: str, **changes: Any) -> dict[str, Any]:
    item = {
        "card": card,
        "outcome": "overridden",
        "overrideReason": {"reason": dict(OVERRIDE_REASONS[1]), "userComment": "Seen by Dr Who today"},
        "outcomeTimestamp": "2026-11-22T10:30:00Z",
        **changes,
    }
    return {k: v for k, v in item.items() if v is not None}


def test_cards_offer_override_reasons(service: tuple[TestClient, Path]) -> None:
    [card], _ = cards(service[0])
    assert card["overrideReasons"] == list(OVERRIDE_REASONS)
    assert {r["system"] for r in card["overrideReasons"]} == {OVERRIDE_SYSTEM}
    assert {r["display"] for r in card["overrideReasons"]} >= {"Patient declined", "Clinical judgement"}


def test_feedback_is_logged_and_joins_the_decision_by_card(service: tuple[TestClient, Path]) -> None:
    client, path = service
    [card], decision_id = cards(client)
    accepted = {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-11-22T10:31:00+01:00"}
    answer = client.post(FEEDBACK, json={"feedback": [overridden(card["uuid"]), accepted]})
    assert answer.status_code == 200 and answer.json() == {"received": 2, "logged": True}
    decision, first, second = (json.loads(line) for line in path.read_text().splitlines())
    assert decision["card_uuids"] == [card["uuid"]]
    assert (
        first["kind"] == "feedback"
        and first["card_uuid"] == card["uuid"]
        and first["decision_id"] == decision_id
    )
    assert first["feedback_outcome"] == "overridden" and first["endpoint"] == FEEDBACK
    assert first["override_reason"] == {"system": OVERRIDE_SYSTEM, "code": "clinical-judgement"}
    assert first["has_user_comment"] is True and "Dr Who" not in path.read_text()
    assert first["outcome_timestamp"] == "2026-11-22T10:30:00+00:00"
    assert second["feedback_outcome"] == "accepted" and second["has_user_comment"] is False


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({}, "feedback", "non-empty array"),
        ({"feedback": []}, "feedback", "non-empty array"),
        ({"feedback": [{}], "other": 1}, "other", "unknown field"),
        ({"feedback": ["x"]}, "feedback[0]", "object"),
        ({"feedback": [overridden("not-a-uuid")]}, "feedback[0].card", "uuid"),
        ({"feedback": [overridden(CARD, outcome="ignored")]}, "feedback[0].outcome", "accepted"),
        (
            {"feedback": [overridden(CARD, outcomeTimestamp=None)]},
            "feedback[0].outcomeTimestamp",
            "time zone",
        ),
        (
            {"feedback": [overridden(CARD, outcomeTimestamp="2026-11-22T10:30:00")]},
            "feedback[0].outcomeTimestamp",
            "time zone",
        ),
        (
            {"feedback": [overridden(CARD, outcome="accepted")]},
            "feedback[0].overrideReason",
            "only for the overridden",
        ),
        (
            {"feedback": [overridden(CARD, acceptedSuggestions=[{"id": "a"}])]},
            "feedback[0].acceptedSuggestions",
            "only for the accepted",
        ),
        (
            {"feedback": [overridden(CARD, overrideReason={"reason": {"display": "x"}})]},
            "feedback[0].overrideReason.reason.code",
            "Coding",
        ),
        (
            {"feedback": [overridden(CARD, overrideReason={"userComment": 5})]},
            "feedback[0].overrideReason.userComment",
            "string",
        ),
        ({"feedback": [overridden(CARD, colour="red")]}, "feedback[0].colour", "unknown field"),
    ],
)
def test_bad_feedback_names_the_field(
    service: tuple[TestClient, Path], body: Any, field: str, words: str
) -> None:
    client, path = service
    answer = client.post(FEEDBACK, json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == field and words in answer.json()["message"]
    assert not path.exists() or path.read_text() == ""


def test_feedback_for_an_unknown_service_or_without_auth(
    screener: Screener, service: tuple[TestClient, Path]
) -> None:
    answer = service[0].post("/cds-services/other/feedback", json={"feedback": [overridden(CARD)]})
    assert answer.status_code == 404 and answer.json()["code"] == "unknown_service"
    guarded = TestClient(create_app(screener, token="s3cret"))
    assert guarded.post(FEEDBACK, json={"feedback": []}).status_code == 401


# -- the card's link to the full explanation -------------------------------------------------


def test_the_card_links_to_the_full_explanation(service: tuple[TestClient, Path]) -> None:
    client, _ = service
    [card], decision_id = cards(client)
    [link] = card["links"]
    assert link == {"label": link["label"], "url": f"{BASE}/decisions/{decision_id}", "type": "absolute"}
    assert f"[Full explanation]({link['url']})" in card["detail"]
    full = client.get(f"/decisions/{decision_id}")
    assert full.status_code == 200
    body = full.json()
    assert body["decision_id"] == decision_id and body["outcome"] == "eligible"
    assert {c["id"] for c in body["criteria"]} >= {"INC-ADULT"} and all(c["reason"] for c in body["criteria"])
    text = client.get(f"/decisions/{decision_id}?format=text")
    assert text.status_code == 200 and "INC-ADULT" in text.text


def test_an_expired_decision_is_a_clear_404(service: tuple[TestClient, Path]) -> None:
    client, _ = service
    first = cards(client)[1]
    cards(client)
    cards(client)  # the cache holds two
    gone = client.get(f"/decisions/{first}")
    assert gone.status_code == 404 and gone.json()["code"] == "unknown_decision"
    assert gone.json()["message"].startswith("expired or unknown decision")


def test_no_link_without_a_base_url(screener: Screener) -> None:
    client = TestClient(create_app(screener))
    [card], decision_id = cards(client)
    assert "links" not in card and "Full explanation" not in card["detail"]
    # The explanation is still kept for whoever has the decision id, in this process only.
    assert client.get(f"/decisions/{decision_id}").status_code == 200
    assert TestClient(create_app(screener)).get(f"/decisions/{decision_id}").status_code == 404


def test_openapi_documents_feedback_and_decisions(service: tuple[TestClient, Path]) -> None:
    spec = service[0].get("/openapi.json").json()
    feedback = spec["paths"][FEEDBACK.replace(SERVICE_ID, "{service_id}")]["post"]
    schema = feedback["requestBody"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/FeedbackRequestBody"}
    assert spec["components"]["schemas"]["FeedbackItem"]["required"] == [
        "card",
        "outcome",
        "outcomeTimestamp",
    ]
    assert "404" in spec["paths"]["/decisions/{decision_id}"]["get"]["responses"]


class FullDisk:
    def write(self, row: dict[str, Any]) -> None:
        raise OSError(28, "No space left on device")

    def close(self) -> None:
        pass


def test_a_decision_that_cannot_be_logged_is_not_answered(screener: Screener) -> None:
    from screening.service.decision_log import DecisionLog

    client = TestClient(create_app(screener, decision_log=DecisionLog(FullDisk(), b"k")))
    answer = client.post(f"/screen?as_of={AS_OF}", json=eligible_record())
    assert answer.status_code == 500 and answer.json()["code"] == "internal_error"
    assert "outcome" not in answer.text
