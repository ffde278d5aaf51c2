from celery import shared_task

from agents.runhost import run_host

from .models import OrchestrationRun


@shared_task(name="orchestrations.execute_run", acks_late=True, reject_on_worker_lost=True,
             ignore_result=True)
def execute_orchestration_run_task(run_id: str) -> str:
    """Carry out an orchestration run on this worker process's run host."""
    from .runner import execute_orchestration_run

    future = run_host().submit(run_id, OrchestrationRun, lambda: execute_orchestration_run(run_id))
    return future.result()
