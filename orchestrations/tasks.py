from celery import shared_task

from agents.runhost import run_host

from .models import OrchestrationRun

# The engine (and litellm, which takes seconds to import) is loaded when a
# worker starts (powabase/celery.py), not here: web processes import this
# module to queue tasks and must stay fast to start.


@shared_task(name="orchestrations.execute_run", acks_late=True, reject_on_worker_lost=True,
             ignore_result=True)
def execute_orchestration_run_task(run_id: str) -> str:
    """Carry out an orchestration run on this worker process's run host."""
    from .runner import execute_orchestration_run

    future = run_host().submit(run_id, OrchestrationRun, lambda: execute_orchestration_run(run_id))
    return future.result()


@shared_task(name="orchestrations.reap_lost_runs", ignore_result=True)
def reap_lost_runs_task() -> list[str]:
    """Fail runs whose worker died and requeue lost pending runs; scheduled by Celery beat."""
    from .reaper import reap_lost_runs, requeue_stalled_runs

    return reap_lost_runs() + requeue_stalled_runs()
