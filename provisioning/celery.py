"""Celery application. With no broker configured, tasks run in-process."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "provisioning.settings")

app = Celery("provisioning")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
