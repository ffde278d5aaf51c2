"""Server-Sent Event responses for a run: replay from the store, then follow live.

Live events come through django-eventstream's listener manager (fed by its
Redis subscription in production, directly in the embedded default). Its
listener queue keeps at most 10 pending items and flags an overflow when it
drops one, and it never ends a stream. So this module treats it only as a
wake-up signal with a payload. Every frame is numbered and duplicates are
skipped. Whenever a gap, an overflow or a new Redis subscription (after a
lost one) shows up, the missing events are read from the store, and after a
long quiet spell too. The stream ends after `complete`.
"""

import asyncio
import json
import logging
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.http import StreamingHttpResponse
from django.utils import timezone
from django_eventstream.views import Listener, get_listener_manager

from .events import TERMINAL_EVENT, channel_for
from .models import TERMINAL_STATUSES, RunEvent

logger = logging.getLogger(__name__)

# Seconds of silence after which the store is read again, in case a
# published event was lost without a sign (a worker's publish failed while
# this process stayed subscribed).
STORE_POLL_SECONDS = 10.0
# How often a quiet stream checks whether the relay resubscribed to Redis.
RELAY_CHECK_SECONDS = 1.0
# How long a new run's stream waits for its first live event before it reads
# the store, in case the worker published before the stream listened.
FIRST_LIVE_SECONDS = 0.1
# A stream of a run that ended this long ago without a `complete` event in the
# store (its process died between the two writes) is closed anyway.
END_GRACE = timedelta(seconds=10)
STORE_BATCH = 500


def _frame(seq: int, event: str, data: str) -> bytes:
    return f"id: {seq}\nevent: {event}\ndata: {data}\n\n".encode()


def _read_stored(run_id: str, after_seq: int) -> list[tuple[int, str, str]]:
    try:
        return list(
            RunEvent.objects.filter(run_id=run_id, seq__gt=after_seq)
            .order_by("seq")
            .values_list("seq", "event", "data")[:STORE_BATCH]
        )
    finally:
        # Executor threads outlive the stream: hand the connection back now.
        connection.close()


def _run_ended_long_ago(model, run_id: str) -> bool:
    """Return True when the run is gone, or ended over END_GRACE_SECONDS ago.

    A run's row is marked finished just before its closing events are
    written, so a recently ended run's `complete` may still be on its way.
    """
    try:
        row = model.objects.filter(pk=run_id).values_list("status", "completed_at").first()
    finally:
        connection.close()
    if row is None:
        return True
    status, completed_at = row
    if status not in TERMINAL_STATUSES:
        return False
    return completed_at is None or timezone.now() - completed_at > END_GRACE



read_stored = sync_to_async(_read_stored, thread_sensitive=False)
run_ended_long_ago = sync_to_async(_run_ended_long_ago, thread_sensitive=False)


def _parse_live(item) -> list[tuple[int, str, str]]:
    if isinstance(item.data, list):  # [[seq, event, data], ...] from agents.events
        try:
            return [(int(seq), str(event), str(data)) for seq, event, data in item.data]
        except (ValueError, TypeError):
            logger.warning("skipping a malformed relayed batch")
            return []
    frames = []
    for line in str(item.data).split("\n"):
        if not line:
            continue
        try:
            data = json.loads(line)
            frames.append((int(data["seq"]), str(data["event"]), line))
        except (ValueError, KeyError, TypeError):
            logger.warning("skipping a malformed relayed event")
    return frames


async def stream_run_events(model, run_id: str, after_seq: int = 0,
                            first_events: list[tuple[int, str, str]] | None = None):
    """Yield SSE frames of run `run_id` with seq > `after_seq`, ending after `complete`.

    `first_events` are the run's stored events from seq 1 on, when the caller
    has just written them. The stream sends them without reading the store.
    It reads the store later only if a live event shows a gap, or if no live
    event has come within FIRST_LIVE_SECONDS, because the worker may have
    published before this stream listened.
    """
    listener = Listener()
    listener.channels = {channel_for(run_id)}
    listener.user_id = "api"
    listener.assign_loop()
    manager = get_listener_manager()
    manager.add_listener(listener)
    keepalive = settings.POWABASE_KEEPALIVE_SECONDS
    last_seq = after_seq
    quiet = 0.0
    since_store = 0.0
    subscriptions = _subscriptions(manager)
    try:
        read_store = True
        live_seen = True
        if first_events:
            read_store = False
            live_seen = False
            chunk, last_seq, _ended, _gap = _take_frames(first_events, last_seq,
                                                         stop_at_gap=False)
            yield chunk
        while True:
            if read_store:
                read_store = False
                since_store = 0.0
                subscriptions = _subscriptions(manager)
                while True:
                    stored = await read_stored(run_id, last_seq)
                    chunk, last_seq, ended, _gap = _take_frames(stored, last_seq,
                                                                stop_at_gap=False)
                    if chunk:
                        yield chunk
                    if ended:
                        return
                    if len(stored) < STORE_BATCH:
                        break

            wait = max(min(RELAY_CHECK_SECONDS if live_seen else FIRST_LIVE_SECONDS,
                           STORE_POLL_SECONDS - since_store, keepalive - quiet), 0.01)
            try:
                await asyncio.wait_for(listener.aevent.wait(), timeout=wait)
            except TimeoutError:
                quiet += wait
                since_store += wait
                if quiet >= keepalive:
                    quiet = 0.0
                    yield b": keepalive\n\n"
                if not live_seen or _subscriptions(manager) != subscriptions:
                    # Events published before this stream listened, or while
                    # the relay was resubscribing, were not delivered here.
                    live_seen = True
                    read_store = True
                elif since_store >= STORE_POLL_SECONDS:
                    read_store = True
                    if await run_ended_long_ago(model, run_id):
                        stored = await read_stored(run_id, last_seq)
                        if not stored:
                            return
                continue

            quiet = 0.0
            live_seen = True
            with manager.lock:
                items = listener.channel_items
                overflow = listener.overflow
                listener.channel_items = {}
                listener.overflow = False
                listener.aevent.clear()

            frames = []
            for channel_items in items.values():
                for item in channel_items:
                    frames.extend(_parse_live(item))
            # The frames of one wake-up go out in one write.
            chunk, last_seq, ended, gap = _take_frames(sorted(frames), last_seq,
                                                       stop_at_gap=True)
            if chunk:
                yield chunk
            if ended:
                return
            if gap or overflow:
                read_store = True
    finally:
        manager.remove_listener(listener)


def _take_frames(rows, last_seq: int, *, stop_at_gap: bool) -> tuple[bytes, int, bool, bool]:
    """Frame the (seq, event, data) rows after `last_seq`, in their order.

    Returns (the frames as one chunk, the new last seq, whether `complete` was
    reached, whether a missing seq stopped it). Stops after `complete`, and at
    the first gap when `stop_at_gap` is set.
    """
    parts = []
    for seq, event, data in rows:
        if seq <= last_seq:
            continue
        if stop_at_gap and seq != last_seq + 1:
            return b"".join(parts), last_seq, False, True
        last_seq = seq
        parts.append(_frame(seq, event, data))
        if event == TERMINAL_EVENT:
            return b"".join(parts), last_seq, True, False
    return b"".join(parts), last_seq, False, False


def _subscriptions(manager) -> int:
    # Only the Redis relay (agents.relay) counts subscriptions. The embedded
    # default delivers in-process, where a dropped event sets the overflow flag.
    return getattr(manager, "subscriptions", 0)


def sse_response(model, run_id: str, after_seq: int = 0,
                 first_events: list[tuple[int, str, str]] | None = None) -> StreamingHttpResponse:
    # The view's database connection would otherwise stay checked out of the
    # pool until the stream ends, so 20 open streams would exhaust the pool.
    connection.close()
    response = StreamingHttpResponse(
        stream_run_events(model, run_id, after_seq, first_events),
        content_type="text/event-stream; charset=utf-8",
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
