from django.apps import AppConfig


class BenchmarkConfig(AppConfig):
    """``make bench``: synthetic enterprise-scale data (``loadsynthetic``) and the
    benchmark orchestrator (``runbench``). No models."""

    name = "provisioning.benchmark"
    label = "benchmark"
    verbose_name = "Benchmarks"
