"""Fetching published keys is guarded against server-side request forgery: no
redirects, public destination addresses only (unless allowed for development), a total
deadline, a size cap, and failing URLs are not fetched again at once."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.exceptions import ValidationError

from provisioning.access import oauth_keys
from provisioning.access.oauth_credentials import client_key_add, federation_add
from provisioning.access.oauth_keys import KeysUnavailable, jwks_from_url
from tests.access.oauth_helpers import (
    assertion_params,
    client_assertion,
    jwks,
    rsa_key,
    token_request,
)

pytestmark = pytest.mark.django_db


class _Server:
    """A local server answering every GET with ``handle(request_handler)``."""

    def __init__(self, handle):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                handle(self)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve(settings):
    settings.SCIMGATE_OAUTH_ALLOW_HTTP = True
    servers = []

    def start(handle):
        servers.append(_Server(handle))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_redirects_are_not_followed(oauth_client, key_server, serve):
    """A JWKS URL answering 302 towards another (internal) URL is a failed fetch: the
    target is never requested and the assertion is refused."""
    client, _ = oauth_client
    key = rsa_key("k1")
    key_server.documents["/internal-metadata"] = jwks(key)

    def redirect(handler):
        handler.send_response(302)
        handler.send_header("Location", key_server.url + "/internal-metadata")
        handler.end_headers()

    redirector = serve(redirect)
    client_key_add(client=client, jwks_uri=f"{redirector.url}/jwks")
    response = token_request(assertion_params(client_assertion(client, key)))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert "/internal-metadata" not in key_server.hits
    with pytest.raises(KeysUnavailable, match="HTTP 302"):
        oauth_keys._fetch_json(f"{redirector.url}/other")


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/jwks",
        "https://10.1.2.3/jwks",
        "https://192.168.0.1/jwks",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/jwks",
        "https://[::ffff:127.0.0.1]/jwks",
        "https://localhost/jwks",
    ],
)
def test_non_public_addresses_are_refused_at_registration(oauth_client, settings, url):
    settings.SCIMGATE_OAUTH_ALLOW_PRIVATE_ADDRESSES = False
    client, _ = oauth_client
    with pytest.raises(ValidationError, match="not a public address") as caught:
        client_key_add(client=client, jwks_uri=url)
    assert "jwks_uri" in caught.value.message_dict
    with pytest.raises(ValidationError, match="not a public address"):
        federation_add(client=client, issuer=url.removesuffix("/jwks"), subject="app-1")


def test_public_addresses_pass_the_address_check(settings):
    settings.SCIMGATE_OAUTH_ALLOW_PRIVATE_ADDRESSES = False
    assert oauth_keys._address_allowed("8.8.8.8")
    assert oauth_keys._address_allowed("2606:4700:4700::1111")
    assert not oauth_keys._address_allowed("100.64.0.1")  # shared address space
    assert not oauth_keys._address_allowed("0.0.0.0")


def test_registered_loopback_url_is_not_fetched_without_the_setting(oauth_client, key_server, settings):
    """A URL registered while private addresses were allowed is not fetched once they
    are not: the check runs on every fetch, not only at registration."""
    client, _ = oauth_client
    key = rsa_key("k1")
    key_server.documents["/jwks"] = jwks(key)
    client_key_add(client=client, jwks_uri=f"{key_server.url}/jwks")
    settings.SCIMGATE_OAUTH_ALLOW_PRIVATE_ADDRESSES = False
    response = token_request(assertion_params(client_assertion(client, key)))
    assert response.status_code == 401
    assert key_server.hits == {}
    with pytest.raises(KeysUnavailable, match="non-public address"):
        oauth_keys._fetch_json(f"{key_server.url}/jwks")


def test_connected_peer_is_checked_too(settings, key_server, monkeypatch):
    """The name may resolve differently when connecting (DNS rebinding): the socket's
    peer is checked as well."""
    key_server.documents["/jwks"] = jwks(rsa_key("k1"))
    settings.SCIMGATE_OAUTH_ALLOW_PRIVATE_ADDRESSES = False
    monkeypatch.setattr(oauth_keys, "check_destination", lambda url: None)
    with pytest.raises(KeysUnavailable, match="non-public address"):
        oauth_keys._fetch_json(f"{key_server.url}/jwks")
    assert key_server.hits == {}


def test_a_fetch_has_a_total_deadline(serve, monkeypatch):
    """A server dribbling its answer a byte at a time (each read within the per-read
    timeout) is cut off at the fetch's deadline."""
    monkeypatch.setattr(oauth_keys, "FETCH_DEADLINE", 1)

    def dribble(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.end_headers()
        try:
            for byte in b'{"keys": []}':
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
                time.sleep(0.3)
        except OSError:
            pass

    server = serve(dribble)
    started = time.monotonic()
    with pytest.raises(KeysUnavailable, match="longer than 1 seconds"):
        oauth_keys._fetch_json(f"{server.url}/jwks")
    assert time.monotonic() - started < 2.5


def test_a_large_answer_is_refused(serve, monkeypatch):
    monkeypatch.setattr(oauth_keys, "MAX_DOCUMENT_BYTES", 1000)
    body = json.dumps({"keys": [], "padding": "x" * 5000}).encode()

    def large(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    server = serve(large)
    with pytest.raises(KeysUnavailable, match="more than 1000 bytes"):
        oauth_keys._fetch_json(f"{server.url}/jwks")


def test_a_failing_url_is_not_fetched_again_for_a_while(oauth_client, key_server):
    client, _ = oauth_client
    key = rsa_key("k1")
    client_key_add(client=client, jwks_uri=f"{key_server.url}/missing")
    for _ in range(5):
        assert token_request(assertion_params(client_assertion(client, key))).status_code == 401
    assert key_server.hits["/missing"] == 1
    # Once the failure is forgotten, the URL is fetched again.
    key_server.documents["/missing"] = jwks(key)
    from django.core.cache import cache

    cache.delete(oauth_keys._cache_key(f"{key_server.url}/missing", ":failed"))
    assert [k.kid for k in jwks_from_url(f"{key_server.url}/missing")] == ["k1"]
