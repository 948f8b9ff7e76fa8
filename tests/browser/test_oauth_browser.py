"""OAuth credentials created in the console, used against the live server: a client
secret shown once, a token from the token endpoint, users listed with it."""

from __future__ import annotations

import base64
import json
import re
import urllib.request
from urllib.parse import urlencode

import pytest

from provisioning.access.models import ClientSecret

from .test_access_and_logs import create_client_in_browser, login, scim

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def fetch_token(token_endpoint: str, client_id: str, secret: str) -> dict:
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    request = urllib.request.Request(
        token_endpoint,
        data=urlencode({"grant_type": "client_credentials"}).encode(),
        headers={
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - the live test server
        assert response.headers["Cache-Control"] == "no-store"
        return json.loads(response.read())


def test_oauth_secret_from_the_console_obtains_a_token_that_lists_users(
    live_server, page, screenshot
):
    login(page, live_server, "administrator")
    create_client_in_browser(page, live_server, "Entra production")
    page.get_by_role("button", name="Create client and token").click()
    page.wait_for_selector("#token-value")
    page.get_by_role("link", name=re.compile("Done")).click()
    page.wait_for_url(re.compile(r"/clients/[0-9a-f-]{36}/$"))

    # The OAuth panel: what the IdP needs, then a new secret.
    panel = page.locator("section[aria-labelledby='oauth-heading']")
    panel.scroll_into_view_if_needed()
    token_endpoint = page.locator("#oauth-token-endpoint").input_value()
    client_id = page.locator("#oauth-client-id").input_value()
    assert token_endpoint == f"{live_server.url}/oauth/token"
    assert page.locator("#oauth-tenant-url").input_value() == f"{live_server.url}/scim/v2"
    screenshot("oauth-panel")
    page.get_by_label("Valid for").select_option(label="2 years")
    page.get_by_role("button", name="New client secret").click()
    page.wait_for_selector("#secret-value")
    secret = page.locator("#secret-value").input_value()
    assert re.fullmatch(r"scgcs_[A-Za-z0-9]{8}_[A-Za-z0-9_-]{43}", secret)
    assert page.locator("#client-id").input_value() == client_id
    page.get_by_role("button", name="Copy secret").click()
    page.get_by_text("Client secret copied to the clipboard.").wait_for()
    screenshot("oauth-secret")

    # The token endpoint answers with an access token that lists users.
    answer = fetch_token(token_endpoint, client_id, secret)
    assert answer["token_type"] == "Bearer" and answer["expires_in"] == 3600
    status, body = scim(live_server, answer["access_token"], "GET", "/Users")
    assert status == 200 and body["totalResults"] == 0

    # Back on the client page: the secret is listed by prefix, never shown again.
    page.get_by_role("link", name=re.compile("Done")).click()
    page.wait_for_url(re.compile(r"/clients/[0-9a-f-]{36}/"))
    content = page.content()
    assert secret not in content
    assert ClientSecret.objects.get().prefix in content
    page.locator("#secrets-heading").scroll_into_view_if_needed()
    screenshot("oauth-secrets-listed")
