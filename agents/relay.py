"""The web processes' side of the event relay through Redis.

Workers publish events in batches (agents.events.publish_many): one message
carries the new events of many runs, each as [seq, event, data], so a stream
need not parse the data to order it. BatchRedisListener reads such messages
as well as django-eventstream's own one-channel messages.

django-eventstream 5.3.4 subscribes each web process to Redis once, on the
first stream, and never again: when Redis restarts the subscription task dies
and the process receives no more live events. ResilientListenerManager
resubscribes with backoff and counts its subscriptions, so a stream can tell
that events may have been lost meanwhile and read the store.
"""

import asyncio
import json
import logging

import django_eventstream.views as eventstream_views
from django.conf import settings
from django_eventstream.event import Event

from .events import RELAY_CHANNEL

logger = logging.getLogger(__name__)

RECONNECT_MAX_SECONDS = 5.0


class BatchRedisListener(eventstream_views.RedisListener):
    def __init__(self, manager: "ResilientListenerManager"):
        super().__init__()
        self.manager = manager

    async def listen(self):
        await self.pubsub.subscribe(RELAY_CHANNEL)
        self.manager.subscriptions += 1
        async for message in self.pubsub.listen():
            if message["type"] != "message":
                continue
            try:
                payload = json.loads(message["data"])
                if "batch" in payload:
                    items = [(channel, data) for channel, data in payload["batch"]]
                else:
                    items = [(payload["channel"], payload["data"])]
            except (ValueError, KeyError, TypeError):
                logger.warning("skipping a malformed relay message")
                continue
            listened = self.manager.listeners_by_channel
            for channel, data in items:
                # Many runs in a batch stream from other processes, or have no open stream.
                if channel in listened:
                    self.manager.add_to_queues(channel, Event(channel, "frames", data))


class ResilientListenerManager(eventstream_views.ListenerManager):
    def __init__(self):
        super().__init__()
        # How many times this process has subscribed to the relay channel.
        self.subscriptions = 0

    async def start_redis_listener(self):
        delay = 0.2
        while True:
            try:
                listener = BatchRedisListener(self)
                self.redis_listener = listener
                await listener.start()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # redis-py raises several connection errors
                logger.warning("event relay subscription to Redis lost (%s); retrying in %.1f s",
                               exc.__class__.__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_SECONDS)
                continue
            delay = 0.2


def install() -> None:
    if hasattr(settings, "EVENTSTREAM_REDIS"):
        eventstream_views.listener_manager = ResilientListenerManager()
