"""The run host: one asyncio event loop per process that carries many runs at once.

Model calls are slow and I/O-bound, so a process runs every run it hosts as a
task on one event loop in a background thread. Database work goes to a small
thread pool, which bounds the process's database connections. A Celery task
(or, embedded, the web process) submits a run and waits for it.

The host also watches the runs it carries: it refreshes their heartbeat, and
cancels a run's task when a cancel request is stored in the database, which
works whichever machine received the cancel request.
"""

import asyncio
import concurrent.futures
import functools
import logging
import os
import threading
from collections.abc import Callable, Coroutine

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connection
from django.utils import timezone

logger = logging.getLogger(__name__)

# Seconds between two checks for cancel requests of the hosted runs.
CANCEL_POLL_SECONDS = 0.5


def _in_db_thread(fn, *args, **kwargs):
    close_old_connections()
    try:
        return fn(*args, **kwargs)
    finally:
        # With the connection pool this returns the connection to it, so the
        # run host uses at most POWABASE_DB_THREADS connections, and only
        # while they work.
        if connection.settings_dict.get("OPTIONS", {}).get("pool"):
            connection.close()


class RunHost:
    def __init__(self):
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self.db_executor: concurrent.futures.ThreadPoolExecutor | None = None
        # Stores and publishes the events of every hosted run (agents.events).
        self.writer = None
        # run id -> (model class, asyncio task)
        self.hosted: dict[str, tuple[type, asyncio.Task]] = {}
        # Blocking jobs run on the database threads every interval when runs
        # execute in this process (the embedded mode has no Celery beat).
        self.embedded_jobs: list[Callable[[], object]] = []

    def add_embedded_job(self, job: Callable[[], object]) -> None:
        """Run `job` every POWABASE_REAPER_INTERVAL_SECONDS while runs execute in-process."""
        if job not in self.embedded_jobs:
            self.embedded_jobs.append(job)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        self._ensure_started()
        return self._loop

    def start(self) -> None:
        """Start the host's thread and event loop now rather than on the first run."""
        self._ensure_started()

    def _ensure_started(self) -> None:
        # A forked Celery child inherits the parent's objects but not its
        # threads, so the host starts afresh in each process.
        if self._loop is not None and self._pid == os.getpid():
            return
        with self._lock:
            if self._loop is not None and self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self.hosted = {}
            from .events import EventWriter

            self.writer = EventWriter(self.run_db)
            self.db_executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=settings.POWABASE_DB_THREADS, thread_name_prefix="powabase-db"
            )
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def serve():
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.create_task(self._watch())
                loop.run_forever()

            self._thread = threading.Thread(target=serve, name="powabase-run-host", daemon=True)
            self._thread.start()
            ready.wait()
            self._loop = loop

    async def run_db(self, fn: Callable, *args, **kwargs):
        """Run blocking database code `fn` on the host's database threads.

        A lost database connection is retried with backoff for up to
        POWABASE_DB_RETRY_SECONDS, so a run survives a short database outage.
        After that the error propagates and the run fails.
        """
        loop = asyncio.get_running_loop()
        call = functools.partial(_in_db_thread, fn, *args, **kwargs)
        deadline = loop.time() + settings.POWABASE_DB_RETRY_SECONDS
        delay = 0.25
        while True:
            try:
                return await loop.run_in_executor(self.db_executor, call)
            except (OperationalError, InterfaceError) as exc:
                if loop.time() + delay > deadline:
                    raise
                logger.warning("database call %s failed (%s); retrying in %.2f s",
                               getattr(fn, "__name__", "?"), exc.__class__.__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 4.0)

    def submit(self, run_id: str, model, coroutine_factory: Callable[[], Coroutine]):
        """Start a run on the host's loop; return a concurrent Future of its result."""
        loop = self.loop

        async def hosted():
            task = asyncio.current_task()
            self.hosted[run_id] = (model, task)
            try:
                return await coroutine_factory()
            finally:
                self.hosted.pop(run_id, None)

        return asyncio.run_coroutine_threadsafe(hosted(), loop)

    async def _watch(self) -> None:
        """Cancel hosted runs whose cancellation was requested, and keep their heartbeat fresh.

        In the embedded mode there is no Celery beat, so this loop also runs
        the embedded jobs, such as the reaper that ends runs left `running` by
        a previous process.
        """
        since_heartbeat = 0.0
        since_reaper = float(settings.POWABASE_REAPER_INTERVAL_SECONDS)
        while True:
            await asyncio.sleep(CANCEL_POLL_SECONDS)
            since_heartbeat += CANCEL_POLL_SECONDS
            since_reaper += CANCEL_POLL_SECONDS
            if settings.POWABASE_RUN_EXECUTION == "inprocess" and (
                since_reaper >= settings.POWABASE_REAPER_INTERVAL_SECONDS
            ):
                since_reaper = 0.0
                await self._reap()
            if not self.hosted:
                continue
            by_model: dict[type, list[str]] = {}
            for run_id, (model, _task) in list(self.hosted.items()):
                by_model.setdefault(model, []).append(run_id)
            beat = since_heartbeat >= settings.POWABASE_HEARTBEAT_SECONDS
            if beat:
                since_heartbeat = 0.0
            try:
                cancelled = await self.run_db(_poll_hosted_runs, by_model, beat)
            except Exception:  # a database outage must not stop the watcher
                logger.warning("checking hosted runs for cancellation failed", exc_info=True)
                continue
            for run_id in cancelled:
                entry = self.hosted.get(run_id)
                if entry is not None and not entry[1].done():
                    logger.info("cancelling run %s on request", run_id)
                    entry[1].cancel()


    async def _reap(self) -> None:
        for job in list(self.embedded_jobs):
            try:
                await self.run_db(job)
            except Exception:  # a database outage must not stop the watcher
                logger.warning("periodic job %s failed", getattr(job, "__name__", job),
                               exc_info=True)


def _poll_hosted_runs(by_model: dict[type, list[str]], beat: bool) -> list[str]:
    cancelled: list[str] = []
    for model, run_ids in by_model.items():
        cancelled += model.objects.filter(
            pk__in=run_ids, cancel_requested_at__isnull=False
        ).values_list("pk", flat=True)
        if beat:
            model.objects.filter(pk__in=run_ids, status="running").update(
                heartbeat_at=timezone.now()
            )
    return cancelled


_host = RunHost()


def run_host() -> RunHost:
    return _host
