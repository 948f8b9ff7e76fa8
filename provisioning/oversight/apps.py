from django.apps import AppConfig


class OversightConfig(AppConfig):
    name = "provisioning.oversight"
    label = "oversight"
    verbose_name = "Oversight"
