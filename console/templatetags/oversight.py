"""The dashboard's oversight panel: what waits for an operator, with links to it."""

from __future__ import annotations

from django import template

from console.oversight_selectors import oversight_summary

register = template.Library()


@register.inclusion_tag("console/oversight/dashboard_panel.html")
def oversight_panel() -> dict:
    return oversight_summary()
