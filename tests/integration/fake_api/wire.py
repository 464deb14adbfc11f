"""A thin real HTTP client for the fake analytiks API, and helpers its tests share."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import orjson
import urllib3

from local.fake_analytiks import (
    FakeAnalytiks,
)

AUDIENCE = "https://gql.analytiks.ai"
DAY = {"startDate": "2023-06-08T00:00:00.000Z", "endDate": "2023-06-08T23:00:00.000Z"}
LOC = 123400001
Make = Callable[..., FakeAnalytiks]
BODY = {**DAY, "locations": [LOC]}


class Client:
    """A thin real HTTP client: no retries, so every status and fault is visible."""

    def __init__(
        self,
        api: FakeAnalytiks,
        client_id: str = "demo-client",
        secret: str = "demo-secret",
    ) -> None:
        self.api = api
        self.client_id, self.secret = client_id, secret
        self.http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=2, read=5))
        self.access_token: str | None = None

    def token_request(self, body: Any, path: str = "/oauth/token") -> urllib3.BaseHTTPResponse:
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        return self.http.request(
            "POST", self.api.url + path, body=data, headers={"Content-Type": "application/json"}
        )

    def credentials(self) -> dict[str, str]:
        return {
            "client_id": self.client_id,
            "client_secret": self.secret,
            "audience": AUDIENCE,
            "grant_type": "client_credentials",
        }

    def token(self) -> str:
        if self.access_token is None:
            r = self.token_request(self.credentials())
            assert r.status == 200, r.data
            self.access_token = orjson.loads(r.data)["access_token"]
        return self.access_token

    def post(
        self,
        variant: str,
        body: Any,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> urllib3.BaseHTTPResponse:
        hdrs = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token or self.token()}",
        }
        hdrs.update(headers or {})
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        kw: dict[str, Any] = {}
        if timeout is not None:
            kw["timeout"] = urllib3.Timeout(connect=2, read=timeout)
        return self.http.request(
            "POST", f"{self.api.url}/wifi/json/{variant}", body=data, headers=hdrs, **kw
        )

    def json(self, variant: str, body: Any, status: int = 200, **kw: Any) -> Any:
        r = self.post(variant, body, **kw)
        assert r.status == status, (r.status, r.data[:300])
        return orjson.loads(r.data)

    def walk(self, brand: int, dates: dict[str, str]) -> Iterator[dict[str, Any]]:
        """Every page of a v3 cursor walk."""
        cursor = None
        while True:
            page = self.json("v3", {**dates, "brandId": brand, "cursor": cursor})
            yield page
            cursor = page["cursor"]
            if cursor is None:
                return


def as_rows(records: list[dict[str, Any]]) -> list[tuple[int, str, dict[str, int]]]:
    """v1-v3 records -> (location id, 'YYYY-MM-DD HH:MM:SS', {metric: value}) rows."""
    rows: dict[tuple[int, str], dict[str, int]] = {}
    for record in records:
        for metric, series in record.items():
            if metric in ("locationId", "referenceNumber", "zoneId"):
                continue
            for key, value in series.items():
                ts = key.removesuffix("Z").replace("T", " ")
                rows.setdefault((record["locationId"], ts), {})[metric] = value
    return [(loc, ts, values) for (loc, ts), values in sorted(rows.items())]


def utc_of(key: str) -> datetime:
    assert key.endswith("Z"), key
    return datetime.strptime(key, "%Y-%m-%dT%H:%M:%SZ")
