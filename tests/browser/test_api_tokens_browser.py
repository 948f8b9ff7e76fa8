"""The API tokens page in a real browser: create a token, copy it (once), use it against
the management API, revoke it; and the API docs page under the console's CSP.
Screenshots land in tests/screenshots/."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import pytest

from .test_access_and_logs import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def api(live_server, token: str, path: str):
    request = urllib.request.Request(
        f"{live_server.url}/api/v1{path}", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - the live test server
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def test_create_copy_once_use_and_revoke_an_api_token(live_server, page, screenshot):
    login(page, live_server, "approver")
    page.get_by_role("link", name="API tokens").click()
    page.wait_for_url(f"{live_server.url}/account/api-tokens/")
    page.get_by_label("Name").fill("nightly report")
    page.get_by_label("Expires").select_option(label="90 days")
    screenshot("api-tokens-new")
    page.get_by_role("button", name="Create token").click()
    page.wait_for_selector("#token-value")
    token = page.locator("#token-value").input_value()
    assert re.fullmatch(r"scgop_[A-Za-z0-9]{8}_[A-Za-z0-9_-]{43,}", token)
    page.get_by_role("button", name="Copy token").click()
    page.get_by_text("Token copied to the clipboard.").wait_for()
    screenshot("api-token-created")

    status, me = api(live_server, token, "/me")
    assert status == 200 and me["role"] == "approver" and me["token"]["name"] == "nightly report"

    # Shown once: the list names the token by its prefix, never in full.
    page.get_by_role("link", name="Done: back to API tokens").click()
    page.wait_for_url(f"{live_server.url}/account/api-tokens/")
    assert token not in page.content()
    assert page.get_by_text(f"scgop_{token.split('_')[1]}…").is_visible()
    page.get_by_role("button", name="Revoke nightly report").click()
    page.get_by_text("revoked; requests using it now get 401").wait_for()
    screenshot("api-tokens-revoked")

    status, body = api(live_server, token, "/me")
    assert status == 401 and body["error"] == "invalid_token"


def test_the_api_docs_page_loads_under_the_csp(live_server, page, screenshot):
    login(page, live_server, "viewer")
    page.goto(f"{live_server.url}/api/docs/")
    page.get_by_text("/api/v1/pending-operations").first.wait_for()
    screenshot("api-docs")
