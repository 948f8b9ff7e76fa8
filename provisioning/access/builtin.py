"""The built-in SCIM roles and console operator roles, as data.

The data migrations freeze their own copy (a migration must not change when
this file does); ``ensure_builtin_roles`` restores the current definitions when
rows are missing, e.g. after a test database flush.
"""

from .models import ALL_PERMISSIONS, OPERATIONS, RESOURCE_TYPES

BUILTIN_ROLES: dict[str, dict] = {
    "provisioner": {
        "description": "Every operation on users and groups.",
        "permissions": list(ALL_PERMISSIONS),
    },
    "read-only": {
        "description": "Reads users and groups; never writes (auditors, reporting).",
        "permissions": [f"{rt}:read" for rt in RESOURCE_TYPES],
    },
    "no-delete": {
        "description": "Creates, updates and deactivates users and groups; never deletes.",
        "permissions": [p for p in ALL_PERMISSIONS if not p.endswith(":delete")],
    },
    "users-only": {
        "description": "Every operation on users; no access to groups.",
        "permissions": [f"User:{op}" for op in OPERATIONS],
    },
}

# Console operator roles, lowest first: each includes the ones before it.
OPERATOR_ROLES = ("viewer", "approver", "administrator")
OPERATOR_PERMISSIONS: dict[str, list[str]] = {
    "viewer": ["console_view"],
    "approver": ["console_view", "console_approve"],
    "administrator": ["console_view", "console_approve", "console_administer"],
}
