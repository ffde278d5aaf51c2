import json

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import Count, Max, Prefetch
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from agents.models import Agent, AgentRun
from powabase.errors import ServiceError

from . import services
from .forms import AgentAdminForm, EntityInlineForm, EntityInlineFormSet, MessageForm, OrchestrationAdminForm
from .models import ChildRun, Entity, Orchestration, OrchestrationRun
from .views import format_cost, format_duration, format_tokens, timeline_rows


def pretty_json(value) -> str:
    return format_html('<pre class="pb-json">{}</pre>',
                       json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str))


def status_badge(status: str) -> str:
    return format_html('<span class="pb-status pb-status-{}">{}</span>', status, status)


def render_timeline(run_id: str) -> str:
    rows, truncated = timeline_rows(run_id)
    return render_to_string("staff/_timeline.html", {"rows": rows, "truncated": truncated})


class ReadOnlyAdminMixin:
    """Runs are records: staff may look at them, never add, edit or delete them here."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class RunDisplayMixin:
    """Columns and fields shared by the admin pages of every kind of run."""

    @admin.display(description="Status", ordering="status")
    def status_display(self, run):
        return status_badge(run.status)

    @admin.display(description="Duration")
    def duration(self, run):
        return format_duration(run.duration_ms)

    @admin.display(description="Tokens")
    def tokens(self, run):
        return format_tokens((run.usage or {}).get("total_tokens"))

    @admin.display(description="Cost")
    def cost(self, run):
        return format_cost((run.usage or {}).get("cost_usd"))

    @admin.display(description="Usage")
    def usage_display(self, run):
        return pretty_json(run.usage)

    @admin.display(description="Error")
    def error_display(self, run):
        if not run.error:
            return "—"
        return format_html('<strong class="pb-code">{}</strong> {}', run.error_code or "error", run.error)

    @admin.display(description="Config snapshot")
    def snapshot_display(self, run):
        return pretty_json(run.config_snapshot)

    @admin.display(description="Event timeline (token deltas left out)")
    def timeline(self, run):
        return render_timeline(run.id)


class EntityInline(admin.TabularInline):
    model = Entity
    form = EntityInlineForm
    formset = EntityInlineFormSet
    fields = ["position", "agent", "role_description", "config"]
    autocomplete_fields = ["agent"]
    ordering = ["position", "created_at"]
    extra = 1

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("agent")


@admin.register(Orchestration)
class OrchestrationAdmin(admin.ModelAdmin):
    form = OrchestrationAdminForm
    inlines = [EntityInline]
    list_display = ["name", "owner", "strategy", "entity_count", "last_run_at", "created_at"]
    list_filter = ["strategy"]
    list_select_related = ["owner"]
    search_fields = ["name", "description", "owner__username"]
    autocomplete_fields = ["owner"]
    readonly_fields = ["id", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["owner", "name", "description", "strategy"]}),
        ("Configuration", {"fields": ["orchestrator_config", "settings"],
                           "description": "Checked with the same rules as the API."}),
        ("Record", {"fields": ["id", "created_at", "updated_at"], "classes": ["collapse"]}),
    ]
    actions = ["run_test_message"]

    class Media:
        css = {"all": ["staff/admin.css"]}

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            entity_count=Count("entities", distinct=True), last_run_at=Max("runs__created_at"),
        )

    @admin.display(description="Entities", ordering="entity_count")
    def entity_count(self, orchestration):
        return orchestration.entity_count

    @admin.display(description="Last run", ordering="last_run_at")
    def last_run_at(self, orchestration):
        return orchestration.last_run_at

    @admin.action(description="Run a test message")
    def run_test_message(self, request, queryset):
        """Ask for a message, start a run of the selected team with it, open the run live."""
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one orchestration to run a test message.",
                              messages.WARNING)
            return None
        team = queryset.select_related("owner").get()

        form = MessageForm(request.POST if "post" in request.POST else None)
        if form.is_bound and form.is_valid():
            try:
                run, _created = services.run_submit(owner=team.owner, orchestration=team,
                                                    message=form.cleaned_data["message"])
            except ServiceError as exc:
                form.add_error(None, f"{exc.message} ({exc.code})")
            else:
                return redirect("staff-run-detail", run_id=run.id)

        context = {
            **self.admin_site.each_context(request),
            "title": f"Run a test message: {team.name}",
            "opts": self.model._meta,
            "team": team,
            "form": form,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media,
        }
        return TemplateResponse(request, "admin/orchestrations/orchestration/run_test_message.html",
                                context)


class ChildRunInline(ReadOnlyAdminMixin, RunDisplayMixin, admin.StackedInline):
    model = ChildRun
    verbose_name = "delegation"
    verbose_name_plural = "delegations (child runs)"
    fields = ["agent_name", "status_display", "duration", "tokens", "cost", "task", "content",
              "error_display", "model", "steps"]
    readonly_fields = fields
    ordering = ["created_at"]
    extra = 0


@admin.register(OrchestrationRun)
class OrchestrationRunAdmin(ReadOnlyAdminMixin, RunDisplayMixin, admin.ModelAdmin):
    list_display = ["id", "status_display", "orchestration_name", "owner", "created_at", "duration",
                    "tokens", "cost"]
    list_filter = ["status", "strategy"]
    list_select_related = ["owner"]
    search_fields = ["id", "orchestration_name", "message", "session_id", "owner__username"]
    date_hierarchy = "created_at"
    inlines = [ChildRunInline]
    fieldsets = [
        (None, {"fields": ["id", "live_page", "status_display", "team", "owner", "session_id",
                           "strategy", "model"]}),
        ("Timing", {"fields": ["created_at", "started_at", "completed_at", "duration", "steps",
                               "heartbeat_at", "cancel_requested_at"]}),
        ("Usage and cost", {"fields": ["tokens", "cost", "usage_display", "breakdown_display"]}),
        ("Outcome", {"fields": ["message", "content", "error_display", "stop_reason", "partial"]}),
        ("Events", {"fields": ["timeline"]}),
        ("Config snapshot", {"fields": ["snapshot_display"], "classes": ["collapse"]}),
    ]
    readonly_fields = [field for _name, options in fieldsets for field in options["fields"]]

    class Media:
        css = {"all": ["staff/admin.css"]}

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name.endswith("_changelist"):
            # The list shows none of the large fields.
            queryset = queryset.defer("config_snapshot", "content", "usage_breakdown")
        else:
            queryset = queryset.prefetch_related(
                Prefetch("child_runs", queryset=ChildRun.objects.order_by("created_at"))
            )
        return queryset

    @admin.display(description="Live page")
    def live_page(self, run):
        return format_html('<a href="{}">Open the run page</a>',
                           reverse("staff-run-detail", kwargs={"run_id": run.id}))

    @admin.display(description="Team")
    def team(self, run):
        if run.orchestration_id is None:
            return f"{run.orchestration_name} (deleted)"
        url = reverse("admin:orchestrations_orchestration_change", args=[run.orchestration_id])
        return format_html('<a href="{}">{}</a>', url, run.orchestration_name)

    @admin.display(description="Usage per agent")
    def breakdown_display(self, run):
        return pretty_json(run.usage_breakdown)


# Agents and their standalone runs are registered here, beside the teams,
# because an agent's admin pages list the teams that use it.
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
