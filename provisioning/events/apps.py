from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "provisioning.events"
    label = "events"
    verbose_name = "Outbound events"

    def ready(self) -> None:
        from provisioning.access import config_cache
        from provisioning.directory import pipeline

        from .models import EventStream

        # Every write reads the stream list (``outbox.streams``): a per-process copy,
        # reloaded when a stream is saved or deleted.
        config_cache.watch(EventStream)

        # Registers the Celery tasks in every process (web included): the outbox queues
        # them by name (``outbox.task``).
        from . import tasks  # noqa: F401
        from .recorder import events_recorder

        # The last recorder: after audit (100), whose change set gives the events their
        # txn, review flags (200) and the destructive-operation count (300).
        pipeline.register_recorder("events", events_recorder, order=400)
