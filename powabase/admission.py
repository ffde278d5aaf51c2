"""Limit how many requests a web process handles at once, in arrival order.

Django runs each request's synchronous code (middleware, DRF views, ORM) in a
thread of its own. Under a burst of hundreds of requests those threads all
share one interpreter lock and a bounded database pool, so every request
slows down and the first finishes about as late as the last. This ASGI
middleware lets POWABASE_REQUEST_CONCURRENCY requests at a time run until
their response starts, and queues the rest first come, first served. A
streamed response (SSE) stops counting once its headers are sent, so open
streams never hold a place.
"""

import asyncio


class AdmissionLimit:
    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit
        self._slots: asyncio.Semaphore | None = None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.limit <= 0:
            await self.app(scope, receive, send)
            return
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.limit)
        slots = self._slots
        await slots.acquire()
        holding = True

        def release() -> None:
            nonlocal holding
            if holding:
                holding = False
                slots.release()

        async def send_and_release(message):
            if message["type"] == "http.response.start":
                release()
            await send(message)

        try:
            await self.app(scope, receive, send_and_release)
        finally:
            release()
