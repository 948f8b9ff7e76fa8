"""Who calls the management API: an operator API token (``Authorization: Bearer
scgop_...``), or the console session for the browsable API and the docs page.

A token that does not authenticate is 401 with ``WWW-Authenticate: Bearer`` and
``error="invalid_token"`` (RFC 6750 §3.1); the reason shown (invalid, revoked, expired)
is the one ``operator_tokens.operator_token_verify`` allows to tell. The session is
DRF's: CSRF is enforced on every unsafe request it authenticates.
"""

from __future__ import annotations

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from provisioning.access.operator_tokens import operator_token_verify
from provisioning.access.token_check import TokenRejected

REALM = "scimgate management API"

_REASONS = {
    "revoked": "This API token was revoked.",
    "expired": "This API token has expired.",
    "inactive": "The operator of this API token is inactive.",
}


class OperatorTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer scgop_...``: ``request.user`` is the token's operator,
    ``request.auth`` the ``OperatorToken``. No Authorization header: not this method."""

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != b"bearer":
            return None
        request._token_refused = True
        if len(parts) != 2:
            raise AuthenticationFailed("Send the token as: Authorization: Bearer <token>.", code="invalid_token")
        try:
            raw = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise AuthenticationFailed("The token is not valid.", code="invalid_token") from None
        try:
            token = operator_token_verify(raw)
        except TokenRejected as rejected:
            message = _REASONS.get(rejected.reason, "The token is not valid.")
            raise AuthenticationFailed(message, code="invalid_token") from None
        request._token_refused = False
        return token.operator, token

    def authenticate_header(self, request) -> str:
        if getattr(request, "_token_refused", False):
            return f'Bearer realm="{REALM}", error="invalid_token"'
        return f'Bearer realm="{REALM}"'
