"""The decision log: one row per decision the service makes, and one per CDS Hooks feedback.

Like OPA's decision logs, it answers "what did the service decide, when, under which rules"
without holding the patient's data. A row has the decision id, the time (UTC), the endpoint,
the rule set's id, version and sha256, the screening date, the site parameter overrides,
the outcome and every criterion's status, and a keyed hash of the record id (HMAC-SHA256),
so that the decisions about one patient can be found by whoever holds the key and by no
one else. No name, birth date, raw record id, value or reason text is ever written.

Feedback rows (kind ``feedback``) carry the card uuid, which joins them to the decision row
that listed it in ``card_uuids``.

Sinks:

- JSONL (``--decision-log PATH``): one line per row, rotated by size (``PATH.1`` ... ``PATH.N``).
  Several worker processes may share the file: each write is one ``write(2)`` on an
  ``O_APPEND`` descriptor, and the size check and rotation happen under an exclusive
  ``flock`` on ``PATH.lock``, so two processes never rotate at once and a process that
  finds the file rotated under it reopens it.
- SQLite (``--decision-log sqlite:PATH``): the same rows in the table ``decision_log``,
  one column per field, JSON text for the maps and lists (WAL mode, for several writers).

The service writes rows from its worker threads, never on the event loop.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import os
import secrets
import sqlite3
import threading
import uuid
from collections import OrderedDict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import orjson

from screening.decision import Decision, NotScreened
from screening.errors import InputError, RecordError
from screening.ruleset.model import RuleSet

K = TypeVar("K")
V = TypeVar("V")

FIELDS = (
    "kind",
    "decision_id",
    "time",
    "endpoint",
    "batch_id",
    "position",
    "ruleset_id",
    "ruleset_version",
    "ruleset_sha256",
    "as_of",
    "parameters",
    "outcome",
    "criteria",
    "record_key",
    "card_uuids",
    "card_uuid",
    "feedback_outcome",
    "override_reason",
    "accepted_suggestions",
    "outcome_timestamp",
    "has_user_comment",
)
"""Every field a row may have, in order: the SQLite columns."""
JSON_FIELDS = frozenset({"parameters", "criteria", "card_uuids", "override_reason", "accepted_suggestions"})
INTEGER_FIELDS = frozenset({"position", "has_user_comment"})
CACHE_SIZE = 1000
"""Decisions whose full explanation ``GET /decisions/{id}`` keeps, per process."""
MAX_BYTES = 50 * 1024 * 1024
BACKUPS = 5


class Sink(Protocol):
    def write(self, row: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class JsonlSink:
    """JSON lines, rotated by size, safe with several processes (see the module's docstring)."""

    def __init__(self, path: Path | str, max_bytes: int = MAX_BYTES, backups: int = BACKUPS) -> None:
        self.path = Path(path)
        self.max_bytes, self.backups = max_bytes, max(backups, 1)
        self.lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock_fd = os.open(f"{self.path}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        self.fd = self._open()

    def _open(self) -> int:
        return os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)

    def write(self, row: dict[str, Any]) -> None:
        line = orjson.dumps({k: v for k, v in row.items() if v is not None}) + b"\n"
        with self.lock:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
            try:
                try:
                    current = os.stat(self.path)
                    rotated = current.st_ino != os.fstat(self.fd).st_ino
                except FileNotFoundError:
                    rotated = True
                if rotated:  # another process rotated the file: write to the new one
                    os.close(self.fd)
                    self.fd = self._open()
                size = os.fstat(self.fd).st_size
                if size and size + len(line) > self.max_bytes:
                    self._rotate()
                os.write(self.fd, line)
            finally:
                fcntl.flock(self.lock_fd, fcntl.LOCK_UN)

    def _rotate(self) -> None:
        for number in range(self.backups - 1, 0, -1):
            older = Path(f"{self.path}.{number}")
            if older.exists():
                older.replace(f"{self.path}.{number + 1}")
        self.path.replace(f"{self.path}.1")
        os.close(self.fd)
        self.fd = self._open()

    def close(self) -> None:
        with self.lock:
            os.close(self.fd)
            os.close(self.lock_fd)


class SqliteSink:
    """The rows in the SQLite table ``decision_log``, one column per field."""

    def __init__(self, path: Path | str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        # Autocommit: each row is its own transaction; a busy database is waited for.
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        columns = ", ".join(f"{name} {'INTEGER' if name in INTEGER_FIELDS else 'TEXT'}" for name in FIELDS)
        self.db.execute(f"CREATE TABLE IF NOT EXISTS decision_log ({columns})")
        self.db.execute("CREATE INDEX IF NOT EXISTS decision_log_id ON decision_log (decision_id)")
        self.insert = (
            f"INSERT INTO decision_log ({', '.join(FIELDS)}) VALUES ({', '.join('?' * len(FIELDS))})"
        )

    def write(self, row: dict[str, Any]) -> None:
        values = [
            orjson.dumps(row[name]).decode()
            if name in JSON_FIELDS and row.get(name) is not None
            else row.get(name)
            for name in FIELDS
        ]
        with self.lock:
            self.db.execute(self.insert, values)

    def close(self) -> None:
        with self.lock:
            self.db.close()


class DecisionLog:
    """Where the service writes its rows, and the key it hashes record ids with."""

    def __init__(self, sink: Sink | None = None, key: bytes | None = None, target: str | None = None) -> None:
        self.sink, self.target = sink, target
        self.key_generated = not key
        # Without a configured key, hashes still link one process's decisions about a patient,
        # but no one (not even the operator) can recompute them from an id.
        self.key = key or secrets.token_bytes(32)

    def record_key(self, record_id: str | None) -> str | None:
        if record_id is None:
            return None
        return hmac.new(self.key, record_id.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()

    def write(self, row: dict[str, Any]) -> None:
        if self.sink is not None:
            self.sink.write(row)

    def close(self) -> None:
        if self.sink is not None:
            self.sink.close()

    def describe(self) -> str:
        """The startup log line: where rows go and how record ids are hashed (never the key)."""
        if self.sink is None:
            return "decision log: off (no --decision-log); decision ids are still returned"
        where = f"decision log: {self.target}"
        if self.key_generated:
            return (
                f"{where}; no decision log key configured (--decision-log-key-file or "
                f"SCREENING_DECISION_LOG_KEY): record ids are hashed with a random key made for "
                f"this process (pid {os.getpid()}), so hashes will not match across processes or restarts"
            )
        return f"{where}; record ids are hashed with the configured key"


def open_log(
    target: str | None, key: bytes | None = None, max_bytes: int = MAX_BYTES, backups: int = BACKUPS
) -> DecisionLog:
    """The log for ``--decision-log``: a JSONL path, ``sqlite:PATH``, or None (no rows written)."""
    if not target:
        return DecisionLog(None, key)
    try:
        if target.startswith("sqlite:"):
            return DecisionLog(SqliteSink(target.removeprefix("sqlite:")), key, target)
        return DecisionLog(JsonlSink(target, max_bytes, backups), key, target)
    except (OSError, sqlite3.Error) as error:
        raise InputError(f"cannot open the decision log: {error}", target) from None


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def decision_row(
    log: DecisionLog,
    ruleset: RuleSet,
    result: Decision | NotScreened | RecordError | None,
    *,
    decision_id: str,
    endpoint: str,
    as_of: str,
    record_id: str | None = None,
    outcome: str | None = None,
    card_uuids: list[str] | None = None,
    batch_id: str | None = None,
    position: int | None = None,
) -> dict[str, Any]:
    """The row of one decision: outcomes and statuses only, the record id hashed.

    ``result`` None is a request answered without screening (``outcome`` says why)."""
    criteria: dict[str, str] | None = None
    if isinstance(result, Decision):
        outcome, criteria, as_of = result.outcome.value, result.statuses, result.as_of.isoformat()
    elif isinstance(result, NotScreened):
        outcome = "not_screened"
    elif isinstance(result, RecordError):
        outcome = "invalid_record"
    if record_id is None and result is not None:
        record_id = result.record_id
    return {
        "kind": "decision",
        "decision_id": decision_id,
        "time": now(),
        "endpoint": endpoint,
        "batch_id": batch_id,
        "position": position,
        "ruleset_id": ruleset.id,
        "ruleset_version": ruleset.version,
        "ruleset_sha256": ruleset.sha256,
        "as_of": as_of,
        "parameters": dict(ruleset.overrides),
        "outcome": outcome,
        "criteria": criteria,
        "record_key": log.record_key(record_id),
        "card_uuids": card_uuids,
    }


class Lru(Generic[K, V]):
    """A bounded, thread-safe map that forgets its least recently used entries."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[K, V] = OrderedDict()
        self.lock = threading.Lock()

    def put(self, key: K, value: V) -> None:
        if self.size <= 0:
            return
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)

    def get(self, key: K) -> V | None:
        with self.lock:
            found = self.items.get(key)
            if found is not None:
                self.items.move_to_end(key)
            return found


class Recorder:
    """What the service keeps of each decision: its log row, its explanation (a bounded LRU
    cache, per process, for ``GET /decisions/{id}``) and which decision each card belongs to."""

    def __init__(
        self, log: DecisionLog, ruleset: RuleSet, cache_size: int = CACHE_SIZE, base_url: str | None = None
    ) -> None:
        self.log, self.ruleset = log, ruleset
        self.base_url = base_url.rstrip("/") if base_url else None
        self.explanations: Lru[str, Decision | NotScreened] = Lru(cache_size)
        self.cards: Lru[str, str] = Lru(max(cache_size, 1) * 4)

    def link(self, decision_id: str) -> str | None:
        """The URL of a decision's full explanation, when the service knows its own URL."""
        return f"{self.base_url}/decisions/{decision_id}" if self.base_url else None

    def decision(
        self,
        result: Decision | NotScreened | RecordError | None,
        *,
        endpoint: str,
        as_of: str,
        decision_id: str | None = None,
        **fields: Any,
    ) -> str:
        """Log a decision (in the caller's thread: never call it on the event loop); its id."""
        decision_id = decision_id or str(uuid.uuid4())
        row = decision_row(
            self.log, self.ruleset, result, decision_id=decision_id, endpoint=endpoint, as_of=as_of, **fields
        )
        self.log.write(row)
        if isinstance(result, Decision | NotScreened):
            self.explanations.put(decision_id, result)
        for card in fields.get("card_uuids") or ():
            self.cards.put(card, decision_id)
        return decision_id

    def feedback(self, items: list[dict[str, Any]], endpoint: str) -> None:
        """Log CDS Hooks feedback rows (from :func:`screening.cdshooks.read_feedback`); the
        decision id is filled in where this process made the card."""
        for item in items:
            self.log.write(
                {
                    "kind": "feedback",
                    "decision_id": self.cards.get(item["card_uuid"]),
                    "time": now(),
                    "endpoint": endpoint,
                    **item,
                }
            )
