"""The service under hostile input: deep nesting, huge strings and lists, stalled uploads,
internal errors, and the bearer token kept off the command line.

The slow-client tests run ``screening serve`` in a subprocess on 127.0.0.1; every loop and
request in them is bounded in count and time.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from screening import Screener
from screening.cli import main
from screening.service.app import create_app

from .conftest import AS_OF, RULES, eligible_record

DAY = date.fromisoformat(AS_OF)
TOKEN = "file-token-1234"


@pytest.fixture(scope="module")
def client(screener: Screener) -> TestClient:
    return TestClient(create_app(screener, as_of=DAY), raise_server_exceptions=False)


def _post(client: TestClient, path: str, body: bytes) -> httpx.Response:
    return client.post(path, content=body, headers={"content-type": "application/json"})


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        orjson.dumps(eligible_record())[:-1] + b',"pain_scores":' + b"[" * 5000 + b"]" * 5000 + b"}",
    ],
    ids=["lists", "objects", "inside a record"],
)
@pytest.mark.parametrize("path", ["/screen", "/screen/batch", "/cds-services/ketamine-screening"])
def test_deep_nesting_is_a_400_naming_the_position(client: TestClient, body: bytes, path: str) -> None:
    response = _post(client, path, body)
    assert response.status_code == 400, response.text[:300]
    assert response.json()["code"] == "invalid_input"
    assert "depth limit exceeded" in response.json()["message"]


def test_a_huge_record_id_is_not_echoed_back_whole(client: TestClient) -> None:
    body = orjson.dumps(eligible_record(id="x" * 9_000_000, birth_date="not a date"))
    response = _post(client, "/screen", body)
    assert response.status_code == 422
    assert len(response.content) < 10_000
    assert response.json()["record_id"].endswith("more characters)")


def test_an_engine_failure_is_logged_with_its_frames(caplog: pytest.LogCaptureFixture) -> None:
    broken = Screener(RULES)
    broken.engine.close()  # durable-rules no longer knows the ruleset: a real engine failure
    caplog.set_level(logging.ERROR, logger="screening.service.app")
    client = TestClient(create_app(broken, as_of=DAY), raise_server_exceptions=False)
    response = client.post("/screen", json=eligible_record(id="secret-patient-555"))
    batch = client.post("/screen/batch", json=[eligible_record(id="secret-patient-556")])
    assert response.status_code == 500
    assert response.json()["message"] == "the screening engine failed; the error was logged"
    assert batch.json()["results"][0]["error"]["code"] == "engine_error"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "internal error EngineError on POST /screen" in logged
    assert logged.count("Traceback (most recent call last)") == 2
    assert "durable.py" in logged and "secret-patient" not in logged


# Bodies built to be heavy: long lists, deep nesting and long strings, anywhere in a record.
_FIELDS = ["pain_scores", "medications", "allergies", "treatments", "conditions", "id", "sex", "labs"]


@st.composite
def hostile_bodies(draw: st.DrawFn) -> bytes:
    record: dict[str, Any] = eligible_record()
    field = draw(st.sampled_from(_FIELDS))
    kind = draw(st.sampled_from(["list", "nest", "string", "string_in_item"]))
    size = draw(st.integers(1, 20_000))
    if kind == "list":
        item = draw(st.sampled_from([{"score": 5, "date": "2026-11-01"}, {"name": "a"}, 1, "x", None, []]))
        record[field] = [item] * size
    elif kind == "nest":
        depth = draw(st.integers(1, 3000))
        record[field] = "@@"
        text = orjson.dumps(record)
        return text.replace(b'"@@"', b"[" * depth + b"]" * depth)
    elif kind == "string":
        record[field] = "é" * (size * 50)
    else:
        record[field] = [{"name": "x" * (size * 50), "code": "1" * size, "substance": "y" * size}]
    return orjson.dumps(record)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(body=hostile_bodies(), path=st.sampled_from(["/screen", "/screen/batch"]))
def test_hostile_bodies_get_a_decision_or_a_4xx_never_a_500(
    client: TestClient, body: bytes, path: str
) -> None:
    if path == "/screen/batch":
        body = b"[" + body + b"]"
    response = _post(client, path, body)
    assert response.status_code in (200, 400, 413, 422), response.text[:300]
    if response.status_code == 200 and path == "/screen":
        assert response.json()["outcome"]


# A real server in a subprocess --------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    token_file = tmp_path_factory.mktemp("secret") / "token"
    token_file.write_text(TOKEN + "\n")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "SCREENING_TOKEN"}
    command = [sys.executable, "-m", "screening.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--token-file", str(token_file), "--body-timeout", "1", "--log-level", "warning"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):  # at most 60 s
            if process.poll() is not None:
                raise RuntimeError("the server exited")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise RuntimeError("the server did not start")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(20)


def test_the_token_comes_from_the_file(server: str) -> None:
    assert httpx.get(f"{server}/rules", timeout=10).status_code == 401
    answer = httpx.get(f"{server}/rules", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert answer.status_code == 200


def test_a_body_that_trickles_in_is_cut_off_with_a_408(server: str) -> None:
    port = int(server.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /screen HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {TOKEN}\r\nContent-Length: 1000\r\n\r\n".encode()
        )
        received = b""
        for _ in range(40):  # one byte every 0.25 s: at most 10 s, the server gives up after 1
            # Wait for an answer before each byte: a byte sent after the server closed would
            # bring back a reset, which can discard the answer unread.
            if select.select([sock], [], [], 0.25)[0]:
                break
            sock.sendall(b" ")
        sock.settimeout(5)
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except OSError:
            pass
    assert received.startswith(b"HTTP/1.1 408"), received[:200]
    assert b'"code":"request_timeout"' in received
    assert b"connection: close" in received.lower()


def test_health_answers_while_a_long_request_is_screened(server: str) -> None:
    # A batch of 100 records with 3,000 pain scores each takes seconds to validate and screen.
    records = [
        eligible_record(id=f"p{i}", pain_scores=[{"score": 7, "date": "2026-11-01"}] * 3000)
        for i in range(100)
    ]
    body = orjson.dumps(records)
    done: list[int] = []

    def long_request() -> None:
        answer = httpx.post(
            f"{server}/screen/batch",
            content=body,
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
            timeout=300,
        )
        done.append(answer.status_code)

    worker = threading.Thread(target=long_request)
    worker.start()
    try:
        answered_during = 0
        for _ in range(100):  # at most 100 health checks, each bounded by its timeout
            if done:
                break
            if httpx.get(f"{server}/health", timeout=30).status_code == 200 and not done:
                answered_during += 1
            time.sleep(0.05)
    finally:
        worker.join(300)
    assert done == [200]
    assert answered_during >= 1


def test_a_token_on_the_command_line_is_refused_with_how_to_pass_it() -> None:
    result = CliRunner().invoke(main, ["serve", "--token", "s3cret"])
    assert result.exit_code == 2
    assert "--token-file" in result.output and "SCREENING_TOKEN" in result.output
    assert "s3cret" not in result.output


def test_serve_help_says_how_to_pass_the_token() -> None:
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert "--token-file" in result.output and "SCREENING_TOKEN" in result.output
    assert "--token TEXT" not in result.output


def test_an_empty_token_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "token"
    empty.write_text("\n")
    result = CliRunner().invoke(main, ["serve", "--token-file", str(empty)])
    assert result.exit_code == 2
    assert "is empty" in result.output
