"""The decision log (screening.service.decision_log over screening.service.app): a row per decision with
ids, rule set, statuses and a keyed hash of the record id, and never the patient's data."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from screening import Screener
from screening.service.app import create_app
from screening.service.cdshooks import SERVICE_ID
from screening.service.decision_log import FIELDS, JsonlSink, open_log

from .conftest import AS_OF, ROOT, eligible_record
from .test_cdshooks import hook_request, prefetch_of
from .test_fhir import to_bundle

KEY = b"decision-log-test-key"
# Distinctive strings that must never reach the log or the server's output.
MARKER_ID = "MARKER-ID-7Q4Z"
MARKER_BIRTH = "1961-07-13"
MARKER_NAME = "Zebulon Quixotewright"
SERVICE = f"/cds-services/{SERVICE_ID}"


def marked_record(**changes: Any) -> dict[str, Any]:
    record = eligible_record(id=MARKER_ID, birth_date=MARKER_BIRTH, **changes)
    # A free-text field the screener reads, with the marker name in it.
    record["treatments"][0]["name"] = f"gabapentin (prescribed to {MARKER_NAME})"
    return record


def marked_bundle() -> dict[str, Any]:
    data = to_bundle(marked_record())
    patient = next(e["resource"] for e in data["entry"] if e["resource"]["resourceType"] == "Patient")
    patient["name"] = [{"text": MARKER_NAME}]
    return data


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def keyed(record_id: str) -> str:
    return hmac.new(KEY, record_id.encode(), hashlib.sha256).hexdigest()


@pytest.fixture
def logged(screener: Screener, tmp_path: Path) -> Iterator[tuple[TestClient, Path]]:
    path = tmp_path / "decisions.jsonl"
    log = open_log(str(path), KEY)
    yield TestClient(create_app(screener, decision_log=log)), path
    log.close()


def test_screen_writes_one_row_with_the_decision_id(
    logged: tuple[TestClient, Path], screener: Screener
) -> None:
    client, path = logged
    response = client.post(f"/screen?as_of={AS_OF}", json=marked_record())
    body = response.json()
    assert body["decision_id"] == response.headers["x-decision-id"]
    [row] = rows(path)
    decision = screener.screen(marked_record(), AS_OF)
    assert row["kind"] == "decision" and row["decision_id"] == body["decision_id"]
    assert row["endpoint"] == "/screen" and row["as_of"] == AS_OF and row["outcome"] == decision.outcome.value
    assert row["criteria"] == decision.statuses and row["criteria"]["INC-ADULT"] == "met"
    assert (row["ruleset_id"], row["ruleset_version"], row["ruleset_sha256"]) == (
        screener.ruleset.id,
        screener.ruleset.version,
        screener.ruleset.sha256,
    )
    assert row["record_key"] == keyed(MARKER_ID) and row["parameters"] == {}
    assert row["time"].endswith("Z") and set(row) <= set(FIELDS)
    text = client.post(f"/screen?as_of={AS_OF}&format=text", json=marked_record())
    assert rows(path)[1]["decision_id"] == text.headers["x-decision-id"]


def test_a_batch_gives_each_item_an_id_and_a_row(logged: tuple[TestClient, Path]) -> None:
    client, path = logged
    records = [marked_record(), eligible_record(id="second"), {"id": "bad", "birth_date": "soon"}]
    response = client.post(f"/screen/batch?as_of={AS_OF}", json=records)
    body = response.json()
    assert body["batch_id"] == response.headers["x-batch-id"]
    ids = [item.get("decision_id") for item in body["results"]]
    assert ids[0] and ids[1] and ids[0] != ids[1] and ids[2] is None  # an invalid record is no decision
    logged_rows = rows(path)
    assert [r["decision_id"] for r in logged_rows] == ids[:2]
    assert all(r["batch_id"] == body["batch_id"] and r["endpoint"] == "/screen/batch" for r in logged_rows)
    assert [r["position"] for r in logged_rows] == [0, 1]
    assert logged_rows[1]["record_key"] == keyed("second")


def test_cds_hooks_rows_carry_the_card_uuids(logged: tuple[TestClient, Path]) -> None:
    client, path = logged
    data = marked_bundle()
    prefetch = prefetch_of(data)
    response = client.post(SERVICE, json=hook_request(prefetch, prefetch["patient"]["id"]))
    cards = response.json()["cards"]
    [row] = rows(path)
    assert row["decision_id"] == response.headers["x-decision-id"]
    assert row["card_uuids"] == [card["uuid"] for card in cards]
    assert all(card["extension"]["decision_id"] == row["decision_id"] for card in cards)
    assert row["record_key"] == keyed(prefetch["patient"]["id"]) and row["outcome"]
    # A prefetch about another patient is logged as such, with its card.
    mismatch = client.post(SERVICE, json=hook_request(prefetch, "someone-else")).json()["cards"]
    last = rows(path)[-1]
    assert last["outcome"] == "prefetch_mismatch" and last["card_uuids"] == [mismatch[0]["uuid"]]
    assert "criteria" not in last  # no screening, no statuses (JSONL leaves out empty fields)


def test_no_patient_data_reaches_the_log(logged: tuple[TestClient, Path]) -> None:
    client, path = logged
    client.post(f"/screen?as_of={AS_OF}", json=marked_record())
    client.post(f"/screen?as_of={AS_OF}", json=marked_bundle())
    client.post(f"/screen?as_of={AS_OF}", json=marked_record(sex="unknown-sex"))  # 422, quotes the id
    client.post("/screen/batch", json=[marked_record(), marked_bundle()])
    prefetch = prefetch_of(marked_bundle())
    client.post(SERVICE, json=hook_request(prefetch, prefetch["patient"]["id"]))
    text = path.read_text()
    assert text.count("\n") == 5
    for marker in (MARKER_ID, MARKER_BIRTH, MARKER_NAME, "Zebulon", "gabapentin"):
        assert marker not in text


def test_sqlite_sink_has_a_column_per_field(screener: Screener, tmp_path: Path) -> None:
    target = tmp_path / "log.db"
    log = open_log(f"sqlite:{target}", KEY)
    client = TestClient(create_app(screener, decision_log=log))
    decision_id = client.post(f"/screen?as_of={AS_OF}", json=marked_record()).json()["decision_id"]
    log.close()
    with sqlite3.connect(target) as db:
        db.row_factory = sqlite3.Row
        columns = [c[1] for c in db.execute("PRAGMA table_info(decision_log)")]
        [row] = db.execute("SELECT * FROM decision_log").fetchall()
    assert columns == list(FIELDS)
    assert row["decision_id"] == decision_id and row["record_key"] == keyed(MARKER_ID)
    assert json.loads(row["criteria"])["INC-ADULT"] == "met" and row["position"] is None
    assert MARKER_ID.encode() not in target.read_bytes()


def test_rotation_keeps_n_files_under_the_size(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    sink = JsonlSink(path, max_bytes=2000, backups=3)
    for n in range(200):
        sink.write({"kind": "decision", "decision_id": f"id-{n:04d}", "outcome": "eligible"})
    sink.close()
    files = sorted(tmp_path.glob("d.jsonl*"))
    assert [f.name for f in files] == ["d.jsonl", "d.jsonl.1", "d.jsonl.2", "d.jsonl.3", "d.jsonl.lock"]
    kept = [
        json.loads(line)["decision_id"]
        for f in (files[3], files[2], files[1], files[0])
        for line in f.read_text().splitlines()
    ]
    assert all(os.path.getsize(f) <= 2000 for f in files)
    assert kept == [f"id-{n:04d}" for n in range(200 - len(kept), 200)]  # the newest, in order


WRITER = """
import sys
from screening.service.decision_log import JsonlSink
sink = JsonlSink(sys.argv[1], max_bytes=int(sys.argv[3]), backups=50)
for n in range(int(sys.argv[2])):
    sink.write({"kind": "decision", "decision_id": f"{sys.argv[4]}-{n}", "outcome": "x" * 40})
"""


def test_several_processes_share_the_file_without_losing_or_mixing_lines(tmp_path: Path) -> None:
    path = tmp_path / "shared.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), "400", "20000", name], env=env)
        for name in ("a", "b", "c")
    ]
    assert all(w.wait(120) == 0 for w in writers)
    lines = [
        line
        for f in tmp_path.glob("shared.jsonl*")
        if not f.name.endswith(".lock")
        for line in f.read_text().splitlines()
    ]
    ids = {json.loads(line)["decision_id"] for line in lines}  # every line whole JSON
    assert len(lines) == 1200 and ids == {f"{w}-{n}" for w in "abc" for n in range(400)}
    assert len(list(tmp_path.glob("shared.jsonl.*"))) > 2  # it did rotate


def test_a_random_key_per_process_is_announced(
    screener: Screener, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "d.jsonl"
    with caplog.at_level(logging.INFO, logger="screening.service.app"):
        create_app(screener, decision_log=open_log(str(path)))
    assert "random key made for this process" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="screening.service.app"):
        create_app(screener, decision_log=open_log(str(path), KEY))
    assert "configured key" in caplog.text and KEY.decode() not in caplog.text


# The real `screening serve`, with its output captured ----------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_serve_keeps_patient_data_out_of_its_output_and_log(tmp_path: Path) -> None:
    log_path, out, err = tmp_path / "decisions.jsonl", tmp_path / "stdout", tmp_path / "stderr"
    key_file = tmp_path / "key"
    key_file.write_text(KEY.decode())
    port = _free_port()
    command = [sys.executable, "-m", "screening", "serve", "--port", str(port), "--log-level", "debug"]
    command += ["--decision-log", str(log_path), "--decision-log-key-file", str(key_file)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCREENING_")}
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=stdout, stderr=stderr)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                assert process.poll() is None, err.read_text()
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            answers = [
                httpx.post(f"{url}/screen?as_of={AS_OF}", json=marked_record(), timeout=60),
                httpx.post(f"{url}/screen", json=marked_bundle(), timeout=60),
                httpx.post(f"{url}/screen", json=marked_record(sex="unknown-sex"), timeout=60),
                httpx.post(f"{url}/screen/batch", json=[marked_record(), marked_bundle()], timeout=60),
            ]
            prefetch = prefetch_of(marked_bundle())
            answers.append(
                httpx.post(
                    f"{url}{SERVICE}", json=hook_request(prefetch, prefetch["patient"]["id"]), timeout=60
                )
            )
        finally:
            process.terminate()
            process.wait(30)
    assert [a.status_code for a in answers] == [200, 200, 422, 200, 200]
    assert MARKER_ID in answers[2].text  # the caller is told which record; the log is not
    output = out.read_text() + err.read_text()
    assert "POST /screen" in output and "configured key" in output  # the capture works
    logged = log_path.read_text()
    assert logged.count("\n") == 5 and keyed(MARKER_ID) in logged
    for marker in (MARKER_ID, MARKER_BIRTH, MARKER_NAME, "Zebulon"):
        assert marker not in output and marker not in logged
