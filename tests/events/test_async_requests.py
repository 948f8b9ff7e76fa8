"""Asynchronous completion of held writes (RFC 9967 §2.5.1, §3, §4).

A write sent with ``Prefer: respond-async`` that policy holds is answered 202 with
``Set-Txn``; its outcome reaches the event streams bound to the client as a
``misc:asyncresp`` SET whose ``txn`` is that ``Set-Txn``, and the pending operation's
status resource shows the same outcome.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from provisioning.directory.models import User
from provisioning.events.models import AsyncRequest, EventStream
from provisioning.oversight import services
from provisioning.oversight.models import PendingOperation, Quarantine
from provisioning.scim.prefer import preferences, respond_async
from tests.events.asyncsupport import (
    ASYNC,
    ERROR_SCHEMA,
    assert_async_202,
    completion,
    completions,
    deactivate,
    deliveries_of,
)

pytestmark = pytest.mark.django_db


# --- RFC 7240 Prefer ------------------------------------------------------------------


@pytest.mark.parametrize(
    "header, wanted",
    [
        ("respond-async", True),
        ("Respond-Async", True),  # RFC 7240 §2: names are case-insensitive tokens
        ("wait=10, respond-async", True),  # other preferences tolerated (RFC 9967 §2.5.1.1)
        ('return=minimal; foo="a,b", respond-async;x=1', True),  # parameters, quoted commas
        ("respond-async=", True),  # an empty value is no value (RFC 7240 §2)
        ("respond-async=later", False),  # respond-async takes no value
        ("handling=lenient", False),
        ('foo="respond-async"', False),
        ("respond-asyncx", False),
        ("", False),
        (None, False),
    ],
)
def test_prefer_header(header, wanted):
    assert respond_async(header) is wanted


def test_prefer_first_instance_counts_and_values_are_unquoted():
    # RFC 7240 §2: only the first instance of a preference is considered.
    assert preferences('wait=5, WAIT=9, return="minimal"') == {"wait": "5", "return": "minimal"}


# --- The 202 answer (§2.5.1.1, §3) -------------------------------------------------------


def test_held_write_with_the_preference_answers_202_with_set_txn(idp, hold_rule):
    idp.stream()  # completions have somewhere to go
    hold_rule("deactivate_user")
    user = idp.api.create_user("async@x.example", active=True)

    response = deactivate(idp.api, user["id"], HTTP_PREFER="wait=10, respond-async")

    txn = assert_async_202(response)
    pending = PendingOperation.objects.get()
    assert response["Location"].endswith(f"/scim/v2/PendingOperations/{pending.pk}")
    request = AsyncRequest.objects.get()
    assert (request.txn, request.pending_id, request.client) == (txn, pending.pk, idp.client)
    assert (request.method, request.resource_type, str(request.resource_id)) == (
        "PATCH",
        "User",
        user["id"],
    )
    # The status resource (the Location) names the txn while the operation waits.
    status = idp.api.read(response["Location"])
    assert status["status"] == "pending"
    assert status["asyncRequests"] == [{"txn": txn, "method": "PATCH"}]


def test_held_write_without_the_preference_keeps_its_status_document(idp, hold_rule):
    hold_rule("delete_user")
    user = idp.api.create_user("sync@x.example")

    response = idp.api.delete(f"/Users/{user['id']}")

    assert response.status_code == 202
    document = idp.api.json(response)
    assert document["status"] == "pending" and "asyncRequests" not in document
    assert response["Location"] == document["meta"]["location"]
    assert "Set-Txn" not in response and "Preference-Applied" not in response
    assert not AsyncRequest.objects.exists()


def test_write_applied_at_once_answers_normally_without_preference_applied(idp, hold_rule):
    # RFC 9967 §2.5.1.1: the server "either returns a normal SCIM response or ... 202".
    idp.stream()  # completions have somewhere to go
    hold_rule("delete_user")
    user = idp.api.create_user("now@x.example", active=True)

    response = deactivate(idp.api, user["id"], **ASYNC)

    assert idp.api.ok(response)["active"] is False
    assert "Preference-Applied" not in response and "Set-Txn" not in response
    assert not AsyncRequest.objects.exists()
    created = idp.api.post(
        "/Users", {"userName": "new@x.example"}, **ASYNC
    )  # creates are never held
    assert created.status_code == 201 and "Preference-Applied" not in created


def test_a_retry_of_the_held_write_gets_the_same_txn(idp, hold_rule):
    idp.stream()  # completions have somewhere to go
    hold_rule("delete_user")
    user = idp.api.create_user("retry@x.example")

    first = assert_async_202(idp.api.delete(f"/Users/{user['id']}", **ASYNC))
    again = assert_async_202(idp.api.delete(f"/Users/{user['id']}", **ASYNC))

    assert first == again
    assert PendingOperation.objects.count() == 1 and AsyncRequest.objects.count() == 1
    # A retry without the preference gets today's answer for the same operation.
    plain = idp.api.delete(f"/Users/{user['id']}")
    assert plain.status_code == 202 and "Set-Txn" not in plain
    assert idp.api.json(plain)["asyncRequests"][0]["txn"] == first


# --- Completions (§2.5.1.3) -----------------------------------------------------------------


def test_approved_patch_completes_with_200_and_version_on_the_bound_stream_only(
    idp, other_idp, hold_rule, operators, decide
):
    hold_rule("deactivate_user")
    bound = idp.stream()
    unbound = EventStream.objects.create(method="poll", name="everything")  # no client
    elsewhere = other_idp.stream()
    user = idp.api.create_user("approve@x.example", active=True, externalId="ext-9")
    txn = assert_async_202(deactivate(idp.api, user["id"], **ASYNC))
    pending = PendingOperation.objects.get()
    assert completions(bound) == []  # nothing until the operation ends

    decide(services.pending_approve, pending_id=pending.pk, operator=operators["alice"])

    claims = completion(bound, txn)
    assert claims["events"] == {
        "urn:ietf:params:scim:event:misc:asyncresp": {
            "method": "PATCH",
            "version": 'W/"2"',
            "status": "200",
        }
    }
    assert claims["sub_id"] == {
        "format": "scim",
        "uri": f"/Users/{user['id']}",
        "id": user["id"],
        "externalId": "ext-9",
    }
    [event] = completions(bound)
    assert deliveries_of(event) == {bound.pk}  # not to unbound, not to the other client's
    assert completions(unbound) == [] and completions(elsewhere) == []
    assert idp.api.read(f"/Users/{user['id']}")["meta"]["version"] == 'W/"2"'
    # The status resource shows the same outcome and txn.
    status = idp.api.read(f"/PendingOperations/{pending.pk}")
    [shown] = status["asyncRequests"]
    assert shown["txn"] == txn and shown["status"] == "200" and shown["version"] == 'W/"2"'
    assert status["status"] == "applied" and "completed" in shown


def test_approved_delete_completes_with_204_and_no_version(idp, hold_rule, operators, decide):
    hold_rule("delete_user")
    stream = idp.stream()
    user = idp.api.create_user("gone@x.example")
    txn = assert_async_202(idp.api.delete(f"/Users/{user['id']}", **ASYNC))

    decide(
        services.pending_approve,
        pending_id=PendingOperation.objects.get().pk,
        operator=operators["alice"],
    )

    # RFC 9967 Figure 19: a DELETE's completion has method and status only.
    assert completion(stream, txn)["events"]["urn:ietf:params:scim:event:misc:asyncresp"] == {
        "method": "DELETE",
        "status": "204",
    }


def test_rejected_write_completes_with_a_403_scim_error(idp, hold_rule, operators, decide):
    hold_rule("delete_user")
    stream = idp.stream()
    user = idp.api.create_user("keep@x.example")
    txn = assert_async_202(idp.api.delete(f"/Users/{user['id']}", **ASYNC))
    pending = PendingOperation.objects.get()

    decide(
        services.pending_reject,
        pending_id=pending.pk,
        operator=operators["alice"],
        reason="internal note: HR ticket 4411",
    )

    payload = completion(stream, txn)["events"]["urn:ietf:params:scim:event:misc:asyncresp"]
    # §2.5.1.3: a non-2xx completion carries "response", a SCIM Error (RFC 7644 §3.12).
    assert payload["method"] == "DELETE" and payload["status"] == "403"
    assert payload["response"]["schemas"] == [ERROR_SCHEMA]
    assert payload["response"]["status"] == "403"
    assert "rejected" in payload["response"]["detail"]
    assert "HR ticket" not in payload["response"]["detail"]  # operators' notes stay inside
    assert "version" not in payload
    status = idp.api.read(f"/PendingOperations/{pending.pk}")
    assert status["asyncRequests"][0]["response"] == payload["response"]
    assert AsyncRequest.objects.get().status == 403


def test_expired_write_completes_with_403(idp, hold_rule):
    hold_rule("delete_user")
    stream = idp.stream()
    user = idp.api.create_user("late@x.example")
    txn = assert_async_202(idp.api.delete(f"/Users/{user['id']}", **ASYNC))
    PendingOperation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    assert services.pending_expire_stale() == 1
    assert services.pending_expire_stale() == 0  # a second run completes nothing again

    payload = completion(stream, txn)["events"]["urn:ietf:params:scim:event:misc:asyncresp"]
    assert payload["status"] == "403" and "expired" in payload["response"]["detail"]
    assert len(completions(stream)) == 1


def test_conflicting_write_completes_with_412_once(idp, hold_rule, operators, decide):
    hold_rule("deactivate_user")
    stream = idp.stream()
    user = idp.api.create_user("race@x.example", active=True)
    txn = assert_async_202(deactivate(idp.api, user["id"], **ASYNC))
    idp.api.ok(
        idp.api.patch_ops(
            f"/Users/{user['id']}", {"op": "replace", "path": "displayName", "value": "Moved"}
        )
    )
    pending = PendingOperation.objects.get()

    decide(services.pending_approve, pending_id=pending.pk, operator=operators["alice"])

    pending.refresh_from_db()
    assert pending.status == PendingOperation.Status.CONFLICT
    payload = completion(stream, txn)["events"]["urn:ietf:params:scim:event:misc:asyncresp"]
    # RFC 7644 §3.12: 412 "Failed to update. Resource has changed on the server."
    assert payload["method"] == "PATCH" and payload["status"] == "412"
    assert payload["response"]["status"] == "412" and 'W/"1"' in payload["response"]["detail"]
    # An operator's later deliberate re-apply is not a second completion of the request.
    decide(services.pending_reapply, pending_id=pending.pk, operator=operators["bob"])
    pending.refresh_from_db()
    assert pending.status == PendingOperation.Status.APPLIED
    assert len(completions(stream)) == 1


def test_write_whose_target_vanished_completes_with_404(idp, hold_rule, operators, decide):
    hold_rule("deactivate_user")
    stream = idp.stream()
    user = idp.api.create_user("vanish@x.example", active=True)
    txn = assert_async_202(deactivate(idp.api, user["id"], **ASYNC))
    assert idp.api.delete(f"/Users/{user['id']}").status_code == 204

    decide(
        services.pending_approve,
        pending_id=PendingOperation.objects.get().pk,
        operator=operators["alice"],
    )

    payload = completion(stream, txn)["events"]["urn:ietf:params:scim:event:misc:asyncresp"]
    assert payload["status"] == "404" and payload["response"]["status"] == "404"


def test_write_discarded_with_its_quarantine_completes_with_403(idp, operators, decide):
    stream = idp.stream()
    user = idp.api.create_user("quarantined@x.example")
    # Established, not churn: deleting what the client created a moment ago is not held.
    User.objects.filter(pk=user["id"]).update(created=timezone.now() - timedelta(days=1))
    quarantine = Quarantine.objects.create(
        client=idp.client, started_at=timezone.now(), reason="test burst"
    )
    txn = assert_async_202(idp.api.delete(f"/Users/{user['id']}", **ASYNC))
    assert PendingOperation.objects.get().quarantine == quarantine

    decide(services.quarantine_discard, quarantine_id=quarantine.pk, operator=operators["alice"])

    payload = completion(stream, txn)["events"]["urn:ietf:params:scim:event:misc:asyncresp"]
    assert payload["status"] == "403" and "quarantine" in payload["response"]["detail"]


def test_a_reheld_write_completes_when_its_new_hold_ends(idp, hold_rule, operators, decide):
    """Held again for a reason it was not approved for is not an end: the async request
    follows the new pending operation, and completes once, with the original txn."""
    hold_rule("deactivate_user")
    stream = idp.stream()
    user = idp.api.create_user("twice@x.example", active=True)
    txn = assert_async_202(deactivate(idp.api, user["id"], **ASYNC))
    first = PendingOperation.objects.get()
    hold_rule("attribute_change", attributes=["active"])  # a rule added while it waited

    decide(services.pending_approve, pending_id=first.pk, operator=operators["alice"])

    first.refresh_from_db()
    assert first.status == PendingOperation.Status.REHELD
    second = PendingOperation.objects.get(status=PendingOperation.Status.PENDING)
    assert completions(stream) == []
    assert AsyncRequest.objects.get(txn=txn).pending_id == second.pk

    decide(services.pending_reject, pending_id=second.pk, operator=operators["bob"], reason="no")

    assert (
        completion(stream, txn)["events"]["urn:ietf:params:scim:event:misc:asyncresp"]["status"]
        == "403"
    )
    assert len(completions(stream)) == 1


def test_the_preference_without_a_bound_stream_is_answered_as_without_it(idp, hold_rule):
    # Nobody would hear the completion: the same rule as Bulk (asyncresp.honours_respond_async).
    other = idp.stream()
    other.client = None
    other.save()
    hold_rule("delete_user")
    user = idp.api.create_user("nostream@x.example")

    response = idp.api.delete(f"/Users/{user['id']}", **ASYNC)

    assert response.status_code == 202
    assert "Set-Txn" not in response and "Preference-Applied" not in response
    document = idp.api.json(response)
    assert document["status"] == "pending" and "asyncRequests" not in document
    assert not AsyncRequest.objects.exists()


# --- Discovery (§4) -------------------------------------------------------------------------


def test_service_provider_config_advertises_security_events(idp):
    # Absent: "not currently configured for Security Events" (no stream registered).
    assert "securityEvents" not in idp.api.read("/ServiceProviderConfig")
    idp.stream()
    config = idp.api.read("/ServiceProviderConfig")
    events = config["securityEvents"]
    # "request": completed asynchronously when the client asks (and the write is held).
    assert events["asyncRequest"] == "request"
    uris = events["eventUris"]
    assert "urn:ietf:params:scim:event:misc:asyncresp" in uris
    for kind in ("create", "put", "patch"):
        assert f"urn:ietf:params:scim:event:prov:{kind}:notice" in uris
        assert f"urn:ietf:params:scim:event:prov:{kind}:full" in uris
    for kind in ("delete", "activate", "deactivate"):
        assert f"urn:ietf:params:scim:event:prov:{kind}" in uris
    assert not any(":feed:" in uri for uri in uris)  # no feeds: not advertised
    assert len(uris) == len(set(uris)) == 10
