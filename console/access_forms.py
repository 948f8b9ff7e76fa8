"""Forms for SCIM clients, tokens and roles. They parse what an operator typed;
the access services validate it (names, CIDRs, attribute paths) and raise
``ValidationError`` keyed by field, which ``actions.add_service_errors`` puts back
on the form.
"""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from provisioning.access.models import ALL_PERMISSIONS, OPERATIONS, RESOURCE_TYPES, Role

from . import selectors

GRACE_CHOICES = [
    ("", "Keep working until revoked"),
    ("3600", "Expire in 1 hour"),
    ("86400", "Expire in 24 hours"),
    ("604800", "Expire in 7 days"),
]


def _lines(value: str) -> list[str]:
    return [line.strip() for line in (value or "").splitlines() if line.strip()]


class RoleChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Role) -> str:
        return f"{obj.name} (built-in)" if obj.built_in else obj.name


class ExpiryField(forms.DateTimeField):
    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")

    def validate(self, value):
        super().validate(value)
        if value is not None and value <= timezone.now():
            raise ValidationError("The expiry must be in the future.")


class ClientCreateForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="The IdP connection, e.g. “Okta production”.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    role = RoleChoiceField(queryset=Role.objects.none(), empty_label=None)
    expires_at = ExpiryField(
        label="Token expires (UTC)", required=False, help_text="Leave empty for no expiry."
    )
    allowed_networks = forms.CharField(
        label="Allowed networks",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "203.0.113.0/24"}),
        help_text="One CIDR per line; the token works only from these addresses. Empty: anywhere.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].queryset = selectors.role_choices()

    def clean_allowed_networks(self) -> list[str]:
        return _lines(self.cleaned_data["allowed_networks"])


class TokenRotateForm(forms.Form):
    expire_old_in = forms.TypedChoiceField(
        label="Other active tokens",
        choices=GRACE_CHOICES,
        required=False,
        coerce=lambda seconds: timedelta(seconds=int(seconds)),
        empty_value=None,
    )


class RoleAssignForm(forms.Form):
    role = RoleChoiceField(queryset=Role.objects.none(), empty_label=None)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].queryset = selectors.role_choices()


class RoleForm(forms.Form):
    """A role: the resource x operation matrix and its narrowing options.

    For a built-in role only the description is editable (``scim_role_update``
    refuses anything else); the other fields are disabled, so they are not read.
    """

    name = forms.CharField(max_length=64, widget=forms.TextInput(attrs={"autocomplete": "off"}))
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    permissions = forms.MultipleChoiceField(
        choices=[(p, p) for p in ALL_PERMISSIONS],
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    own_resources_only = forms.BooleanField(
        label="Only resources this client created",
        required=False,
        help_text="Other users and groups are invisible to it (answered 404).",
    )
    forbidden_attributes = forms.CharField(
        label="Attributes it may not change",
        required=False,
        widget=forms.Textarea(
            attrs={
                "rows": 3,
                "placeholder": "active\nurn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
            }
        ),
        help_text="One attribute name per line, e.g. active, userName, or an enterprise extension path.",
    )
    protected_group_names = forms.CharField(
        label="Protected groups",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Domain Admins\nadmin-*"}),
        help_text="Group names or glob patterns (case-insensitive) whose membership it may not change.",
    )

    def __init__(self, *args, built_in: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.built_in = built_in
        if built_in:
            for name, field in self.fields.items():
                if name != "description":
                    field.disabled = True
                    # A placeholder in a disabled box reads like a value the role has.
                    field.widget.attrs.pop("placeholder", None)

    @classmethod
    def initial_for(cls, role: Role) -> dict:
        return {
            "name": role.name,
            "description": role.description,
            "permissions": list(role.permissions),
            "own_resources_only": role.own_resources_only,
            "forbidden_attributes": "\n".join(role.forbidden_attributes),
            "protected_group_names": "\n".join(role.protected_group_names),
        }

    def service_fields(self) -> dict:
        """The cleaned values as the role services take them."""
        data = self.cleaned_data
        if self.built_in:
            return {"description": data["description"]}
        return {
            "name": data["name"],
            "description": data["description"],
            "permissions": data["permissions"],
            "own_resources_only": data["own_resources_only"],
            "forbidden_attributes": _lines(data["forbidden_attributes"]),
            "protected_group_names": _lines(data["protected_group_names"]),
        }

    def matrix(self) -> list[dict]:
        """Rows of resource types, a cell per operation, each checked or not, for the template."""
        if self.is_bound and not self.built_in:
            selected = set(self.data.getlist("permissions"))
        else:
            selected = set(self.initial.get("permissions") or [])
        field = self["permissions"]
        return [
            {
                "resource_type": resource_type,
                "cells": [
                    {
                        "operation": operation,
                        "value": f"{resource_type}:{operation}",
                        "checked": f"{resource_type}:{operation}" in selected,
                        "id": f"{field.auto_id}_{resource_type}_{operation}",
                    }
                    for operation in OPERATIONS
                ],
            }
            for resource_type in RESOURCE_TYPES
        ]


def permission_matrix(role: Role) -> list[dict]:
    """The role's grants as rows of resource types and a yes/no per operation (read-only pages)."""
    return [
        {
            "resource_type": resource_type,
            "cells": [
                {"operation": op, "allowed": role.allows(resource_type, op)} for op in OPERATIONS
            ],
        }
        for resource_type in RESOURCE_TYPES
    ]
