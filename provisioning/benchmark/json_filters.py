"""The ``json`` stage of ``make bench``: filters and ``sortBy`` on attributes held in the
users' JSON documents (no column, no index), over every synthetic user.

Each measurement is the server time of ``GET /Users`` with ``count=100`` through
Django's WSGI handler (as ``measure`` times single requests): a page of 100 and,
when the page is full, the total count, both evaluated with the database's JSON
operators over the whole table.
"""

from __future__ import annotations

from django.db.models import Count

from provisioning.directory.models import User
from provisioning.scim.schema import ENTERPRISE_USER

from .history import CITIES
from .measure import InProcess, timed

PAGE = 100


def _common_title() -> str:
    """The title most users hold (an existing value, so the page is full and counted)."""
    row = (
        User.objects.filter(attributes__has_key="title")
        .values("attributes__title")
        .annotate(n=Count("id"))
        .order_by("-n")
        .first()
    )
    return str(row["attributes__title"]) if row else "Engineer"


def json_filters(client: InProcess, *, repeat: int) -> dict:
    title = _common_title()
    sample = User.objects.order_by("created", "id").only("attributes").first()
    phones = (sample.attributes.get("phoneNumbers") or [{}]) if sample else [{}]
    phone = str(phones[0].get("value", "+1 555 0000000"))
    cases = {
        "filter_title_eq": {"filter": f'title eq "{title}"'},
        "sort_title": {"sortBy": "title"},
        "filter_locality_eq": {"filter": f'addresses.locality eq "{CITIES[3]}"'},
        "filter_phone_eq": {"filter": f'phoneNumbers.value eq "{phone}"'},
        "filter_department_eq": {"filter": f'{ENTERPRISE_USER}:department eq "Engineering"'},
        "filter_title_and_locality": {
            "filter": f'title eq "{title}" and addresses[type eq "work" and locality eq "{CITIES[3]}"]'
        },
    }
    results: dict = {"users": User.objects.count()}
    for name, params in cases.items():
        timing = timed(
            name,
            lambda params=params: client.request("GET", "/Users", count=PAGE, attributes="userName", **params),
            repeat=repeat,
        )
        results[name] = timing.summary() | {"query": params}
    return results
