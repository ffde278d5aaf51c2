from django.contrib import admin
from django.db.models import Prefetch
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from orchestrations.admin import ReadOnlyAdminMixin, RunDisplayMixin
from orchestrations.forms import AgentAdminForm
from orchestrations.models import Entity

from .models import Agent, AgentRun


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    form = AgentAdminForm
    list_display = ["name", "model", "owner", "teams", "created_at"]
    list_filter = ["model"]
    list_select_related = ["owner"]
    search_fields = ["name", "model", "owner__username"]
    autocomplete_fields = ["owner"]
    readonly_fields = ["id", "teams", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["owner", "name", "model", "description", "system_prompt"]}),
        ("Settings", {"fields": ["settings"], "description": "Checked with the same rules as the API."}),
        ("Teams and record", {"fields": ["teams", "id", "created_at", "updated_at"]}),
    ]

    def get_queryset(self, request):
        # One query for the teams of every agent on the page, not one per row.
        memberships = Entity.objects.select_related("orchestration").only(
            "id", "agent_id", "orchestration__id", "orchestration__name"
        ).order_by("orchestration__name")
        return super().get_queryset(request).prefetch_related(Prefetch("entities", queryset=memberships))

    @admin.display(description="Teams using it")
    def teams(self, agent):
        if agent.pk is None:
            return "—"
        entities = agent.entities.all()
        if not entities:
            return "—"
        return format_html_join(
            ", ", '<a href="{}">{}</a>',
            ((reverse("admin:orchestrations_orchestration_change", args=[entity.orchestration_id]),
              entity.orchestration.name) for entity in entities),
        )


@admin.register(AgentRun)
class AgentRunAdmin(ReadOnlyAdminMixin, RunDisplayMixin, admin.ModelAdmin):
    list_display = ["id", "status_display", "agent_name", "owner", "created_at", "duration", "tokens",
                    "cost"]
    list_filter = ["status"]
    list_select_related = ["owner"]
    search_fields = ["id", "agent_name", "message", "owner__username"]
    date_hierarchy = "created_at"
    fieldsets = [
        (None, {"fields": ["id", "status_display", "agent_link", "owner", "model"]}),
        ("Timing", {"fields": ["created_at", "started_at", "completed_at", "duration", "steps"]}),
        ("Usage and cost", {"fields": ["tokens", "cost", "usage_display"]}),
        ("Outcome", {"fields": ["message", "content", "error_display", "stop_reason"]}),
        ("Events", {"fields": ["timeline"]}),
        ("Config snapshot", {"fields": ["snapshot_display"], "classes": ["collapse"]}),
    ]
    readonly_fields = [field for _name, options in fieldsets for field in options["fields"]]

    class Media:
        css = {"all": ["staff/admin.css"]}

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name.endswith("_changelist"):
            queryset = queryset.defer("config_snapshot", "content")
        return queryset

    @admin.display(description="Agent")
    def agent_link(self, run):
        if run.agent_id is None:
            return f"{run.agent_name} (deleted)"
        url = reverse("admin:agents_agent_change", args=[run.agent_id])
        return format_html('<a href="{}">{}</a>', url, run.agent_name)
