from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "provisioning.events"
    label = "events"
    verbose_name = "Outbound events"

    def ready(self) -> None:
        # Registers the Celery tasks in every process (web included): the outbox queues
        # them by name (``outbox.task``).
        from . import tasks  # noqa: F401
