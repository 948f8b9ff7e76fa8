from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "provisioning.events"
    label = "events"
    verbose_name = "Outbound events"

    def ready(self) -> None:
        from provisioning.directory import pipeline

        # Registers the Celery tasks in every process (web included): the outbox queues
        # them by name (``outbox.task``).
        from . import tasks  # noqa: F401
        from .recorder import events_recorder

        # The last recorder: after audit (100), whose change set gives the events their
        # txn, review flags (200) and the destructive-operation count (300).
        pipeline.register_recorder("events", events_recorder, order=400)
