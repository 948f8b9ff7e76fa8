"""``createeventstream``: the exact last line other tools read, and refusals that create
nothing."""

from __future__ import annotations

import io
import re
import uuid

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from provisioning.events import streams
from provisioning.events.models import EventStream
from tests.factories import ScimClientFactory

pytestmark = pytest.mark.django_db

URL = "https://receiver.example.com/events"


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("createeventstream", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def last_line(output: str) -> str:
    return output.rstrip("\n").splitlines()[-1]


def test_set_push_prints_the_stream_id_and_a_dash():
    out, err = run("SIEM", "--push", URL)
    stream_id, secret = last_line(out).split(" ")
    stream = EventStream.objects.get(pk=uuid.UUID(stream_id))
    assert secret == "-"
    assert (stream.name, stream.method, stream.endpoint_url) == ("SIEM", "push", URL)
    assert "Created event stream" in err


def test_webhook_prints_the_stream_id_and_its_signing_secret():
    out, _ = run("HR app", "--push", URL, "--format", "webhook")
    line = last_line(out)
    assert re.fullmatch(r"[0-9a-f-]{36} whsec_[A-Za-z0-9+/]{43}=", line), line
    stream_id, secret = line.split(" ")
    stream = EventStream.objects.get(pk=stream_id)
    assert stream.method == "webhook"
    assert streams.webhook_secret(stream) == secret


def test_poll_prints_the_absolute_poll_url_and_its_token():
    with override_settings(SCIM_BASE_URL="https://scim.example.com/scim/v2"):
        out, _ = run("Pollster", "--poll")
    poll_url, token = last_line(out).split(" ")
    stream = EventStream.objects.get(name="Pollster")
    assert poll_url == f"https://scim.example.com/events/v1/streams/{stream.pk}/poll"
    assert streams.poll_token_matches(stream, token)


def test_poll_base_url_option():
    out, _ = run("Pollster", "--poll", "--base-url", "https://events.example.org/")
    poll_url, _token = last_line(out).split(" ")
    stream = EventStream.objects.get(name="Pollster")
    assert poll_url == f"https://events.example.org/events/v1/streams/{stream.pk}/poll"


def test_filters_payload_authorization_and_client():
    client = ScimClientFactory(name="Okta prod")
    run(
        "Filtered",
        "--push",
        URL,
        "--client",
        "okta PROD",
        "--resource-types",
        "User",
        "--events",
        "create, delete,asyncresp",
        "--payload",
        "full",
        "--authorization",
        "Bearer abc",
    )
    stream = EventStream.objects.get(name="Filtered")
    assert stream.client == client
    assert stream.resource_types == ["User"]
    assert stream.event_kinds == ["create", "delete", "asyncresp"]
    assert stream.payload == "full"
    assert streams.authorization_header(stream) == "Bearer abc"
    # A client may also be named by its id.
    run("By id", "--poll", "--client", str(client.pk))
    assert EventStream.objects.get(name="By id").client == client


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["S", "--push", URL, "--client", "nobody"], "No SCIM client named"),
        (["S", "--push", "http://receiver.example.com/"], "not an https URL"),
        (["S", "--push", "not a url"], "not an https URL"),
        (["S", "--poll", "--format", "webhook"], "--push streams only"),
        (["S", "--poll", "--authorization", "x"], "--push streams only"),
        (["S", "--push", URL, "--base-url", "https://x.example"], "--poll streams only"),
        (["S", "--push", URL, "--format", "webhook", "--authorization", "x"], "Authorization"),
        (["S", "--push", URL, "--events", "create,bogus"], "bogus"),
        (["S", "--push", URL, "--resource-types", "Device"], "Device"),
        (["S", "--push", URL, "--events", "asyncresp"], "bound to a SCIM client"),
    ],
)
def test_errors_create_nothing(args, message, settings):
    settings.SCIMGATE_EVENTS_ALLOW_HTTP = False  # the production rule: https only
    with pytest.raises(CommandError, match=re.escape(message)):
        run(*args)
    assert not EventStream.objects.exists()


def test_a_duplicate_name_is_an_error():
    run("SIEM", "--push", URL)
    with pytest.raises(CommandError, match="already exists"):
        run("siem", "--poll")
    assert EventStream.objects.count() == 1


def test_push_or_poll_is_required():
    with pytest.raises(CommandError):
        run("Nothing")
    with pytest.raises(CommandError):
        run("Both", "--push", URL, "--poll")
    assert not EventStream.objects.exists()
