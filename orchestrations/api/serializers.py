from rest_framework import serializers

from agents.api.serializers import RunMessageInput
from powabase.api import ConfigField, StrictSerializer
from powabase.config_rules import ENTITY_CONFIG, ORCHESTRATION_SETTINGS, ORCHESTRATOR_CONFIG

from ..models import ChildRun, Entity, Orchestration, OrchestrationRun, Strategy


class OrchestrationInput(StrictSerializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=10_000, required=False, allow_blank=True)
    strategy = serializers.ChoiceField(
        choices=Strategy.values, required=False,
        error_messages={"invalid_choice": "\"{input}\" is not a strategy; allowed: "
                        + ", ".join(Strategy.values) + "."},
    )
    orchestrator_config = ConfigField(ORCHESTRATOR_CONFIG, required=False)
    settings = ConfigField(ORCHESTRATION_SETTINGS, required=False)


class EntityInput(StrictSerializer):
    aliases = {"entity_ref_id": "agent_id", "role_description": "role"}

    agent_id = serializers.UUIDField()
    role = serializers.CharField(max_length=10_000, required=False, allow_blank=True)
    config = ConfigField(ENTITY_CONFIG, required=False)
    position = serializers.IntegerField(required=False, min_value=0, max_value=1_000_000)
    entity_type = serializers.ChoiceField(choices=["agent"], required=False)


class EntityUpdateInput(StrictSerializer):
    aliases = {"role_description": "role"}

    role = serializers.CharField(max_length=10_000, required=False, allow_blank=True)
    config = ConfigField(ENTITY_CONFIG, required=False)
    position = serializers.IntegerField(required=False, min_value=0, max_value=1_000_000)


class OrchestrationRunInput(RunMessageInput):
    pass


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


class OrchestrationDetail(OrchestrationOutput):
    entities = EntityOutput(many=True)

    class Meta(OrchestrationOutput.Meta):
        fields = OrchestrationOutput.Meta.fields + ["entities"]


class ChildRunOutput(serializers.ModelSerializer):
    run_id = serializers.CharField(source="id")
    agent = serializers.CharField(source="agent_name")
    agent_id = serializers.UUIDField(allow_null=True)
    error = serializers.SerializerMethodField()
    duration_ms = serializers.IntegerField(allow_null=True)

    class Meta:
        model = ChildRun
        fields = ["run_id", "agent", "agent_id", "entity_id", "task", "status", "steps", "content",
                  "usage", "model", "error", "error_code", "started_at", "completed_at",
                  "duration_ms"]

    def get_error(self, run) -> str | None:
        return run.error or None


class OrchestrationRunOutput(serializers.ModelSerializer):
    run_id = serializers.CharField(source="id")
    orchestration_id = serializers.UUIDField(allow_null=True)
    orchestration = serializers.CharField(source="orchestration_name")
    error = serializers.SerializerMethodField()
    code = serializers.SerializerMethodField()
    stop_reason = serializers.SerializerMethodField()
    events = serializers.SerializerMethodField()
    child_runs = ChildRunOutput(many=True)
    usage_breakdown = serializers.JSONField()

    class Meta:
        model = OrchestrationRun
        fields = ["run_id", "orchestration_id", "orchestration", "session_id", "strategy", "status",
                  "partial", "message", "content", "events", "usage", "usage_breakdown", "model",
                  "steps", "error", "code", "stop_reason", "created_at", "started_at",
                  "completed_at", "child_runs"]

    def get_error(self, run) -> str | None:
        return run.error or None

    def get_code(self, run) -> str | None:
        return run.error_code or None

    def get_stop_reason(self, run) -> str | None:
        return run.stop_reason or None

    def get_events(self, run) -> list[dict]:
        return self.context.get("events", [])
