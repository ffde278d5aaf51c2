from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agents.api.serializers import NullIfBlankField, RunMessageInput, UsageField
from powabase.api import ConfigField, StrictSerializer
from powabase.config_rules import ENTITY_CONFIG, ORCHESTRATION_SETTINGS, ORCHESTRATOR_CONFIG

from ..models import ChildRun, Entity, Orchestration, OrchestrationRun, Strategy


class OrchestrationInput(StrictSerializer):
    """Body of POST /api/orchestrations and PUT/PATCH /api/orchestrations/{id}.

    On update, `orchestrator_config` and `settings` replace the stored objects as a whole.
    """

    name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=10_000, required=False, allow_blank=True)
    strategy = serializers.ChoiceField(
        choices=Strategy.choices, required=False,
        error_messages={"invalid_choice": "\"{input}\" is not a strategy; allowed: "
                        + ", ".join(Strategy.values) + "."},
        help_text="How the team answers (default supervisor).",
    )
    orchestrator_config = ConfigField(ORCHESTRATOR_CONFIG, required=False)
    settings = ConfigField(ORCHESTRATION_SETTINGS, required=False)


class EntityInput(StrictSerializer):
    """Body of POST /api/orchestrations/{id}/entities; `agent_id` or `entity_ref_id` is required."""

    aliases = {"entity_ref_id": "agent_id", "role_description": "role"}

    agent_id = serializers.UUIDField(help_text="The agent to add (also spelled entity_ref_id).")
    role = serializers.CharField(max_length=10_000, required=False, allow_blank=True,
                                 help_text="What the coordinator delegates to this agent "
                                           "(also spelled role_description).")
    config = ConfigField(ENTITY_CONFIG, required=False)
    position = serializers.IntegerField(required=False, min_value=0, max_value=1_000_000,
                                        help_text="Order among the entities (default: last).")
    entity_type = serializers.ChoiceField(choices=["agent"], required=False)


class EntityUpdateInput(StrictSerializer):
    """Body of PUT/PATCH /api/orchestrations/{id}/entities/{entity_id}."""

    aliases = {"role_description": "role"}

    role = serializers.CharField(max_length=10_000, required=False, allow_blank=True)
    config = ConfigField(ENTITY_CONFIG, required=False)
    position = serializers.IntegerField(required=False, min_value=0, max_value=1_000_000)


class OrchestrationRunInput(RunMessageInput):
    """Body of POST /api/orchestrations/{id}/run/stream."""


class EntityOutput(serializers.ModelSerializer):
    agent_id = serializers.UUIDField()
    entity_ref_id = serializers.UUIDField(source="agent_id")
    orchestration_id = serializers.UUIDField()
    role = serializers.CharField(source="role_description")
    agent_name = serializers.CharField(source="agent.name")
    agent_model = serializers.CharField(source="agent.model")

    class Meta:
        model = Entity
        fields = ["id", "orchestration_id", "entity_type", "agent_id", "entity_ref_id",
                  "agent_name", "agent_model", "role", "role_description", "config", "position",
                  "created_at", "updated_at"]


class EntityListOutput(serializers.Serializer):
    entities = EntityOutput(many=True)


class OrchestrationOutput(serializers.ModelSerializer):
    class Meta:
        model = Orchestration
        fields = ["id", "name", "description", "strategy", "orchestrator_config", "settings",
                  "created_at", "updated_at"]


class OrchestrationListItem(OrchestrationOutput):
    entity_count = serializers.IntegerField()
    last_run_at = serializers.DateTimeField(allow_null=True)

    class Meta(OrchestrationOutput.Meta):
        fields = OrchestrationOutput.Meta.fields + ["entity_count", "last_run_at"]


class OrchestrationListOutput(serializers.Serializer):
    orchestrations = OrchestrationListItem(many=True)
    total = serializers.IntegerField(required=False, help_text="Only when limit or offset is sent.")
    limit = serializers.IntegerField(required=False, help_text="Only when limit or offset is sent.")
    offset = serializers.IntegerField(required=False, help_text="Only when limit or offset is sent.")


class OrchestrationDetail(OrchestrationOutput):
    entities = EntityOutput(many=True)

    class Meta(OrchestrationOutput.Meta):
        fields = OrchestrationOutput.Meta.fields + ["entities"]


class ChildRunOutput(serializers.ModelSerializer):
    run_id = serializers.CharField(source="id")
    agent = serializers.CharField(source="agent_name")
    agent_id = serializers.UUIDField(allow_null=True)
    usage = UsageField()
    error = NullIfBlankField()
    error_code = NullIfBlankField()
    duration_ms = serializers.IntegerField(allow_null=True)

    class Meta:
        model = ChildRun
        fields = ["run_id", "agent", "agent_id", "entity_id", "task", "status", "steps", "content",
                  "usage", "model", "error", "error_code", "started_at", "completed_at",
                  "duration_ms"]


class OrchestrationRunOutput(serializers.ModelSerializer):
    run_id = serializers.CharField(source="id")
    orchestration_id = serializers.UUIDField(allow_null=True)
    orchestration = serializers.CharField(source="orchestration_name")
    usage = UsageField()
    error = NullIfBlankField()
    code = NullIfBlankField(source="error_code")
    stop_reason = NullIfBlankField()
    events = serializers.SerializerMethodField()
    child_runs = ChildRunOutput(many=True)
    usage_breakdown = serializers.JSONField()

    class Meta:
        model = OrchestrationRun
        fields = ["run_id", "orchestration_id", "orchestration", "session_id", "strategy", "status",
                  "partial", "message", "content", "events", "usage", "usage_breakdown", "model",
                  "steps", "error", "code", "stop_reason", "created_at", "started_at",
                  "completed_at", "child_runs"]

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_events(self, run) -> list[dict]:
        return self.context.get("events", [])


class OrchestrationRunListItem(serializers.ModelSerializer):
    """One run in a team's run list: what was asked, what came back, what it cost."""

    run_id = serializers.CharField(source="id")
    orchestration_id = serializers.UUIDField(allow_null=True)
    message_preview = serializers.CharField(help_text="The first 200 characters of the message.")
    usage = UsageField()
    error = NullIfBlankField()
    code = NullIfBlankField(source="error_code")
    stop_reason = NullIfBlankField()
    duration_ms = serializers.IntegerField(allow_null=True)

    class Meta:
        model = OrchestrationRun
        fields = ["run_id", "orchestration_id", "session_id", "strategy", "status", "message_preview",
                  "content", "usage", "model", "steps", "error", "code", "stop_reason",
                  "created_at", "started_at", "completed_at", "duration_ms"]


class OrchestrationRunListOutput(serializers.Serializer):
    runs = OrchestrationRunListItem(many=True)
    total = serializers.IntegerField()
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()


class SessionOutput(serializers.Serializer):
    session_id = serializers.CharField()
    run_count = serializers.IntegerField(help_text="Runs of this session in this orchestration.")
    first_run_at = serializers.DateTimeField()
    last_run_at = serializers.DateTimeField()
    last_activity_at = serializers.DateTimeField(
        help_text="When the latest run of the session ended, or started if it has not ended.")


class SessionListOutput(serializers.Serializer):
    sessions = SessionOutput(many=True)
    total = serializers.IntegerField()
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()

