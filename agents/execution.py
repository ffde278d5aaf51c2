"""Carrying out a stored run on the run host: claim it, run the engine, store the outcome.

Shared by standalone agent runs and team runs. A run is claimed with a
conditional UPDATE (pending -> running), so a task delivered twice never runs
the same run twice; the outcome is written with the same kind of guard, so a
run that the reaper or a cancel already ended is not overwritten.
"""

import asyncio
import logging

from django.conf import settings
from django.utils import timezone

from engine.errors import EngineError, ModelError, StopRun
from engine.hooks import RunHooks
from engine.usage import Usage

from .events import EventRecorder, next_seq, record_closing_events_now
from .models import RunStatus
from .runhost import run_host

logger = logging.getLogger(__name__)

WRITE_FAILED_MESSAGE = "Internal error while storing the run's events."


class RecordingHooks(RunHooks):
    """Engine hooks that store and publish a run's events."""

    def __init__(self, execution: "HostedExecution"):
        self.execution = execution

    async def emit(self, event: str, fields: dict) -> None:
        await self.execution.recorder.emit(event, fields)

    async def model_retry(self, *, agent: str | None, info: dict) -> None:
        run_id = self.execution.run_id
        if info.get("kind") == "fallback":
            logger.warning("run %s: switching from model %s to fallback %s after %s",
                           run_id, info.get("from_model"), info.get("to_model"), info.get("code"))
            await self.emit("model_fallback", {"agent": agent, **_without_kind(info)})
        else:
            logger.warning("run %s: model %s failed with %s; retry %s in %.2f s", run_id,
                           info.get("model"), info.get("code"), info.get("attempt"),
                           info.get("delay_seconds") or 0)
            await self.emit("model_retry", {"agent": agent, **_without_kind(info)})


def _without_kind(info: dict) -> dict:
    return {key: value for key, value in info.items() if key != "kind"}


class HostedExecution:
    """The life of one hosted run. Subclasses say what to run and what to store."""

    model = None  # the run's Django model class

    def __init__(self, run_id: str):
        self.run_id = run_id
        self.host = run_host()
        self.recorder: EventRecorder | None = None
        self.run = None

    async def db(self, fn, *args, **kwargs):
        return await self.host.run_db(fn, *args, **kwargs)

    def _claim(self) -> int | None:
        """Claim the run; return the seq its first event takes, or None if not claimed."""
        now = timezone.now()
        claimed = self.model.objects.filter(
            pk=self.run_id, status=RunStatus.PENDING, cancel_requested_at__isnull=True
        ).update(status=RunStatus.RUNNING, started_at=now, heartbeat_at=now)
        if not claimed:
            return None
        self.run = self.model.objects.get(pk=self.run_id)
        self.load()
        return next_seq(self.run_id)

    def load(self) -> None:
        """Read what the run needs besides its row; runs in the claim's database call."""

    async def execute(self) -> str:
        """Run to the end and return the final status ("skipped" if not claimed)."""
        first_seq = await self.db(self._claim)
        if first_seq is None:
            logger.info("run %s was already claimed or ended; skipping", self.run_id)
            return "skipped"

        logger.info("run %s started", self.run_id)
        self.recorder = EventRecorder(self.run_id, first_seq, self.host.writer)
        hooks = self.make_hooks()
        outcome = None
        status, error, code, stop_reason = RunStatus.COMPLETED, "", "", ""
        try:
            outcome = await self.perform(hooks)
        except asyncio.CancelledError:
            status, error, code = RunStatus.CANCELLED, "The run was cancelled.", "cancelled"
            # Finishing must not be cancelled too: uncancel so the awaits below run.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        except StopRun as exc:
            status, error, code, stop_reason = RunStatus.FAILED, exc.message, exc.code, exc.stop_reason
        except ModelError as exc:
            status, error, code = RunStatus.FAILED, exc.message, exc.code
        except EngineError as exc:
            status, error, code = RunStatus.FAILED, exc.message, exc.code
        except Exception:  # the task boundary: any bug fails this run, not the worker
            logger.exception("run %s failed with an unexpected error", self.run_id)
            status, error, code = RunStatus.FAILED, "Internal error while running.", "internal_error"

        try:
            await self.finish(hooks, outcome, status, error, code, stop_reason)
        except Exception:
            logger.exception("run %s: storing the outcome failed", self.run_id)
            if not self.recorder.failed:
                raise
            # The writes of this run's events failed (the database rejected
            # one), so end the run with events written one at a time instead.
            # NOTE: no test reaches this path since model text is cleaned of
            # NUL (db_text), the one rejection found so far.
            await self.db(self._end_after_failed_write)
            return RunStatus.FAILED
        logger.info("run %s %s%s", self.run_id, status, f" ({code})" if code else "")
        return status

    def _end_after_failed_write(self) -> None:
        ended = self.model.objects.filter(pk=self.run_id, status=RunStatus.RUNNING).update(
            status=RunStatus.FAILED, error=WRITE_FAILED_MESSAGE, error_code="internal_error",
            completed_at=timezone.now(),
        )
        if not ended:
            return
        record_closing_events_now(self.run_id, session_id=getattr(self.run, "session_id", None),
                                  status=RunStatus.FAILED, error=WRITE_FAILED_MESSAGE,
                                  code="internal_error")
        logger.warning("run %s failed because storing its events failed", self.run_id)

    def make_hooks(self) -> RunHooks:
        return RecordingHooks(self)

    async def perform(self, hooks):
        raise NotImplementedError

    async def finish(self, hooks, outcome, status, error, code, stop_reason):
        raise NotImplementedError

    async def emit_terminal(self, *, status: str, content: str, steps: int, usage: Usage,
                            error: str, code: str, stop_reason: str, extra: dict | None = None):
        """Emit the closing events: `error` on failure, then `chunk` on success, then `complete`."""
        recorder = self.recorder
        if status != RunStatus.COMPLETED:
            await recorder.emit("error", {"error": error, "code": code})
        else:
            await recorder.emit("chunk", {"content": content})
        await recorder.emit("complete", {
            "run_id": self.run_id,
            "session_id": getattr(self.run, "session_id", "") or None,
            "content": content,
            "status": status,
            "steps": steps,
            "usage": usage.as_dict(),
            "error": error or None,
            "code": code or None,
            "stop_reason": stop_reason or None,
            **(extra or {}),
        })
        await recorder.flush()


def default_model() -> str:
    return settings.POWABASE_DEFAULT_MODEL
