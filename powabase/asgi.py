import os
import threading

from django.conf import settings
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "powabase.settings")

from powabase.admission import AdmissionLimit, ReleaseStreamThreads  # noqa: E402

application = AdmissionLimit(ReleaseStreamThreads(get_asgi_application()),
                             settings.POWABASE_REQUEST_CONCURRENCY)


def _load_engine() -> None:
    # Importing litellm takes seconds; when runs execute in this process, load
    # it in the background at start instead of in the first run.
    import orchestrations.runner  # noqa: F401
    from agents.runhost import run_host

    # Starting the host also starts its reaper, which ends runs that a
    # previous process left running.
    run_host().start()


if settings.POWABASE_RUN_EXECUTION == "inprocess":
    threading.Thread(target=_load_engine, name="powabase-engine-import", daemon=True).start()
