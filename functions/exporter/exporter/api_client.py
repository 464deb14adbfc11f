"""The analytiks export API client: the OAuth token, v3 pages and v1/v2/v4 batches.

Tokens are fetched with the client credentials, checked (RFC 6750), cached per
process until shortly before they expire, and replaced once on a 401. The HTTP
itself (retries, pacing, bounded reads) is `http_transport`; what answers may
look like is `api_answers`.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import urllib3

from exporter import json_codec, redaction
from exporter.api_answers import (
    MAX_PAGE_BYTES,
    MAX_TOKEN_ANSWER_BYTES,
    refused_ids,
    selector_ids,
    v3_page,
)
from exporter.errors import (
    ApiRejected,
    MalformedResponse,
)
from exporter.http_transport import RetryPolicy, Transport, Unauthorized
from exporter.pacing import Pacer
from exporter.ports import CallStats, Credentials
from exporter.variants import V3, selection_variant

_TOKEN_REFRESH_MARGIN_S: Final = 300.0
# RFC 6750 section 2.1: b64token. A token with other characters (CR/LF above all)
# would not survive as a header value: http.client refuses it with an error that
# quotes the header, the token with it.
_BEARER_TOKEN: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


@dataclass(slots=True)
class _Token:
    value: str = field(repr=False)
    expires_at: float


# Tokens outlive an invocation: a warm container reuses them until shortly
# before expiry instead of asking the token endpoint on every run.
_TOKENS: dict[tuple[str, str], _Token] = {}


def forget_tokens() -> None:
    """Forget cached tokens, and the secrets the redaction knows (a cold start; tests)."""
    _TOKENS.clear()
    redaction.forget()


class AnalytiksClient:
    def __init__(
        self,
        api_url: str,
        token_url: str,
        audience: str,
        credentials: Callable[[], Credentials],
        *,
        http: urllib3.PoolManager | None = None,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
        pacer: Pacer | None = None,
    ) -> None:
        self._api_url = api_url
        self._v3_url = f"{api_url}{V3.path}"
        self._token_url = token_url
        self._audience = audience
        self._credentials_source = credentials
        self._creds: Credentials | None = None
        self._clock = clock
        self.stats = CallStats()
        self._transport = Transport(
            self.stats, http=http, policy=policy, sleep=sleep, jitter=jitter, pacer=pacer
        )

    # -- token -------------------------------------------------------------

    def _credentials(self) -> Credentials:
        # Read once per client (one step of a window), not once per page.
        if self._creds is None:
            self._creds = self._credentials_source()
            redaction.remember_client_secret(self._creds.client_secret)
        return self._creds

    def _token(self, remaining_s: Callable[[], float]) -> str:
        creds = self._credentials()
        cache_key = (self._token_url, creds.client_id)
        cached = _TOKENS.get(cache_key)
        if cached and cached.expires_at - _TOKEN_REFRESH_MARGIN_S > self._clock():
            return cached.value
        body = json_codec.dumps(
            {
                "client_id": creds.client_id,
                "client_secret": creds.client_secret,
                "audience": self._audience,
                "grant_type": "client_credentials",
            }
        )
        payload = self._transport.post(
            self._token_url, body, {}, remaining_s, what="token request", token_request=True
        )
        token = payload.get("access_token") if isinstance(payload, dict) else None
        expires_in = payload.get("expires_in", 3600) if isinstance(payload, dict) else None
        if not isinstance(token, str) or not token:
            raise MalformedResponse("token endpoint: no access_token in its answer")
        if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
            raise MalformedResponse("token endpoint: expires_in is not a number")
        if not _BEARER_TOKEN.fullmatch(token):
            # Refused unused and unquoted: it never becomes a header or a message.
            raise MalformedResponse(
                "token endpoint: access_token is not a bearer token (characters outside "
                "RFC 6750's b64token set); refused, not used"
            )
        redaction.remember_token(token)
        self.stats.token_fetches += 1
        _TOKENS[cache_key] = _Token(token, self._clock() + float(expires_in))
        return token

    def _drop_token(self) -> None:
        creds = self._credentials()
        _TOKENS.pop((self._token_url, creds.client_id), None)

    # -- data --------------------------------------------------------------

    def fetch_v3(
        self,
        brand_id: int,
        start: str,
        end: str,
        cursor: str | None,
        remaining_s: Callable[[], float],
    ) -> tuple[list[Any], str | None]:
        """One v3 page: (records, next cursor or None)."""
        request = V3.body(
            start, end, brandId=brand_id, **({} if cursor is None else {"cursor": cursor})
        )
        what = f"v3 page for brand {brand_id}"
        try:
            payload = self._authorized(self._v3_url, json_codec.dumps(request), remaining_s, what)
        except Unauthorized:
            raise ApiRejected(
                f"API: brand {brand_id} is not authorized for these credentials (401)"
            ) from None
        return v3_page(payload)

    def fetch_batch(
        self,
        variant: str,
        selector: dict[str, Any],
        start: str,
        end: str,
        remaining_s: Callable[[], float],
    ) -> tuple[list[Any], tuple[int | str, ...]]:
        """One request of a selection variant (v1, v2, v4): (records, ids the API refused)."""
        api = selection_variant(variant)
        body = json_codec.dumps(api.body(start, end, **selector))
        what = f"{api.name} batch"
        try:
            payload = self._authorized(f"{self._api_url}{api.path}", body, remaining_s, what)
        except Unauthorized as refusal:
            refused = refused_ids(refusal.payload, selector_ids(selector))
            if api.skips_refused:
                # v2 answers 401 when every id of the request is refused: for one
                # batch of a larger selection that is a partial result, not an error.
                return [], refused or selector_ids(selector)
            named = ", ".join(map(str, refused[:20])) + (" ..." if len(refused) > 20 else "")
            raise ApiRejected(
                f"API: {api.name} refused the request (401): not authorized for "
                + (f"{len(refused)} id(s): {named}" if refused else "these ids")
                + "; nothing is committed (skipUnauthorized exports the authorized ones)"
            ) from None
        if api.answer == "records":
            if not isinstance(payload, list):
                raise MalformedResponse(f"{api.name} answer is not a list of records")
            return payload, ()
        if not isinstance(payload, dict) or not isinstance(payload.get("successes"), list):
            raise MalformedResponse(f"{api.name} answer is not an object with a 'successes' list")
        return payload["successes"], refused_ids(payload.get("failures"), selector_ids(selector))

    def _authorized(
        self, url: str, body: bytes, remaining_s: Callable[[], float], what: str
    ) -> Any:
        """POST with a bearer token; an expired or revoked token is replaced once, and a
        second 401 (raised as `Unauthorized`) means the request itself is not allowed.

        A 401 whose body names refused ids (v1/v2/v4) is a refusal at once: the
        token was good, a new one would be refused the same way.
        """
        refreshed = False
        while True:
            token = self._token(remaining_s)
            try:
                return self._transport.post(
                    url, body, {"Authorization": f"Bearer {token}"}, remaining_s, what=what
                )
            except Unauthorized as refusal:
                if refused_ids(refusal.payload):
                    raise
                self._drop_token()
                if refreshed:
                    raise
                refreshed = True


# The client's public surface: its options and the answer limits its callers rely on.
__all__ = [
    "MAX_PAGE_BYTES",
    "MAX_TOKEN_ANSWER_BYTES",
    "AnalytiksClient",
    "RetryPolicy",
    "forget_tokens",
]
