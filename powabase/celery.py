import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "powabase.settings")

app = Celery("powabase")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def load_engine(**kwargs):
    """Import the engine (and litellm, seconds to import) once when a worker starts.

    With the prefork pool this runs before the children fork, so they share it.
    """
    import agents.runner  # noqa: F401
    import orchestrations.runner  # noqa: F401
