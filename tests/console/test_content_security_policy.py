"""Content-Security-Policy: every console response carries it, and no template needs
more than it allows (no inline script or style, no event-handler attribute, no hx-on,
which htmx evaluates with ``Function()``). Chromium proves the same in
tests/browser/test_csp.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import URLPattern, reverse

from console import urls as console_urls

pytestmark = pytest.mark.django_db

TEMPLATES = Path(settings.BASE_DIR) / "templates"
REQUIRED = (
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "object-src 'none'",
)


def directives(response) -> str:
    assert "Content-Security-Policy" in response, response.status_code
    policy = response["Content-Security-Policy"]
    for directive in REQUIRED:
        assert directive in policy, policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    return policy


def test_every_console_url_answers_with_the_policy(admin_client, viewer_client):
    anonymous = Client()
    for pattern in console_urls.urlpatterns:
        assert isinstance(pattern, URLPattern)
        kwargs = {
            name: (1 if converter.__class__.__name__ == "IntConverter" else "00000000-0000-0000-0000-000000000000")
            for name, converter in pattern.pattern.converters.items()
        }
        path = reverse(f"console:{pattern.name}", kwargs=kwargs)
        # Pages, 404s, 403s, 405s, redirects to the login page: all of them.
        for client in (admin_client, viewer_client, anonymous):
            directives(client.get(path))


@pytest.mark.parametrize(
    "path", ["/login/", "/admin/login/", "/scim/v2/ServiceProviderConfig", "/no-such-page/"]
)
def test_other_responses_carry_it_too(path):
    directives(Client().get(path))


def test_a_full_console_page_loads_only_site_scripts_and_styles(admin_client):
    page = admin_client.get(reverse("console:home")).content.decode()
    assert '<meta name="htmx-config"' in page and '"includeIndicatorStyles": false' in page
    assert '"allowEval": false' in page
    scripts = re.findall(r"<script\b[^>]*>", page)
    assert scripts and all(re.search(r'\bsrc="/static/', tag) for tag in scripts)
    assert "<style" not in page


INLINE = [
    (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I), "inline <script>"),
    (re.compile(r"<style\b", re.I), "<style> element"),
    (re.compile(r"\sstyle\s*=", re.I), "style attribute"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "event-handler attribute"),
    (re.compile(r"\shx-on[:\-]", re.I), "hx-on attribute"),
    (re.compile(r"javascript:", re.I), "javascript: URL"),
    (re.compile(r"hx-(vals|vars)\s*=\s*['\"]\s*(js|javascript):", re.I), "evaluated hx-vals"),
]


@pytest.mark.parametrize("template", sorted(TEMPLATES.rglob("*.html")), ids=lambda p: str(p.relative_to(TEMPLATES)))
def test_no_template_needs_unsafe_inline_or_eval(template):
    text = template.read_text()
    found = [what for pattern, what in INLINE if pattern.search(text)]
    assert not found, f"{template}: {', '.join(found)}"
