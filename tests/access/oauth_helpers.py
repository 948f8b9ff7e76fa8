"""Helpers for the OAuth tests: a token-endpoint caller, signed assertions, and a local
HTTP server publishing JWKS and OpenID discovery documents."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlencode

from django.test import Client
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

TOKEN_URL = "/oauth/token"
ENDPOINT = "http://testserver/oauth/token"
ISSUER = "http://testserver"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def basic(client_id, secret) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def token_request(params=None, *, auth: str | None = None, raw: str | None = None, **extra):
    """POST to the token endpoint as a form (``raw``: this exact body)."""
    headers = {"HTTP_AUTHORIZATION": auth} if auth else {}
    headers.update(extra)
    body = raw if raw is not None else urlencode(params or {}, doseq=True)
    content_type = headers.pop("content_type", "application/x-www-form-urlencoded")
    return Client().post(TOKEN_URL, body, content_type=content_type, **headers)


def obtain_token(client_id, secret) -> str:
    response = token_request({"grant_type": "client_credentials"}, auth=basic(client_id, secret))
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


def rsa_key(kid: str | None = "k1") -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid} if kid else None)


def ec_key(kid: str = "e1") -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": kid})


def jwks(*keys) -> dict:
    return {"keys": [key.as_dict(private=False) for key in keys]}


def assertion(key, *, alg: str = "RS256", header: dict | None = None, **claims) -> str:
    """A signed JWT; claims given as None are left out."""
    now = int(time.time())
    body = {"exp": now + 300, "iat": now, "jti": uuid.uuid4().hex, "aud": ENDPOINT}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    head = {"alg": alg, **({"kid": key.kid} if key.kid else {}), **(header or {})}
    return jwt.encode(head, body, key, algorithms=[alg])


def client_assertion(client, key, *, alg: str = "RS256", **claims) -> str:
    return assertion(key, alg=alg, iss=str(client.pk), sub=str(client.pk), **claims)


def assertion_params(signed: str, client_id=None) -> dict:
    params = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": signed,
    }
    if client_id is not None:
        params["client_id"] = str(client_id)
    return params


class KeyServer:
    """A local HTTP server: ``documents`` maps a path to the JSON it answers; ``hits``
    counts requests per path. Started and stopped by a fixture."""

    def __init__(self):
        self.documents: dict[str, dict] = {}
        self.hits: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                document = server.documents.get(self.path)
                if document is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                body = json.dumps(document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def publish_issuer(self, path: str, keys: dict) -> str:
        """An OpenID issuer at ``url + path`` with its discovery document and JWKS."""
        issuer = self.url + path
        self.documents[f"{path}/.well-known/openid-configuration"] = {
            "issuer": issuer,
            "jwks_uri": f"{self.url}{path}/keys",
        }
        self.documents[f"{path}/keys"] = keys
        return issuer

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
