import json
import time

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response

from powabase.api import (
    RUN_ID_PATTERN,
    ListParams,
    RunSubmitThrottle,
    errors,
    last_event_id,
    list_parameters,
    parse_run_id,
    parse_uuid,
)
from powabase.errors import NotFound
from powabase.views import ApiViewSet

from .. import selectors, services
from ..models import AgentRun
from ..streaming import sse_response
from .serializers import (
    AgentDeletedOutput,
    AgentInput,
    AgentListOutput,
    AgentOutput,
    AgentRunOutput,
    AgentRunResult,
    RunCancelOutput,
    RunMessageInput,
)

AGENT_SORT_FIELDS = ("created_at", "updated_at", "name", "model")
# Seconds the non-streaming run endpoint waits for the run to finish.
BLOCKING_RUN_TIMEOUT = 600

AGENT_ID = OpenApiParameter("agent_id", OpenApiTypes.UUID, OpenApiParameter.PATH,
                            description="The agent's id.")
RUN_ID = OpenApiParameter("run_id", {"type": "string", "pattern": RUN_ID_PATTERN},
                          OpenApiParameter.PATH, description="An agent run's id (`agent_run_...`).")
LAST_EVENT_ID = [
    OpenApiParameter("Last-Event-ID", {"type": "integer", "minimum": 0}, OpenApiParameter.HEADER,
                     description="Resume after the event with this id (sent by EventSource)."),
    OpenApiParameter("last_event_id", {"type": "integer", "minimum": 0},
                     description="The same as the Last-Event-ID header, for clients that cannot "
                                 "set headers; the header wins when both are sent."),
]

AGENT_EVENTS = """
Events, one SSE frame each (`id: <seq>`, `event: <type>`, `data: <one line of JSON>`).
`data` repeats the type under `event` and carries `run_id`, `seq` and `ts`, plus:

| event | fields |
|---|---|
| `start` | `run_id` |
| `step_started` | `step`, `agent` |
| `content_delta` | `delta`, `agent` |
| `step_completed` | `step`, `finish_reason`, `has_tool_calls` |
| `model_retry` | `agent`, `model`, `code`, `attempt`, `delay_seconds` |
| `model_fallback` | `agent`, `from_model`, `to_model`, `code` |
| `chunk` | `content` (the whole answer; sent when the run completed) |
| `error` | `error`, `code` (sent when the run failed or was cancelled) |
| `complete` | `run_id`, `session_id`, `content`, `status`, `steps`, `usage`, `error`, `code`, `stop_reason` |

The stream ends after `complete`. A `: keepalive` comment goes out after 15 s of silence.
"""

SSE_RESPONSE = {(200, "text/event-stream"): OpenApiResponse(
    OpenApiTypes.STR, description="A Server-Sent Events stream." + AGENT_EVENTS)}


def get_agent_or_404(request, agent_id):
    agent = selectors.agent_get(owner=request.user, agent_id=parse_uuid(agent_id))
    if agent is None:
        raise NotFound(f"No agent with id {agent_id}.", code="agent_not_found")
    return agent


def get_agent_run_or_404(request, run_id) -> AgentRun:
    run = None
    parsed = parse_run_id(run_id)
    if parsed is not None:
        run = selectors.agent_run_get(owner=request.user, run_id=parsed)
    if run is None:
        raise NotFound(f"No agent run with id {run_id}.", code="run_not_found")
    return run


class AgentViewSet(ApiViewSet):
    def get_throttles(self):
        if self.action in ("run", "run_stream"):
            return [RunSubmitThrottle()]
        return []

    @extend_schema(
        operation_id="agents_create", summary="Create an agent",
        request=AgentInput,
        responses={201: AgentOutput, **errors(body=True)},
    )
    def create(self, request):
        data = AgentInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        agent = services.agent_create(
            owner=request.user, name=values["name"], model=values.get("model"),
            system_prompt=values.get("system_prompt", ""),
            description=values.get("description", ""), settings_=values.get("settings"),
        )

        return Response(AgentOutput(agent).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="agents_list", summary="List agents",
        parameters=list_parameters(AGENT_SORT_FIELDS),
        responses={200: AgentListOutput, **errors(query=True)},
    )
    def list(self, request):
        params = ListParams(request, sort_fields=AGENT_SORT_FIELDS)
        queryset = selectors.agent_list(owner=request.user, q=params.q, sort=params.sort,
                                        order=params.order)
        agents = params.page(queryset)

        return Response({"agents": AgentOutput(agents, many=True).data, "total": queryset.count(),
                         "limit": params.limit, "offset": params.offset})

    @extend_schema(
        operation_id="agents_retrieve", summary="Get an agent", parameters=[AGENT_ID],
        responses={200: AgentOutput, **errors({404: "agent_not_found"})},
    )
    def retrieve(self, request, agent_id=None):
        return Response(AgentOutput(get_agent_or_404(request, agent_id)).data)

    @extend_schema(
        operation_id="agents_partial_update", summary="Update an agent (partial)",
        description="Only the fields sent change; PUT behaves the same as PATCH.",
        parameters=[AGENT_ID], request=AgentInput(partial=True),
        responses={200: AgentOutput, **errors({404: "agent_not_found"}, body=True)},
    )
    def partial_update(self, request, agent_id=None):
        agent = get_agent_or_404(request, agent_id)
        data = AgentInput(agent, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        agent = services.agent_update(agent=agent, data=data.validated_data)

        return Response(AgentOutput(agent).data)

    @extend_schema(
        operation_id="agents_update", summary="Update an agent (partial, as PATCH)",
        parameters=[AGENT_ID], request=AgentInput(partial=True),
        responses={200: AgentOutput, **errors({404: "agent_not_found"}, body=True)},
    )
    def update(self, request, agent_id=None):
        return self.partial_update(request, agent_id)

    @extend_schema(
        operation_id="agents_destroy", summary="Delete an agent", parameters=[AGENT_ID],
        description="Rejected with 409 `agent_in_use`, naming the orchestrations, while an "
                    "orchestration has the agent as an entity; nothing is deleted then.",
        responses={200: AgentDeletedOutput,
                   **errors({404: "agent_not_found", 409: "agent_in_use"})},
    )
    def destroy(self, request, agent_id=None):
        services.agent_delete(agent=get_agent_or_404(request, agent_id))
        return Response({"message": "Agent deleted"})

    @extend_schema(
        operation_id="agents_run", summary="Run an agent and wait for its answer",
        description="Responds once the run has ended. After 10 minutes a run still going is "
                    "returned with its current status. Run submissions are rate limited per "
                    "API key.",
        parameters=[AGENT_ID], request=RunMessageInput,
        responses={200: AgentRunResult,
                   **errors({404: "agent_not_found", 429: "rate_limited"}, body=True)},
    )
    def run(self, request, agent_id=None):
        agent = get_agent_or_404(request, agent_id)
        data = RunMessageInput(data=request.data)
        data.is_valid(raise_exception=True)
        run = services.agent_run_submit(owner=request.user, agent=agent,
                                        message=data.validated_data["message"],
                                        session_id=data.validated_data.get("session_id"))
        run = _wait_for_run(run.id)

        return Response({"run_id": run.id, "content": run.content, "status": run.status,
                         "usage": run.usage or None, "error": run.error or None,
                         "code": run.error_code or None, "session_id": run.session_id or None})

    @extend_schema(
        operation_id="agents_run_stream", summary="Run an agent, streaming its events",
        description="Checked before the stream opens and returned as JSON errors: the agent, "
                    "the body, the rate limit." + AGENT_EVENTS,
        parameters=[AGENT_ID], request=RunMessageInput,
        responses={**SSE_RESPONSE,
                   **errors({404: "agent_not_found", 429: "rate_limited"}, body=True)},
    )
    def run_stream(self, request, agent_id=None):
        agent = get_agent_or_404(request, agent_id)
        data = RunMessageInput(data=request.data)
        data.is_valid(raise_exception=True)
        run = services.agent_run_submit(owner=request.user, agent=agent,
                                        message=data.validated_data["message"],
                                        session_id=data.validated_data.get("session_id"))

        return sse_response(AgentRun, run.id)


def _wait_for_run(run_id: str) -> AgentRun:
    """Block until the run ends, polling the database (this view runs in a worker thread)."""
    deadline = time.monotonic() + BLOCKING_RUN_TIMEOUT
    delay = 0.02
    while True:
        run = AgentRun.objects.get(pk=run_id)
        if run.is_finished or time.monotonic() > deadline:
            return run
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


class AgentRunViewSet(ApiViewSet):
    @extend_schema(
        operation_id="agent_runs_retrieve", summary="Get a stored agent run",
        description="`events` contains every stored event except `content_delta`.",
        parameters=[RUN_ID],
        responses={200: AgentRunOutput, **errors({404: "run_not_found"})},
    )
    def retrieve(self, request, run_id=None):
        run = get_agent_run_or_404(request, run_id)
        events = [json.loads(line) for line in selectors.stored_events(run_id=run.id)]
        return Response(AgentRunOutput(run, context={"events": events}).data)

    @extend_schema(
        operation_id="agent_runs_events", summary="Stream an agent run's events (resume)",
        description="Replays the stored events after `Last-Event-ID` (or `?last_event_id=`), then "
                    "follows the run live until `complete`; a finished run's stream ends after "
                    "the replay." + AGENT_EVENTS,
        parameters=[RUN_ID, *LAST_EVENT_ID],
        responses={**SSE_RESPONSE, **errors({400: "validation_error", 404: "run_not_found"})},
    )
    def events(self, request, run_id=None):
        run = get_agent_run_or_404(request, run_id)
        return sse_response(AgentRun, run.id, after_seq=last_event_id(request))

    @extend_schema(
        operation_id="agent_runs_cancel", summary="Cancel an agent run",
        description="A pending run is cancelled at once; a running one stops within about a "
                    "second, and its stream ends with `error` (code `cancelled`) and `complete`.",
        parameters=[RUN_ID], request=None,
        responses={200: RunCancelOutput,
                   **errors({404: "run_not_found", 409: "run_finished"})},
    )
    def cancel(self, request, run_id=None):
        run = services.agent_run_cancel(run=get_agent_run_or_404(request, run_id))
        return Response({"run_id": run.id, "status": run.status,
                         "cancel_requested": run.cancel_requested_at is not None})
