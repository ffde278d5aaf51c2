"""Run events: how they are encoded, stored, and published to the web processes.

Every event is stored in RunEvent before it is published, so a stream that
misses a published event (a late connect, a full queue, Redis down) finds it
in the store. A process writes the events of all the runs it hosts together:
one INSERT and one Redis message for whatever the runs emitted meanwhile.
"""

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from .models import RunEvent

logger = logging.getLogger(__name__)

TERMINAL_EVENT = "complete"
# How long a content delta may wait for company when the writer is idle.
DELTA_FLUSH_SECONDS = 0.010
# Queued events that start a write without waiting for DELTA_FLUSH_SECONDS.
FLUSH_MAX_EVENTS = 256
# Rows per INSERT statement, well below PostgreSQL's limit of bind parameters.
INSERT_BATCH_ROWS = 2000
# Runs per relayed Redis message, so one message stays a few hundred KB.
RELAY_MESSAGE_RUNS = 100
# django-eventstream's Redis channel, which every web process subscribes to.
RELAY_CHANNEL = "events_channel"
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
    """Store `batch` of (seq, event, data) rows of one run, then publish them."""
    # ignore_conflicts makes a retried write (after a lost connection) harmless.
    RunEvent.objects.bulk_create(
        [RunEvent(run_id=run_id, seq=seq, event=event, data=data) for seq, event, data in batch],
        ignore_conflicts=True,
    )
    publish_many([(run_id, batch)])


def publish_many(items: list[tuple[str, list[tuple[int, str, str]]]]) -> None:
    """Publish (run id, [(seq, event, data), ...]) pairs to the streams of every web process.

    With Redis, the pairs travel in as few messages as possible on
    django-eventstream's channel, in a format our relay reads (agents.relay).
    Without Redis (the embedded default) the streams live in this process and
    get the lines directly. A publish failure is logged and swallowed: the
    events are stored, and streams read the store when the relay goes quiet.
    """
    from django_eventstream import eventstream
    from django_eventstream.event import Event
    from django_eventstream.views import get_listener_manager

    global _last_publish_error_log
    if eventstream.redis_client is None:
        manager = get_listener_manager()
        for run_id, rows in items:
            channel = channel_for(run_id)
            manager.add_to_queues(channel, Event(channel, "frames", rows))
        return
    try:
        pipe = eventstream.redis_client.pipeline(transaction=False)
        for start in range(0, len(items), RELAY_MESSAGE_RUNS):
            batch = [[channel_for(run_id), rows]
                     for run_id, rows in items[start:start + RELAY_MESSAGE_RUNS]]
            pipe.publish(RELAY_CHANNEL, json.dumps({"batch": batch}, separators=(",", ":")))
        pipe.execute()
    except Exception as exc:  # redis-py raises several connection errors; the store has the events
        now = time.monotonic()
        if now - _last_publish_error_log > PUBLISH_ERROR_LOG_INTERVAL:
            _last_publish_error_log = now
            logger.warning("publishing events of %d runs failed (%s), so streams will read "
                           "them from the database", len(items), exc.__class__.__name__)


def next_seq(run_id: str) -> int:
    last = RunEvent.objects.filter(run_id=run_id).order_by("-seq").values_list("seq", flat=True).first()
    return (last or 0) + 1


def record_closing_events_now(run_id: str, *, session_id: str | None, status: str, error: str,
                              code: str, steps: int | None = 0) -> None:
    """Store and publish a run's `error` and `complete` events from synchronous code.

    For runs that end outside a run host: cancelled before they started,
    left by a lost worker, or failed while storing their own events.
    """
    seq = next_seq(run_id)
    complete = {"run_id": run_id, "session_id": session_id or None, "content": "",
                "status": status, "steps": steps, "usage": None, "error": error, "code": code,
                "stop_reason": None}
    store_and_publish(run_id, [
        (seq, "error", encode_event("error", run_id, seq, {"error": error, "code": code})),
        (seq + 1, "complete", encode_event("complete", run_id, seq + 1, complete)),
    ])


@dataclass
class _RunWrites:
    """The writes one run queued for the writer's next write, and the future resolved by it."""

    done: asyncio.Future
    rows: list[tuple[int, str, str]] = field(default_factory=list)
    calls: list[Callable[[], object]] = field(default_factory=list)


def _store_writes(writes: dict[str, _RunWrites]) -> None:
    """Store the queued events and run the queued calls in one transaction, then publish."""
    with transaction.atomic():
        RunEvent.objects.bulk_create(
            [RunEvent(run_id=run_id, seq=seq, event=event, data=data)
             for run_id, queued in writes.items() for seq, event, data in queued.rows],
            ignore_conflicts=True, batch_size=INSERT_BATCH_ROWS,
        )
        for queued in writes.values():
            for call in queued.calls:
                call()
    publish_many([(run_id, queued.rows) for run_id, queued in writes.items() if queued.rows])


class EventWriter:
    """Stores and publishes the events of every run a process hosts.

    Runs queue their events here, together with other writes that must land
    in order with them (child-run rows, the run's outcome). One write at a
    time takes everything queued: one transaction, one INSERT, one Redis
    round trip, whatever the number of runs. Writes run one after another, so
    each run's events are stored and published in sequence order. A lone
    content delta waits DELTA_FLUSH_SECONDS for company when the writer is
    idle. Any other event starts a write on the loop's next turn, so events
    emitted back to back share it.
    """

    def __init__(self, run_db):
        self._run_db = run_db
        self._queued: dict[str, _RunWrites] = {}
        self._queued_rows = 0
        self._timer: asyncio.TimerHandle | None = None
        self._soon = False
        self._writing: asyncio.Task | None = None

    def add_event(self, run_id: str, row: tuple[int, str, str], *, urgent: bool) -> asyncio.Future:
        """Queue one (seq, event, data) row of `run_id`; return the future of its write."""
        queued = self._queued_for(run_id)
        queued.rows.append(row)
        self._queued_rows += 1
        self._schedule(urgent or self._queued_rows >= FLUSH_MAX_EVENTS)
        return queued.done

    def add_call(self, run_id: str, call: Callable[[], object]) -> asyncio.Future:
        """Queue blocking database code to run in the next write's transaction."""
        queued = self._queued_for(run_id)
        queued.calls.append(call)
        self._schedule(True)
        return queued.done

    def _queued_for(self, run_id: str) -> _RunWrites:
        queued = self._queued.get(run_id)
        if queued is None:
            done = asyncio.get_running_loop().create_future()
            # Reading the exception here keeps asyncio from reporting it as
            # never retrieved when no run waits. _fail logs it.
            done.add_done_callback(lambda f: f.cancelled() or f.exception())
            queued = self._queued[run_id] = _RunWrites(done)
        return queued

    def _schedule(self, now: bool) -> None:
        if self._writing is not None or self._soon:
            return  # the current write starts the next one when it ends
        loop = asyncio.get_running_loop()
        if now:
            # call_soon rather than at once: events emitted back to back in
            # this turn of the loop (a run's closing events) join the write.
            self._soon = True
            loop.call_soon(self._start)
        elif self._timer is None:
            self._timer = loop.call_later(DELTA_FLUSH_SECONDS, self._start)

    def _start(self) -> None:
        self._soon = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._writing is None and self._queued:
            self._writing = asyncio.ensure_future(self._write_all())

    async def _write_all(self) -> None:
        try:
            while self._queued:
                writes, self._queued, self._queued_rows = self._queued, {}, 0
                await self._write(writes)
        finally:
            self._writing = None

    async def _write(self, writes: dict[str, _RunWrites]) -> None:
        try:
            await self._run_db(_store_writes, writes)
        except Exception as exc:
            # A database gone for longer than run_db's retries fails every run.
            if isinstance(exc, (OperationalError, InterfaceError)) or len(writes) == 1:
                self._fail(writes, exc)
                return
            # One run's bad write must not fail the others: write run by run.
            for run_id, queued in writes.items():
                await self._write({run_id: queued})
            return
        for queued in writes.values():
            if not queued.done.done():
                queued.done.set_result(None)

    @staticmethod
    def _fail(writes: dict[str, _RunWrites], error: Exception) -> None:
        for run_id, queued in writes.items():
            logger.warning("storing events of run %s failed (%s)", run_id,
                           error.__class__.__name__)
            if not queued.done.done():
                queued.done.set_exception(error)

    async def flush(self, last: asyncio.Future | None) -> None:
        """Start writing now, and wait until `last` (a future add_* returned) is done."""
        self._start()
        if last is not None:
            # asyncio.wait neither raises the write's error (the recorder
            # reads it) nor cancels the write when the waiting run is cancelled.
            await asyncio.wait([last])


class EventRecorder:
    """Numbers a run's events and hands them to the process's EventWriter.

    Owned by the one process that hosts the run, so sequence numbers are
    assigned in memory without a database round trip per event. `emit` does
    not wait for the database; `flush` waits until everything queued so far
    is stored and published. A failed write fails the run at its next emit
    or flush. The writer is independent of the run's task, so a cancelled
    run still stores every event it has numbered and its stream has no gap.
    """

    def __init__(self, run_id: str, first_seq: int, writer: EventWriter):
        self.run_id = run_id
        self.seq = first_seq - 1
        self._writer = writer
        self._last: asyncio.Future | None = None
        self._failure: BaseException | None = None

    @property
    def failed(self) -> bool:
        """True once a write of this run's events or calls has failed."""
        return self._failure is not None

    def _check(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _track(self, done: asyncio.Future) -> None:
        if done is not self._last:
            self._last = done
            done.add_done_callback(self._note_failure)

    def _note_failure(self, done: asyncio.Future) -> None:
        if not done.cancelled() and done.exception() is not None and self._failure is None:
            self._failure = done.exception()

    async def emit(self, event: str, fields: dict) -> int:
        self._check()
        self.seq += 1
        row = (self.seq, event, encode_event(event, self.run_id, self.seq, fields))
        self._track(self._writer.add_event(self.run_id, row, urgent=event != "content_delta"))
        return self.seq

    def write(self, call: Callable[[], object]) -> None:
        """Run blocking database code `call` in order with this run's events, without waiting."""
        self._check()
        self._track(self._writer.add_call(self.run_id, call))

    async def flush(self) -> None:
        """Wait until every event emitted and call queued so far is stored and published."""
        await self._writer.flush(self._last)
        self._check()
