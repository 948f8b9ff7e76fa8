"""A small OpenID Provider for the tests, on http.server in a thread, signing with joserfc.

It serves discovery (OpenID Connect Discovery 1.0 §4), a JWKS, the authorization
endpoint (code flow; it signs in ``provider.user`` at once, or shows a one-button page
when ``interactive``), the token endpoint (client secret by Basic or POST, PKCE S256
per RFC 7636 §4.6, codes used once) and UserInfo. Knobs let a test make it misbehave:
``id_token_claims`` overrides claims of the next ID tokens (a wrong ``iss``, ``aud``,
``nonce``, an ``exp`` in the past), ``userinfo_claims`` the UserInfo answer,
``discovery_issuer`` the issuer the discovery document names, ``sign_with_stranger``
signs with a key the JWKS does not publish.

Only the loopback interface is used; the server stops when the fixture ends.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import RSAKey

CLIENT_ID = "scimgate-console"
CLIENT_SECRET = "a-client-secret-for-the-tests"


@dataclass
class IdpUser:
    sub: str
    claims: dict[str, Any] = field(default_factory=dict)


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    user: IdpUser
    auth_time: int
    used: bool = False


class Provider:
    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "test-key-1", "use": "sig"})
        self.stranger = RSAKey.generate_key(2048, parameters={"kid": "test-key-1"})
        self.user = IdpUser(sub="idp-user-1", claims={})
        self.interactive = False
        self.id_token_claims: dict[str, Any] = {}
        self.userinfo_claims: dict[str, Any] = {}
        self.discovery_issuer: str | None = None
        self.sign_with_stranger = False
        # Every authorization request's parameters, and the token requests' forms.
        self.authorization_requests: list[dict[str, str]] = []
        self.token_requests: list[dict[str, str]] = []
        self.token_answers: list[tuple[int, dict]] = []
        self.grants: dict[str, Grant] = {}
        self.tokens: dict[str, IdpUser] = {}
        self._server: ThreadingHTTPServer | None = None

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> Provider:
        provider = self

        class Handler(_Handler):
            pass

        Handler.provider = provider
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def issuer(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def settings(self, **extra) -> dict[str, Any]:
        """Django settings pointing scimgate at this provider."""
        return {
            "SCIMGATE_OIDC_ISSUER": self.issuer,
            "SCIMGATE_OIDC_CLIENT_ID": CLIENT_ID,
            "SCIMGATE_OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "SCIMGATE_OIDC_ALLOW_HTTP": True,
            "SCIMGATE_OIDC_NAME": "Test IdP",
            **extra,
        }

    # --- protocol ----------------------------------------------------------------------

    def discovery(self) -> dict:
        return {
            "issuer": self.discovery_issuer or self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
        }

    def authorize(self, params: dict[str, str]) -> str:
        """Sign ``self.user`` in for the request; the redirect back to the client."""
        self.authorization_requests.append(params)
        if params.get("client_id") != CLIENT_ID or params.get("response_type") != "code":
            return _with_query(
                params["redirect_uri"], error="unauthorized_client", state=params.get("state", "")
            )
        code = secrets.token_urlsafe(24)
        self.grants[code] = Grant(
            client_id=params["client_id"],
            redirect_uri=params["redirect_uri"],
            nonce=params.get("nonce"),
            code_challenge=params.get("code_challenge"),
            code_challenge_method=params.get("code_challenge_method"),
            user=IdpUser(self.user.sub, dict(self.user.claims)),
            auth_time=int(time.time()),
        )
        return _with_query(params["redirect_uri"], code=code, state=params.get("state", ""))

    def token(self, form: dict[str, str], authorization: str | None) -> tuple[int, dict]:
        self.token_requests.append(form)
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.startswith("Basic "):
            client_id, _, secret = base64.b64decode(authorization[6:]).decode().partition(":")
        if client_id != CLIENT_ID or secret != CLIENT_SECRET:
            return 401, {"error": "invalid_client"}
        grant = self.grants.get(form.get("code", ""))
        if (
            form.get("grant_type") != "authorization_code"
            or grant is None
            or grant.used
            or grant.client_id != client_id
            or grant.redirect_uri != form.get("redirect_uri")
        ):
            return 400, {"error": "invalid_grant"}
        grant.used = True
        if grant.code_challenge is not None:
            verifier = form.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            if (
                grant.code_challenge_method != "S256"
                or digest.rstrip(b"=").decode() != grant.code_challenge
            ):
                return 400, {
                    "error": "invalid_grant",
                    "error_description": "PKCE verification failed",
                }
        access = secrets.token_urlsafe(24)
        self.tokens[access] = grant.user
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": grant.user.sub,
            "aud": client_id,
            "iat": now,
            "exp": now + 300,
            "auth_time": grant.auth_time,
            **({"nonce": grant.nonce} if grant.nonce is not None else {}),
            **grant.user.claims,
            **self.id_token_claims,
        }
        claims = {k: v for k, v in claims.items() if v is not None}
        key = self.stranger if self.sign_with_stranger else self.key
        id_token = jwt.encode({"alg": "RS256", "kid": "test-key-1"}, claims, key)
        return 200, {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": id_token,
        }

    def userinfo(self, authorization: str | None) -> tuple[int, dict]:
        token = (authorization or "").removeprefix("Bearer ")
        user = self.tokens.get(token)
        if user is None:
            return 401, {"error": "invalid_token"}
        return 200, {"sub": user.sub, **user.claims, **self.userinfo_claims}


def _with_query(url: str, **params: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"


class _Handler(BaseHTTPRequestHandler):
    provider: Provider

    def log_message(self, format, *args) -> None:  # quiet
        pass

    def _json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode()
        return {k: v[0] for k, v in parse_qs(raw).items()}

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(url.query).items()}
        provider = self.provider
        if url.path == "/.well-known/openid-configuration":
            self._json(200, provider.discovery())
        elif url.path == "/jwks":
            self._json(200, {"keys": [provider.key.as_dict(private=False)]})
        elif url.path == "/authorize":
            if provider.interactive:
                self._sign_in_page(params)
            else:
                self._redirect(provider.authorize(params))
        elif url.path == "/userinfo":
            self._json(*provider.userinfo(self.headers.get("Authorization")))
        else:
            self._json(404, {"error": "not_found"})

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        form = self._form()
        if url.path == "/token":
            answer = self.provider.token(form, self.headers.get("Authorization"))
            self.provider.token_answers.append(answer)
            self._json(*answer)
        elif url.path == "/authorize":
            self._redirect(self.provider.authorize(form))
        else:
            self._json(404, {"error": "not_found"})

    def _sign_in_page(self, params: dict[str, str]) -> None:
        fields = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in params.items()
        )
        name = html.escape(
            str(self.provider.user.claims.get("preferred_username", self.provider.user.sub))
        )
        page = (
            "<!doctype html><html><head><title>Test IdP</title></head><body>"
            "<h1>Test identity provider</h1>"
            f"<p>Sign in to scimgate as <strong>{name}</strong>?</p>"
            f'<form method="post" action="/authorize">{fields}'
            '<button type="submit">Continue</button></form></body></html>'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)
