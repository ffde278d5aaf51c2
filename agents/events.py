"""Run events: how they are encoded, stored, and published to the web processes.

Every event is stored in RunEvent before it is published, so a stream that
misses a published event (a late connect, a full queue, Redis down) finds it
in the store. Deltas are written in batches: one INSERT for many tokens.
"""

import asyncio
import json
import logging
import time

from django.conf import settings
from django.utils import timezone

from .models import RunEvent

logger = logging.getLogger(__name__)

TERMINAL_EVENT = "complete"
# How long a content delta may wait for company before its batch is written.
DELTA_FLUSH_SECONDS = 0.010
DELTA_FLUSH_MAX_EVENTS = 64
# A failing Redis publish is logged at most once per this many seconds.
PUBLISH_ERROR_LOG_INTERVAL = 30.0

_last_publish_error_log = 0.0


def channel_for(run_id: str) -> str:
    return f"{settings.POWABASE_EVENT_CHANNEL_PREFIX}.run.{run_id}"


def encode_event(event: str, run_id: str, seq: int, fields: dict) -> str:
    """Return the event as one line of JSON: the SSE frame's data."""
    data = {"event": event, "run_id": run_id, "seq": seq,
            "ts": timezone.now().isoformat().replace("+00:00", "Z"), **fields}
    # json.dumps escapes CR and LF inside strings, so the line cannot be split
    # into a forged frame. Lone surrogates cannot be written as UTF-8, so such
    # text falls back to ASCII escapes.
    line = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(data, ensure_ascii=True, separators=(",", ":"), default=str)
    return line


def store_and_publish(run_id: str, batch: list[tuple[int, str, str]]) -> None:
    """Store `batch` of (seq, event, data) rows, then publish them in one message.

    Runs in a database thread. A publish failure is logged and swallowed: the
    events are stored, and streams read the store when the relay is quiet.
    """
    # ignore_conflicts makes a retried write (after a lost connection) harmless.
    RunEvent.objects.bulk_create(
        [RunEvent(run_id=run_id, seq=seq, event=event, data=data) for seq, event, data in batch],
        ignore_conflicts=True,
    )
    publish(run_id, [data for _seq, _event, data in batch])


def publish(run_id: str, lines: list[str]) -> None:
    from django_eventstream import send_event

    global _last_publish_error_log
    try:
        send_event(channel_for(run_id), "frames", "\n".join(lines), json_encode=False)
    except Exception as exc:  # redis-py raises several connection errors; the store has the events
        now = time.monotonic()
        if now - _last_publish_error_log > PUBLISH_ERROR_LOG_INTERVAL:
            _last_publish_error_log = now
            logger.warning("publishing events of run %s failed (%s); streams will read them "
                           "from the database", run_id, exc.__class__.__name__)


def next_seq(run_id: str) -> int:
    last = RunEvent.objects.filter(run_id=run_id).order_by("-seq").values_list("seq", flat=True).first()
    return (last or 0) + 1


def record_event_now(run_id: str, event: str, fields: dict) -> int:
    """Store and publish one event from synchronous code; return its seq."""
    seq = next_seq(run_id)
    store_and_publish(run_id, [(seq, event, encode_event(event, run_id, seq, fields))])
    return seq


class EventRecorder:
    """Numbers a run's events, stores them in batches, and publishes them.

    Owned by the one process that hosts the run, so sequence numbers are
    assigned in memory without a database round trip per event. `emit` does
    not wait for the database: writes run in the background, one batch at a
    time in sequence order (asyncio.Lock is first-in, first-out), and
    `flush` waits until everything emitted so far is stored and published.
    """

    def __init__(self, run_id: str, first_seq: int, run_db):
        self.run_id = run_id
        self.seq = first_seq - 1
        self._run_db = run_db
        self._pending: list[tuple[int, str, str]] = []
        self._lock = asyncio.Lock()
        self._flush_handle: asyncio.TimerHandle | None = None
        self._writers: set[asyncio.Task] = set()
        self._failure: BaseException | None = None

    async def emit(self, event: str, fields: dict) -> int:
        if self._failure is not None:
            raise self._failure
        self.seq += 1
        self._pending.append((self.seq, event, encode_event(event, self.run_id, self.seq, fields)))
        if event != "content_delta" or len(self._pending) >= DELTA_FLUSH_MAX_EVENTS:
            self._write_soon()
        elif self._flush_handle is None:
            loop = asyncio.get_running_loop()
            self._flush_handle = loop.call_later(DELTA_FLUSH_SECONDS, self._write_soon)
        return self.seq

    def _write_soon(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        # A task of its own, so a cancelled run still stores every event it has
        # numbered and the stream never has a gap.
        task = asyncio.ensure_future(self._write_pending())
        self._writers.add(task)
        task.add_done_callback(self._writers.discard)

    async def _write_pending(self) -> None:
        try:
            await self._write_locked()
        except Exception as exc:  # the next emit or flush raises it in the run
            logger.warning("storing events of run %s failed (%s)", self.run_id,
                           exc.__class__.__name__)
            self._failure = exc

    async def _write_locked(self) -> None:
        async with self._lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, []
            await self._run_db(store_and_publish, self.run_id, batch)

    async def flush(self) -> None:
        """Wait until every event emitted so far is stored and published."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        await self._write_locked()
        if self._writers:
            await asyncio.gather(*list(self._writers))
        if self._failure is not None:
            raise self._failure
