from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "provisioning.events"
    label = "events"
    verbose_name = "Outbound events"
