"""CDS Hooks authentication (screening.service.auth over screening.service.app): a trusted client's
signed JWT checked against its JWKS (inline or fetched), and the static token beside it.

Keys are generated here with `cryptography`; JWKS URLs are answered by an httpx
MockTransport handed to the app, so nothing goes to the network."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from screening import InputError, Screener
from screening.service.app import create_app
from screening.service.auth import MAX_LIFETIME, REFRESH_INTERVAL, TrustedClient, load_trusted_clients

from .conftest import AS_OF, eligible_record

BASE = "https://cds.example.org"
EHR = "https://ehr.example.org"
KEYS_URL = "https://keys.example.org/jwks.json"
ROTATING = "https://rotating.example.org"


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def jwk(key: Any, kid: str) -> dict[str, Any]:
    algorithm = ECAlgorithm if isinstance(key, ec.EllipticCurvePrivateKey) else RSAAlgorithm
    found: dict[str, Any] = algorithm.to_jwk(key.public_key(), as_dict=True)
    return {**found, "kid": kid, "use": "sig"}


def token(key: Any, kid: str = "k1", algorithm: str = "ES384", **claims: Any) -> str:
    now = int(time.time())
    body = {
        "iss": EHR,
        "aud": f"{BASE}/cds-services/ketamine-screening",
        "exp": now + 120,
        "iat": now,
        "jti": str(uuid.uuid4()),
        **claims,
    }
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm, headers={"kid": kid})


class Keys:
    """A JWKS endpoint: answers with whatever keys it holds now, and counts its calls."""

    def __init__(self, keys: list[dict[str, Any]]) -> None:
        self.keys, self.calls = keys, 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        assert str(request.url) == KEYS_URL
        return httpx.Response(200, json={"keys": self.keys})


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec_key()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def client(screener: Screener, key: Any, rsa_key: Any) -> TestClient:
    clients = {EHR: TrustedClient(EHR)}
    clients[EHR].keys = {"k1": jwt.PyJWK(jwk(key, "k1")), "r1": jwt.PyJWK(jwk(rsa_key, "r1"))}
    app = create_app(screener, token="static-s3cret", trusted_clients=clients, base_url=BASE + "/")
    return TestClient(app)


def screen(client: TestClient, credential: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {credential}"}
    return client.post(f"/screen?as_of={AS_OF}", json=eligible_record(), headers=headers)


def refused(response: httpx.Response, code: str) -> str:
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["code"] == code and body["field"] == "Authorization", body
    challenge = response.headers["www-authenticate"]
    assert (
        challenge
        == f'Bearer error="invalid_token", error_description="{body["message"].replace(chr(34), "?")}"'
    )

    return str(body["message"])


def test_a_valid_token_is_accepted_es384_and_rs384(client: TestClient, key: Any, rsa_key: Any) -> None:
    assert screen(client, token(key)).json()["outcome"] == "eligible"
    assert screen(client, token(rsa_key, "r1", "RS384")).status_code == 200
    # The audience may be the base URL or the discovery URL too.
    assert screen(client, token(key, aud=BASE)).status_code == 200
    assert screen(client, token(key, aud=f"{BASE}/cds-services")).status_code == 200


def test_the_static_token_still_works_beside_jwts(client: TestClient) -> None:
    assert screen(client, "static-s3cret").status_code == 200
    assert refused(screen(client, "static-wrong"), "unauthorized")
    missing = client.post("/screen", json=eligible_record())
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"


def test_expired(client: TestClient, key: Any) -> None:
    expired = token(key, exp=int(time.time()) - 120)
    assert refused(screen(client, expired), "token_expired") == "the token has expired"


def test_wrong_audience(client: TestClient, key: Any) -> None:
    message = refused(screen(client, token(key, aud="https://other.example.org")), "wrong_audience")
    assert BASE in message


def test_unknown_issuer(client: TestClient, key: Any) -> None:
    message = refused(screen(client, token(key, iss="https://intruder.example.org")), "unknown_issuer")
    assert "intruder.example.org" in message and "not a trusted client" in message
    # An issuer the header cannot carry as written is still a plain 401.
    odd = screen(client, token(key, iss='https://\u00e9v\u00eel.example.org/"\r\nX-Injected: 1'))
    assert odd.status_code == 401 and odd.json()["code"] == "unknown_issuer"
    assert "x-injected" not in odd.headers and odd.headers["www-authenticate"].isascii()


def test_replayed_jti(client: TestClient, key: Any) -> None:
    once = token(key)
    assert screen(client, once).status_code == 200
    assert "already used" in refused(screen(client, once), "token_replayed")
    # The same jti in a new token is a replay too.
    jti = str(uuid.uuid4())
    assert screen(client, token(key, jti=jti)).status_code == 200
    refused(screen(client, token(key, jti=jti)), "token_replayed")


def test_tampered_signature(client: TestClient, key: Any) -> None:
    header, payload, signature = token(key).split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["sub"] = "someone-else"
    forged = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    refused(screen(client, f"{header}.{forged}.{signature}"), "bad_signature")
    # Signed by another key under the trusted key's kid.
    refused(screen(client, token(ec_key())), "bad_signature")


def test_weak_or_odd_tokens_are_refused(client: TestClient, key: Any) -> None:
    hs = jwt.encode({"iss": EHR, "aud": BASE, "exp": int(time.time()) + 60, "jti": "x"}, "k" * 32, "HS256")
    assert "algorithm" in refused(screen(client, hs), "invalid_token")
    assert "jti" in refused(screen(client, token(key, jti=None)), "invalid_token")
    too_long = token(key, exp=int(time.time()) + MAX_LIFETIME + 600)
    assert "seconds ahead" in refused(screen(client, too_long), "invalid_token")
    refused(screen(client, "a.b.c"), "invalid_token")


def test_every_patient_endpoint_needs_auth_and_health_does_not(client: TestClient, key: Any) -> None:
    for path in (
        "/screen",
        "/screen/batch",
        "/cds-services/ketamine-screening",
        "/cds-services/ketamine-screening/feedback",
    ):
        assert client.post(path, json={}).status_code == 401, path
    for path in ("/rules", "/cds-services", f"/decisions/{uuid.uuid4()}"):
        assert client.get(path).status_code == 401, path
    assert client.get("/health").status_code == 200 and client.get("/openapi.json").status_code == 200
    auth = {"Authorization": f"Bearer {token(key)}"}
    assert client.get("/cds-services", headers=auth).status_code == 200


def test_jwks_from_a_url_cached_and_refreshed_for_a_new_kid(screener: Screener) -> None:
    first, second = ec_key(), ec_key()
    keys = Keys([jwk(first, "one")])
    clients = load_trusted_clients_from({ROTATING: {"jwks_url": KEYS_URL}})
    later = [0.0]
    app = create_app(
        screener,
        trusted_clients=clients,
        base_url=BASE,
        jwks_transport=httpx.MockTransport(keys),
        clock=lambda: time.time() + later[0],
    )
    client = TestClient(app)
    claims = {"iss": ROTATING, "aud": BASE}
    assert screen(client, token(first, "one", **claims)).status_code == 200
    assert screen(client, token(first, "one", **claims)).status_code == 200
    assert keys.calls == 1  # cached
    # Made-up kids just after a fetch do not make the service fetch again (rate limited).
    for n in range(3):
        refused(screen(client, token(ec_key(), f"made-up-{n}", **claims)), "bad_signature")
    assert keys.calls == 1
    # A minute later the client has rotated its keys: an unknown kid fetches the JWKS again, once.
    later[0] = REFRESH_INTERVAL + 1
    keys.keys = [jwk(second, "two")]
    assert screen(client, token(second, "two", **claims)).status_code == 200
    assert keys.calls == 2
    for n in range(3):
        refused(screen(client, token(ec_key(), f"made-up-again-{n}", **claims)), "bad_signature")
    assert keys.calls == 2


def test_unreachable_jwks_is_a_503(screener: Screener, key: Any) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    calls = []
    clients = load_trusted_clients_from({ROTATING: KEYS_URL})
    transport = httpx.MockTransport(lambda request: calls.append(1) or down(request))
    app = TestClient(create_app(screener, trusted_clients=clients, base_url=BASE, jwks_transport=transport))
    for _ in range(3):
        answer = screen(app, token(key, iss=ROTATING, aud=BASE))
        assert answer.status_code == 503 and answer.json()["code"] == "jwks_unavailable"
    assert len(calls) == 1  # an outage is not hammered


def load_trusted_clients_from(data: dict[str, Any]) -> dict[str, TrustedClient]:
    return _load(json.dumps(data), "clients.json")


def _load(text: str, name: str) -> dict[str, TrustedClient]:
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / name
        path.write_text(text)
        return load_trusted_clients(path)


def test_trusted_clients_file_yaml_with_inline_keys(screener: Screener, key: Any) -> None:
    text = f"{EHR}:\n  jwks:\n    keys:\n      - {json.dumps(jwk(key, 'k1'))}\n{ROTATING}: {KEYS_URL}\n"
    clients = _load(text, "clients.yaml")
    assert set(clients) == {EHR, ROTATING} and clients[ROTATING].jwks_url == KEYS_URL
    app = TestClient(create_app(screener, trusted_clients=clients, base_url=BASE))
    assert screen(app, token(key, aud=BASE)).status_code == 200


@pytest.mark.parametrize(
    ("text", "position", "words"),
    [
        ("[]", None, "must map each issuer"),
        (f"{EHR}: {{jwks_url: ftp://x}}", f"{EHR}.jwks_url", "http(s) URL"),
        (f"{EHR}: {{jwks: {{keys: []}}}}", f"{EHR}.jwks", "non-empty list of keys"),
        (f"{EHR}: {{jwks: {{keys: [{{kty: EC}}]}}}}", f"{EHR}.jwks", "keys[0]"),
        (f"{EHR}: {{jwks_url: {KEYS_URL}, colour: red}}", EHR, "unknown field 'colour'"),
        (f"{EHR}: {{}}", EHR, "either jwks_url"),
    ],
)
def test_a_bad_trusted_clients_file_names_the_issuer_and_field(
    text: str, position: str | None, words: str
) -> None:
    with pytest.raises(InputError) as caught:
        _load(text, "clients.yaml")
    assert caught.value.position == position and words in str(caught.value)


def test_trusted_clients_need_a_base_url(screener: Screener) -> None:
    with pytest.raises(InputError, match="base URL"):
        create_app(screener, trusted_clients={EHR: TrustedClient(EHR, jwks_url=KEYS_URL)})


def test_workers_share_the_seen_jti(screener: Screener, key: Any, tmp_path: Path) -> None:
    """Two apps on one replay file stand for two worker processes of one `screening serve`."""
    shared = str(tmp_path / "seen-jti.db")
    workers = [
        TestClient(create_app(screener, trusted_clients=_inline(key), base_url=BASE, replay_db=shared))
        for _ in range(2)
    ]
    once = token(key)
    assert screen(workers[0], once).status_code == 200
    refused(screen(workers[1], once), "token_replayed")
    refused(screen(workers[0], once), "token_replayed")
    assert screen(workers[1], token(key)).status_code == 200


def _inline(key: Any) -> dict[str, TrustedClient]:
    return {EHR: TrustedClient(EHR, keys={"k1": jwt.PyJWK(jwk(key, "k1"))})}
