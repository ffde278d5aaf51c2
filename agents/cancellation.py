"""Cancelling a hosted run (standalone agent run or team run)."""

import logging

from django.utils import timezone

from powabase.errors import Conflict

from .events import record_closing_events_now
from .models import RunStatus

logger = logging.getLogger(__name__)

CANCELLED_MESSAGE = "The run was cancelled."


def hosted_run_cancel(*, run):
    """Ask for `run` to stop; a run not yet started is cancelled here and now.

    A running run is stopped by the run host that carries it, which polls for
    cancel requests and emits the closing events itself. Raises Conflict
    (`run_finished`) for a run that has already ended.
    """
    if run.is_finished:
        raise Conflict(f"Run {run.id} has already finished ({run.status}).", code="run_finished")

    model = type(run)
    now = timezone.now()
    model.objects.filter(pk=run.pk, cancel_requested_at__isnull=True).update(cancel_requested_at=now)
    # The worker claims only runs without a cancel request, so after the update
    # above a pending run stays pending until this UPDATE ends it.
    cancelled_before_start = model.objects.filter(pk=run.pk, status=RunStatus.PENDING).update(
        status=RunStatus.CANCELLED, completed_at=now, error=CANCELLED_MESSAGE,
        error_code="cancelled",
    )
    if cancelled_before_start:
        record_closing_events_now(run.id, session_id=run.session_id, status=RunStatus.CANCELLED,
                                  error=CANCELLED_MESSAGE, code="cancelled")
        logger.info("run %s cancelled before it started", run.id)
    else:
        logger.info("run %s: cancellation requested", run.id)
    run.refresh_from_db()
    return run
