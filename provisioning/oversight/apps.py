from django.apps import AppConfig


class OversightConfig(AppConfig):
    name = "provisioning.oversight"
    label = "oversight"
    verbose_name = "Oversight"

    def ready(self) -> None:
        from provisioning.access import config_cache
        from provisioning.directory import pipeline

        # Registers the Celery tasks in every process (web included): the services
        # queue them by name (``services.queued_task``).
        from . import tasks  # noqa: F401
        from .models import CircuitBreaker, PolicyRule
        from .policy import breaker_gate, deletion_deferral, destructive_recorder, policy_gate
        from .reviews import flag_recorder
        from .services import hold_operation

        # After access control (100): policy rules, then the circuit breaker, which
        # counts only what the rules let through.
        pipeline.register_gate("policy", policy_gate, order=200)
        pipeline.register_gate("circuit-breaker", breaker_gate, order=300)
        # After the audit recorder (100), which writes the change record flags point at.
        pipeline.register_recorder("review-flags", flag_recorder, order=200)
        pipeline.register_recorder("destructive-count", destructive_recorder, order=300)
        pipeline.register_holder(hold_operation)
        pipeline.register_deletion_deferral(deletion_deferral)
        # The policy gate and the breaker read rules and breakers from a per-process copy.
        config_cache.watch(PolicyRule, CircuitBreaker, m2m=(PolicyRule.clients.through,))
