from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "provisioning.access"
    label = "access"
    verbose_name = "Access control"
