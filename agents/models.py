import secrets
import uuid

from django.conf import settings
from django.db import models


def new_run_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


class Agent(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                              related_name="agents")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    model = models.CharField(max_length=200, help_text="A litellm model id, e.g. openai/gpt-4o-mini.")
    system_prompt = models.TextField(blank=True)
    settings = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "-created_at"])]

    def __str__(self):
        return self.name


class RunStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATUSES = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


class RunFields(models.Model):
    """Fields shared by every kind of run: what was asked, what came back, what it cost."""

    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING)
    message = models.TextField(blank=True)
    content = models.TextField(blank=True)
    model = models.CharField(max_length=200, blank=True)
    steps = models.PositiveIntegerField(default=0)
    usage = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    stop_reason = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def is_finished(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def duration_ms(self) -> int | None:
        if not self.started_at or not self.completed_at:
            return None
        return int((self.completed_at - self.started_at).total_seconds() * 1000)


class HostedRunFields(models.Model):
    """Fields of a run that a worker claims and hosts: heartbeat and cancellation."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    session_id = models.CharField(max_length=40, blank=True, db_index=True)
    config_snapshot = models.JSONField(default=dict, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=200, blank=True)
    request_hash = models.CharField(max_length=64, blank=True)

    class Meta:
        abstract = True


class AgentRun(RunFields, HostedRunFields):
    """One agent answering one message on its own, outside any team."""

    id = models.CharField(primary_key=True, max_length=40, editable=False)
    agent = models.ForeignKey(Agent, on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="runs")
    agent_name = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "-created_at"]),
            models.Index(fields=["status", "heartbeat_at"]),
        ]

    def __str__(self):
        return f"{self.id} ({self.agent_name}, {self.status})"

    def save(self, *args, **kwargs):
        if not self.id:
            self.id = new_run_id("agent_run")
        super().save(*args, **kwargs)


class RunEvent(models.Model):
    """One event of a run's stream, stored before it is published.

    `data` is the exact JSON line sent as the SSE frame's data, so a replay
    sends the same bytes the live stream sent.
    """

    run_id = models.CharField(max_length=40)
    seq = models.PositiveIntegerField()
    event = models.CharField(max_length=40)
    data = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run_id", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["run_id", "seq"], name="run_event_unique_seq"),
        ]

    def __str__(self):
        return f"{self.run_id}#{self.seq} {self.event}"


def db_text(value: str) -> str:
    """Return `value` with NUL characters replaced, as PostgreSQL text columns reject them.

    Model output is stored as it came and may contain NUL. The events keep
    it (JSON escapes it), while the run and child-run columns get U+FFFD.
    """
    return value.replace("\x00", "\ufffd") if value and "\x00" in value else value
