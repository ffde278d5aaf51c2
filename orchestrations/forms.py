"""Forms of the admin and the staff pages.

The JSON settings fields check their values with the same rules as the API
(`powabase.config_rules`), so an operator sees the same problems in either place.
"""

import datetime

from django import forms
from django.utils import timezone

from agents.models import Agent, RunStatus
from powabase.config_rules import (
    AGENT_SETTINGS,
    ENTITY_CONFIG,
    ORCHESTRATION_SETTINGS,
    ORCHESTRATOR_CONFIG,
    clean_config,
)

from .models import Entity, Orchestration, Strategy

# Maximum period of the usage page, in days. The page reads every run of the period.
MAX_USAGE_DAYS = 366
MAX_MESSAGE_LENGTH = 200_000


class ConfigJSONField(forms.JSONField):
    """A JSON object checked against a table of known keys, as the API checks it."""

    def __init__(self, rules, **kwargs):
        self.rules = rules
        kwargs.setdefault("required", False)
        kwargs.setdefault("initial", dict)
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 4, "cols": 60}))
        kwargs.setdefault("help_text", "A JSON object. Known keys: " + ", ".join(sorted(rules)) + ".")
        super().__init__(**kwargs)

    def clean(self, value):
        value = super().clean(value)
        if value in (None, ""):
            return {}
        try:
            return clean_config(value, self.rules)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


class AgentAdminForm(forms.ModelForm):
    settings = ConfigJSONField(AGENT_SETTINGS)

    class Meta:
        model = Agent
        fields = ["owner", "name", "model", "description", "system_prompt", "settings"]

    def clean_model(self):
        model = self.cleaned_data["model"].strip()
        if not model:
            raise forms.ValidationError("Enter a litellm model id, e.g. openai/gpt-4o-mini.")
        return model


class OrchestrationAdminForm(forms.ModelForm):
    strategy = forms.ChoiceField(choices=Strategy.choices, initial=Strategy.SUPERVISOR)
    orchestrator_config = ConfigJSONField(ORCHESTRATOR_CONFIG)
    settings = ConfigJSONField(ORCHESTRATION_SETTINGS)

    class Meta:
        model = Orchestration
        fields = ["owner", "name", "description", "strategy", "orchestrator_config", "settings"]


class EntityInlineForm(forms.ModelForm):
    config = ConfigJSONField(ENTITY_CONFIG, widget=forms.Textarea(attrs={"rows": 2, "cols": 26}))
    position = forms.IntegerField(min_value=0, max_value=1_000_000, initial=0,
                                  widget=forms.NumberInput(attrs={"style": "width: 5em"}))

    class Meta:
        model = Entity
        fields = ["position", "agent", "role_description", "config"]
        widgets = {"role_description": forms.Textarea(attrs={"rows": 2, "cols": 30})}


class EntityInlineFormSet(forms.BaseInlineFormSet):
    """A team's entities must use agents of the team's owner, as the API requires."""

    def clean(self):
        super().clean()
        # The admin builds the formsets on the team as its form left it, owner included.
        owner_id = self.instance.owner_id
        if owner_id is None:
            return
        for form in self.forms:
            if not hasattr(form, "cleaned_data") or form.cleaned_data.get("DELETE"):
                continue
            agent = form.cleaned_data.get("agent")
            if agent is not None and agent.owner_id != owner_id:
                form.add_error("agent", f"Agent {agent.name} belongs to another owner ({agent.owner}); "
                                        "a team can only use its owner's agents.")


class MessageForm(forms.Form):
    message = forms.CharField(
        max_length=MAX_MESSAGE_LENGTH, strip=False,
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "Ask the team something…"}),
    )

    def clean_message(self):
        message = self.cleaned_data["message"]
        if not message.strip():
            raise forms.ValidationError("Type a message.")
        return message


class ConsoleForm(MessageForm):
    team = forms.ModelChoiceField(queryset=Orchestration.objects.none(), empty_label="Pick a team…")

    field_order = ["team", "message"]

    def __init__(self, *args, teams, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = teams
        self.fields["team"].label_from_instance = lambda team: f"{team.name} — {team.owner}"


class RunFilterForm(forms.Form):
    team = forms.ModelChoiceField(queryset=Orchestration.objects.none(), required=False,
                                  empty_label="All teams")
    status = forms.ChoiceField(choices=[("", "Any status"), *RunStatus.choices], required=False)
    since = forms.DateField(required=False, label="From",
                            widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    q = forms.CharField(required=False, max_length=200, label="Message contains")

    def __init__(self, *args, teams, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = teams

    def clean(self):
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", "must not be before the start date.")
        return data


class UsageForm(forms.Form):
    since = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label="To", widget=forms.DateInput(attrs={"type": "date"}))

    @staticmethod
    def default_period(days: int = 7) -> dict:
        today = timezone.now().date()
        return {"since": today - datetime.timedelta(days=days - 1), "until": today}

    def clean(self):
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until:
            if since > until:
                self.add_error("until", "must not be before the start date.")
            elif (until - since).days + 1 > MAX_USAGE_DAYS:
                self.add_error("since", f"The period may span at most {MAX_USAGE_DAYS} days.")
        return data
