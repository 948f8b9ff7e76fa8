"""Read-only queries the console pages need that no provisioning selector answers yet.

Access has services but no selectors module, and the audit selectors filter
but do not aggregate; these reads are written here rather than in the views.
They never write. Each function states its query count: the client health
numbers cost the same three queries for one client or five hundred.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, Lower
from django.utils import timezone

from provisioning.access.models import (
    AccessToken,
    ClientKey,
    ClientSecret,
    FederatedIssuer,
    Role,
    ScimClient,
    ScimToken,
)
from provisioning.audit import selectors as audit_selectors
from provisioning.audit.models import ChangeRecord, ChangeSet, RequestLog
from provisioning.directory import selectors as directory_selectors

HEALTH_WINDOW = timedelta(hours=24)
# A request answered 400 or above counts as an error (refusals and conflicts included:
# an IdP retrying a 409 or a 403 all day is a misconfiguration an operator should see).
ERROR_STATUS = 400


# --- SCIM clients and roles --------------------------------------------------------


def _active_token_count(now: datetime) -> Coalesce:
    tokens = (
        ScimToken.objects.filter(client=OuterRef("pk"), revoked_at__isnull=True)
        .exclude(expires_at__lte=now)
        .order_by()
        .values("client")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(tokens, output_field=IntegerField()), Value(0))


def _latest_request(**filters) -> QuerySet[RequestLog]:
    # Served by the (scim_client, timestamp) index, read backwards from the newest row.
    return RequestLog.objects.filter(scim_client=OuterRef("pk"), **filters).order_by(
        "-timestamp", "-id"
    )


@dataclass
class ClientHealth:
    requests: int = 0
    errors: int = 0
    last_error: RequestLog | None = None

    @property
    def error_rate(self) -> float | None:
        """Percentage of the window's requests that failed; None without requests."""
        return 100.0 * self.errors / self.requests if self.requests else None


def clients_with_health(*, now: datetime | None = None) -> list[ScimClient]:
    """Every SCIM client, by name, with its role, active token count and request-log health.

    Each client gets ``token_count``, ``last_request_at`` and ``health`` (a
    ``ClientHealth`` over the last 24 hours, plus the latest error ever logged).
    Three queries, whatever the number of clients: the clients with correlated
    subqueries, one grouped aggregate over the window, the latest error rows by id.
    """
    now = now or timezone.now()
    clients = list(
        ScimClient.objects.select_related("role")
        .annotate(
            token_count=_active_token_count(now),
            last_request_at=Subquery(_latest_request().values("timestamp")[:1]),
            last_error_id=Subquery(_latest_request(status__gte=ERROR_STATUS).values("id")[:1]),
        )
        .order_by(Lower("name"))
    )
    window = (
        RequestLog.objects.filter(timestamp__gte=now - HEALTH_WINDOW, scim_client__isnull=False)
        .order_by()
        .values("scim_client_id")
        .annotate(requests=Count("id"), errors=Count("id", filter=Q(status__gte=ERROR_STATUS)))
    )
    counts = {row["scim_client_id"]: row for row in window}
    error_ids = [c.last_error_id for c in clients if c.last_error_id is not None]
    errors = (
        {
            row.pk: row
            for row in RequestLog.objects.filter(pk__in=error_ids).only(
                "id", "timestamp", "status", "method", "path"
            )
        }
        if error_ids
        else {}
    )
    for client in clients:
        row = counts.get(client.pk, {})
        client.health = ClientHealth(
            requests=row.get("requests", 0),
            errors=row.get("errors", 0),
            last_error=errors.get(client.last_error_id),
        )
    return clients


def client_get(client_id: uuid.UUID) -> ScimClient | None:
    return ScimClient.objects.select_related("role").filter(pk=client_id).first()


def client_tokens(client: ScimClient, *, now: datetime | None = None) -> list[ScimToken]:
    """The client's tokens, newest first, without their digests; each with ``state``
    ("active", "expired" or "revoked")."""
    now = now or timezone.now()
    tokens = list(client.tokens.defer("digest").order_by("-created_at", "-id"))
    for token in tokens:
        if token.revoked_at is not None:
            token.state = "revoked"
        elif token.expires_at is not None and token.expires_at <= now:
            token.state = "expired"
        else:
            token.state = "active"
    return tokens


def client_token_get(client: ScimClient, token_id: int) -> ScimToken | None:
    return client.tokens.defer("digest").filter(pk=token_id).first()


def client_requests(client: ScimClient, *, limit: int = 20) -> dict[str, list[RequestLog]]:
    """The client's latest requests and latest errors (two queries, bodies deferred)."""
    rows = audit_selectors.request_logs(client=client).defer("request_body", "response_body")
    return {
        "recent": list(rows[:limit]),
        "errors": list(rows.filter(status__gte=ERROR_STATUS)[:limit]),
    }


def roles_with_usage() -> QuerySet[Role]:
    """Every role, built-in first, with ``client_count`` (one query)."""
    return Role.objects.annotate(client_count=Count("clients")).order_by("-built_in", Lower("name"))


def role_get(role_id: int) -> Role | None:
    return Role.objects.filter(pk=role_id).annotate(client_count=Count("clients")).first()


def role_clients(role: Role, *, limit: int = 100) -> list[ScimClient]:
    return list(role.clients.order_by(Lower("name"))[:limit])


def role_choices() -> QuerySet[Role]:
    return Role.objects.order_by("-built_in", Lower("name"))


# --- Audit trail -------------------------------------------------------------------


def change_set_get(change_set_id: int) -> ChangeSet | None:
    return audit_selectors.change_sets().filter(pk=change_set_id).first()


def change_set_records(change_set: ChangeSet) -> list[ChangeRecord]:
    return list(change_set.records.order_by("id"))


def _uuids(values) -> list[uuid.UUID]:
    result = []
    for value in values:
        try:
            result.append(uuid.UUID(str(value)))
        except ValueError:
            continue
    return result


def resource_names(user_ids, group_ids) -> dict[str, str]:
    """``{id: userName or displayName}`` of those users and groups that still exist
    (two queries); ids that are not UUIDs are skipped."""
    users = (
        directory_selectors.users().filter(pk__in=_uuids(user_ids)).values_list("pk", "user_name")
    )
    groups = (
        directory_selectors.groups()
        .filter(pk__in=_uuids(group_ids))
        .values_list("pk", "display_name")
    )
    return {str(pk): name for pk, name in users} | {str(pk): name for pk, name in groups}


def request_for_change_set(change_set: ChangeSet) -> RequestLog | None:
    """The logged SCIM request that made the change set (same server-generated correlation id)."""
    return (
        RequestLog.objects.filter(correlation_id=change_set.correlation_id)
        .only("id", "method", "path", "status", "timestamp")
        .order_by("id")
        .first()
    )


def resource_history(resource_type: str, resource_id: uuid.UUID, *, limit: int = 20):
    """The latest change records of one user or group, newest first, with their change sets."""
    return list(
        audit_selectors.change_records(resource_type=resource_type, resource_id=resource_id)
        .select_related("change_set")
        .defer("before", "after", "search_text")
        .order_by("-id")[:limit]
    )


def request_log_get(request_id: int) -> RequestLog | None:
    return audit_selectors.request_logs().filter(pk=request_id).first()


# --- OAuth credentials of a SCIM client -------------------------------------------------


def _state(row, now: datetime) -> str:
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    return "active"


def client_oauth(client: ScimClient, *, now: datetime | None = None) -> dict:
    """The client's secrets (without digests), registered keys, trusted issuers, each
    with ``state``, and how many of its access tokens are active (four queries)."""
    now = now or timezone.now()
    rows = {
        "secrets": list(ClientSecret.objects.filter(client=client).defer("digest").order_by("-created_at", "-id")),
        "keys": list(ClientKey.objects.filter(client=client).order_by("-created_at", "-id")),
        "federations": list(FederatedIssuer.objects.filter(client=client).order_by("-created_at", "-id")),
    }
    for entries in rows.values():
        for row in entries:
            row.state = _state(row, now)
    rows["active_access_tokens"] = AccessToken.objects.filter(
        client=client, revoked_at__isnull=True, expires_at__gt=now
    ).count()
    return rows


def client_secret_get(client: ScimClient, secret_id: int):
    return ClientSecret.objects.filter(client=client, pk=secret_id).defer("digest").first()


def client_key_get(client: ScimClient, key_id: int):
    return ClientKey.objects.filter(client=client, pk=key_id).first()


def client_federation_get(client: ScimClient, federation_id: int):
    return FederatedIssuer.objects.filter(client=client, pk=federation_id).first()
