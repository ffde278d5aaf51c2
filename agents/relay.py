"""Keep django-eventstream's Redis subscription alive across Redis restarts.

django-eventstream 5.3.4 subscribes each web process to Redis once, on the
first stream, and never again: when Redis restarts the subscription task dies
and the process receives no more live events. This manager resubscribes with
backoff; streams meanwhile read the event store.
"""

import asyncio
import logging

import django_eventstream.views as eventstream_views
from django.conf import settings

logger = logging.getLogger(__name__)

RECONNECT_MAX_SECONDS = 5.0


class ResilientListenerManager(eventstream_views.ListenerManager):
    async def start_redis_listener(self):
        delay = 0.2
        while True:
            try:
                listener = eventstream_views.RedisListener()
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
