"""The work of one batch process: screen chunks of raw items into finished output lines.

Each process builds one :class:`~screening.screener.Screener` in :func:`init_worker` (the
pool's initializer) and keeps it for its lifetime. A chunk arrives as its first position
and a list of raw items; it leaves as the bytes of its output lines, whole and in order,
with the counts the report needs. Every record yields exactly one line, whatever happens
to it: a decision, a ``not_screened`` or an error naming the record and the field.
"""

from __future__ import annotations

import ctypes
import re
import signal
import sys
from datetime import date
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from .batch_csv import CsvRow, column_of, csv_record
from .batch_inputs import FhirRecord, Item, ReadError
from .errors import InputError, NotScreened, RecordError, ScreeningError
from .report import Summary
from .ruleset import RuleSet
from .screener import Screener, not_a_record

Chunk = tuple[int, list[Item]]
Payload = bytes | str | dict[str, Any] | CsvRow | ReadError

BOM = b"\xef\xbb\xbf"
QUOTED_MAX = 200  # characters of a value quoted in an error message
_QUOTED = re.compile(rf"'([^'\n]{{{QUOTED_MAX}}})[^'\n]{{16,}}'|\"([^\"\n]{{{QUOTED_MAX}}})[^\"\n]{{16,}}\"")


class ChunkResult(NamedTuple):
    """A screened chunk: its output lines as one block of bytes, and their counts."""

    lines: bytes
    summary: Summary
    records: int


_screener: Screener | None = None
_as_of: date | None = None
_compact = False


def init_worker(
    rules: str | None, params: str | None, as_of: str, compact: bool = False, ruleset: RuleSet | None = None
) -> None:
    """Build this process's Screener once (a pool's initializer). Ctrl-C is the parent's.

    ``compact`` writes decisions without what every line would repeat (``Decision.as_dict``).
    """
    global _screener, _as_of, _compact
    if ruleset is None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _die_with_parent()
    _screener = Screener(Path(rules) if rules else None, Path(params) if params else None, ruleset=ruleset)
    _as_of = date.fromisoformat(as_of)
    _compact = compact


def _die_with_parent() -> None:
    """Linux: a pool worker gets SIGTERM when the batch process dies, even by SIGKILL."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def screen_chunk(chunk: Chunk) -> ChunkResult:
    """Screen a chunk with this process's Screener (see :func:`init_worker`)."""
    if _screener is None or _as_of is None:
        raise RuntimeError("init_worker() has not run in this process")
    first, items = chunk
    summary = Summary()
    lines = [
        screen_item(_screener, _as_of, position, source, payload, summary, _compact)
        for position, (source, payload, _size) in enumerate(items, first)
    ]
    return ChunkResult(b"".join(lines), summary, len(lines))


def screen_item(
    screener: Screener,
    as_of: date,
    position: int | None,
    source: str | None,
    payload: Payload,
    summary: Summary,
    compact: bool = False,
) -> bytes:
    """One output line (with its newline) for one raw item; counts it in ``summary``."""
    line = screen_result(screener, as_of, position, source, payload, summary, compact)
    return orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE)


def screen_result(
    screener: Screener,
    as_of: date,
    position: int | None,
    source: str | None,
    payload: Payload,
    summary: Summary,
    compact: bool = False,
) -> dict[str, Any]:
    """The output line for one raw item, as a dict; counts it in ``summary``."""
    record_id: str | None = None
    columns: dict[str, str] | None = None
    line: dict[str, Any] = {"position": position, "source": source, "record_id": None}
    if position is None:
        del line["position"]
    try:
        if isinstance(payload, ReadError):
            line["record_id"] = payload.record_id  # a FHIR patient with a malformed resource
            raise _Unreadable(payload.as_dict())
        if isinstance(payload, CsvRow):
            if len(payload.values) != len(payload.header):
                line["record_id"] = payload_record_id(payload)
                message = f"{len(payload.values)} cells, but the header has {len(payload.header)} columns"
                raise _Unreadable({"code": "invalid_csv_row", "message": f"{source}: {message}"})
            data, columns = csv_record(payload)
        elif isinstance(payload, dict):
            data = payload
        else:
            try:
                data = orjson.loads(_json_bytes(payload))
            except orjson.JSONDecodeError as error:
                raise InputError(f"not valid JSON: {error}", source) from None
        if not isinstance(data, dict):
            raise not_a_record(data, source)
        raw_id = data.get("id")
        record_id = str(raw_id) if raw_id is not None else None
        line["record_id"] = record_id
        if isinstance(payload, FhirRecord):  # leaves out items dated after as_of, and notes them
            decision = screener.screen_fhir_record(data, as_of)
        else:
            decision = screener.screen(data, as_of)
    except NotScreened as error:
        line["record_id"] = error.record_id or record_id
        line["not_screened"] = error.as_dict()
        summary.add_not_screened()
    except _Unreadable as error:
        line["error"] = error.details
        summary.add_error(str(error.details["code"]))
    except RecordError as error:
        details = error.as_dict()
        line["record_id"] = error.record_id or record_id
        if isinstance(payload, CsvRow):  # name the cell; a malformed list cell is its own column
            for problem in details["problems"]:  # type: ignore[attr-defined]
                field = problem["field"]
                problem["column"] = column_of(field, columns) if columns is not None else field
        line["error"] = details
        summary.add_error(error.code)
    except ScreeningError as error:
        details = {"code": error.code, "message": str(error)}
        if isinstance(error, InputError):
            details = {key: value for key, value in error.as_dict().items() if value is not None}
        line["error"] = details
        summary.add_error(error.code)
    except Exception as error:  # the batch goes on; the line and the exit code say what broke
        line["error"] = {"code": "internal_error", "message": f"{type(error).__name__}: {error}"}
        summary.add_error("internal_error")
    else:
        line["decision"] = decision.as_dict(compact)
        summary.add_decision(decision)
        return line
    _shorten_messages(line["error"] if "error" in line else line["not_screened"])
    return line


def _json_bytes(payload: bytes | str) -> bytes | str:
    """A record's JSON as orjson reads it: a UTF-8 byte order mark (a file's first line) dropped."""
    if isinstance(payload, FhirRecord):
        return bytes(payload)
    if isinstance(payload, bytes):
        return payload.removeprefix(BOM)
    return payload.removeprefix("\ufeff")


def payload_record_id(payload: Payload) -> str | None:
    """The record id an item's output line carries, as far as it can be read (``--resume``)."""
    if isinstance(payload, ReadError):
        return payload.record_id
    if isinstance(payload, CsvRow):
        for name, value in zip(payload.header, payload.values, strict=False):
            if name == "id":
                return value.strip() or None
        return None
    data: Any = payload
    if not isinstance(payload, dict):
        try:
            data = orjson.loads(_json_bytes(payload))
        except orjson.JSONDecodeError:
            return None
    if isinstance(data, dict) and data.get("id") is not None:
        return str(data["id"]) or None
    return None


def _shorten(text: str) -> str:
    """Cut each long value quoted in a message to QUOTED_MAX characters."""
    if len(text) <= QUOTED_MAX:
        return text
    return _QUOTED.sub(
        lambda m: f"'{m[1]}…'" if m[1] is not None else f'"{m[2]}…"',
        text,
    )


def _shorten_messages(details: dict[str, Any]) -> None:
    """Error and problem messages quote the bad value: keep a huge one from filling the line."""
    if isinstance(details.get("message"), str):
        details["message"] = _shorten(details["message"])
    for problem in details.get("problems") or []:
        if isinstance(problem, dict) and isinstance(problem.get("message"), str):
            problem["message"] = _shorten(problem["message"])


def failed_line(
    position: int, source: str, code: str, message: str, summary: Summary, record_id: str | None = None
) -> bytes:
    """The error line of an item that could not be screened at all (its worker died)."""
    summary.add_error(code)
    line = {
        "position": position,
        "source": source,
        "record_id": record_id,
        "error": {"code": code, "message": message},
    }
    return orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE)


class _Unreadable(Exception):
    def __init__(self, details: dict[str, object]) -> None:
        super().__init__(details.get("message"))
        self.details = details
