"""Server-rendered pages for staff: run history, one run (live while it runs), a console
to start runs, and token and cost usage.

Every page needs a staff login; other visitors are sent to the admin login.
The page's queries do not grow with the number of rows shown.
"""

import datetime
import json
import logging
from dataclasses import dataclass, field

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.db.models.functions import Left
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from rest_framework.authentication import SessionAuthentication

from agents.models import AgentRun, RunEvent
from powabase.errors import NotFound, ServiceError

from . import services
from .forms import ConsoleForm, RunFilterForm, UsageForm
from .models import ChildRun, Orchestration, OrchestrationRun

logger = logging.getLogger(__name__)

RUNS_PER_PAGE = 25
PREVIEW_CHARS = 140
# Maximum events shown on a run's page. A longer run's page shows the first ones and a note.
MAX_TIMELINE_EVENTS = 2000


# ---------------------------------------------------------------------------
# Access from the staff pages to the run events API


class StaffSessionAuthentication(SessionAuthentication):
    """A staff member's login session, for reading a run's events from a staff page.

    Only GET requests by active staff users authenticate this way. Any other
    request needs an API key, so without one it gets 401.
    """

    def authenticate(self, request):
        if request.method != "GET":
            return None
        result = super().authenticate(request)
        if result is None or not result[0].is_staff:
            return None
        return result


def staff_run_or_404(run_id: str) -> OrchestrationRun:
    """Return any owner's run, for a staff session following it."""
    run = OrchestrationRun.objects.filter(pk=run_id).only("id", "status").first()
    if run is None:
        raise NotFound(f"No orchestration run with id {run_id}.", code="run_not_found")
    return run


# ---------------------------------------------------------------------------
# Reading runs


def _usage_numbers(usage: dict | None) -> tuple[int | None, float | None]:
    usage = usage or {}
    return usage.get("total_tokens"), usage.get("cost_usd")


def format_duration(ms: int | None) -> str:
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    minutes, seconds = divmod(ms // 1000, 60)
    return f"{minutes} min {seconds} s"


def format_cost(cost: float | None) -> str:
    if cost is None:
        return "—"
    if cost == 0:
        return "$0"
    if cost < 0.01:
        return f"${cost:.6f}"
    return f"${cost:.4f}"


def format_tokens(tokens: int | None) -> str:
    return "—" if tokens is None else f"{tokens:,}"


def _teams():
    return Orchestration.objects.select_related("owner").only("id", "name", "owner__username")


def _filtered_runs(form: RunFilterForm):
    runs = (
        OrchestrationRun.objects
        .only("id", "status", "orchestration_name", "created_at", "started_at", "completed_at",
              "usage", "error_code")
        .annotate(message_preview=Left("message", PREVIEW_CHARS + 1))
        .order_by("-created_at", "-id")
    )
    if not form.is_valid():
        return runs
    data = form.cleaned_data
    if data.get("team"):
        runs = runs.filter(orchestration=data["team"])
    if data.get("status"):
        runs = runs.filter(status=data["status"])
    if data.get("since"):
        runs = runs.filter(created_at__gte=_day_start(data["since"]))
    if data.get("until"):
        runs = runs.filter(created_at__lt=_day_start(data["until"] + datetime.timedelta(days=1)))
    if data.get("q"):
        runs = runs.filter(message__icontains=data["q"])
    return runs


def _day_start(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time.min, tzinfo=datetime.UTC)


@dataclass
class RunRow:
    run: OrchestrationRun
    preview: str
    duration: str
    tokens: str
    cost: str


def _run_rows(runs) -> list[RunRow]:
    rows = []
    for run in runs:
        preview = run.message_preview
        if len(preview) > PREVIEW_CHARS:
            preview = preview[:PREVIEW_CHARS].rstrip() + "…"
        tokens, cost = _usage_numbers(run.usage)
        rows.append(RunRow(run=run, preview=preview, duration=format_duration(run.duration_ms),
                           tokens=format_tokens(tokens), cost=format_cost(cost)))
    return rows


def _staff_run_get(run_id: str) -> OrchestrationRun | None:
    return (
        OrchestrationRun.objects.filter(pk=run_id)
        .select_related("owner", "orchestration")
        .prefetch_related(Prefetch("child_runs", queryset=ChildRun.objects.order_by("created_at")))
        .first()
    )


# ---------------------------------------------------------------------------
# The event timeline, shared with the admin's run pages


@dataclass
class TimelineRow:
    seq: int
    event: str
    offset: str
    agent: str
    summary: str
    is_error: bool


def _short(text, limit: int = 160) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tokens(usage) -> str:
    if not isinstance(usage, dict):
        return ""
    total = usage.get("total_tokens")
    return "" if total is None else f"{total} tokens"


def event_summary(data: dict) -> str:
    """Return one line of plain text saying what an event reports."""
    event = data.get("event")
    if event == "start":
        return f"session {data.get('session_id') or '—'}"
    if event == "orchestration_started":
        return (f"{data.get('strategy')} team {data.get('name')!s} with "
                f"{data.get('entity_count')} entities")
    if event == "step_started":
        return f"step {data.get('step')}"
    if event == "tool_call":
        task = (data.get("arguments") or {}).get("task") if isinstance(data.get("arguments"), dict) else ""
        return f"{data.get('tool_name')}: {_short(task)}"
    if event == "delegation_started":
        return f"→ {data.get('agent')}: {_short(data.get('task'))}"
    if event == "delegation_completed":
        duration = data.get("duration_ms")
        parts = [f"← {data.get('agent')} {data.get('status')}"]
        if duration is not None:
            parts.append(f"{duration} ms")
        if _tokens(data.get("usage")):
            parts.append(_tokens(data.get("usage")))
        return ", ".join(parts) + f": {_short(data.get('content'))}"
    if event == "tool_result":
        return f"{data.get('tool_name')} ({data.get('duration_ms')} ms): {_short(data.get('result_preview'))}"
    if event == "step_completed":
        return f"step {data.get('step')} finished ({data.get('finish_reason')})"
    if event == "orchestration_completed":
        return f"{data.get('status')} after {data.get('steps')} steps, {_tokens(data.get('usage'))}"
    if event == "chunk":
        return _short(data.get("content"))
    if event == "complete":
        text = f"{data.get('status')}"
        if data.get("stop_reason"):
            text += f" ({data.get('stop_reason')})"
        if data.get("error"):
            text += f": {data.get('error')}"
        return text
    if event == "error":
        return f"{data.get('code')}: {data.get('error')}"
    if event == "content_delta":
        return _short(data.get("delta"))
    known = {"event", "run_id", "seq", "ts"}
    return _short(json.dumps({k: v for k, v in data.items() if k not in known}, default=str))


def timeline_rows(run_id: str, limit: int = MAX_TIMELINE_EVENTS) -> tuple[list[TimelineRow], bool]:
    """Return the run's stored events except token deltas, and whether some were left out."""
    lines = list(
        RunEvent.objects.filter(run_id=run_id).exclude(event="content_delta")
        .order_by("seq").values_list("data", flat=True)[: limit + 1]
    )
    truncated = len(lines) > limit
    rows = []
    first = None
    for line in lines[:limit]:
        data = json.loads(line)
        ts = _parse_ts(data.get("ts"))
        if first is None:
            first = ts
        offset = f"+{(ts - first).total_seconds():.2f}s" if ts and first else ""
        event = str(data.get("event", ""))
        rows.append(TimelineRow(
            seq=int(data.get("seq") or 0), event=event, offset=offset,
            agent=str(data.get("agent") or ""), summary=event_summary(data),
            is_error=event == "error" or (event == "complete" and data.get("status") != "completed"),
        ))
    return rows, truncated


def _parse_ts(value) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(str(value))
    except ValueError:
        return None


# ---------------------------------------------------------------------------
# Pages


@require_GET
def home(request):
    return redirect("staff-runs")


@require_GET
@staff_member_required
def runs_list(request):
    form = RunFilterForm(request.GET or None, teams=_teams().order_by("name"))
    paginator = Paginator(_filtered_runs(form), RUNS_PER_PAGE)
    page = paginator.get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    query.pop("fragment", None)
    context = {
        "form": form, "page": page, "rows": _run_rows(page.object_list),
        "query": query.urlencode(), "follow": page.number == 1,
    }
    if request.GET.get("fragment"):
        return render(request, "staff/_runs_table.html", context)
    return render(request, "staff/runs_list.html", context)


@require_GET
@staff_member_required
def run_detail(request, run_id):
    run = _staff_run_get(run_id)
    if run is None:
        raise Http404("Run not found.")

    events, truncated = timeline_rows(run.id)
    children = []
    for child in run.child_runs.all():
        tokens, cost = _usage_numbers(child.usage)
        children.append({"run": child, "tokens": format_tokens(tokens), "cost": format_cost(cost),
                         "duration": format_duration(child.duration_ms)})
    tokens, cost = _usage_numbers(run.usage)
    context = {
        "run": run, "children": children, "events": events, "events_truncated": truncated,
        "tokens": format_tokens(tokens), "cost": format_cost(cost),
        "duration": format_duration(run.duration_ms),
        "snapshot": json.dumps(run.config_snapshot, indent=2, ensure_ascii=False, sort_keys=True),
        "events_url": reverse("orchestration-run-events", kwargs={"run_id": run.id}),
        "last_seq": events[-1].seq if events else 0,
    }
    return render(request, "staff/run_detail.html", context)


@require_POST
@staff_member_required
def run_cancel(request, run_id):
    run = _staff_run_get(run_id)
    if run is None:
        raise Http404("Run not found.")

    try:
        services.run_cancel(run=run)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Cancellation requested.")

    return redirect("staff-run-detail", run_id=run.id)


@require_http_methods(["GET", "POST"])
@staff_member_required
def console(request):
    teams = _teams().order_by("name")
    if request.method == "GET":
        form = ConsoleForm(teams=teams, initial={"team": request.GET.get("team")})
        return render(request, "staff/console.html", {"form": form})

    form = ConsoleForm(request.POST, teams=teams)
    if form.is_valid():
        team = form.cleaned_data["team"]
        try:
            run, _created = services.run_submit(owner=team.owner, orchestration=team,
                                                message=form.cleaned_data["message"])
        except ServiceError as exc:
            form.add_error(None, f"{exc.message} ({exc.code})")
        else:
            logger.info("run %s started from the console by %s", run.id, request.user.pk)
            return redirect("staff-run-detail", run_id=run.id)

    return render(request, "staff/console.html", {"form": form}, status=400)


@require_GET
@staff_member_required
def usage(request):
    form = UsageForm(request.GET if "since" in request.GET else None,
                     initial=UsageForm.default_period())
    if form.is_bound and form.is_valid():
        since, until = form.cleaned_data["since"], form.cleaned_data["until"]
    else:
        period = UsageForm.default_period()
        since, until = period["since"], period["until"]
    report = usage_report(since=since, until=until)
    return render(request, "staff/usage.html", {"form": form, "report": report,
                                                "since": since, "until": until})


# ---------------------------------------------------------------------------
# Usage


@dataclass
class Tally:
    label: str = ""
    runs: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float = 0.0
    cost_unknown: bool = False

    def add(self, usage: dict | None, runs: int = 1) -> None:
        usage = usage or {}
        self.runs += runs
        self.prompt_tokens += int(usage.get("prompt_tokens") or 0)
        self.completion_tokens += int(usage.get("completion_tokens") or 0)
        self.total_tokens += int(usage.get("total_tokens") or 0)
        cost = usage.get("cost_usd")
        if cost is None:
            # A run that used tokens without a known price; zero-token rows cost nothing.
            if usage.get("total_tokens"):
                self.cost_unknown = True
        else:
            self.cost_usd += float(cost)

    @property
    def cost_display(self) -> str:
        """The cost, or its known part when some model's price is missing from litellm's map."""
        if self.cost_unknown:
            return "unknown" if not self.cost_usd else f"≥ {format_cost(self.cost_usd)}"
        return format_cost(self.cost_usd)


@dataclass
class UsageReport:
    teams: list[Tally]
    agents: list[Tally]
    days: list[tuple[datetime.date, Tally]]
    total: Tally
    chart: dict = field(default_factory=dict)


def usage_report(*, since: datetime.date, until: datetime.date) -> UsageReport:
    """Add up tokens and cost per team, per agent and per day over [since, until] (UTC days).

    The usage is JSON on each run, added up here rather than in SQL so the
    same code serves SQLite and PostgreSQL; the period is bounded by the form.
    """
    start, end = _day_start(since), _day_start(until + datetime.timedelta(days=1))
    teams: dict[str, Tally] = {}
    agents: dict[str, Tally] = {}
    days = {since + datetime.timedelta(days=n): Tally() for n in range((until - since).days + 1)}
    total = Tally(label="All runs")

    team_runs = (
        OrchestrationRun.objects.filter(created_at__gte=start, created_at__lt=end)
        .values_list("orchestration_name", "created_at", "usage", "usage_breakdown")
        .iterator(chunk_size=2000)
    )
    for name, created_at, run_usage, breakdown in team_runs:
        label = name or "(unnamed team)"
        teams.setdefault(label, Tally(label=label)).add(run_usage)
        days[created_at.astimezone(datetime.UTC).date()].add(run_usage)
        total.add(run_usage)
        coordinator = (breakdown or {}).get("coordinator")
        if coordinator:
            coordinator_label = f"Coordinator of {label}"
            agents.setdefault(coordinator_label, Tally(label=coordinator_label)).add(coordinator)

    child_runs = (
        ChildRun.objects.filter(parent__created_at__gte=start, parent__created_at__lt=end)
        .values_list("agent_name", "usage").iterator(chunk_size=2000)
    )
    for agent_name, child_usage in child_runs:
        agents.setdefault(agent_name, Tally(label=agent_name)).add(child_usage)

    agent_runs = (
        AgentRun.objects.filter(created_at__gte=start, created_at__lt=end)
        .values_list("agent_name", "created_at", "usage").iterator(chunk_size=2000)
    )
    for agent_name, created_at, run_usage in agent_runs:
        label = f"{agent_name} (alone)"
        agents.setdefault(label, Tally(label=label)).add(run_usage)
        days[created_at.astimezone(datetime.UTC).date()].add(run_usage)
        total.add(run_usage)

    def by_tokens(tallies):
        return sorted(tallies, key=lambda t: (-t.total_tokens, t.label))

    day_rows = sorted(days.items())
    return UsageReport(teams=by_tokens(teams.values()), agents=by_tokens(agents.values()),
                       days=day_rows, total=total, chart=_bar_chart(day_rows))


CHART_WIDTH = 720
CHART_HEIGHT = 220
CHART_PADDING = {"top": 16, "right": 8, "bottom": 34, "left": 56}


def _bar_chart(day_rows: list[tuple[datetime.date, Tally]]) -> dict:
    """Lay out a bar chart of tokens per day as numbers for the SVG template."""
    pad = CHART_PADDING
    inner_width = CHART_WIDTH - pad["left"] - pad["right"]
    inner_height = CHART_HEIGHT - pad["top"] - pad["bottom"]
    peak = max((tally.total_tokens for _day, tally in day_rows), default=0)
    scale_top = _nice_ceiling(peak)
    slot = inner_width / max(len(day_rows), 1)
    label_every = max(1, round(len(day_rows) / 10))
    bars = []
    for index, (day, tally) in enumerate(day_rows):
        height = 0 if not scale_top else inner_height * tally.total_tokens / scale_top
        x = pad["left"] + index * slot
        bars.append({
            "x": round(x + slot * 0.15, 1), "width": round(max(slot * 0.7, 1), 1),
            "y": round(pad["top"] + inner_height - height, 1), "height": round(height, 1),
            "day": day, "tally": tally, "label_x": round(x + slot / 2, 1),
            "show_label": index % label_every == 0,
        })
    ticks = []
    for step in range(5):
        value = scale_top * step / 4
        ticks.append({"y": round(pad["top"] + inner_height - inner_height * step / 4, 1),
                      "label": f"{value:,.0f}"})
    return {"width": CHART_WIDTH, "height": CHART_HEIGHT, "bars": bars, "ticks": ticks,
            "left": pad["left"], "right": CHART_WIDTH - pad["right"],
            "baseline": pad["top"] + inner_height, "label_y": CHART_HEIGHT - pad["bottom"] + 16}


def _nice_ceiling(value: int) -> int:
    """Round `value` up to 1, 2 or 5 times a power of ten, so axis labels read well."""
    if value <= 0:
        return 0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for factor in (1, 2, 5, 10):
        if value <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude
