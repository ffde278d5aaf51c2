"""Run an orchestration from the terminal and print its progress as it happens.

The command reads the run's events from the RunEvent store, so it works the
same whether the run executes in this process (embedded) or on a Celery
worker: every event is stored before it is published.
"""

import json
import logging
import signal
import sys
import threading
import time
import uuid

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from agents.models import RunEvent
from orchestrations.models import Orchestration, OrchestrationRun
from orchestrations.services import run_cancel, run_submit
from orchestrations.terminal import TerminalRenderer
from powabase.errors import Conflict, ServiceError

POLL_SECONDS = 0.05
# How often the run row is read to notice a run that ended without a
# `complete` event, or that no worker has picked up.
STATUS_CHECK_SECONDS = 2.0
# A hole in the sequence numbers is waited for this long before it is skipped.
GAP_WAIT_SECONDS = 1.0
PENDING_NOTICE_SECONDS = 10.0
# After Ctrl-C, how long to wait for the run to report its cancellation.
CANCEL_WAIT_SECONDS = 15.0
EXIT_INTERRUPTED = 130
QUIET_LOGGERS = ("agents", "orchestrations", "engine")


class RunFollower:
    """Feeds a run's stored events to a renderer, in order, until the run completes."""

    def __init__(self, run: OrchestrationRun, renderer: TerminalRenderer, *, notices=None):
        self.run = run
        self.renderer = renderer
        self.notices = notices or sys.stderr
        self.last_seq = 0
        self._gap_since: float | None = None
        self._finished_seen_at: float | None = None
        self._next_status_check = time.monotonic() + STATUS_CHECK_SECONDS
        self._submitted_at = time.monotonic()
        self._pending_noticed = False

    def follow(self, timeout: float | None = None, stop=None) -> bool:
        """Render events until `complete`, `timeout` seconds, or `stop()` is true.

        Return True once the run is complete.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.renderer.finished:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            if stop is not None and stop():
                return False
            if not self._read_events():
                self._check_run_row()
                time.sleep(POLL_SECONDS)
        return True

    def _read_events(self) -> bool:
        rows = list(
            RunEvent.objects.filter(run_id=self.run.id, seq__gt=self.last_seq)
            .order_by("seq").values_list("seq", "data")[:500]
        )
        fed = False
        for seq, data in rows:
            if seq != self.last_seq + 1 and not self._gap_expired():
                break
            self._gap_since = None
            self.last_seq = seq
            self.renderer.feed(json.loads(data))
            fed = True
            if self.renderer.finished:
                break
        return fed

    def _gap_expired(self) -> bool:
        now = time.monotonic()
        if self._gap_since is None:
            self._gap_since = now
        return now - self._gap_since >= GAP_WAIT_SECONDS

    def _check_run_row(self) -> None:
        now = time.monotonic()
        if now < self._next_status_check:
            return
        self._next_status_check = now + STATUS_CHECK_SECONDS
        self.run.refresh_from_db(fields=["status", "content", "steps", "usage", "error",
                                         "error_code", "stop_reason"])
        if self.run.status == "pending" and not self._pending_noticed \
                and now - self._submitted_at >= PENDING_NOTICE_SECONDS:
            self._pending_noticed = True
            hint = (" Is a Celery worker running for this database and Redis?"
                    if settings.POWABASE_RUN_EXECUTION == "celery" else "")
            self.notices.write(f"The run is still waiting to start.{hint}\n")
        if not self.run.is_finished:
            return
        # A run ended by a path that stored no `complete` event: finish from the row.
        if self._finished_seen_at is None:
            self._finished_seen_at = now
        elif now - self._finished_seen_at >= 2 * STATUS_CHECK_SECONDS:
            self.renderer.feed({
                "event": "complete", "run_id": self.run.id, "session_id": self.run.session_id,
                "content": self.run.content, "status": self.run.status, "steps": self.run.steps,
                "usage": self.run.usage or None, "error": self.run.error or None,
                "code": self.run.error_code or None, "stop_reason": self.run.stop_reason or None,
            })


def find_orchestration(ref: str, *, owner=None) -> Orchestration:
    """Return the orchestration whose id or exact name is `ref`; CommandError if none or several."""
    queryset = Orchestration.objects.select_related("owner")
    if owner is not None:
        queryset = queryset.filter(owner=owner)
    try:
        found = queryset.filter(pk=uuid.UUID(ref)).first()
    except ValueError:
        found = None
    if found is not None:
        return found

    matches = list(queryset.filter(name=ref).order_by("created_at"))
    if not matches:
        raise CommandError(f"Orchestration {ref!r} not found by id or by exact name.")
    if len(matches) > 1:
        listing = "\n".join(f"  {item.id}  (owner {item.owner.username})" for item in matches)
        raise CommandError(f"{len(matches)} orchestrations are named {ref!r}; give one of their ids:\n"
                           f"{listing}")
    return matches[0]


def follow_with_cancel(follower: RunFollower, *, notices) -> int:
    """Follow the run to its end; on Ctrl-C ask it to cancel. Return the process exit code.

    SIGINT only sets a flag that the polling loop reads: a KeyboardInterrupt
    raised in the middle of a database call could leave the connection
    unusable for the cancel request that follows.
    """
    interrupts: list[int] = []
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupts.append(signum))
    try:
        follower.follow(stop=lambda: bool(interrupts))
        if not interrupts:
            return 0 if follower.renderer.status == "completed" else 1

        notices.write(f"\nCancelling run {follower.run.id} (Ctrl-C again to stop waiting) ...\n")
        try:
            run_cancel(run=OrchestrationRun.objects.get(pk=follower.run.id))
        except Conflict:
            pass  # it finished meanwhile
        if not follower.follow(timeout=CANCEL_WAIT_SECONDS, stop=lambda: len(interrupts) > 1):
            notices.write("The run has not confirmed the cancellation yet.\n")
        return EXIT_INTERRUPTED
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


class CommandOutput:
    """A management command's stdout or stderr, written to without Django's added newlines."""

    def __init__(self, wrapper):
        self.wrapper = wrapper

    def write(self, text: str) -> None:
        self.wrapper.write(text, ending="")

    def flush(self) -> None:
        self.wrapper.flush()

    def isatty(self) -> bool:
        return self.wrapper.isatty()


def quiet_run_logs() -> None:
    """Keep the service's INFO and WARNING logs off the terminal: the renderer shows the run."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


class Command(BaseCommand):
    help = ("Send a message to an orchestration and print the run as it happens: delegations, "
            "answers, usage. Exits 0 when the run completes, 1 when it fails, 130 on Ctrl-C.")

    def add_arguments(self, parser):
        parser.add_argument("orchestration", help="The orchestration's id, or its exact name.")
        parser.add_argument("message", help="The message to send.")
        parser.add_argument("--session", default=None, help="Continue this session id.")
        parser.add_argument("--owner", default=None,
                            help="Search only this user's orchestrations (a username).")

    def handle(self, *args, orchestration, message, session, owner, verbosity, **options):
        if verbosity < 2:
            quiet_run_logs()
        owner_user = None
        if owner:
            owner_user = get_user_model().objects.filter(username=owner).first()
            if owner_user is None:
                raise CommandError(f"User {owner!r} not found.")
        team = find_orchestration(orchestration, owner=owner_user)
        if not message.strip():
            raise CommandError("The message is empty.")

        try:
            run, _created = run_submit(owner=team.owner, orchestration=team, message=message,
                                       session_id=session)
        except ServiceError as exc:
            raise CommandError(f"{exc.message} ({exc.code})") from None

        notices = CommandOutput(self.stderr)
        renderer = TerminalRenderer(CommandOutput(self.stdout))
        code = follow_with_cancel(RunFollower(run, renderer, notices=notices), notices=notices)
        sys.exit(code)
