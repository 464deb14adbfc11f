"""The token endpoint and the tokens it issued (expiry, revocation, use counts)."""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import orjson

from local.fake_analytiks.protocol import AUDIENCE, Reply

Clients = Mapping[str, tuple[str, frozenset[int] | None]]  # id -> (secret, allowed brands)


@dataclass
class Token:
    client_id: str
    expires: float
    revoked: bool = False
    successes: int = 0


class TokenBook:
    """Every token issued, by its text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, Token] = {}

    def issue(self, client_id: str, ttl: int) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = Token(client_id, time.monotonic() + ttl)
        return token

    def issued(self) -> list[str]:
        with self._lock:
            return list(self._tokens)

    def revoke_all(self) -> None:
        with self._lock:
            for token in self._tokens.values():
                token.revoked = True

    def authenticate(self, header: str | None) -> Token:
        """The valid token a data request's Authorization header names, or raises Reply."""

        def deny(message: str) -> Reply:
            return Reply(
                401, {"message": message}, [("WWW-Authenticate", 'Bearer error="invalid_token"')]
            )

        if not header:
            raise deny("Unauthorized: missing Authorization header")
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise deny("Unauthorized: Authorization must be 'Bearer <token>'")
        with self._lock:
            token = self._tokens.get(value.strip())
            if token is None:
                raise deny("Unauthorized: unknown token")
            if token.revoked:
                raise deny("Unauthorized: token revoked")
            if time.monotonic() >= token.expires:
                raise deny("Unauthorized: token expired")
        return token

    def succeeded(self, token: Token, revoke_after: int | None) -> None:
        """Count a served data call; the ``revoke_after``-th one revokes the token."""
        with self._lock:
            token.successes += 1
            if revoke_after is not None and token.successes >= revoke_after:
                token.revoked = True


def token_answer(  # noqa: PLR0911
    content: bytes, clients: Clients, issue: Callable[[str], str], ttl: int
) -> tuple[int, bytes]:
    """Status and body of a token request (client credentials grant)."""

    def error(status: int, code: str, message: str) -> tuple[int, bytes]:
        return status, orjson.dumps({"error": code, "message": message})

    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return error(400, "invalid_request", "the request body must be JSON")
    if not isinstance(body, dict):
        return error(400, "invalid_request", "the request body must be a JSON object")
    for name in ("client_id", "client_secret", "audience", "grant_type"):
        if not isinstance(body.get(name), str) or not body[name]:
            return error(400, "invalid_request", f"missing or invalid field: {name}")
    if body["grant_type"] != "client_credentials":
        return error(400, "unsupported_grant_type", "grant_type must be client_credentials")
    if body["audience"] != AUDIENCE:
        return error(400, "invalid_request", f"audience must be {AUDIENCE}")
    client = clients.get(body["client_id"])
    if client is None or not hmac.compare_digest(client[0], body["client_secret"]):
        return error(401, "access_denied", "Unauthorized: wrong client_id or client_secret")
    token = issue(body["client_id"])
    return 200, orjson.dumps({"access_token": token, "expires_in": ttl, "token_type": "Bearer"})
