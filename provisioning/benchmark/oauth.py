"""OAuth 2.0 figures for ``make bench``: the server time of a SCIM read authenticated by
an access token against the same read with a static token, and the token endpoint's
throughput (client_secret_basic, one process, one request at a time).

Both go through Django's WSGI handler in this process, as ``measure`` does. The two
kinds of token are sampled alternately, so that a slow moment of a shared machine
falls on both sides.
"""

from __future__ import annotations

import base64
import json
import statistics
import time
from urllib.parse import urlencode

from django.core.handlers.wsgi import WSGIHandler
from django.test import RequestFactory, override_settings

from provisioning.access.models import ScimClient
from provisioning.access.oauth_credentials import client_secret_issue
from provisioning.directory.models import User

from .measure import InProcess, percentile

FORM = "application/x-www-form-urlencoded"


def _summary(samples: list[float]) -> dict:
    return {
        "n": len(samples),
        "p50_ms": round(percentile(samples, 50), 3),
        "p95_ms": round(percentile(samples, 95), 3),
        "mean_ms": round(statistics.fmean(samples), 3) if samples else 0.0,
    }


class TokenEndpoint:
    """POST /oauth/token through the WSGI handler with HTTP Basic client credentials."""

    def __init__(self, client: ScimClient, secret: str):
        self.handler = WSGIHandler()
        basic = base64.b64encode(f"{client.pk}:{secret}".encode()).decode()
        self.factory = RequestFactory(HTTP_AUTHORIZATION=f"Basic {basic}", SERVER_NAME="127.0.0.1")

    def token(self) -> str:
        environ = self.factory.post(
            "/oauth/token", urlencode({"grant_type": "client_credentials"}), content_type=FORM
        ).environ
        status: list[str] = []
        body = self.handler(environ, lambda line, headers, exc_info=None: status.append(line))
        try:
            content = b"".join(body)
        finally:
            body.close()
        if not status[0].startswith("200"):
            raise RuntimeError(f"token endpoint answered {status[0]}: {content[:200]!r}")
        return json.loads(content)["access_token"]


def oauth_figures(client: ScimClient, static_token: str, *, repeat: int, tokens: int = 300) -> dict:
    """Read with an access token vs a static token (alternating), and token throughput."""
    _secret, raw = client_secret_issue(client=client)
    # The bench measures the endpoint, not its rate limit.
    with override_settings(OAUTH_TOKEN_RATE_LIMIT_CLIENT="", OAUTH_TOKEN_RATE_LIMIT_ADDRESS=""):
        endpoint = TokenEndpoint(client, raw)
        access_token = endpoint.token()
        for _ in range(5):
            endpoint.token()
        issue: list[float] = []
        started = time.perf_counter()
        for _ in range(tokens):
            begun = time.perf_counter()
            endpoint.token()
            issue.append((time.perf_counter() - begun) * 1000)
        elapsed = time.perf_counter() - started
    static, oauth = InProcess(static_token), InProcess(access_token)
    names = list(User.objects.order_by("id").values_list("user_name", flat=True)[:50]) or ["nobody"]
    sides: dict[str, list[float]] = {"static": [], "oauth": []}
    for i in range(repeat * 4 + 4):
        name = names[i % len(names)]
        for side, api in (("static", static), ("oauth", oauth)) if i % 2 else (("oauth", oauth), ("static", static)):
            begun = time.perf_counter()
            api.request("GET", "/Users", filter=f'userName eq "{name}"')
            if i >= 4:  # warm-up rounds
                sides[side].append((time.perf_counter() - begun) * 1000)
    static_summary, oauth_summary = _summary(sides["static"]), _summary(sides["oauth"])
    return {
        "read_static_token": static_summary,
        "read_access_token": oauth_summary,
        "read_overhead_p50_pct": round(
            (oauth_summary["p50_ms"] / max(static_summary["p50_ms"], 0.001) - 1) * 100, 1
        ),
        "read_overhead_mean_pct": round(
            (oauth_summary["mean_ms"] / max(static_summary["mean_ms"], 0.001) - 1) * 100, 1
        ),
        "token_endpoint": {**_summary(issue), "tokens_per_s": round(tokens / elapsed, 1)},
    }
