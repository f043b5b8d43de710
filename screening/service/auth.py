"""Who may call the service: a static bearer token, or a CDS client's signed JWT.

A CDS client (an EHR) signs a short-lived JWT for each call (CDS Hooks 2.0, "Trusting CDS
Clients") and sends it as ``Authorization: Bearer <jwt>``. The service checks:

- the issuer (``iss``) is one of the trusted clients of the trusted-clients file;
- the signature, with the issuer's key named by the header's ``kid``, from its JWKS (inline
  in the file, or fetched from its URL and cached; an unknown ``kid`` refetches the JWKS,
  at most once per ``REFRESH_INTERVAL`` per issuer, so a stream of made-up ``kid``s cannot
  turn the service into a fetcher of the client's JWKS);
- the audience (``aud``) is this service: its base URL, the discovery URL or the service URL;
- ``exp`` is in the future and no more than ``MAX_LIFETIME`` ahead (the specification
  recommends five minutes), so the record of seen ``jti`` stays small;
- ``jti`` was not seen before (replay), remembered until its token expires.

Only asymmetric algorithms are accepted (RS*, PS*, ES*): a JWKS holds public keys, and
accepting ``HS256`` would let anyone who has the public key sign.

The trusted-clients file (YAML or JSON) maps each issuer to its JWKS URL or its keys::

    https://ehr.example.org:
      jwks_url: https://ehr.example.org/.well-known/jwks.json
    https://sandbox.example.org:
      jwks: {keys: [{kty: EC, crv: P-384, kid: k1, x: ..., y: ...}]}
"""

from __future__ import annotations

import asyncio
import hmac
import json
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import yaml
from anyio import to_thread

from screening.errors import InputError

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
MAX_LIFETIME = 300
"""Seconds a token's ``exp`` may lie ahead (plus LEEWAY): CDS Hooks recommends five minutes."""
LEEWAY = 30
"""Seconds of clock difference between the client and the service that are forgiven."""
JWKS_TTL = 3600.0
"""Seconds a fetched JWKS is used before it is fetched again."""
REFRESH_INTERVAL = 60.0
"""At most one refetch per issuer in this many seconds when a token names an unknown ``kid``."""
MAX_JTI = 100_000
"""Unexpired ``jti`` remembered at most; beyond that new tokens are refused (never forgotten early,
which would let a replay through)."""
FETCH_TIMEOUT = 5.0


class AuthError(Exception):
    """A refused credential: 401 (or 503 when a client's keys cannot be fetched), with a stable
    code, a plain message and the ``WWW-Authenticate`` challenge (RFC 6750)."""

    def __init__(self, code: str, message: str, status: int = 401, invalid_token: bool = True) -> None:
        self.code, self.message, self.status = code, message, status
        # No credentials at all get the bare challenge; a bad one says why (RFC 6750, section 3).
        # A header value is printable ASCII; the message may quote the token's issuer or kid.
        quoted = "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in message)
        self.challenge = (
            f'Bearer error="invalid_token", error_description="{quoted}"' if invalid_token else "Bearer"
        )
        super().__init__(message)


@dataclass
class TrustedClient:
    issuer: str
    jwks_url: str | None = None
    keys: dict[str, jwt.PyJWK] = field(default_factory=dict)
    """Keys by ``kid`` ("" for a key without one)."""
    fetched: float = 0.0
    """When the keys were fetched (the authenticator's clock)."""
    tried: float = -REFRESH_INTERVAL
    lock: asyncio.Lock | None = None


def load_trusted_clients(path: Path | str) -> dict[str, TrustedClient]:
    """Read the trusted-clients file; InputError names the issuer and the field that is wrong."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise InputError(f"cannot read the trusted-clients file: {error.strerror}", source) from None
    try:
        data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        raise InputError(f"the trusted-clients file is not valid JSON or YAML: {error}", source) from None
    if not isinstance(data, dict) or not data:
        raise InputError("the trusted-clients file must map each issuer to its jwks_url or jwks", source)
    return {str(issuer): _client(str(issuer), entry, source) for issuer, entry in data.items()}


def _client(issuer: str, entry: Any, source: str) -> TrustedClient:
    if not issuer.strip():
        raise InputError("an issuer is empty", source)
    if isinstance(entry, str):
        entry = {"jwks_url": entry}
    if not isinstance(entry, dict) or len({"jwks_url", "jwks"} & set(entry)) != 1:
        raise InputError("give either jwks_url (a URL) or jwks (a JWKS with keys)", source, issuer)
    unknown = set(entry) - {"jwks_url", "jwks"}
    if unknown:
        raise InputError(f"unknown field {sorted(unknown)[0]!r}", source, issuer)
    if "jwks_url" in entry:
        url = entry["jwks_url"]
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise InputError("jwks_url must be an http(s) URL", source, f"{issuer}.jwks_url")
        return TrustedClient(issuer, jwks_url=url)
    try:
        keys = _keys(entry["jwks"])
    except ValueError as error:
        raise InputError(str(error), source, f"{issuer}.jwks") from None
    return TrustedClient(issuer, keys=keys)


def _keys(jwks: Any) -> dict[str, jwt.PyJWK]:
    """The signing keys of a JWKS by ``kid``; ValueError when it is not a usable JWKS."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise ValueError("a JWKS is an object with a non-empty list of keys")
    out: dict[str, jwt.PyJWK] = {}
    for position, key in enumerate(jwks["keys"]):
        if not isinstance(key, dict):
            raise ValueError(f"keys[{position}] is not an object")
        if key.get("use", "sig") != "sig":
            continue  # an encryption key in the same set
        try:
            found = jwt.PyJWK(key)
        except jwt.PyJWTError as error:
            raise ValueError(f"keys[{position}] is not a usable key: {error}") from None
        if found.algorithm_name not in ALGORITHMS and "alg" in key:
            raise ValueError(f"keys[{position}]: algorithm {key['alg']!r} is not accepted")
        out[str(key.get("kid") or "")] = found
    if not out:
        raise ValueError("the JWKS has no signing key")
    return out


class ReplayCache:
    """The ``jti`` of accepted tokens, each until its token expires; bounded."""

    def __init__(self, limit: int = MAX_JTI) -> None:
        self.limit = limit
        self.seen: OrderedDict[tuple[str, str], float] = OrderedDict()

    def check_and_add(self, issuer: str, jti: str, expires: float, now: float) -> None:
        # Tokens arrive roughly in order of expiry, so expired ones sit at the front.
        while self.seen:
            first, first_exp = next(iter(self.seen.items()))
            if first_exp > now - LEEWAY:
                break
            del self.seen[first]
        key = (issuer, jti)
        if key in self.seen:
            raise AuthError("token_replayed", "the token was already used (its jti was seen before)")
        if len(self.seen) >= self.limit:
            self._purge(now)
            if len(self.seen) >= self.limit:
                raise AuthError(
                    "too_many_tokens", "too many unexpired tokens to remember; try again in a minute"
                )
        self.seen[key] = expires

    def _purge(self, now: float) -> None:
        for key in [k for k, exp in self.seen.items() if exp <= now - LEEWAY]:
            del self.seen[key]


class SharedReplayCache:
    """The seen ``jti`` in a SQLite file that the worker processes of one ``screening serve``
    share, so that a token replayed to another worker is refused too. A lookup is one
    indexed insert (a few hundred microseconds); the file is scratch, not kept (no fsync)."""

    def __init__(self, path: Path | str) -> None:
        self.db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, expires REAL)")
        self.db.execute("CREATE INDEX IF NOT EXISTS seen_expires ON seen (expires)")
        self.lock = threading.Lock()

    def check_and_add(self, issuer: str, jti: str, expires: float, now: float) -> None:
        with self.lock:
            # Expired rows go first, so the table holds at most the tokens of the last few minutes.
            self.db.execute("DELETE FROM seen WHERE expires <= ?", (now - LEEWAY,))
            try:
                self.db.execute("INSERT INTO seen VALUES (?, ?)", (f"{issuer} {jti}", expires))
            except sqlite3.IntegrityError:
                raise AuthError(
                    "token_replayed", "the token was already used (its jti was seen before)"
                ) from None


class Authenticator:
    """Checks a request's bearer credential: the static token, or a trusted client's JWT."""

    def __init__(
        self,
        token: str | None = None,
        clients: dict[str, TrustedClient] | None = None,
        audiences: list[str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        replays: ReplayCache | SharedReplayCache | None = None,
    ) -> None:
        self.token = token.encode() if token else None
        self.clients = clients or {}
        self.audiences = [a.rstrip("/") for a in audiences or []]
        if self.clients and not self.audiences:
            raise InputError("trusted clients need the service's base URL (--base-url), to check aud")
        self.transport = transport
        self.clock = clock
        self.replays = replays or ReplayCache()

    @property
    def enabled(self) -> bool:
        return bool(self.token or self.clients)

    async def check(self, credential: str | None) -> dict[str, Any] | None:
        """None when no auth is configured or the static token matched; else the JWT's claims."""
        if not self.enabled:
            return None
        if not credential:
            raise AuthError("unauthorized", "a valid bearer token is required", invalid_token=False)
        given = credential.encode("utf-8", "surrogateescape")
        if self.token is not None and hmac.compare_digest(given, self.token):
            return None
        if self.clients and credential.count(".") == 2:
            return await self._jwt(credential)
        raise AuthError("unauthorized", "a valid bearer token is required")

    async def _jwt(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise AuthError("invalid_token", "the bearer token is not a well-formed JWT") from None
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise AuthError(
                "invalid_token",
                f"the token's algorithm {str(algorithm)[:20]!r} is not accepted (RS*, PS*, ES*)",
            )
        issuer = unverified.get("iss")
        client = self.clients.get(issuer) if isinstance(issuer, str) else None
        if client is None:
            raise AuthError(
                "unknown_issuer", f"the token's issuer {str(issuer)[:200]!r} is not a trusted client"
            )
        key = await self._key(client, str(header.get("kid") or ""))
        now = self.clock()
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=self.audiences,
                issuer=client.issuer,
                leeway=LEEWAY,
                options={"require": ["exp", "jti", "aud", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token_expired", "the token has expired") from None
        except jwt.InvalidAudienceError:
            raise AuthError(
                "wrong_audience", f"the token's audience (aud) is not this service ({self.audiences[0]})"
            ) from None
        except jwt.InvalidSignatureError:
            raise AuthError("bad_signature", "the token's signature does not verify") from None
        except jwt.MissingRequiredClaimError as error:
            raise AuthError("invalid_token", f"the token has no {error.claim} claim") from None
        except jwt.ImmatureSignatureError:
            raise AuthError(
                "invalid_token", "the token is not valid yet (iat or nbf in the future)"
            ) from None
        except jwt.PyJWTError as error:
            raise AuthError("invalid_token", f"the token is not valid: {error}") from None
        expires = claims["exp"]
        if not isinstance(expires, int | float) or expires > now + MAX_LIFETIME + LEEWAY:
            raise AuthError("invalid_token", f"the token's exp is more than {MAX_LIFETIME} seconds ahead")
        if not isinstance(claims["jti"], str) or not claims["jti"]:
            raise AuthError("invalid_token", "the token's jti must be a non-empty string")
        if isinstance(self.replays, SharedReplayCache):  # a file, maybe locked by another worker
            await to_thread.run_sync(
                self.replays.check_and_add, client.issuer, claims["jti"], float(expires), now
            )
        else:
            self.replays.check_and_add(client.issuer, claims["jti"], float(expires), now)
        return claims

    async def _key(self, client: TrustedClient, kid: str) -> jwt.PyJWK:
        if client.jwks_url and (not client.keys or self.clock() - client.fetched > JWKS_TTL):
            await self._refresh(client)
        found = self._pick(client, kid)
        if found is None and client.jwks_url:
            await self._refresh(client)  # the client may have rotated its keys
            found = self._pick(client, kid)
        if found is None:
            raise AuthError("bad_signature", f"no key {kid[:100]!r} among the issuer's keys")
        return found

    @staticmethod
    def _pick(client: TrustedClient, kid: str) -> jwt.PyJWK | None:
        if kid in client.keys:
            return client.keys[kid]
        if not kid and len(client.keys) == 1:
            return next(iter(client.keys.values()))
        return None

    async def _refresh(self, client: TrustedClient) -> None:
        """Fetch the client's JWKS, at most once per REFRESH_INTERVAL (also when it fails, so
        that an outage or a stream of unknown kids does not hammer the client's server)."""
        client.lock = client.lock or asyncio.Lock()
        async with client.lock:
            if self.clock() - client.tried < REFRESH_INTERVAL:  # tried recently, maybe while we waited
                if not client.keys:
                    raise self._unavailable(client, "the last try failed")
                return
            client.tried = self.clock()
            try:
                async with httpx.AsyncClient(transport=self.transport, timeout=FETCH_TIMEOUT) as http:
                    answer = await http.get(client.jwks_url or "")
                answer.raise_for_status()
                keys = _keys(answer.json())
            except (httpx.HTTPError, ValueError) as error:
                if client.keys:
                    return  # keep the keys we have; a rotated kid stays unknown until the next try
                raise self._unavailable(client, type(error).__name__) from None
            client.keys, client.fetched = keys, self.clock()

    @staticmethod
    def _unavailable(client: TrustedClient, why: str) -> AuthError:
        return AuthError(
            "jwks_unavailable",
            f"the keys of issuer {client.issuer[:200]!r} could not be fetched ({why}); try again later",
            status=503,
        )


def audiences(base_url: str | None, service_id: str) -> list[str]:
    """What ``aud`` may be: the service's base URL, its discovery URL or its service URL."""
    if not base_url:
        return []
    base = base_url.rstrip("/")
    return [base, f"{base}/cds-services", f"{base}/cds-services/{service_id}"]
