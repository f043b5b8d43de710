"""The HTTP service: screening, the rule set and CDS Hooks over FastAPI.

    POST /screen                  a native record or a FHIR Bundle -> the decision (?format=text)
    POST /screen/batch            a JSON array (or {"records": [...]}) -> {"results": [...]}
    GET  /rules                   the rule set: id, version, sha256, parameters, criteria
    GET  /health                  liveness, with the rule set's id, version and sha256
    GET  /cds-services            CDS Hooks discovery
    POST /cds-services/{id}       CDS Hooks patient-view: cards
    POST /cds-services/{id}/feedback  CDS Hooks feedback on a card (to the decision log)
    GET  /decisions/{id}          a recent decision's full explanation (this process's cache)
    GET  /docs, /openapi.json     OpenAPI

Each process builds one :class:`~screening.screener.Screener` when the app is created and
keeps it. Everything CPU-heavy about a request (parsing its JSON, validating and screening
it, writing the answer) runs in a worker thread, one request at a time per process, first
come first served. That does not make screening faster: durable-rules and pydantic hold
the GIL, and the Screener serialises engine calls. What it buys is an event loop that
answers ``/health`` and accepts connections between the slices of the GIL a long request
leaves, and that times out stalled uploads. The service scales across cores with
processes (``screening serve --workers N``).

A request body must arrive whole within ``body_timeout`` seconds of its headers (a client
that trickles it gets 408 and the connection is closed); uvicorn's keep-alive timeout
closes idle connections.

Errors are JSON ``{"code", "message", "field"}`` with a stable snake_case code, mapped
from the package's error tree in :func:`error_response` (the one place), never a stack
trace. Request bodies are limited in size. The log never holds patient data: requests
are logged by method, path and status; an internal error (a 500) by its type and its
traceback's frames, without its message, which may quote the record.

Who may call: :mod:`screening.cds_auth` (a static token, or a trusted CDS client's JWT).
Each decision gets an id (``X-Decision-Id``, ``decision_id``) and a row in the decision log
(:mod:`screening.decision_log`), written from the worker thread that screened it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import date
from typing import Annotated, Any, Literal, TypeVar

import orjson
from anyio import CapacityLimiter, to_thread
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from screening.decision import Decision, NotScreened
from screening.errors import EngineError, InputError, RecordError, RuleSetError, ScreeningError, error_shape
from screening.intake import InputKind, Screener, classify
from screening.record import Record, load_json, not_a_record
from screening.screener import parse_as_of
from screening.service import cdshooks
from screening.service.auth import (
    Authenticator,
    AuthError,
    SharedReplayCache,
    TrustedClient,
    audiences,
    load_trusted_clients,
)
from screening.service.decision_log import BACKUPS as LOG_BACKUPS
from screening.service.decision_log import CACHE_SIZE, DecisionLog, Recorder, open_log
from screening.service.decision_log import MAX_BYTES as LOG_MAX_BYTES
from screening.service.fhir_fetch import FhirFetcher

T = TypeVar("T")
log = logging.getLogger("screening.service.app")
MAX_BODY = 10 * 1024 * 1024
BATCH_LIMIT = 100
BODY_TIMEOUT = 30.0
"""Seconds a request body may take to arrive after its headers (10 MB at ~3 Mbit/s)."""
KEEP_ALIVE_TIMEOUT = 5
HEALTHCHECK_TIMEOUT = 60
"""Seconds uvicorn's supervisor (``--workers`` > 1) waits for a worker to answer its ping
before restarting it. The ping needs the GIL, and validating one record is a single call
into pydantic's core: a record near the body limit took 3 to 7 s on a loaded 2-core
machine, over uvicorn's default of 5 s."""
MAX_MESSAGE = 1000
"""Characters of an error message or record id an error answer repeats (an id can be megabytes)."""
PUBLIC_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"})
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(HTTPBearer(auto_error=False))]
AsOf = Annotated[str | None, Query(description="Screening date, YYYY-MM-DD (default: today)")]
Format = Annotated[
    Literal["json", "text"], Query(description="json (the decision) or text (for a clinician)")
]


class ApiError(Exception):
    """An HTTP error with a stable code, raised by the endpoints."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        self.status, self.code, self.message, self.field = status, code, message, field
        super().__init__(message)


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    """The one error shape (:func:`screening.errors.error_shape`) for errors of HTTP's own."""
    return error_shape(code, _clip(message), field)


def _clip(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_MESSAGE:
        return text
    return f"{text[:MAX_MESSAGE]}... ({len(text) - MAX_MESSAGE} more characters)"


def log_internal_error(error: BaseException, where: str = "") -> None:
    """Log an internal error with its traceback's frames, and never its message (it may quote
    the record): the type, the file, line and function of each frame, and the chained causes' types."""
    frames = "".join(
        f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}\n'
        for frame in traceback.extract_tb(error.__traceback__)
    )
    causes: list[str] = []
    cause = error.__cause__ or error.__context__
    while cause is not None and len(causes) < 5:
        causes.append(type(cause).__name__)
        cause = cause.__cause__ or cause.__context__
    caused = f" (caused by {' <- '.join(causes)})" if causes else ""
    log.error(
        "internal error %s%s%s\nTraceback (most recent call last):\n%s%s (message withheld)",
        type(error).__name__,
        f" on {where}" if where else "",
        caused,
        frames,
        type(error).__name__,
    )


def error_response(error: Exception, where: str = "") -> Response:
    """The one place where errors become HTTP responses; a 500 is logged here (``where``: the request)."""
    if isinstance(error, ApiError):
        status, body = error.status, error_body(error.code, error.message, error.field)
    elif isinstance(error, AuthError):
        status, body = error.status, error_body(error.code, error.message, "Authorization")
    elif isinstance(error, (EngineError, RuleSetError)):
        status, body = 500, error_body(error.code, "the screening engine failed; the error was logged")
    elif isinstance(error, ScreeningError):
        status = 422 if isinstance(error, RecordError) else 400
        body = {**error.as_dict(), "message": _clip(str(error)), "record_id": _clip(error.record_id)}
    else:
        status, body = 500, error_body("internal_error", "internal error; the error was logged")
    if status == 500:
        log_internal_error(error, where)
    challenge = error.challenge if isinstance(error, AuthError) else "Bearer"
    headers = {"WWW-Authenticate": challenge} if status == 401 else None
    return Response(orjson.dumps(body), status, headers=headers, media_type="application/json")


JSON_TYPES = frozenset({"application/json", "application/fhir+json"})


async def json_body(request: Request) -> bytes:
    """The request body, to be parsed as JSON off the event loop; a content type other than
    JSON (or none) is a 415."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind and kind not in JSON_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            # curl -d sends a form content type: the first request most people try.
            f"the body must be sent as JSON, with the header Content-Type: application/json "
            f"(or application/fhir+json), not {kind[:80]}; with curl, add "
            "-H 'Content-Type: application/json' (or use --json instead of -d)",
            "Content-Type",
        )
    return await request.body()


def parse_body(body: bytes) -> Any:
    """A request body as JSON. orjson refuses nesting deeper than 1,024 levels ("depth limit
    exceeded"), so deep nesting is a 400 here and never reaches recursive code."""
    return load_json(body, source="request body")


class ErrorBody(BaseModel):
    """Every error: a stable snake_case code, the message, and the field or position."""

    code: str = Field(examples=["invalid_input"])
    message: str
    field: str | None = Field(description="The field or position (line:column) the error is about")
    record_id: str | None = Field(default=None, description="422 invalid_record: the record's id")
    problems: list[dict[str, Any]] | None = Field(
        default=None, description="422 invalid_record: every problem, each with its field"
    )


class DecisionBody(BaseModel):
    """A screening decision (see the README); a deceased patient gives ``not_screened``."""

    model_config = ConfigDict(extra="allow")

    record_id: str | None = None
    outcome: Literal["ineligible", "needs_information", "needs_review", "eligible_with_cautions", "eligible"]
    as_of: str
    summary: str
    criteria: list[dict[str, Any]]
    recommendations: list[str]
    missing_information: list[str]


class NotScreenedBody(BaseModel):
    code: Literal["not_screened"]
    message: str
    record_id: str | None = None


class BatchBody(BaseModel):
    """``results`` in input order, each ``{position, decision | not_screened | error}`` with the
    ``decision_id`` of a decision or not_screened; ``batch_id`` is in their decision log rows."""

    count: int
    batch_id: str
    results: list[dict[str, Any]]


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    what = {
        400: "Bad input: not JSON, not a record or FHIR resource, a bad query parameter",
        401: "A valid bearer token (or a trusted CDS client's JWT) is required",
        404: "No such service, or no such decision (expired from the cache, or unknown)",
        413: "The body is over the size limit, or the batch over its limit",
        415: "The body is not JSON (application/json or application/fhir+json)",
        422: "The record is not valid (invalid_record, with every problem), or the request's parameters",
    }
    return {status: {"model": ErrorBody, "description": what[status]} for status in statuses}


def create_app(
    screener: Screener | None = None,
    *,
    rules: str | None = None,
    params: str | None = None,
    token: str | None = None,
    max_body: int = MAX_BODY,
    batch_limit: int = BATCH_LIMIT,
    as_of: date | None = None,
    fetcher: FhirFetcher | None = None,
    body_timeout: float = BODY_TIMEOUT,
    trusted_clients: dict[str, TrustedClient] | None = None,
    base_url: str | None = None,
    cors_origins: list[str] | None = None,
    decision_log: DecisionLog | None = None,
    decision_cache: int = CACHE_SIZE,
    jwks_transport: Any = None,
    clock: Callable[[], float] = time.time,
    replay_db: str | None = None,
) -> FastAPI:
    """The application, with its Screener built now (once per process).

    ``trusted_clients`` (:func:`~screening.cds_auth.load_trusted_clients`) accept their JWTs,
    whose ``aud`` must be ``base_url``; ``base_url`` also puts a link to the full explanation
    on CDS cards. ``replay_db``, a SQLite file, shares the seen JWT ids between the worker processes;
    ``jwks_transport`` (an httpx transport for fetching JWKS) and ``clock`` are for tests."""
    screener = screener or Screener(rules, params)
    fetcher = fetcher or FhirFetcher()
    if isinstance(as_of, str):  # callers (tests) pass the day as text too; the log wants a date
        as_of = parse_as_of(as_of)
    auth = Authenticator(
        token,
        trusted_clients,
        audiences(base_url, cdshooks.SERVICE_ID),
        transport=jwks_transport,
        clock=clock,
        replays=SharedReplayCache(replay_db) if replay_db and trusted_clients else None,
    )
    decision_log = decision_log or DecisionLog()
    # Without a configured key, each process hashes with its own: operators must know.
    (log.warning if decision_log.sink and decision_log.key_generated else log.info)(
        "%s", decision_log.describe()
    )
    # One request's CPU work at a time, in a worker thread: the engine is serialised and
    # holds the GIL anyway, so more threads would only compete for both; the limiter serves
    # requests in order of arrival, and the event loop stays free for I/O and /health.
    limiter = CapacityLimiter(1)

    async def offload(func: Callable[..., T], *args: Any) -> T:
        return await to_thread.run_sync(func, *args, limiter=limiter)

    ruleset = screener.ruleset
    # The docs pages use the Swagger UI and ReDoc files shipped with fastapi-offline, not a
    # CDN: hospital networks are often closed to the internet.
    app = FastAPIOffline(
        title="Ketamine eligibility screening",
        version=ruleset.version,
        description=(
            "Screens patients for IV ketamine in chronic pain against documented criteria "
            f"({ruleset.id} {ruleset.version}). Decision support for a clinician: it never "
            "says 'give ketamine'. Errors are {code, message, field}."
        ),
    )

    recorder = Recorder(decision_log, screener.ruleset, decision_cache, base_url)

    async def authorised(credentials: Credentials) -> None:
        await auth.check(credentials.credentials if credentials else None)

    def day(value: str | None) -> date:
        try:
            return parse_as_of(value) if value else as_of or date.today()
        except InputError as error:
            raise ApiError(400, "invalid_as_of", str(error), "as_of") from None

    @app.exception_handler(ApiError)
    @app.exception_handler(AuthError)
    @app.exception_handler(ScreeningError)
    async def _screening_error(request: Request, error: Exception) -> Response:
        return error_response(error, f"{request.method} {request.url.path}")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> Response:
        codes = {404: "not_found", 405: "method_not_allowed"}
        return error_response(
            ApiError(error.status_code, codes.get(error.status_code, "http_error"), str(error.detail))
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, error: RequestValidationError) -> Response:
        first = error.errors()[0] if error.errors() else {}
        field = ".".join(str(p) for p in first.get("loc", ()))
        return error_response(
            ApiError(422, "invalid_request", first.get("msg", "invalid request"), field or None)
        )

    protected = [Depends(authorised)]
    record_schema = Record.model_json_schema(ref_template="#/components/schemas/{model}")
    one = {
        "oneOf": [
            {"$ref": "#/components/schemas/Record"},
            {"type": "object", "description": "A FHIR R4 resource, usually a Bundle"},
        ]
    }

    def body(schema: dict[str, Any]) -> dict[str, Any]:
        content = {kind: {"schema": schema} for kind in sorted(JSON_TYPES)}
        return {"requestBody": {"required": True, "content": content}}

    body_doc = body(one)
    batch_doc = body(
        {
            "oneOf": [
                {"type": "array", "items": one, "maxItems": batch_limit},
                {
                    "type": "object",
                    "properties": {"records": {"type": "array", "items": one, "maxItems": batch_limit}},
                    "required": ["records"],
                },
            ]
        }
    )
    hook_doc = body({"$ref": "#/components/schemas/HookRequestBody"})
    feedback_doc = body({"$ref": "#/components/schemas/FeedbackRequestBody"})
    screened: dict[int | str, dict[str, Any]] = {
        200: {
            "description": "The decision (JSON, or text with format=text), or not_screened",
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"$ref": "#/components/schemas/DecisionBody"},
                            {"$ref": "#/components/schemas/NotScreenedBody"},
                        ]
                    }
                },
                "text/plain": {"schema": {"type": "string"}},
            },
        }
    }

    @app.get("/health", tags=["service"])
    def health() -> dict[str, Any]:
        """Liveness, with the rule set this process screens against."""
        return {"status": "ok", "ruleset": ruleset.summary(), "pid": os.getpid()}

    @app.get("/rules", tags=["service"], dependencies=protected, responses=_errors(401))
    def rules_endpoint() -> dict[str, Any]:
        """The rule set: id, version, sha256, parameters (with site overrides) and criteria."""
        return describe_rules(screener)

    @app.post(
        "/screen",
        tags=["screening"],
        dependencies=protected,
        openapi_extra=body_doc,
        responses={**screened, **_errors(400, 401, 413, 415, 422)},
    )
    async def screen(request: Request, as_of: AsOf = None, format: Format = "json") -> Response:
        """Screen one native record, or the one patient of a FHIR Bundle.

        A deceased patient answers 200 with ``{"code": "not_screened", ...}``.
        """
        body = await json_body(request)
        text, answer, decision_id = await offload(
            _screen_answer, screener, recorder, body, day(as_of), format
        )
        headers = {"X-Decision-Id": decision_id}
        if format == "text":
            return PlainTextResponse(text, headers=headers)
        return Response(answer, media_type="application/json", headers=headers)

    @app.post(
        "/screen/batch",
        tags=["screening"],
        dependencies=protected,
        openapi_extra=batch_doc,
        response_model=BatchBody,
        responses=_errors(400, 401, 413, 415, 422),
    )
    async def screen_batch(request: Request, as_of: AsOf = None) -> Response:
        """Screen a small batch: a JSON array of records or FHIR Bundles (or ``{"records": [...]}``).

        Each result is ``{"position", "decision_id", "decision" | "not_screened" | "error"}``, in
        input order (an error has no decision id); ``batch_id`` (header ``X-Batch-Id``) is in
        each of their decision log rows.
        """
        body = await json_body(request)
        answer, batch_id = await offload(_screen_batch, screener, recorder, body, day(as_of), batch_limit)
        return Response(answer, media_type="application/json", headers={"X-Batch-Id": batch_id})

    @app.get("/cds-services", tags=["cds-hooks"], dependencies=protected, responses=_errors(401))
    def cds_discovery() -> dict[str, Any]:
        """CDS Hooks discovery: the patient-view service and its prefetch templates."""
        return cdshooks.discovery(ruleset)

    @app.post(
        "/cds-services/{service_id}",
        tags=["cds-hooks"],
        dependencies=protected,
        openapi_extra=hook_doc,
        response_model=cdshooks.CardsBody,
        responses=_errors(400, 401, 404, 413, 415, 422),
    )
    async def cds_service(service_id: str, request: Request) -> Response:
        """CDS Hooks: screen the patient from the prefetch and answer with cards."""
        if service_id != cdshooks.SERVICE_ID:
            raise ApiError(404, "unknown_service", f"no CDS service {service_id!r}", "id")
        body = await json_body(request)
        hook = await offload(_read_hook, body)
        problem = hook.mismatch()
        if problem is None and hook.unavailable and hook.token and fetcher.allowed(hook.fhir_server):
            await _fetch_missing(fetcher, hook, cdshooks.queries(ruleset))
            problem = hook.mismatch()
        answer, decision_id = await offload(
            _hook_answer, screener, recorder, hook, problem, day(None), request.url.path
        )
        return Response(answer, media_type="application/json", headers={"X-Decision-Id": decision_id})

    @app.post(
        "/cds-services/{service_id}/feedback",
        tags=["cds-hooks"],
        dependencies=protected,
        openapi_extra=feedback_doc,
        responses=_errors(400, 401, 404, 413, 415, 422),
    )
    async def cds_feedback(service_id: str, request: Request) -> dict[str, Any]:
        """CDS Hooks feedback on cards (accepted or overridden), written to the decision log."""
        if service_id != cdshooks.SERVICE_ID:
            raise ApiError(404, "unknown_service", f"no CDS service {service_id!r}", "id")
        body = await json_body(request)
        count = await offload(_feedback, recorder, body, request.url.path)
        return {"received": count, "logged": decision_log.sink is not None}

    @app.get(
        "/decisions/{decision_id}", tags=["service"], dependencies=protected, responses=_errors(401, 404, 422)
    )
    async def explanation(decision_id: str, format: Format = "json") -> Response:
        """A recent decision's full explanation, from this process's bounded cache."""
        found = recorder.explanations.get(decision_id)
        if found is None:
            raise ApiError(
                404,
                "unknown_decision",
                "expired or unknown decision: the service keeps only its most recent decisions, "
                "in the process that made them; screen the patient again",
                "decision_id",
            )
        if format == "text":
            return PlainTextResponse(await offload(_full_text, found))
        return Response(
            orjson.dumps({"decision_id": decision_id, **found.as_dict()}), media_type="application/json"
        )

    _add_schemas(app, record_schema)
    app.add_middleware(_Guard, max_body=max_body, body_timeout=body_timeout)
    if cors_origins:  # outermost, so that every answer (a 413 too) carries the CORS headers
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["X-Decision-Id", "X-Batch-Id"],
        )
    return app


def _add_schemas(app: FastAPI, record_schema: dict[str, Any]) -> None:
    """Put the Record model (and its parts) into the OpenAPI components."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            defs = dict(record_schema.get("$defs", {}))
            components.update(defs)
            components["Record"] = {k: v for k, v in record_schema.items() if k != "$defs"}
            models = (DecisionBody, NotScreenedBody, cdshooks.HookRequestBody, cdshooks.FeedbackRequestBody)
            for model in (*models, ErrorBody):
                found = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(found.pop("$defs", {}))
                components[model.__name__] = found
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _screen_answer(
    screener: Screener, recorder: Recorder, body: bytes, as_of: date, format: str
) -> tuple[str, bytes, str]:
    """Parse, screen, log and write the answer of POST /screen (in the worker thread)."""
    result = _screen_one(screener, parse_body(body), as_of)
    decision_id = recorder.decision(result, endpoint="/screen", as_of=as_of.isoformat())
    if format == "text":
        return _text(result), b"", decision_id
    return "", orjson.dumps({**result.as_dict(), "decision_id": decision_id}), decision_id


def _hook_answer(
    screener: Screener,
    recorder: Recorder,
    hook: cdshooks.HookRequest,
    problem: str | None,
    as_of: date,
    endpoint: str,
) -> tuple[bytes, str]:
    """Screen a CDS Hooks request's patient, log the decision with its cards' uuids, and
    write the cards (in the worker thread); a prefetch about another patient is not screened."""
    ruleset = screener.ruleset
    decision_id = str(uuid.uuid4())
    result: Decision | NotScreened | RecordError | None = None
    if problem is not None:
        cards = [cdshooks.mismatch_card(problem, hook.patient_id, ruleset)]
    else:
        result = cdshooks.screen_hook(screener, hook, as_of, "request body")
        link = recorder.link(decision_id) if isinstance(result, Decision) else None
        cards = cdshooks.cards(result, ruleset, hook.unavailable, hook.failed, link)
    for card in cards:
        card["extension"] = {"decision_id": decision_id}
    recorder.decision(
        result,
        endpoint=endpoint,
        as_of=as_of.isoformat(),
        decision_id=decision_id,
        record_id=hook.patient_id,
        outcome="prefetch_mismatch" if problem is not None else None,
        card_uuids=[card["uuid"] for card in cards],
    )
    return orjson.dumps({"cards": cards}), decision_id


def _feedback(recorder: Recorder, body: bytes, endpoint: str) -> int:
    items = cdshooks.read_feedback(parse_body(body))
    recorder.feedback(items, endpoint)
    return len(items)


def _full_text(result: Decision | NotScreened) -> str:
    from screening.present.text import render_result

    return render_result(result, full=True)


def _screen_batch(
    screener: Screener, recorder: Recorder, body: bytes, as_of: date, limit: int
) -> tuple[bytes, str]:
    """Parse, screen, log and write the answer of POST /screen/batch (in the worker thread)."""
    data = parse_body(body)
    items = data.get("records") if classify(data) is InputKind.NATIVE else data
    if classify(items) is InputKind.FHIR:
        items = [items]
    if not isinstance(items, list):
        raise ApiError(400, "invalid_batch", "a batch is a JSON array of records", "records")
    if len(items) > limit:
        raise ApiError(413, "batch_too_large", f"{len(items)} records; at most {limit} per batch")
    found = _screen_many(screener, items, as_of, limit)
    batch_id = str(uuid.uuid4())
    results = []
    for position, result in found:
        item = _batch_result(position, result)
        if isinstance(result, Decision | NotScreened):
            item["decision_id"] = recorder.decision(
                result,
                endpoint="/screen/batch",
                as_of=as_of.isoformat(),
                batch_id=batch_id,
                position=position,
            )
        results.append(item)
    return orjson.dumps({"count": len(results), "batch_id": batch_id, "results": results}), batch_id


def _read_hook(body: bytes) -> cdshooks.HookRequest:
    return cdshooks.read_hook(parse_body(body), "request body")


def _screen_one(screener: Screener, data: Any, as_of: date) -> Decision | NotScreened:
    kind = classify(data)
    if kind is InputKind.FHIR:
        results = screener.screen_fhir(data, as_of, source="request body")
        # A malformed resource is answered as the invalid record it makes, whatever else the body holds.
        failed = next((r for r in results if isinstance(r, RecordError)), None)
        if failed is not None:
            raise failed
        if len(results) != 1:
            raise ApiError(
                422, "multiple_patients", f"the FHIR input holds {len(results)} patients; use /screen/batch"
            )
        if isinstance(results[0], RecordError):
            raise results[0]
        return results[0]
    if kind is InputKind.NOT_AN_OBJECT:
        raise not_a_record(data, "request body")
    return screener.screen(data, as_of)


def _screen_many(screener: Screener, items: list[Any], as_of: date, limit: int) -> list[tuple[int, Any]]:
    out: list[tuple[int, Any]] = []
    for position, item in enumerate(items):
        try:
            kind = classify(item)
            if kind is InputKind.FHIR:
                found: list[Any] = list(screener.screen_fhir(item, as_of, source=f"records[{position}]"))
            elif kind is InputKind.NOT_AN_OBJECT:
                raise not_a_record(item, f"records[{position}]")
            else:
                found = [screener.screen(item, as_of)]
        except ScreeningError as error:
            found = [error]
        out.extend((position, result) for result in found)
        if len(out) > limit:
            raise ApiError(413, "batch_too_large", f"more than {limit} patients; at most {limit} per batch")
    return out


def _batch_result(position: int, result: Any) -> dict[str, Any]:
    if isinstance(result, Decision):
        return {"position": position, "decision": result.as_dict()}
    if isinstance(result, NotScreened):
        return {"position": position, "not_screened": result.as_dict()}
    body = orjson.loads(error_response(result).body)
    return {"position": position, "error": body}


async def _fetch_missing(fetcher: FhirFetcher, hook: cdshooks.HookRequest, queries: dict[str, str]) -> None:
    wanted = {kind: queries[kind] for kind in hook.unavailable}
    found, failed = await fetcher.fetch(hook.fhir_server or "", hook.token or "", hook.patient_id, wanted)
    hook.failed.update(failed)
    for kind, body in found:
        if kind in failed:
            continue  # a search with a failed page is incomplete: the type stays unavailable
        try:
            hook.add(body, f"fetched {kind}", kind, "fhirServer")
        except InputError as error:
            hook.failed[kind] = "the FHIR server's answer could not be read"
            hook.notes.append(f"{kind} from the FHIR server could not be read: {error}")
    hook.notes.extend(f"{kind} could not be fetched: {reason}" for kind, reason in failed.items())


def _text(result: Decision | NotScreened) -> str:
    from screening.present.text import render_result

    return render_result(result)


def describe_rules(screener: Screener) -> dict[str, Any]:
    """The rule set as JSON: what ``GET /rules`` answers."""
    rs = screener.ruleset
    return {
        **rs.summary(),
        "title": rs.title,
        "description": rs.description,
        "overrides": dict(rs.overrides),
        "parameters": {
            name: {"value": p.value, "default": p.default, "unit": p.unit, "description": p.description}
            for name, p in rs.parameters.items()
        },
        "criteria": [
            {
                "id": c.id,
                "title": c.title,
                "effect": c.effect,
                "parameters": list(c.params),
                "sources": [s.id for s in c.sources],
            }
            for c in rs.criteria
        ],
        "sources": {key: s.as_dict() for key, s in rs.sources.items()},
        "value_sets": {key: {"title": vs.title, "source": vs.source} for key, vs in rs.value_sets.items()},
    }


class _Guard:
    """ASGI middleware: the body size limit, the body time limit (uvicorn has none: a client
    that sends headers and then trickles its body would hold the request open for ever), and
    a 500 without a trace for any escaped error."""

    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        max_body: int,
        body_timeout: float = BODY_TIMEOUT,
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        length = headers.get(b"content-length", b"0")
        if length.isdigit() and int(length) > self.max_body:
            await _send(send, _too_large(self.max_body))
            return
        received = 0
        started = False
        deadline = time.monotonic() + self.body_timeout
        complete = False

        async def limited() -> Message:
            nonlocal received, complete
            if complete:  # the body is in: what is left to receive is the disconnect
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0))
            except TimeoutError:
                raise _TooSlow from None
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            received += len(message.get("body", b""))
            if received > self.max_body:
                raise _TooLarge
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, tracked)
        except _TooLarge:
            if not started:
                await _send(send, _too_large(self.max_body))
        except _TooSlow:
            if not started:
                message = f"the request body did not arrive within {self.body_timeout:g} seconds"
                response = error_response(ApiError(408, "request_timeout", message))
                response.headers["Connection"] = "close"  # the rest of the body is never read
                await _send(send, response)
        except Exception as error:  # the last line of defence: logged without its message
            response = error_response(error, f"{scope.get('method')} {scope.get('path')}")
            if not started:
                await _send(send, response)


class _TooLarge(Exception):
    pass


class _TooSlow(Exception):
    pass


def _too_large(limit: int) -> Response:
    return error_response(
        ApiError(413, "payload_too_large", f"the request body is over the {limit} byte limit")
    )


async def _send(send: Send, response: Response) -> None:
    await send(
        {"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers}
    )
    await send({"type": "http.response.body", "body": response.body})


def app_from_env() -> Any:
    """The app configured from ``SCREENING_*`` variables (``screening serve`` sets them)."""
    env = os.environ
    clients = env.get("SCREENING_TRUSTED_CLIENTS")
    key = env.get("SCREENING_DECISION_LOG_KEY")
    decision_log = open_log(
        env.get("SCREENING_DECISION_LOG") or None,
        key.encode() if key else None,
        int(env.get("SCREENING_DECISION_LOG_MAX_BYTES") or LOG_MAX_BYTES),
        int(env.get("SCREENING_DECISION_LOG_BACKUPS") or LOG_BACKUPS),
    )
    return create_app(
        rules=env.get("SCREENING_RULES") or None,
        params=env.get("SCREENING_PARAMS") or None,
        token=env.get("SCREENING_TOKEN") or None,
        max_body=int(env.get("SCREENING_MAX_BODY") or MAX_BODY),
        batch_limit=int(env.get("SCREENING_BATCH_LIMIT") or BATCH_LIMIT),
        as_of=date.fromisoformat(env["SCREENING_AS_OF"]) if env.get("SCREENING_AS_OF") else None,
        fetcher=FhirFetcher(env.get("SCREENING_FHIR_SERVERS", "").split()),
        body_timeout=float(env.get("SCREENING_BODY_TIMEOUT") or BODY_TIMEOUT),
        trusted_clients=load_trusted_clients(clients) if clients else None,
        base_url=env.get("SCREENING_BASE_URL") or None,
        cors_origins=env.get("SCREENING_CORS_ORIGINS", "").split() or None,
        decision_log=decision_log,
        decision_cache=int(env.get("SCREENING_DECISION_CACHE") or CACHE_SIZE),
        replay_db=env.get("SCREENING_REPLAY_DB") or None,
    )


def serve(
    host: str,
    port: int,
    workers: int,
    log_level: str = "info",
    healthcheck_timeout: int = HEALTHCHECK_TIMEOUT,
) -> None:
    """Run the service with uvicorn; each worker process builds its own Screener."""
    import copy

    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    # The service's own lines (the decision log's startup line, internal errors) go where
    # uvicorn's go, in its format, at the chosen level.
    log_config = copy.deepcopy(LOGGING_CONFIG)
    log_config["loggers"]["screening"] = {
        "handlers": ["default"],
        "level": log_level.upper(),
        "propagate": False,
    }
    uvicorn.run(
        "screening.service.app:app_from_env",
        log_config=log_config,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        server_header=False,
        timeout_keep_alive=KEEP_ALIVE_TIMEOUT,
        timeout_worker_healthcheck=healthcheck_timeout,
    )
