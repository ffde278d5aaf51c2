"""ASGI middleware for the web processes under bursts and many open streams.

AdmissionLimit limits how many requests a web process handles at once, in
arrival order. ReleaseStreamThreads frees a stream's request thread.

Django runs each request's synchronous code (middleware, DRF views, ORM) in a
thread of its own. Under a burst of hundreds of requests those threads all
share one interpreter lock and a bounded database pool, so every request
slows down and the first finishes about as late as the last. AdmissionLimit
lets POWABASE_REQUEST_CONCURRENCY requests at a time run until
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


class ReleaseStreamThreads:
    """End a streamed response's request thread once its headers are sent.

    Django gives each request a thread of its own for synchronous code (an
    asgiref ThreadSensitiveContext) and keeps it until the response ends. An
    SSE response runs for minutes on the event loop and needs no thread, yet
    every open stream would keep one idle thread with its memory. When the
    headers of a `text/event-stream` response go out, this shuts the thread
    down. Synchronous code that runs later for the request, such as Django's
    request_finished handlers, gets a new thread from asgiref.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_and_release(message):
            if message["type"] == "http.response.start" and _is_event_stream(message):
                _shut_down_request_thread()
            await send(message)

        await self.app(scope, receive, send_and_release)


def _is_event_stream(message) -> bool:
    for name, value in message.get("headers") or ():
        if name.lower() == b"content-type":
            return value.startswith(b"text/event-stream")
    return False


def _shut_down_request_thread() -> None:
    # asgiref keeps the executor of each ThreadSensitiveContext in these two
    # class attributes (read in asgiref 3.13). Without them nothing happens.
    from asgiref.sync import SyncToAsync

    context = SyncToAsync.thread_sensitive_context.get(None)
    executors = getattr(SyncToAsync, "context_to_thread_executor", None)
    if context is None or executors is None:
        return
    executor = executors.pop(context, None)
    if executor is not None:
        executor.shutdown(wait=False)
