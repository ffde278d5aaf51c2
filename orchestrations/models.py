import uuid

from django.conf import settings
from django.db import models

from agents.models import Agent, HostedRunFields, RunFields, new_run_id


class Strategy(models.TextChoices):
    SUPERVISOR = "supervisor"
    SEQUENTIAL = "sequential"
    PARALLEL = "parallel"
    ROUTER = "router"


class Orchestration(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                              related_name="orchestrations")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    strategy = models.CharField(max_length=16, choices=Strategy.choices, default=Strategy.SUPERVISOR)
    orchestrator_config = models.JSONField(default=dict, blank=True)
    settings = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "-created_at"])]

    def __str__(self):
        return self.name


class Entity(models.Model):
    """An agent's membership in a team, with the role the coordinator delegates by."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    orchestration = models.ForeignKey(Orchestration, on_delete=models.CASCADE,
                                      related_name="entities")
    # PROTECT: an agent that a team uses cannot be deleted (409 agent_in_use).
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="entities")
    entity_type = models.CharField(max_length=16, default="agent")
    role_description = models.TextField(blank=True)
    config = models.JSONField(default=dict, blank=True)
    position = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "entities"
        ordering = ["position", "created_at"]
        constraints = [
            models.UniqueConstraint(fields=["orchestration", "agent"], name="entity_unique_agent"),
        ]

    def __str__(self):
        return f"{self.agent} in {self.orchestration}"


class OrchestrationRun(RunFields, HostedRunFields):
    """One message answered by a team.

    The orchestration may be deleted later; the run keeps its name and the
    config snapshot it ran with, so it stays browsable.
    """

    id = models.CharField(primary_key=True, max_length=40, editable=False)
    orchestration = models.ForeignKey(Orchestration, on_delete=models.SET_NULL, null=True,
                                      blank=True, related_name="runs")
    orchestration_name = models.CharField(max_length=200, blank=True)
    strategy = models.CharField(max_length=16, blank=True)
    partial = models.BooleanField(default=False)
    usage_breakdown = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "-created_at"]),
            models.Index(fields=["orchestration", "-created_at"]),
            models.Index(fields=["status", "heartbeat_at"]),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="orchestration_run_unique_idempotency_key",
            ),
        ]

    def __str__(self):
        return f"{self.id} ({self.orchestration_name or 'deleted team'}, {self.status})"

    def save(self, *args, **kwargs):
        if not self.id:
            self.id = new_run_id("orch_run")
        super().save(*args, **kwargs)


class ChildRun(RunFields):
    """One delegation: an entity's agent run on the task the coordinator gave it."""

    id = models.CharField(primary_key=True, max_length=40, editable=False)
    parent = models.ForeignKey(OrchestrationRun, on_delete=models.CASCADE, related_name="child_runs")
    agent = models.ForeignKey(Agent, on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="child_runs")
    agent_name = models.CharField(max_length=200)
    entity_id = models.UUIDField(null=True, blank=True)
    task = models.TextField(blank=True)
    call_id = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self):
        return f"{self.id} ({self.agent_name}, {self.status})"

    def save(self, *args, **kwargs):
        if not self.id:
            self.id = new_run_id("agent_run")
        super().save(*args, **kwargs)
