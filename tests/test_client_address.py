"""One notion of the client's address behind trusted proxies (SCIMGATE_TRUSTED_PROXIES),
used by the request log, token network restrictions, the SCIM rate limit for requests
without credentials and django-axes' login lockout.

The proxy of these tests is 10.0.0.2. Through it (trusted), a request's client is the
nearest X-Forwarded-For hop that is not a trusted proxy; from anywhere else, the peer
address, whatever X-Forwarded-For says.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client, RequestFactory
from rest_framework.request import Request

from provisioning.access.client_address import client_address
from provisioning.access.clients import scim_token_issue
from provisioning.audit.models import RequestLog
from tests.factories import OperatorFactory, ScimClientFactory
from tests.scim.conftest import ScimApi

PROXY = "10.0.0.2"
ALICE = "198.51.100.7"
BOB = "198.51.100.8"


@pytest.fixture
def behind_proxy(settings):
    settings.SCIMGATE_TRUSTED_PROXIES = ["10.0.0.0/24"]


def through_proxy(client_ip: str, spoofed: str | None = None) -> dict:
    """WSGI headers of a request our proxy forwarded for ``client_ip``; ``spoofed`` is what the
    client itself put in X-Forwarded-For (the proxy appends the address it saw)."""
    hops = f"{spoofed}, {client_ip}" if spoofed else client_ip
    return {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": hops}


def address_of(**meta) -> str | None:
    return client_address(RequestFactory().get("/", **meta))


# --- The function -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "meta,expected",
    [
        # Through the trusted proxy: the hop it appended, not what the client wrote.
        (through_proxy(ALICE), ALICE),
        (through_proxy(ALICE, spoofed="203.0.113.66"), ALICE),
        # Two trusted proxies in a row: the first hop that is not one of ours.
        ({"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": f"6.6.6.6, {ALICE}, 10.0.0.9"}, ALICE),
        # The forms proxies write: ports, brackets, IPv4-mapped IPv6.
        ({"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": f"{ALICE}:4711"}, ALICE),
        ({"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": "[2001:db8::7]:4711"}, "2001:db8::7"),
        ({"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": f"::ffff:{ALICE}"}, ALICE),
        # Every hop is ours: the farthest one.
        ({"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": "10.0.0.5, 10.0.0.9"}, "10.0.0.5"),
        # No header: the proxy itself.
        ({"REMOTE_ADDR": PROXY}, PROXY),
        # Our proxy wrote something that is not an address: unknown, never the proxy's.
        ({"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": "unknown"}, None),
        # Not from a trusted proxy: X-Forwarded-For proves nothing.
        ({"REMOTE_ADDR": "192.0.2.50", "HTTP_X_FORWARDED_FOR": ALICE}, "192.0.2.50"),
        ({"REMOTE_ADDR": f"::ffff:{BOB}"}, BOB),
        ({"REMOTE_ADDR": ""}, None),
    ],
)
def test_client_address(behind_proxy, meta, expected):
    assert address_of(**meta) == expected


def test_without_trusted_proxies_the_peer_is_the_client(settings):
    settings.SCIMGATE_TRUSTED_PROXIES = []
    assert address_of(**through_proxy(ALICE)) == PROXY


def test_computed_once_per_request_and_shared_with_drf(behind_proxy):
    request = RequestFactory().get("/", **through_proxy(ALICE))
    assert client_address(Request(request)) == ALICE
    # Later readers (the request log, axes) get the same answer without parsing again.
    request.META["HTTP_X_FORWARDED_FOR"] = BOB
    assert client_address(request) == ALICE


def test_axes_asks_for_the_same_address(behind_proxy):
    from axes.helpers import get_client_ip_address

    assert settings.AXES_CLIENT_IP_CALLABLE == "provisioning.access.client_address.client_address"
    assert get_client_ip_address(RequestFactory().post("/login/", **through_proxy(ALICE))) == ALICE


# --- Its users ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_token_network_restriction_checks_the_client_behind_the_proxy(behind_proxy):
    token, raw = scim_token_issue(
        client=ScimClientFactory(name="restricted"), allowed_networks=["198.51.100.0/28"]
    )
    api = ScimApi(raw)
    # Through the trusted proxy: the client's address decides, not the proxy's.
    assert api.get("/Users", **through_proxy(ALICE)).status_code == 200
    token.refresh_from_db()
    assert token.last_used_address == ALICE
    refused = api.get("/Users", **through_proxy("203.0.113.5", spoofed=ALICE))
    assert api.assert_error(refused, 401)["detail"] == (
        "The bearer token may not be used from this network address"
    )
    # Not through the proxy: a forged X-Forwarded-For does not get a client in.
    api.assert_error(api.get("/Users", REMOTE_ADDR="203.0.113.5", HTTP_X_FORWARDED_FOR=ALICE), 401)


@pytest.mark.django_db
def test_request_log_records_the_client_behind_the_proxy(behind_proxy):
    api = ScimApi(ScimClientFactory().raw_token)
    api.get("/Users", **through_proxy(ALICE, spoofed="203.0.113.66"))
    api.get("/Users", REMOTE_ADDR="192.0.2.50", HTTP_X_FORWARDED_FOR=ALICE)
    assert list(RequestLog.objects.order_by("id").values_list("remote_addr", flat=True)) == [
        ALICE,
        "192.0.2.50",
    ]


@pytest.mark.django_db
def test_requests_without_credentials_are_rate_limited_per_client_behind_the_proxy(
    behind_proxy, settings
):
    settings.SCIM_UNAUTHENTICATED_RATE_LIMIT = "2/min"
    anonymous = ScimApi(None)
    for _ in range(2):
        anonymous.assert_error(anonymous.get("/Users", **through_proxy(ALICE)), 401)
    limited = anonymous.get("/Users", **through_proxy(ALICE))
    anonymous.assert_error(limited, 429)
    assert int(limited["Retry-After"]) > 0
    # Another client behind the same proxy has its own count.
    anonymous.assert_error(anonymous.get("/Users", **through_proxy(BOB)), 401)
    # A client cannot escape its count by writing its own X-Forwarded-For.
    anonymous.assert_error(anonymous.get("/Users", **through_proxy(ALICE, spoofed=BOB)), 429)


PASSWORD = "a long and unusual passphrase"


def _login(address: str, password: str):
    return Client(**through_proxy(address)).post(
        "/login/", {"username": "operator", "password": password}
    )


@pytest.mark.django_db
def test_login_lockout_counts_each_client_behind_the_proxy(behind_proxy):
    OperatorFactory(role="viewer", username="operator", password=PASSWORD)
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _login(ALICE, "wrong").status_code == 200
    assert _login(ALICE, "wrong").status_code == 429
    assert _login(ALICE, PASSWORD).status_code == 429  # locked out, right password or not
    # The same operator from another client behind the same proxy still signs in.
    assert _login(BOB, PASSWORD).status_code == 302


@pytest.mark.django_db
def test_login_lockout_is_not_escaped_by_a_forged_forwarded_for(settings):
    settings.SCIMGATE_TRUSTED_PROXIES = ["10.0.0.0/24"]
    OperatorFactory(role="viewer", username="operator", password=PASSWORD)

    def direct(forged: str, password: str):
        # Straight from 192.0.2.50, not through our proxy, with a new X-Forwarded-For each time.
        return Client(REMOTE_ADDR="192.0.2.50", HTTP_X_FORWARDED_FOR=forged).post(
            "/login/", {"username": "operator", "password": password}
        )

    for n in range(settings.AXES_FAILURE_LIMIT):
        direct(f"203.0.113.{n}", "wrong")
    assert direct("203.0.113.99", PASSWORD).status_code == 429
