from .models import Agent, AgentRun, RunEvent


def agent_list(*, owner, q: str = "", sort: str = "created_at", order: str = "desc"):
    queryset = Agent.objects.filter(owner=owner)
    if q:
        queryset = queryset.filter(name__icontains=q)
    prefix = "-" if order == "desc" else ""
    return queryset.order_by(f"{prefix}{sort}", f"{prefix}id")


def agent_get(*, owner, agent_id) -> Agent | None:
    if agent_id is None:
        return None
    return Agent.objects.filter(owner=owner, pk=agent_id).first()


def agent_run_get(*, owner, run_id: str) -> AgentRun | None:
    return AgentRun.objects.filter(owner=owner, pk=run_id).first()


def stored_events(*, run_id: str, include_deltas: bool = False) -> list[str]:
    """Return the run's stored event lines in order; deltas only when asked for."""
    queryset = RunEvent.objects.filter(run_id=run_id).order_by("seq")
    if not include_deltas:
        queryset = queryset.exclude(event="content_delta")
    return list(queryset.values_list("data", flat=True))
