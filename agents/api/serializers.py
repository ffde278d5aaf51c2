from rest_framework import serializers

from powabase.api import ConfigField, StrictSerializer
from powabase.config_rules import AGENT_SETTINGS

from ..models import Agent, AgentRun


class AgentInput(StrictSerializer):
    """Body of POST /api/agents and PUT/PATCH /api/agents/{id}."""

    name = serializers.CharField(max_length=200)
    model = serializers.CharField(max_length=200, required=False)
    system_prompt = serializers.CharField(max_length=100_000, required=False, allow_blank=True)
    description = serializers.CharField(max_length=10_000, required=False, allow_blank=True)
    settings = ConfigField(AGENT_SETTINGS, required=False)
    temperature = serializers.FloatField(required=False, min_value=0, max_value=2, allow_null=True)

    def validate_model(self, value):
        if not value.strip():
            raise serializers.ValidationError("must be a non-empty litellm model id.")
        return value.strip()

    def validate(self, attrs):
        # Older Powabase docs send temperature at the top level; it belongs in settings.
        temperature = attrs.pop("temperature", None)
        if temperature is not None:
            attrs["settings"] = {**attrs.get("settings", {}), "temperature": temperature}
        return attrs


class AgentOutput(serializers.ModelSerializer):
    class Meta:
        model = Agent
        fields = ["id", "name", "description", "model", "system_prompt", "settings",
                  "created_at", "updated_at"]


class AgentListOutput(serializers.Serializer):
    agents = AgentOutput(many=True)
    total = serializers.IntegerField()
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()


class RunMessageInput(StrictSerializer):
    message = serializers.CharField(max_length=200_000, trim_whitespace=False)
    session_id = serializers.RegexField(r"^[A-Za-z0-9_-]{1,40}$", required=False, allow_null=True)

    def validate_message(self, value):
        if not value.strip():
            raise serializers.ValidationError("must not be empty.")
        return value


class UsageOutput(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    reasoning_tokens = serializers.IntegerField()
    cached_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    cost_usd = serializers.FloatField(allow_null=True)


class AgentRunOutput(serializers.ModelSerializer):
    run_id = serializers.CharField(source="id")
    agent_id = serializers.UUIDField(allow_null=True)
    agent = serializers.CharField(source="agent_name")
    error = serializers.SerializerMethodField()
    events = serializers.SerializerMethodField()

    class Meta:
        model = AgentRun
        fields = ["run_id", "agent_id", "agent", "status", "message", "content", "model", "steps",
                  "usage", "error", "error_code", "stop_reason", "created_at", "started_at",
                  "completed_at", "events"]

    def get_error(self, run) -> str | None:
        return run.error or None

    def get_events(self, run) -> list[dict]:
        return self.context.get("events", [])
