"""Console pages for registered SCIM extension schemas.

Viewers may read them; registering, changing and removing need the administrator
role and go through ``provisioning.directory.extensions`` with ``operator=
request.user``, so each change is audited in a change set like any other. An
administrator pastes or edits the schema as an RFC 7643 §7 JSON document; every
problem the service finds is shown on the form.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from provisioning.directory import extensions

from .actions import add_service_errors
from .permissions import has_role, require_role
from .signin.stepup import require_step_up

EXAMPLE = {
    "id": "urn:ietf:params:scim:schemas:extension:CustomExtension:2.0:User",
    "name": "CustomExtension",
    "description": "Attributes our IdP sends for every user.",
    "attributes": [
        {
            "name": "costCenterCode",
            "type": "string",
            "multiValued": False,
            "required": False,
            "caseExact": False,
            "mutability": "readWrite",
            "returned": "default",
            "uniqueness": "none",
            "description": "The user's cost center.",
        }
    ],
}


class ExtensionSchemaForm(forms.Form):
    resource_type = forms.ChoiceField(
        label="Resource type",
        choices=[("", "From the URN (…:User or …:Group)"), ("User", "User"), ("Group", "Group")],
        required=False,
        help_text="The resource type the schema extends.",
    )
    document = forms.CharField(
        label="Schema document (JSON)",
        widget=forms.Textarea(attrs={"rows": 24, "class": "mono", "spellcheck": "false"}),
        help_text=(
            "An RFC 7643 §7 schema: id (the URN), name, description and attributes, each with "
            "name, type, multiValued, required, caseExact, mutability, returned, uniqueness "
            "(none), description, and subAttributes for complex attributes."
        ),
    )

    def __init__(self, *args, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if editing:
            # The resource type of a registered schema is kept (values are stored per type).
            del self.fields["resource_type"]

    def clean_document(self):
        text = self.cleaned_data["document"]
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ValidationError(f"This is not valid JSON: {exc}.") from None


def _schema_or_404(schema_id: int):
    schema = extensions.extension_schema_get(schema_id)
    if schema is None:
        raise Http404("No such extension schema")
    return schema


def _pretty(document: dict) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False)


@require_role("viewer")
@require_GET
def schema_list(request: HttpRequest) -> HttpResponse:
    rows = extensions.extension_schemas()
    holders = extensions.extension_schema_holders(rows)
    items = [{"schema": row, "holders": holders[row.pk]} for row in rows]
    return render(request, "console/schemas/list.html", {"items": items})


@require_role("viewer")
@require_GET
def schema_detail(request: HttpRequest, schema_id: int) -> HttpResponse:
    schema = _schema_or_404(schema_id)
    context = {
        "schema": schema,
        "holders": extensions.extension_holders(schema.resource_type, schema.urn),
        "document_json": _pretty(schema.document),
        "can_administer": has_role(request.user, "administrator"),
    }
    return render(request, "console/schemas/detail.html", context)


def _save(request: HttpRequest, form: ExtensionSchemaForm, schema=None):
    try:
        return extensions.extension_schema_save(
            document=form.cleaned_data["document"],
            resource_type=form.cleaned_data.get("resource_type") or None,
            schema=schema,
            update_existing=schema is not None,
            operator=request.user,
        )
    except ValidationError as error:
        add_service_errors(form, error)
        return None


@require_role("administrator")
@require_step_up
@require_http_methods(["GET", "POST"])
def schema_create(request: HttpRequest) -> HttpResponse:
    data = request.POST if request.method == "POST" else None
    form = ExtensionSchemaForm(data, initial={"document": _pretty(EXAMPLE)})
    if request.method == "POST" and form.is_valid():
        saved = _save(request, form)
        if saved is not None:
            schema, _outcome = saved
            messages.success(request, f"Extension schema {schema.urn} registered.")
            return redirect("console:schema_detail", schema_id=schema.pk)
    status = 400 if form.is_bound else 200
    return render(
        request, "console/schemas/form.html", {"form": form, "schema": None}, status=status
    )


@require_role("administrator")
@require_step_up
@require_http_methods(["GET", "POST"])
def schema_edit(request: HttpRequest, schema_id: int) -> HttpResponse:
    schema = _schema_or_404(schema_id)
    data = request.POST if request.method == "POST" else None
    form = ExtensionSchemaForm(data, initial={"document": _pretty(schema.document)}, editing=True)
    if request.method == "POST" and form.is_valid():
        saved = _save(request, form, schema)
        if saved is not None:
            schema, outcome = saved
            messages.success(
                request,
                f"Extension schema {schema.urn} "
                + ("saved." if outcome == "updated" else "unchanged: nothing to save."),
            )
            return redirect("console:schema_detail", schema_id=schema.pk)
    status = 400 if form.is_bound else 200
    return render(
        request, "console/schemas/form.html", {"form": form, "schema": schema}, status=status
    )


@require_role("administrator")
@require_step_up
@require_GET
def schema_delete_confirm(request: HttpRequest, schema_id: int) -> HttpResponse:
    schema = _schema_or_404(schema_id)
    context = {
        "schema": schema,
        "holders": extensions.extension_holders(schema.resource_type, schema.urn),
    }
    return render(request, "console/schemas/delete_confirm.html", context)


@require_role("administrator")
@require_step_up
@require_POST
def schema_delete(request: HttpRequest, schema_id: int) -> HttpResponse:
    schema = _schema_or_404(schema_id)
    try:
        extensions.extension_schema_delete(schema=schema, operator=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("console:schema_detail", schema_id=schema.pk)
    messages.success(request, f"Extension schema {schema.urn} removed.")
    return redirect("console:schema_list")
