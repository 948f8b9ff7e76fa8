from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "provisioning.access"
    label = "access"
    verbose_name = "Access control"

    def ready(self) -> None:
        from . import config_cache
        from .models import Role, ScimClient

        # Roles are cached per process (the token lookup's role); a deleted client leaves
        # the policy rules that named it, without m2m signals.
        config_cache.watch(Role, deletes=(ScimClient,))
