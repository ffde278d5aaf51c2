"""Ending runs whose worker died.

A hosted run's heartbeat is refreshed every few seconds by the process that
carries it. A run still `running` with an old heartbeat has lost its worker
(killed, out of memory, machine gone): the reaper marks it `failed` with code
`worker_lost` and emits the terminal events, so no stream waits forever. The
update is conditional on the stale heartbeat, so a run that is alive after
all is left alone, and a redelivered task cannot claim a reaped run because
claiming needs status `pending`.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from agents.events import record_closing_events_now
from agents.models import AgentRun, RunStatus

from .models import ChildRun, OrchestrationRun

logger = logging.getLogger(__name__)

WORKER_LOST_MESSAGE = "The worker carrying this run stopped; the run did not finish."
# A pending run queued this long ago and still not claimed is queued again:
# its first queueing failed (broker down) or its message was lost.
REQUEUE_AFTER = timedelta(minutes=5)


def reap_lost_runs() -> list[str]:
    """Fail every running run whose heartbeat is older than the stale limit; return their ids."""
    stale_before = timezone.now() - timedelta(seconds=settings.POWABASE_REAPER_STALE_SECONDS)
    stale = Q(status=RunStatus.RUNNING) & (Q(heartbeat_at__lt=stale_before) | Q(heartbeat_at__isnull=True))
    reaped = []
    for model in (OrchestrationRun, AgentRun):
        for run in model.objects.filter(stale).only("id", "session_id"):
            if _fail_lost_run(model, run, stale_before):
                reaped.append(run.id)
    return reaped


def requeue_stalled_runs() -> list[str]:
    """Queue again the pending runs whose queueing is older than REQUEUE_AFTER; return their ids."""
    from agents.dispatch import dispatch_run

    before = timezone.now() - REQUEUE_AFTER
    requeued = []
    for model in (OrchestrationRun, AgentRun):
        pending = model.objects.filter(
            Q(status=RunStatus.PENDING, cancel_requested_at__isnull=True)
            & (Q(queued_at__lt=before) | Q(queued_at__isnull=True, created_at__lt=before))
        ).values_list("pk", flat=True)[:500]
        for run_id in pending:
            logger.warning("run %s is still pending; queueing it again", run_id)
            if dispatch_run(model, run_id):
                requeued.append(run_id)
    return requeued


def _fail_lost_run(model, run, stale_before) -> bool:
    now = timezone.now()
    changed = model.objects.filter(
        Q(pk=run.pk, status=RunStatus.RUNNING)
        & (Q(heartbeat_at__lt=stale_before) | Q(heartbeat_at__isnull=True))
    ).update(status=RunStatus.FAILED, error=WORKER_LOST_MESSAGE, error_code="worker_lost",
             completed_at=now)
    if not changed:
        return False

    if model is OrchestrationRun:
        ChildRun.objects.filter(parent_id=run.pk, status=RunStatus.RUNNING).update(
            status=RunStatus.FAILED, error=WORKER_LOST_MESSAGE, error_code="worker_lost",
            completed_at=now,
        )
    record_closing_events_now(run.pk, session_id=run.session_id, status=RunStatus.FAILED,
                              error=WORKER_LOST_MESSAGE, code="worker_lost", steps=None)
    logger.warning("run %s failed: its worker stopped sending heartbeats", run.pk)
    return True
