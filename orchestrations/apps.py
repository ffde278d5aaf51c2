from django.apps import AppConfig


class OrchestrationsConfig(AppConfig):
    name = "orchestrations"

    def ready(self):
        from agents.runhost import run_host

        from .reaper import reap_lost_runs

        # Celery beat schedules the reaper in production; in the embedded mode
        # the run host calls it.
        run_host().add_embedded_job(reap_lost_runs)
