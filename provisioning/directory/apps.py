from django.apps import AppConfig


class DirectoryConfig(AppConfig):
    name = "provisioning.directory"
    label = "directory"
    verbose_name = "Directory"
