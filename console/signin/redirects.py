"""Where to send an operator next: only ever a URL on this site."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.http import HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme


def safe_next(request: HttpRequest, target: str | None, default: str = "/") -> str:
    """``target`` if it points at this site, else ``default``."""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


def referring_page(request: HttpRequest, default: str = "/") -> str:
    """The path (and query) of the page a form was posted from, when it is on this site."""
    referer = request.headers.get("HX-Current-URL") or request.headers.get("Referer") or ""
    if not safe_next(request, referer, ""):
        return default
    parts = urlsplit(referer)
    return parts.path + (f"?{parts.query}" if parts.query else "") or default
