from django.db.models import Count, IntegerField, Max, Min, OuterRef, Prefetch, Subquery
from django.db.models.functions import Coalesce, Substr

from agents.models import RunStatus

from .models import ChildRun, Entity, Orchestration, OrchestrationRun

# Earlier exchanges of a session passed to the coordinator; the newest are kept.
SESSION_HISTORY_RUNS = 20
# Characters of a run's message shown in run lists.
MESSAGE_PREVIEW_CHARS = 200


def orchestration_list(*, owner, q: str = "", sort: str = "created_at", order: str = "desc"):
    # Correlated subqueries rather than joins: joining entities and runs at once
    # would multiply the rows by (entities x runs) before grouping.
    entity_count = (
        Entity.objects.filter(orchestration=OuterRef("pk")).order_by()
        .values("orchestration").annotate(count=Count("pk")).values("count")
    )
    last_run_at = (
        OrchestrationRun.objects.filter(orchestration=OuterRef("pk"))
        .order_by("-created_at").values("created_at")[:1]
    )
    queryset = Orchestration.objects.filter(owner=owner).annotate(
        entity_count=Coalesce(Subquery(entity_count, output_field=IntegerField()), 0),
        last_run_at=Subquery(last_run_at),
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


def orchestration_run_list(*, orchestration: Orchestration, status: str | None = None,
                           session_id: str | None = None):
    """Return the team's runs, newest first, without the columns a list does not show."""
    queryset = OrchestrationRun.objects.filter(orchestration=orchestration)
    if status:
        queryset = queryset.filter(status=status)
    if session_id:
        queryset = queryset.filter(session_id=session_id)
    return (
        queryset.annotate(message_preview=Substr("message", 1, MESSAGE_PREVIEW_CHARS))
        .defer("message", "config_snapshot", "usage_breakdown")
        .order_by("-created_at", "-id")
    )


def orchestration_session_list(*, orchestration: Orchestration):
    """Return the sessions with runs in this team, most recently active first."""
    return (
        OrchestrationRun.objects.filter(orchestration=orchestration).exclude(session_id="")
        .values("session_id")
        .annotate(run_count=Count("id"), first_run_at=Min("created_at"),
                  last_run_at=Max("created_at"),
                  last_activity_at=Max(Coalesce("completed_at", "created_at")))
        .order_by("-last_activity_at", "session_id")
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
