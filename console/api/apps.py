from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "console.api"
    label = "api"
    verbose_name = "Management API"
    default_auto_field = "django.db.models.BigAutoField"
