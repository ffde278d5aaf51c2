from django.apps import AppConfig


class OrchestrationsConfig(AppConfig):
    name = "orchestrations"
