"""Audit exports and IdP-sent text: the CSV export never hands a spreadsheet a formula
(OWASP "CSV Injection": a cell starting with ``= + - @``, tab or carriage return gets a
leading ``'``), while the JSON Lines export keeps every value exactly as stored."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.urls import reverse

from provisioning.audit import selectors
from provisioning.audit.context import change_set_scope
from provisioning.audit.models import ChangeRecord
from tests.factories import ProvisionedUserFactory

pytestmark = pytest.mark.django_db

CSV = reverse("console:audit_export_csv")
JSONL = reverse("console:audit_export_jsonl")

# userNames an IdP may send, each one a formula to some spreadsheet once exported.
HOSTILE = [
    "=HYPERLINK(\"http://evil.example\")@x",
    "+1+cmd|' /C calc'!A0@x",
    "-2+3@x",
    "@SUM(1+1)@x",
    "\t=1+1@x",
    "\r=1+1@x",
    "\n=1+1@x",
    "\tplain-after-tab@x",
    "\rplain-after-cr@x",
    "  =1+1@x",
    "\u00a0=1+1@x",
    "\u200b=1+1@x",
    "\ufeff@SUM(1)@x",
    "\uff1d1+1@x",
]
HARMLESS = ["ana@example.com", "a=b@example.com", "x-1@example.com", "  ana2@example.com", "'quoted@x"]


def provision(idp, names):
    for name in names:
        with change_set_scope(client=idp, source="scim"):
            ProvisionedUserFactory(userName=name, client=idp)


def csv_cells(response, column: str) -> list[str]:
    text = b"".join(response.streaming_content).decode()
    return [row[column] for row in csv.DictReader(io.StringIO(text, newline=""))]


def test_every_formula_lead_is_neutralised_in_csv(approver_client, idp):
    provision(idp, HOSTILE + HARMLESS)
    cells = csv_cells(approver_client.get(CSV, {"resource_type": "User"}), "object_repr")
    assert sorted(cells) == sorted(["'" + name for name in HOSTILE] + HARMLESS)


@pytest.mark.parametrize("name", HOSTILE)
def test_a_neutralised_cell_starts_with_a_quote_and_keeps_the_rest(name):
    assert selectors._defuse(name) == "'" + name


@pytest.mark.parametrize("value", HARMLESS + ["", 12, -3, None, "1-2", "{\"a\": \"=1\"}"])
def test_other_values_are_exported_unchanged(value):
    assert selectors._defuse(value) == value


def test_json_lines_keep_every_value_exactly(approver_client, idp):
    provision(idp, HOSTILE + HARMLESS)
    body = b"".join(approver_client.get(JSONL, {"resource_type": "User"}).streaming_content)
    exported = [json.loads(line) for line in body.decode().split("\n") if line]
    assert {x["kind"] for x in exported} == {"change_record"}
    stored = {r.pk: r.resource_name for r in ChangeRecord.objects.filter(pk__in=[x["id"] for x in exported])}
    assert sorted(x["object_repr"] for x in exported) == sorted(HOSTILE + HARMLESS)
    for line in exported:
        assert line["object_repr"] == stored[line["id"]]
    # One line per entry: a value's own line breaks are escaped, never raw.
    assert body.count(b"\n") == len(HOSTILE + HARMLESS)


def test_a_change_value_is_one_json_cell_that_never_leads_with_a_formula(approver_client, idp):
    provision(idp, ["=1+1@x"])
    cells = csv_cells(approver_client.get(CSV, {"resource_type": "User"}), "changes")
    assert cells and all(cell.startswith("{") for cell in cells)
    assert "=1+1@x" in cells[0]
