from celery import shared_task

from agents.runhost import run_host

# Imported at module level so a worker loads litellm once at start, not in
# the first task (and forked pool children share the loaded module).
from .models import OrchestrationRun
from .reaper import reap_lost_runs
from .runner import execute_orchestration_run


@shared_task(name="orchestrations.execute_run", acks_late=True, reject_on_worker_lost=True,
             ignore_result=True)
def execute_orchestration_run_task(run_id: str) -> str:
    """Carry out an orchestration run on this worker process's run host."""
    future = run_host().submit(run_id, OrchestrationRun, lambda: execute_orchestration_run(run_id))
    return future.result()


@shared_task(name="orchestrations.reap_lost_runs", ignore_result=True)
def reap_lost_runs_task() -> list[str]:
    """Fail runs whose worker died; scheduled by Celery beat (CELERY_BEAT_SCHEDULE)."""
    return reap_lost_runs()
