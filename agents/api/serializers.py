from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from powabase.api import ConfigField, StrictSerializer
from powabase.config_rules import AGENT_SETTINGS

from ..models import Agent, AgentRun, RunStatus


class AgentInput(StrictSerializer):
    """Body of POST /api/agents and PUT/PATCH /api/agents/{id}.

    On update, `settings` replaces the stored object as a whole.
    """

    name = serializers.CharField(max_length=200)
    model = serializers.CharField(max_length=200, required=False,
                                  help_text="A litellm model id; the service default when left out.")
    system_prompt = serializers.CharField(max_length=100_000, required=False, allow_blank=True)
    description = serializers.CharField(max_length=10_000, required=False, allow_blank=True)
    settings = ConfigField(AGENT_SETTINGS, required=False)
    temperature = serializers.FloatField(
        required=False, min_value=0, max_value=2, allow_null=True,
        help_text="Older spelling of settings.temperature; stored there.",
    )

    def validate_model(self, value):
        if not value.strip():
            raise serializers.ValidationError("must be a non-empty litellm model id.")
        return value.strip()

    def validate(self, attrs):
        # Older Powabase docs send temperature at the top level; it belongs in
        # settings, merged into the settings sent or, on update, those stored.
        temperature = attrs.pop("temperature", None)
        if temperature is not None:
            stored = self.instance.settings if self.instance is not None else {}
            attrs["settings"] = {**attrs.get("settings", stored), "temperature": temperature}
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


class AgentDeletedOutput(serializers.Serializer):
    message = serializers.CharField()


class RunMessageInput(StrictSerializer):
    """Body of the run endpoints."""

    message = serializers.CharField(max_length=200_000, trim_whitespace=False)
    session_id = serializers.RegexField(
        r"^[A-Za-z0-9_-]{1,40}$", max_length=40, required=False, allow_null=True,
        help_text="Continue this conversation (a `session_id` from an earlier run).",
    )

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


@extend_schema_field(UsageOutput(allow_null=True))
class UsageField(serializers.Field):
    """A run's stored usage; null before the run has finished."""

    def __init__(self, **kwargs):
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)

    def to_representation(self, value):
        return value or None

    def get_attribute(self, instance):
        return super().get_attribute(instance) or None


class NullIfBlankField(serializers.CharField):
    """A text column that the API reports as null while it is empty."""

    def __init__(self, **kwargs):
        kwargs.setdefault("read_only", True)
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def get_attribute(self, instance):
        return super().get_attribute(instance) or None


class AgentRunResult(serializers.Serializer):
    """The response of POST /api/agents/{id}/run once the run has ended."""

    run_id = serializers.CharField()
    status = serializers.ChoiceField(choices=RunStatus.choices)
    content = serializers.CharField(allow_blank=True)
    usage = UsageOutput(allow_null=True)
    error = serializers.CharField(allow_null=True)
    code = serializers.CharField(allow_null=True)
    session_id = serializers.CharField(allow_null=True)


class AgentRunOutput(serializers.ModelSerializer):
    run_id = serializers.CharField(source="id")
    agent_id = serializers.UUIDField(allow_null=True)
    agent = serializers.CharField(source="agent_name")
    usage = UsageField()
    error = NullIfBlankField()
    error_code = NullIfBlankField()
    code = NullIfBlankField(source="error_code")
    stop_reason = NullIfBlankField()
    session_id = NullIfBlankField()
    events = serializers.SerializerMethodField()

    class Meta:
        model = AgentRun
        fields = ["run_id", "agent_id", "agent", "session_id", "status", "message", "content",
                  "model", "steps", "usage", "error", "error_code", "code", "stop_reason",
                  "created_at", "started_at", "completed_at", "events"]

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_events(self, run) -> list[dict]:
        return self.context.get("events", [])


class RunCancelOutput(serializers.Serializer):
    run_id = serializers.CharField()
    status = serializers.ChoiceField(choices=RunStatus.choices)
    cancel_requested = serializers.BooleanField()
