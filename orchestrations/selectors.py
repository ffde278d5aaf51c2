from django.db.models import Count, Max, Prefetch

from agents.models import RunStatus

from .models import ChildRun, Entity, Orchestration, OrchestrationRun

# Earlier exchanges of a session that the coordinator sees, newest kept.
SESSION_HISTORY_RUNS = 20


def orchestration_list(*, owner, q: str = "", sort: str = "created_at", order: str = "desc"):
    queryset = Orchestration.objects.filter(owner=owner).annotate(
        entity_count=Count("entities", distinct=True),
        last_run_at=Max("runs__created_at"),
    )
    if q:
        queryset = queryset.filter(name__icontains=q)
    prefix = "-" if order == "desc" else ""
    return queryset.order_by(f"{prefix}{sort}", f"{prefix}id")


def orchestration_get(*, owner, orchestration_id) -> Orchestration | None:
    return (
        Orchestration.objects.filter(owner=owner, pk=orchestration_id)
        .prefetch_related(Prefetch("entities", queryset=Entity.objects.select_related("agent")))
        .first()
    )


def entity_list(*, orchestration: Orchestration):
    return Entity.objects.filter(orchestration=orchestration).select_related("agent")


def run_get(*, owner, run_id: str) -> OrchestrationRun | None:
    return (
        OrchestrationRun.objects.filter(owner=owner, pk=run_id)
        .prefetch_related(Prefetch("child_runs", queryset=ChildRun.objects.order_by("created_at")))
        .first()
    )


def session_history(*, owner_id, session_id: str, before=None) -> list[dict]:
    """Return earlier completed exchanges of a session as chat messages, oldest first."""
    queryset = OrchestrationRun.objects.filter(
        owner_id=owner_id, session_id=session_id, status=RunStatus.COMPLETED
    )
    if before is not None:
        queryset = queryset.filter(created_at__lt=before)
    runs = list(queryset.order_by("-created_at").values("message", "content")[:SESSION_HISTORY_RUNS])
    messages = []
    for run in reversed(runs):
        messages.append({"role": "user", "content": run["message"]})
        messages.append({"role": "assistant", "content": run["content"]})
    return messages
