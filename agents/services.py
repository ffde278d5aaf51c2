import logging

from django.conf import settings
from django.db import transaction
from django.db.models import ProtectedError

from powabase.errors import Conflict

from .cancellation import hosted_run_cancel
from .dispatch import dispatch_run
from .events import encode_event
from .models import Agent, AgentRun, RunEvent

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
    """Ask for the agent run to stop; see agents.cancellation.hosted_run_cancel."""
    return hosted_run_cancel(run=run)
