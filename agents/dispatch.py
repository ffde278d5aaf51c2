"""Handing a stored run to whatever executes it: a Celery worker, or this process.

Queueing can fail (Redis down). The run then stays `pending` with an old
`queued_at`, and the reaper queues it again once the broker is back. A
duplicate delivery is harmless because a run is claimed only once.
"""

import importlib
import logging

from django.conf import settings
from django.utils import timezone

logger = logging.getLogger(__name__)

# model label -> (Celery task name, "module:coroutine function" that executes the run)
EXECUTORS = {
    "agents.AgentRun": ("agents.execute_run", "agents.runner:execute_agent_run"),
    "orchestrations.OrchestrationRun": ("orchestrations.execute_run",
                                        "orchestrations.runner:execute_orchestration_run"),
}


def dispatch_run(model, run_id: str) -> bool:
    """Queue run `run_id` of `model`; return False when the broker could not take it."""
    task_name, executor_path = EXECUTORS[model._meta.label]
    model.objects.filter(pk=run_id).update(queued_at=timezone.now())

    if settings.POWABASE_RUN_EXECUTION == "celery":
        from celery import current_app

        try:
            current_app.send_task(task_name, args=[run_id])
        except Exception as exc:  # kombu raises several connection errors
            logger.warning("queueing run %s failed (%s); the reaper will queue it again",
                           run_id, exc.__class__.__name__)
            return False
        return True

    from .runhost import run_host

    module_name, function_name = executor_path.split(":")
    execute = getattr(importlib.import_module(module_name), function_name)
    run_host().submit(run_id, model, lambda: execute(run_id))
    return True
