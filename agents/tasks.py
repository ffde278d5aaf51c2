from celery import shared_task

from .models import AgentRun
from .runhost import run_host


@shared_task(name="agents.execute_run", acks_late=True, reject_on_worker_lost=True,
             ignore_result=True)
def execute_agent_run_task(run_id: str) -> str:
    """Carry out a standalone agent run on this worker process's run host."""
    from .runner import execute_agent_run

    future = run_host().submit(run_id, AgentRun, lambda: execute_agent_run(run_id))
    return future.result()
