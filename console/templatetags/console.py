"""Template tags for the console frame: the navigation and the operator's role."""

from __future__ import annotations

from django import template
from django.urls import reverse

from console import permissions
from console.navigation import SECTIONS

register = template.Library()


@register.simple_tag
def operator_role(user) -> str | None:
    return permissions.operator_role(user)


@register.simple_tag
def has_role(user, role: str) -> bool:
    """For showing or hiding controls only; every view checks the role itself."""
    return permissions.has_role(user, role)


@register.inclusion_tag("console/includes/nav.html", takes_context=True)
def console_nav(context) -> dict:
    """The sections and links the operator's role may open, the current page marked."""
    request = context["request"]
    user = context["user"]
    sections = []
    for section in SECTIONS:
        links = []
        for link in section.links:
            if not permissions.has_role(user, link.role):
                continue
            href = reverse(link.url_name)
            # "page" on the page itself, "true" on a section's inner pages (a user's detail).
            if request.path == href:
                current = "page"
            elif href != "/" and request.path.startswith(href):
                current = "true"
            else:
                current = None
            links.append(
                {
                    "label": link.label,
                    "href": href,
                    "current": current,
                    "count": link.count() if link.count else None,
                }
            )
        if links:
            sections.append({"label": section.label, "links": links})
    return {"sections": sections}
