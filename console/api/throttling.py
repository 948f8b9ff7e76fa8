"""Rate limits of the management API: per token (each of an operator's tokens has its
own budget), per operator for the session, per address before authentication.
Over the limit: 429 with ``Retry-After`` (RFC 6585 §4). The counters live in Django's
cache: with a shared cache (``CACHE_URL``, e.g. Redis) the limit holds across processes.
"""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from provisioning.access.models import OperatorToken


class OperatorRateThrottle(SimpleRateThrottle):
    scope = "management-api"

    def get_rate(self) -> str:
        return settings.SCIMGATE_API_RATE_LIMIT

    def get_cache_key(self, request, view) -> str:
        if isinstance(request.auth, OperatorToken):
            ident = f"token:{request.auth.pk}"
        elif getattr(request.user, "is_authenticated", False):
            ident = f"operator:{request.user.pk}"
        else:
            ident = f"address:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
