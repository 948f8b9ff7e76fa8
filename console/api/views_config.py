"""Configuration endpoints of the management API: SCIM clients with their tokens, SCIM
roles, policy rules, the circuit breaker's settings (the defaults and a client's own).
Event streams and their delivery log are in ``views_events``.

Each calls what the console's view calls (``console/views_access.py``,
``console/views_policies.py``): reading needs the
viewer role, every change the administrator role, and where the console asks for a
recent sign-in (step-up) a call through the console session does too; a token stands
on its own. Changes run in ``api_scope`` (audited, source "api").

A raw SCIM token is in the one answer that issues it (client creation, token issue
and rotate), marked ``Cache-Control: no-store``; it is never stored, so those calls take no
``Idempotency-Key`` (a replay would have to keep the token). Roles, rules and
breaker settings have an ``updated_at``: their ETag is what ``If-Match`` names on a
change or a deletion.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models.functions import Lower
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from console import selectors
from console.views_oauth import client_or_404
from provisioning.access import clients, roles
from provisioning.access.models import Role, ScimClient, ScimToken
from provisioning.oversight import rules
from provisioning.oversight.models import CircuitBreaker, PolicyRule, RuleAction

from .base import Administer, ApiView, ReadOrAdminister, api_scope, require_fresh_session
from .errors import Conflict
from .idempotency import idempotent
from .preconditions import etag_of, if_match, not_modified
from .schema import path_id
from .serializers_config import (
    CircuitBreakerChangeSerializer,
    CircuitBreakerSerializer,
    ClientCreateSerializer,
    ClientRoleSerializer,
    IssuedTokenSerializer,
    PolicyRuleChangeSerializer,
    PolicyRuleSerializer,
    PolicyRuleWriteSerializer,
    RoleChangeSerializer,
    RoleWriteSerializer,
    ScimClientDetailSerializer,
    ScimClientSerializer,
    ScimRoleDetailSerializer,
    ScimRoleSerializer,
    TokenIssueSerializer,
    TokenRotateSerializer,
)
from .views import ETAG_HEADER, IDEMPOTENCY_KEY, IF_MATCH

ROLE_ID = path_id("role_id", "A role's id.")
TOKEN_ID = path_id("token_id", "A token's id.")
NOT_MODIFIED = OpenApiResponse(description="Not modified (If-None-Match).")


# --- SCIM clients ---------------------------------------------------------------------------------


def _health_data(client: ScimClient) -> dict:
    health = getattr(client, "health", None)
    last_error = health.last_error if health is not None else None
    return {
        "requests": health.requests if health else 0,
        "errors": health.errors if health else 0,
        "error_rate": health.error_rate if health else None,
        "last_error_at": last_error.timestamp if last_error is not None else None,
        "last_error_status": last_error.status if last_error is not None else None,
    }


def _client_data(client: ScimClient) -> dict:
    """``client`` as ``clients_with_health`` annotates it."""
    return {
        "id": client.pk,
        "name": client.name,
        "role": {"id": client.role.pk, "name": client.role.name, "built_in": client.role.built_in},
        "auth_methods": list(client.auth_methods or []),
        "active_tokens": getattr(client, "token_count", 0),
        "denied_requests": client.denied_requests,
        "created_at": client.created_at,
        "last_used_at": client.last_used_at,
        "last_request_at": getattr(client, "last_request_at", None),
        "health": _health_data(client),
    }


def _token_data(token: ScimToken) -> dict:
    return {
        "id": token.pk,
        "prefix": token.prefix,
        "state": token.state,
        "created_at": token.created_at,
        "expires_at": token.expires_at,
        "revoked_at": token.revoked_at,
        "allowed_networks": list(token.allowed_networks or []),
        "last_used_at": token.last_used_at,
        "last_used_address": token.last_used_address,
    }


def _with_health(client_id: uuid.UUID) -> ScimClient:
    for client in selectors.clients_with_health():
        if client.pk == client_id:
            return client
    raise Http404("No such SCIM client.")


def client_representation(client_id: uuid.UUID) -> dict:
    client = _with_health(client_id)
    data = {
        **_client_data(client),
        "tokens": [_token_data(t) for t in selectors.client_tokens(client)],
    }
    return ScimClientDetailSerializer(data).data


def _token_state(token: ScimToken) -> ScimToken:
    listed = {t.pk: t for t in selectors.client_tokens(token.client)}
    return listed[token.pk]


def _issued(client_id: uuid.UUID, token: ScimToken, raw: str, status: int) -> Response:
    """The only answer that ever carries a raw token; no cache may keep it."""
    data = {
        "client": client_representation(client_id),
        "token": _token_data(_token_state(token)),
        "raw_token": raw,
    }
    response = Response(IssuedTokenSerializer(data).data, status=status)
    response["Cache-Control"] = "no-store"
    return response


def _role_for(role_id: int, field: str = "role") -> Role:
    role = selectors.role_choices().filter(pk=role_id).first()
    if role is None:
        raise ValidationError({field: ["Choose one of the listed roles."]})
    return role


class ScimClientList(ReadOrAdminister):
    """SCIM clients (one per IdP connection), by name: role, active tokens, denied
    requests and 24-hour request health, as the console's client list shows them.
    ``POST`` creates one with its first token, shown once in the answer."""

    queryset = ScimClient.objects.annotate(sort_name=Lower("name"))

    def cursor_ordering(self, request: Request) -> tuple[str, ...]:
        return ("sort_name", "id")  # the console's order: by name, whatever its case

    @extend_schema(
        responses=ScimClientSerializer(many=True),
        operation_id="scim_clients_list",
        tags=["scim clients"],
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        annotated = {client.pk: client for client in selectors.clients_with_health()}
        rows = [_client_data(annotated[c.pk]) for c in page if c.pk in annotated]
        return self.get_paginated_response(ScimClientSerializer(rows, many=True).data)

    @extend_schema(
        request=ClientCreateSerializer,
        responses={201: IssuedTokenSerializer},
        operation_id="scim_clients_create",
        tags=["scim clients"],
    )
    def post(self, request: Request) -> Response:
        require_fresh_session(request)
        serializer = ClientCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        role = _role_for(data["role"])
        summary = {"action": "scim_client.create", "name": data["name"]}
        # One call, one change set: the client, its token and the token's limits.
        with transaction.atomic(), api_scope(request, summary):
            client, raw = clients.scim_client_create(
                name=data["name"], role=role, operator=request.user
            )
            token = client.tokens.get()
            if data.get("expires_at") or data.get("allowed_networks"):
                token = clients.scim_token_update(
                    token=token,
                    expires_at=data.get("expires_at"),
                    allowed_networks=data.get("allowed_networks") or [],
                    operator=request.user,
                )
        return _issued(client.pk, token, raw, 201)


class ScimClientDetail(ApiView):
    """One SCIM client with its tokens (public prefixes, state, limits; never a token)."""

    @extend_schema(
        responses={200: ScimClientDetailSerializer, 304: NOT_MODIFIED},
        parameters=[ETAG_HEADER],
        operation_id="scim_clients_retrieve",
        tags=["scim clients"],
    )
    def get(self, request: Request, client_id: uuid.UUID) -> Response:
        data = client_representation(client_id)
        etag = etag_of(data)
        if not_modified(request, etag):
            return Response(status=304, headers={"ETag": etag})
        return Response(data, headers={"ETag": etag})


class ScimClientSetRole(Administer):
    """Give the client another role, effective from its next request (the console's role
    form). Needs a recent sign-in through the session. Setting the role it holds changes
    nothing."""

    @extend_schema(
        request=ClientRoleSerializer,
        responses=ScimClientDetailSerializer,
        parameters=[IDEMPOTENCY_KEY],
        operation_id="scim_clients_set_role",
        tags=["scim clients"],
    )
    def post(self, request: Request, client_id: uuid.UUID) -> Response:
        def handle() -> Response:
            require_fresh_session(request)
            serializer = ClientRoleSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            client = client_or_404(client_id)
            role = _role_for(serializer.validated_data["role"])
            summary = {"action": "scim_client.set_role", "client": str(client.pk), "role": role.pk}
            with transaction.atomic(), api_scope(request, summary):
                clients.scim_client_set_role(client=client, role=role, operator=request.user)
            return Response(client_representation(client.pk))

        return idempotent(handle, request)


class ScimTokenIssue(Administer):
    """Issue another token for the client (optionally expiring, optionally bound to
    networks); its other tokens keep working. The token is in this answer only."""

    @extend_schema(
        request=TokenIssueSerializer,
        responses={201: IssuedTokenSerializer},
        operation_id="scim_tokens_issue",
        tags=["scim clients"],
    )
    def post(self, request: Request, client_id: uuid.UUID) -> Response:
        require_fresh_session(request)
        serializer = TokenIssueSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        client = client_or_404(client_id)
        summary = {"action": "scim_token.issue", "client": str(client.pk)}
        with transaction.atomic(), api_scope(request, summary):
            token, raw = clients.scim_token_issue(
                client=client,
                expires_at=data.get("expires_at"),
                allowed_networks=data.get("allowed_networks") or [],
                operator=request.user,
            )
        return _issued(client.pk, token, raw, 201)


class ScimTokenRotate(Administer):
    """Rotate: issue a new token (with the newest active token's networks) and, with
    ``expire_old_in``, let the other active tokens expire that long from now, as the
    console's rotate form does. The token is in this answer only."""

    @extend_schema(
        request=TokenRotateSerializer,
        responses={201: IssuedTokenSerializer},
        operation_id="scim_tokens_rotate",
        tags=["scim clients"],
    )
    def post(self, request: Request, client_id: uuid.UUID) -> Response:
        require_fresh_session(request)
        serializer = TokenRotateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        seconds = serializer.validated_data.get("expire_old_in")
        client = client_or_404(client_id)
        summary = {
            "action": "scim_token.rotate",
            "client": str(client.pk),
            "expire_old_in": seconds,
        }
        with transaction.atomic(), api_scope(request, summary):
            token, raw = clients.scim_token_rotate(
                client=client,
                expire_old_in=timedelta(seconds=seconds) if seconds is not None else None,
                operator=request.user,
            )
        return _issued(client.pk, token, raw, 201)


class ScimTokenRevoke(Administer):
    """Revoke one of the client's tokens: requests using it get 401 from then on.
    Revoking a revoked token keeps its first revocation time (no step-up, as the
    console's revoke: it only takes access away)."""

    @extend_schema(
        request=None,
        responses=ScimClientDetailSerializer,
        parameters=[TOKEN_ID, IDEMPOTENCY_KEY],
        operation_id="scim_tokens_revoke",
        tags=["scim clients"],
    )
    def post(self, request: Request, client_id: uuid.UUID, token_id: int) -> Response:
        def handle() -> Response:
            client = client_or_404(client_id)
            token = selectors.client_token_get(client, token_id)
            if token is None:
                raise Http404("No such token.")
            if not token.is_revoked:
                summary = {
                    "action": "scim_token.revoke",
                    "client": str(client.pk),
                    "token": token.prefix,
                }
                with transaction.atomic(), api_scope(request, summary):
                    clients.scim_token_revoke(token=token, operator=request.user)
            return Response(client_representation(client.pk))

        return idempotent(handle, request)


# --- SCIM roles -----------------------------------------------------------------------------------


def _role_data(role: Role) -> dict:
    return {
        "id": role.pk,
        "name": role.name,
        "description": role.description,
        "built_in": role.built_in,
        "permissions": list(role.permissions),
        "own_resources_only": role.own_resources_only,
        "forbidden_attributes": list(role.forbidden_attributes),
        "protected_group_names": list(role.protected_group_names),
        "protect_privileged_groups": role.protect_privileged_groups,
        "client_count": getattr(role, "client_count", 0),
        "created_at": role.created_at,
        "updated_at": role.updated_at,
    }


def _role_or_404(role_id: int) -> Role:
    role = selectors.role_get(role_id)
    if role is None:
        raise Http404("No such role.")
    return role


def role_representation(role: Role) -> tuple[dict, str]:
    """The detail representation of ``role`` (annotated by ``role_get``) and its ETag."""
    data = {
        **_role_data(role),
        "clients": [{"id": str(c.pk), "name": c.name} for c in selectors.role_clients(role)],
    }
    data = ScimRoleDetailSerializer(data).data
    return data, etag_of(data)


def _role_response(role_id: int, status: int = 200) -> Response:
    data, etag = role_representation(_role_or_404(role_id))
    return Response(data, status=status, headers={"ETag": etag})


class ScimRoleList(ReadOrAdminister):
    """SCIM roles by name, with how many clients hold each. ``POST`` creates a custom
    role (the console's role form: permissions, narrowing options)."""

    queryset = selectors.roles_with_usage().annotate(sort_name=Lower("name"))

    def cursor_ordering(self, request: Request) -> tuple[str, ...]:
        # The console's order: built-in roles first, then by name whatever its case.
        return ("-built_in", "sort_name", "id")

    @extend_schema(
        responses=ScimRoleSerializer(many=True), operation_id="scim_roles_list", tags=["scim roles"]
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(
            ScimRoleSerializer([_role_data(r) for r in page], many=True).data
        )

    @extend_schema(
        request=RoleWriteSerializer,
        responses={201: ScimRoleDetailSerializer},
        parameters=[IDEMPOTENCY_KEY, ETAG_HEADER],
        operation_id="scim_roles_create",
        tags=["scim roles"],
    )
    def post(self, request: Request) -> Response:
        def handle() -> Response:
            require_fresh_session(request)
            serializer = RoleWriteSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            summary = {"action": "scim_role.create", "name": serializer.validated_data["name"]}
            with transaction.atomic(), api_scope(request, summary):
                role = roles.scim_role_create(
                    **{"permissions": [], **serializer.validated_data}, operator=request.user
                )
            return _role_response(role.pk, status=201)

        return idempotent(handle, request)


class ScimRoleDetail(ApiView):
    """One role: its grants, options and the clients holding it. Its ETag is what
    ``If-Match`` names on a change or a deletion."""

    @extend_schema(
        responses={200: ScimRoleDetailSerializer, 304: NOT_MODIFIED},
        parameters=[ROLE_ID, ETAG_HEADER],
        operation_id="scim_roles_retrieve",
        tags=["scim roles"],
    )
    def get(self, request: Request, role_id: int) -> Response:
        data, etag = role_representation(_role_or_404(role_id))
        if not_modified(request, etag):
            return Response(status=304, headers={"ETag": etag})
        return Response(data, headers={"ETag": etag})


class ScimRoleChange(Administer):
    """Change a role: the fields sent change, the others stay. A built-in role keeps its
    meaning: only its description changes (anything else is refused, 400). Clients
    holding the role are affected from their next request."""

    @extend_schema(
        request=RoleChangeSerializer,
        responses=ScimRoleDetailSerializer,
        parameters=[ROLE_ID, IF_MATCH, IDEMPOTENCY_KEY, ETAG_HEADER],
        operation_id="scim_roles_change",
        tags=["scim roles"],
    )
    def post(self, request: Request, role_id: int) -> Response:
        def handle() -> Response:
            require_fresh_session(request)
            serializer = RoleChangeSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            role = _role_or_404(role_id)
            _data, etag = role_representation(role)
            if_match(request, etag)
            changes = dict(serializer.validated_data)
            summary = {"action": "scim_role.change", "role": role.pk, "fields": sorted(changes)}
            with transaction.atomic(), api_scope(request, summary):
                roles.scim_role_update(role=role, operator=request.user, **changes)
            return _role_response(role.pk)

        return idempotent(handle, request)


class ScimRoleDelete(Administer):
    """Delete a custom role no client holds (409 for a built-in role or one in use)."""

    @extend_schema(
        request=None,
        responses={204: OpenApiResponse(description="Deleted.")},
        parameters=[ROLE_ID, IF_MATCH, IDEMPOTENCY_KEY],
        operation_id="scim_roles_delete",
        tags=["scim roles"],
    )
    def post(self, request: Request, role_id: int) -> Response:
        def handle() -> Response:
            require_fresh_session(request)
            role = _role_or_404(role_id)
            _data, etag = role_representation(role)
            if_match(request, etag)
            summary = {"action": "scim_role.delete", "role": role.pk, "name": role.name}
            try:
                with transaction.atomic(), api_scope(request, summary):
                    roles.scim_role_delete(role=role, operator=request.user)
            except DjangoValidationError as error:
                raise Conflict(" ".join(error.messages)) from None
            return Response(status=204)

        return idempotent(handle, request)


# --- Policy rules ---------------------------------------------------------------------------------

RULE_ID = path_id("rule_id", "A rule's id.")
IF_MATCH_OPTIONAL = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="The ETag as you read it (RFC 9110 §13.1.1); stale: 412. Optional here: the "
    "request names the state it wants.",
)


def _rule_data(rule: PolicyRule) -> dict:
    return {
        "id": rule.pk,
        "name": rule.name,
        "kind": rule.kind,
        "action": rule.action,
        "enabled": rule.enabled,
        "clients": [
            {"id": c.pk, "name": c.name} for c in sorted(rule.clients.all(), key=lambda c: c.name)
        ],
        "attributes": list(rule.attributes),
        "applies_to_console": rule.applies_to_console,
        "two_approvers": rule.two_approvers,
        "created_at": rule.created_at,
        "updated_at": rule.updated_at,
    }


def _rule_or_404(rule_id: int) -> PolicyRule:
    rule = PolicyRule.objects.prefetch_related("clients").filter(pk=rule_id).first()
    if rule is None:
        raise Http404("No such policy rule.")
    return rule


def rule_representation(rule: PolicyRule) -> tuple[dict, str]:
    data = PolicyRuleSerializer(_rule_data(rule)).data
    return data, etag_of(data)


def _rule_response(rule_id: int, status: int = 200) -> Response:
    data, etag = rule_representation(_rule_or_404(rule_id))
    return Response(data, status=status, headers={"ETag": etag})


class PolicyRuleList(ReadOrAdminister):
    """Policy rules by name, as the console's policy page lists them. ``POST`` creates
    one (the console's rule form); it applies from the next write it is evaluated for."""

    queryset = PolicyRule.objects.prefetch_related("clients").annotate(sort_name=Lower("name"))

    def cursor_ordering(self, request: Request) -> tuple[str, ...]:
        # The console's order: enabled rules first, then by name whatever its case.
        return ("-enabled", "sort_name", "id")

    @extend_schema(
        responses=PolicyRuleSerializer(many=True),
        operation_id="policy_rules_list",
        tags=["policy"],
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(
            PolicyRuleSerializer([_rule_data(r) for r in page], many=True).data
        )

    @extend_schema(
        request=PolicyRuleWriteSerializer,
        responses={201: PolicyRuleSerializer},
        parameters=[IDEMPOTENCY_KEY, ETAG_HEADER],
        operation_id="policy_rules_create",
        tags=["policy"],
    )
    def post(self, request: Request) -> Response:
        def handle() -> Response:
            require_fresh_session(request)
            serializer = PolicyRuleWriteSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            fields = {"action": RuleAction.FLAG, **serializer.validated_data}
            with transaction.atomic(), api_scope(request, {"action": "policy.create"}):
                rule = rules.policy_rule_create(**fields, operator=request.user)
            return _rule_response(rule.pk, status=201)

        return idempotent(handle, request)


class PolicyRuleDetail(ApiView):
    """One policy rule; its ETag is what ``If-Match`` names on a change or deletion."""

    @extend_schema(
        responses={200: PolicyRuleSerializer, 304: NOT_MODIFIED},
        parameters=[RULE_ID, ETAG_HEADER],
        operation_id="policy_rules_retrieve",
        tags=["policy"],
    )
    def get(self, request: Request, rule_id: int) -> Response:
        data, etag = rule_representation(_rule_or_404(rule_id))
        if not_modified(request, etag):
            return Response(status=304, headers={"ETag": etag})
        return Response(data, headers={"ETag": etag})


class PolicyRuleChange(Administer):
    """Change a rule: the fields sent change and the rule is validated as a whole (a
    rule that no longer holds cannot keep ``two_approvers``)."""

    @extend_schema(
        request=PolicyRuleChangeSerializer,
        responses=PolicyRuleSerializer,
        parameters=[RULE_ID, IF_MATCH, IDEMPOTENCY_KEY, ETAG_HEADER],
        operation_id="policy_rules_change",
        tags=["policy"],
    )
    def post(self, request: Request, rule_id: int) -> Response:
        def handle() -> Response:
            require_fresh_session(request)
            serializer = PolicyRuleChangeSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            rule = _rule_or_404(rule_id)
            if_match(request, rule_representation(rule)[1])
            summary = {"action": "policy.edit", "rule": rule.pk}
            with transaction.atomic(), api_scope(request, summary):
                rules.policy_rule_update(
                    rule=rule, **serializer.validated_data, operator=request.user
                )
            return _rule_response(rule.pk)

        return idempotent(handle, request)


class _RuleSetEnabled(Administer):
    enabled: bool

    def post(self, request: Request, rule_id: int) -> Response:
        def handle() -> Response:
            require_fresh_session(request)
            rule = _rule_or_404(rule_id)
            if_match(request, rule_representation(rule)[1], required=False)
            summary = {
                "action": "policy.enable" if self.enabled else "policy.disable",
                "rule": rule.pk,
            }
            with transaction.atomic(), api_scope(request, summary):
                rules.policy_rule_set_enabled(
                    rule=rule, enabled=self.enabled, operator=request.user
                )
            return _rule_response(rule.pk)

        return idempotent(handle, request)


class PolicyRuleEnable(_RuleSetEnabled):
    """Enable a rule; an enabled rule stays as it is (nothing recorded)."""

    enabled = True

    @extend_schema(
        request=None,
        responses=PolicyRuleSerializer,
        parameters=[RULE_ID, IF_MATCH_OPTIONAL, IDEMPOTENCY_KEY, ETAG_HEADER],
        operation_id="policy_rules_enable",
        tags=["policy"],
    )
    def post(self, request: Request, rule_id: int) -> Response:
        return super().post(request, rule_id)


class PolicyRuleDisable(_RuleSetEnabled):
    """Disable a rule; a disabled rule stays as it is (nothing recorded)."""

    enabled = False

    @extend_schema(
        request=None,
        responses=PolicyRuleSerializer,
        parameters=[RULE_ID, IF_MATCH_OPTIONAL, IDEMPOTENCY_KEY, ETAG_HEADER],
        operation_id="policy_rules_disable",
        tags=["policy"],
    )
    def post(self, request: Request, rule_id: int) -> Response:
        return super().post(request, rule_id)


class PolicyRuleDelete(Administer):
    """Delete a rule. Operations it already held stay held until decided."""

    @extend_schema(
        request=None,
        responses={204: OpenApiResponse(description="Deleted.")},
        parameters=[RULE_ID, IF_MATCH, IDEMPOTENCY_KEY],
        operation_id="policy_rules_delete",
        tags=["policy"],
    )
    def post(self, request: Request, rule_id: int) -> Response:
        def handle() -> Response:
            require_fresh_session(request)
            rule = _rule_or_404(rule_id)
            if_match(request, rule_representation(rule)[1])
            with (
                transaction.atomic(),
                api_scope(request, {"action": "policy.delete", "rule": rule.pk}),
            ):
                rules.policy_rule_delete(rule=rule, operator=request.user)
            return Response(status=204)

        return idempotent(handle, request)


# --- Circuit breaker ------------------------------------------------------------------------------


def _defaults() -> CircuitBreaker:
    """The default settings' row (the console's), or the model's defaults without one."""
    return (
        CircuitBreaker.objects.filter(client__isnull=True).order_by("pk").first()
        or CircuitBreaker()
    )


def breaker_representation(client: ScimClient | None) -> tuple[dict, str]:
    own = CircuitBreaker.objects.filter(client=client).first() if client is not None else None
    breaker = own or _defaults()
    data = {
        "client": {"id": client.pk, "name": client.name} if client is not None else None,
        "own": own is not None,
        **{name: getattr(breaker, name) for name in rules.BREAKER_FIELDS},
        "updated_at": breaker.updated_at,
    }
    data = CircuitBreakerSerializer(data).data
    return data, etag_of(data)


def _breaker_response(client: ScimClient | None) -> Response:
    data, etag = breaker_representation(client)
    return Response(data, headers={"ETag": etag})


class CircuitBreakerDetail(ApiView):
    """The default deletion-safety settings (the mass-change circuit breaker and
    deactivate-before-delete), as the console's policy page shows them."""

    @extend_schema(
        responses={200: CircuitBreakerSerializer, 304: NOT_MODIFIED},
        parameters=[ETAG_HEADER],
        operation_id="circuit_breaker_retrieve",
        tags=["policy"],
    )
    def get(self, request: Request) -> Response:
        data, etag = breaker_representation(None)
        if not_modified(request, etag):
            return Response(status=304, headers={"ETag": etag})
        return Response(data, headers={"ETag": etag})


class CircuitBreakerChange(Administer):
    """Change the default settings (only the fields sent); every client without settings
    of its own follows them."""

    @extend_schema(
        request=CircuitBreakerChangeSerializer,
        responses=CircuitBreakerSerializer,
        parameters=[IF_MATCH, IDEMPOTENCY_KEY, ETAG_HEADER],
        operation_id="circuit_breaker_change",
        tags=["policy"],
    )
    def post(self, request: Request) -> Response:
        def handle() -> Response:
            require_fresh_session(request)
            serializer = CircuitBreakerChangeSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            if_match(request, breaker_representation(None)[1])
            with transaction.atomic(), api_scope(request, {"action": "circuit_breaker.edit"}):
                rules.circuit_breaker_update(**serializer.validated_data, operator=request.user)
            return _breaker_response(None)

        return idempotent(handle, request)


class ClientBreakerDetail(Administer):
    """A client's settings: its own (``own``) or the defaults it follows. Administrators
    only, as the console's page for them."""

    @extend_schema(
        responses={200: CircuitBreakerSerializer, 304: NOT_MODIFIED},
        parameters=[ETAG_HEADER],
        operation_id="client_circuit_breaker_retrieve",
        tags=["policy"],
    )
    def get(self, request: Request, client_id: uuid.UUID) -> Response:
        data, etag = breaker_representation(client_or_404(client_id))
        if not_modified(request, etag):
            return Response(status=304, headers={"ETag": etag})
        return Response(data, headers={"ETag": etag})


class ClientBreakerChange(Administer):
    """Give the client settings of its own (they replace the defaults whole): its current
    ones, or the defaults, changed by the fields sent."""

    @extend_schema(
        request=CircuitBreakerChangeSerializer,
        responses=CircuitBreakerSerializer,
        parameters=[IF_MATCH, IDEMPOTENCY_KEY, ETAG_HEADER],
        operation_id="client_circuit_breaker_change",
        tags=["policy"],
    )
    def post(self, request: Request, client_id: uuid.UUID) -> Response:
        def handle() -> Response:
            require_fresh_session(request)
            serializer = CircuitBreakerChangeSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            client = client_or_404(client_id)
            if_match(request, breaker_representation(client)[1])
            summary = {"action": "circuit_breaker.client_edit", "client": str(client.pk)}
            with transaction.atomic(), api_scope(request, summary):
                rules.client_breaker_update(
                    client=client, **serializer.validated_data, operator=request.user
                )
            return _breaker_response(client)

        return idempotent(handle, request)


class ClientBreakerClear(Administer):
    """Put the client back on the default settings (nothing changes if it had none)."""

    @extend_schema(
        request=None,
        responses=CircuitBreakerSerializer,
        parameters=[IF_MATCH, IDEMPOTENCY_KEY, ETAG_HEADER],
        operation_id="client_circuit_breaker_clear",
        tags=["policy"],
    )
    def post(self, request: Request, client_id: uuid.UUID) -> Response:
        def handle() -> Response:
            require_fresh_session(request)
            client = client_or_404(client_id)
            if_match(request, breaker_representation(client)[1])
            summary = {"action": "circuit_breaker.client_defaults", "client": str(client.pk)}
            with transaction.atomic(), api_scope(request, summary):
                rules.client_breaker_clear(client=client, operator=request.user)
            return _breaker_response(client)

        return idempotent(handle, request)
