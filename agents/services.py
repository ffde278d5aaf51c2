import logging

from django.conf import settings
from django.db import transaction
from django.db.models import ProtectedError
from django.utils import timezone

from powabase.errors import Conflict

from .dispatch import dispatch_run
from .events import encode_event, record_event_now
from .models import Agent, AgentRun, RunEvent, RunStatus

logger = logging.getLogger(__name__)


def agent_create(*, owner, name: str, model: str | None = None, system_prompt: str = "",
                 description: str = "", settings_: dict | None = None) -> Agent:
    return Agent.objects.create(
        owner=owner, name=name, model=model or settings.POWABASE_DEFAULT_MODEL,
        system_prompt=system_prompt, description=description, settings=settings_ or {},
    )


def agent_update(*, agent: Agent, data: dict) -> Agent:
    for field in ("name", "model", "system_prompt", "description"):
        if field in data:
            setattr(agent, field, data[field])
    if "settings" in data:
        agent.settings = data["settings"]
    agent.save()
    return agent


def agent_delete(*, agent: Agent) -> None:
    teams = sorted(set(agent.entities.values_list("orchestration__name", flat=True)))
    if teams:
        raise Conflict(f"Agent {agent.name} is used by orchestrations: {', '.join(teams)}. "
                       "Remove it from them first.", code="agent_in_use")
    try:
        agent.delete()
    except ProtectedError:
        raise Conflict(f"Agent {agent.name} is used by an orchestration.",
                       code="agent_in_use") from None


def agent_run_submit(*, owner, agent: Agent, message: str, session_id: str | None = None) -> AgentRun:
    """Create an agent run and queue it after commit.

    `session_id` is stored with the run to group it with others; a standalone
    agent does not read earlier messages.
    """
    with transaction.atomic():
        run = AgentRun.objects.create(
            owner=owner, agent=agent, agent_name=agent.name, message=message, model=agent.model,
            session_id=session_id or "",
            config_snapshot={"agent": {"id": str(agent.id), "name": agent.name,
                                       "model": agent.model, "system_prompt": agent.system_prompt,
                                       "settings": agent.settings}},
        )
        RunEvent.objects.create(run_id=run.id, seq=1, event="start",
                                data=encode_event("start", run.id, 1, {"run_id": run.id}))
        transaction.on_commit(lambda: dispatch_agent_run(run.id))
    logger.info("agent run %s submitted for agent %s", run.id, agent.id)
    return run


def dispatch_agent_run(run_id: str) -> None:
    dispatch_run(AgentRun, run_id)


def agent_run_cancel(*, run: AgentRun) -> AgentRun:
    """Ask for the run to stop; a run not yet started is cancelled here and now.

    A running run is stopped by the run host that carries it, which polls for
    cancel requests and emits the closing events itself.
    """
    if run.is_finished:
        raise Conflict(f"Run {run.id} has already finished ({run.status}).", code="run_finished")

    now = timezone.now()
    AgentRun.objects.filter(pk=run.pk, cancel_requested_at__isnull=True).update(
        cancel_requested_at=now
    )
    # The worker claims only runs without a cancel request, so after the update
    # above a pending run stays pending until this UPDATE ends it.
    cancelled_before_start = AgentRun.objects.filter(pk=run.pk, status=RunStatus.PENDING).update(
        status=RunStatus.CANCELLED, completed_at=now, error="The run was cancelled.",
        error_code="cancelled",
    )
    if cancelled_before_start:
        record_event_now(run.id, "error", {"error": "The run was cancelled.", "code": "cancelled"})
        record_event_now(run.id, "complete", {
            "run_id": run.id, "session_id": run.session_id or None, "content": "",
            "status": "cancelled", "steps": 0, "usage": None, "error": "The run was cancelled.",
            "code": "cancelled", "stop_reason": None,
        })
        logger.info("agent run %s cancelled before it started", run.id)
    else:
        logger.info("agent run %s: cancellation requested", run.id)
    run.refresh_from_db()
    return run
