"""Load test of the HTTP service, on loopback only, bounded in requests and in time.

    python bench/load_test.py                      # 2,000 requests at concurrency 50
    python bench/load_test.py --requests 5000 --workers 4

It starts ``screening serve`` on 127.0.0.1 (a free port), sends distinct patients (native
records, and one in five as a FHIR Bundle) to ``POST /screen`` from 50 concurrent
kept-alive connections, and checks every response: HTTP 200, the ``record_id`` of the patient that
was sent, and the outcome that an in-process Screener gives the same patient. It prints
p50/p99 latency and requests per second, stops the server, and exits 0 only when there
were no errors and no mismatches.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"  # loopback only, by design
AS_OF = "2026-11-22"


def patients(count: int) -> list[dict[str, Any]]:
    """Distinct patients from the examples: new ids, ages and blood pressures."""
    examples = [json.loads(p.read_text()) for p in sorted((ROOT / "examples").glob("*.json"))]
    out = []
    for index in range(count):
        record = json.loads(json.dumps(examples[index % len(examples)]))
        record["id"] = f"load-{index:06d}"
        record["birth_date"] = f"{1945 + index % 50}-0{1 + index % 9}-1{index % 9}"
        systolic = (118, 138, 152, 166, 188)[index % 5]
        record["blood_pressure"] = [
            {"systolic": systolic, "diastolic": 78 + index % 20, "date": "2026-11-10"}
        ]
        out.append(record)
    return out


def as_bundle(record: dict[str, Any]) -> dict[str, Any]:
    """A small FHIR Bundle for the patient: demographics, pain conditions, BP and pain."""
    ref = {"reference": f"Patient/{record['id']}"}
    entries: list[dict[str, Any]] = [
        {
            "resource": {
                "resourceType": "Patient",
                "id": record["id"],
                "birthDate": record["birth_date"],
                "gender": record["sex"],
            }
        }
    ]
    for n, dx in enumerate(record.get("pain_conditions", [])):
        code = {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": dx["code"]}]}
        resource = {
            "resourceType": "Condition",
            "id": f"c{n}",
            "subject": ref,
            "code": code,
            "onsetDateTime": dx["onset"],
        }
        entries.append({"resource": resource})
    for n, bp in enumerate(record["blood_pressure"]):
        parts = [
            {"code": {"coding": [{"system": "http://loinc.org", "code": c}]}, "valueQuantity": {"value": v}}
            for c, v in (("8480-6", bp["systolic"]), ("8462-4", bp["diastolic"]))
        ]
        code = {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]}
        obs = {"resourceType": "Observation", "id": f"bp{n}", "status": "final", "subject": ref, "code": code}
        entries.append({"resource": {**obs, "effectiveDateTime": bp["date"], "component": parts}})
    for n, score in enumerate(record.get("pain_scores", [])):
        code = {"coding": [{"system": "http://loinc.org", "code": "72514-3"}]}
        obs = {"resourceType": "Observation", "id": f"p{n}", "status": "final", "subject": ref, "code": code}
        entries.append(
            {"resource": {**obs, "effectiveDateTime": score["date"], "valueInteger": score["score"]}}
        )
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def expected_outcomes(bodies: list[tuple[str, bytes]]) -> dict[str, str]:
    """What an in-process Screener decides for every request, to check the server's answers."""
    sys.path.insert(0, str(ROOT))
    from screening import Screener
    from screening.decision import Decision

    screener = Screener(ROOT / "rules")
    out = {}
    for record_id, body in bodies:
        data = json.loads(body)
        if "resourceType" in data:
            [result] = screener.screen_fhir(data, AS_OF)
        else:
            result = screener.screen(data, AS_OF)
        out[record_id] = result.outcome.value if isinstance(result, Decision) else "not_screened"
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def start_server(port: int, workers: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "screening.cli", "serve", "--host", HOST, "--port", str(port)]
    command += ["--workers", str(workers), "--rules", str(ROOT / "rules"), "--log-level", "warning"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("SCREENING_TOKEN", None)
    return subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)


def wait_ready(url: str, server: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not become ready")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)  # our own server and its workers (a new session)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(5)


def run(port: int, bodies: list[tuple[str, bytes]], concurrency: int, seconds: float) -> dict[str, Any]:
    """Send every body once from ``concurrency`` threads, each with its own kept-alive connection.

    A lean stdlib client: on a small machine the client shares the CPUs with the server, and
    a heavier one (an asyncio pool) measures mostly itself.
    """
    pending = iter(range(len(bodies)))
    lock = threading.Lock()
    latencies: list[float] = []
    answers: dict[int, tuple[int, dict[str, Any] | None]] = {}
    errors: list[str] = []
    deadline = time.monotonic() + seconds
    headers = {"Content-Type": "application/json"}

    def worker() -> None:
        connection = http.client.HTTPConnection(HOST, port, timeout=30)
        try:
            while time.monotonic() < deadline:
                with lock:
                    index = next(pending, None)
                if index is None:
                    return
                started = time.perf_counter()
                try:
                    connection.request(
                        "POST", f"/screen?as_of={AS_OF}", body=bodies[index][1], headers=headers
                    )
                    response = connection.getresponse()
                    payload = response.read()
                except (OSError, http.client.HTTPException) as error:
                    errors.append(f"request {index}: {type(error).__name__}: {error}")
                    connection.close()
                    continue
                latencies.append(time.perf_counter() - started)
                answers[index] = (response.status, json.loads(payload) if response.status == 200 else None)
        finally:
            connection.close()

    began = time.perf_counter()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()) + 35)
    elapsed = time.perf_counter() - began
    return {"latencies": latencies, "answers": answers, "errors": errors, "elapsed": elapsed}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="server processes")
    parser.add_argument("--max-seconds", type=float, default=300, help="bound on the whole run")
    args = parser.parse_args()
    if not 1 <= args.requests <= 100_000 or not 1 <= args.concurrency <= 500:
        parser.error("--requests must be 1..100000 and --concurrency 1..500")
    records = patients(args.requests)
    bodies = [
        (r["id"], json.dumps(as_bundle(r) if index % 5 == 4 else r).encode())
        for index, r in enumerate(records)
    ]
    expected = expected_outcomes(bodies)
    port = free_port()
    url = f"http://{HOST}:{port}"
    server = start_server(port, args.workers)
    try:
        wait_ready(url, server, 60)
        result = run(port, bodies, args.concurrency, args.max_seconds)
    finally:
        stop_server(server)
    errors = list(result["errors"])
    mismatches = 0
    for index, (record_id, _) in enumerate(bodies):
        status, body = result["answers"].get(index, (0, None))
        if status != 200 or body is None:
            errors.append(f"request {index}: HTTP {status}")
            continue
        got_id = body.get("record_id")
        got = body.get("outcome") or body.get("code")
        if got_id != record_id or got != expected[record_id]:
            mismatches += 1
    latencies = sorted(result["latencies"])
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    print(f"requests      {len(bodies)} ({sum(1 for i in range(len(bodies)) if i % 5 == 4)} as FHIR Bundles)")
    print(f"concurrency   {args.concurrency}, server workers {args.workers}, loopback {HOST}")
    print(f"errors        {len(errors)}")
    print(f"mismatches    {mismatches} (record_id or outcome not the patient's own)")
    print(f"elapsed       {result['elapsed']:.2f} s")
    print(f"throughput    {len(latencies) / result['elapsed']:.1f} requests/s")
    print(f"latency p50   {quantiles[49] * 1000:.1f} ms")
    print(f"latency p99   {quantiles[98] * 1000:.1f} ms")
    print(f"latency max   {latencies[-1] * 1000:.1f} ms")
    for line in errors[:10]:
        print("  ", line)
    return 0 if not errors and mismatches == 0 and len(latencies) == len(bodies) else 1


if __name__ == "__main__":
    sys.exit(main())
