"""Fetching a patient's resources from a FHIR server, for CDS Hooks prefetch that is missing.

The CDS Hooks specification lets a service query the client's ``fhirServer`` with the
bearer token of ``fhirAuthorization`` when a prefetch key was left out. A request names
the server, so fetching from any URL would let a caller make the service send requests
anywhere: :class:`FhirFetcher` only fetches from servers on its allow-list (``screening
serve --fhir-server URL``), only with a token, within a timeout and a page limit, and it
never follows a ``next`` link to another host. Every failure is reported, not raised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx
import orjson

FHIR_JSON = "application/fhir+json"


class FhirFetcher:
    """Reads resources from allowed FHIR servers with httpx (async)."""

    def __init__(
        self,
        allow: Sequence[str] = (),
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 5.0,
        max_pages: int = 10,
    ) -> None:
        self.allow = tuple(a.rstrip("/") for a in allow if a)
        self.transport = transport
        self.timeout = timeout
        self.max_pages = max_pages

    def allowed(self, server: str | None) -> bool:
        if not server:
            return False
        server = server.rstrip("/")
        return any(server == a or server.startswith(a + "/") for a in self.allow)

    async def fetch(
        self, server: str, token: str, patient_id: str, queries: Mapping[str, str]
    ) -> tuple[list[tuple[str, Any]], dict[str, str]]:
        """Run each query (resource type -> template with ``{{context.patientId}}``).

        Returns the JSON bodies fetched, each with its query's resource type, and the
        types that could not be fetched with the reason.
        """
        base = server.rstrip("/")
        headers = {"Authorization": f"Bearer {token}", "Accept": FHIR_JSON}
        found: list[tuple[str, Any]] = []
        failed: dict[str, str] = {}
        async with httpx.AsyncClient(
            transport=self.transport, timeout=self.timeout, headers=headers, follow_redirects=False
        ) as client:
            for kind, template in queries.items():
                url: str | None = (
                    f"{base}/{template.replace('{{context.patientId}}', quote(patient_id, safe=''))}"
                )
                pages = 0
                try:
                    while url and pages < self.max_pages:
                        body = await _get(client, url)
                        found.append((kind, body))
                        pages += 1
                        url = _next_page(body, base)
                    if url:
                        failed[kind] = f"more than {self.max_pages} pages; the rest was not read"
                except _FetchError as error:
                    failed[kind] = str(error)
        return found, failed


class _FetchError(Exception):
    pass


async def _get(client: httpx.AsyncClient, url: str) -> Any:
    try:
        response = await client.get(url)
    except httpx.HTTPError as error:
        raise _FetchError(f"the FHIR server could not be reached ({type(error).__name__})") from None
    if response.status_code == 404:
        raise _FetchError("not found on the FHIR server (404)")
    if response.status_code != 200:
        raise _FetchError(f"the FHIR server answered {response.status_code}")
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise _FetchError("the FHIR server's answer was not JSON") from None
    if not isinstance(body, dict) or "resourceType" not in body:
        raise _FetchError("the FHIR server's answer was not a FHIR resource")
    if body["resourceType"] == "OperationOutcome":
        raise _FetchError("the FHIR server answered with an OperationOutcome")
    return body


def _next_page(body: Mapping[str, Any], base: str) -> str | None:
    """The ``next`` link of a searchset, if it stays on the same server."""
    if body.get("resourceType") != "Bundle":
        return None
    links = body.get("link")
    # A server's answer is input too: a link that is not a list of objects is no next page.
    for link in links if isinstance(links, list) else ():
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            if isinstance(url, str) and (
                url == base or url.startswith(base + "/") or url.startswith(base + "?")
            ):
                return url
    return None
