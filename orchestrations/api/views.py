import json
import re

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response

from agents import selectors as agent_selectors
from agents.api.serializers import RunCancelOutput
from agents.api.views import LAST_EVENT_ID
from agents.models import RunStatus
from agents.streaming import sse_response
from powabase.api import (
    RUN_ID_PATTERN,
    DeletedOut,
    ListParams,
    RunSubmitThrottle,
    errors,
    last_event_id,
    list_parameters,
    parse_run_id,
    parse_uuid,
)
from powabase.errors import NotFound, ValidationFailed
from powabase.views import ApiViewSet

from .. import selectors, services
from ..models import Entity, OrchestrationRun
from ..views import StaffSessionAuthentication, staff_run_or_404
from .serializers import (
    EntityInput,
    EntityListOutput,
    EntityOutput,
    EntityUpdateInput,
    OrchestrationDetail,
    OrchestrationInput,
    OrchestrationListItem,
    OrchestrationListOutput,
    OrchestrationRunInput,
    OrchestrationRunListItem,
    OrchestrationRunListOutput,
    OrchestrationRunOutput,
    SessionListOutput,
    SessionOutput,
)

ORCHESTRATION_SORT_FIELDS = ("created_at", "updated_at", "name")
RUN_SORT_FIELDS = ("created_at",)
SESSION_SORT_FIELDS = ("last_activity_at",)
SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")

ORCHESTRATION_ID = OpenApiParameter("orchestration_id", OpenApiTypes.UUID, OpenApiParameter.PATH,
                                    description="The orchestration's id.")
ENTITY_ID = OpenApiParameter("entity_id", OpenApiTypes.UUID, OpenApiParameter.PATH,
                             description="The entity's id (not its agent's).")
RUN_ID = OpenApiParameter("run_id", {"type": "string", "pattern": RUN_ID_PATTERN},
                          OpenApiParameter.PATH, description="A run's id (`orch_run_...`).")
PAGE_PARAMETERS = [parameter for parameter in list_parameters(RUN_SORT_FIELDS)
                   if parameter.name in ("limit", "offset")]

RUN_EVENTS = """
Events, one SSE frame each (`id: <seq>`, `event: <type>`, `data: <one line of JSON>`).
`data` repeats the type under `event` and carries `run_id`, `seq` and `ts`, plus:

| event | fields |
|---|---|
| `start` | `run_id`, `session_id` |
| `orchestration_started` | `strategy`, `name`, `entity_count` |
| `step_started` | `step`, `agent` (null for the coordinator) |
| `content_delta` | `delta`, `agent`; a sub-agent's tokens also carry `child_execution_id` |
| `tool_call` | `step`, `tool_name` (`delegate_to_<agent>`), `arguments` {`task`}, `call_id` |
| `delegation_started` | `agent`, `agent_id`, `entity_id`, `task`, `child_execution_id`, `child_run_id` |
| `delegation_completed` | `agent`, `child_execution_id`, `status`, `steps`, `usage`, `content`, `duration_ms`
| `tool_result` | `step`, `tool_name`, `call_id`, `result_preview`, `duration_ms` |
| `step_completed` | `step`, `finish_reason`, `has_tool_calls` |
| `model_retry`, `model_fallback` | `agent`, the model, the error `code` |
| `orchestration_completed` | `status`, `steps`, `usage` |
| `chunk` | `content` (the whole final answer; sent when the run completed) |
| `error` | `error`, `code` (sent when the run failed or was cancelled) |
| `complete` | `run_id`, `session_id`, `content`, `status`, `steps`, `usage`, `error`, `code`, `stop_reason` |

The stream ends after `complete`. A `: keepalive` comment goes out after 15 s of silence.
"""

SSE_RESPONSE = {(200, "text/event-stream"): OpenApiResponse(
    OpenApiTypes.STR, description="A Server-Sent Events stream." + RUN_EVENTS)}


def get_orchestration_or_404(request, orchestration_id):
    orchestration = None
    parsed = parse_uuid(orchestration_id)
    if parsed is not None:
        orchestration = selectors.orchestration_get(owner=request.user, orchestration_id=parsed)
    if orchestration is None:
        raise NotFound(f"No orchestration with id {orchestration_id}.",
                       code="orchestration_not_found")
    return orchestration


def get_entity_or_404(orchestration, entity_id) -> Entity:
    parsed = parse_uuid(entity_id)
    entity = None
    if parsed is not None:
        entity = selectors.entity_list(orchestration=orchestration).filter(pk=parsed).first()
    if entity is None:
        raise NotFound(f"No entity with id {entity_id} in this orchestration.",
                       code="entity_not_found")
    return entity


def get_run_or_404(request, run_id) -> OrchestrationRun:
    run = None
    parsed = parse_run_id(run_id)
    if parsed is not None:
        run = selectors.run_get(owner=request.user, run_id=parsed)
    if run is None:
        raise NotFound(f"No orchestration run with id {run_id}.", code="run_not_found")
    return run


class OrchestrationViewSet(ApiViewSet):
    def get_throttles(self):
        if self.action == "run_stream":
            return [RunSubmitThrottle()]
        return []

    @extend_schema(
        operation_id="orchestrations_create", summary="Create an orchestration",
        request=OrchestrationInput,
        responses={201: OrchestrationDetail, **errors(body=True)},
    )
    def create(self, request):
        data = OrchestrationInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        orchestration = services.orchestration_create(
            owner=request.user, name=values["name"], description=values.get("description", ""),
            strategy=values.get("strategy", "supervisor"),
            orchestrator_config=values.get("orchestrator_config"),
            settings_=values.get("settings"),
        )
        orchestration = selectors.orchestration_get(owner=request.user,
                                                    orchestration_id=orchestration.id)

        return Response(OrchestrationDetail(orchestration).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="orchestrations_list", summary="List orchestrations",
        description="`{\"orchestrations\": [...]}`; `total`, `limit` and `offset` are added when "
                    "`limit` or `offset` is sent (without them every row is returned).",
        parameters=list_parameters(ORCHESTRATION_SORT_FIELDS),
        responses={200: OrchestrationListOutput, **errors(query=True)},
    )
    def list(self, request):
        params = ListParams(request, sort_fields=ORCHESTRATION_SORT_FIELDS)
        queryset = selectors.orchestration_list(owner=request.user, q=params.q, sort=params.sort,
                                                order=params.order)
        if not params.paginated:
            return Response({"orchestrations": OrchestrationListItem(queryset, many=True).data})

        rows = params.page(queryset)
        return Response({"orchestrations": OrchestrationListItem(rows, many=True).data,
                         "total": queryset.count(), "limit": params.limit,
                         "offset": params.offset})

    @extend_schema(
        operation_id="orchestrations_retrieve", summary="Get an orchestration with its entities",
        parameters=[ORCHESTRATION_ID],
        responses={200: OrchestrationDetail, **errors({404: "orchestration_not_found"})},
    )
    def retrieve(self, request, orchestration_id=None):
        return Response(OrchestrationDetail(get_orchestration_or_404(request, orchestration_id)).data)

    @extend_schema(
        operation_id="orchestrations_partial_update", summary="Update an orchestration (partial)",
        description="Only the fields sent change; PUT behaves the same as PATCH.",
        parameters=[ORCHESTRATION_ID], request=OrchestrationInput(partial=True),
        responses={200: OrchestrationDetail,
                   **errors({404: "orchestration_not_found"}, body=True)},
    )
    def partial_update(self, request, orchestration_id=None):
        orchestration = get_orchestration_or_404(request, orchestration_id)
        data = OrchestrationInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        services.orchestration_update(orchestration=orchestration, data=data.validated_data)
        orchestration = get_orchestration_or_404(request, orchestration_id)

        return Response(OrchestrationDetail(orchestration).data)

    @extend_schema(
        operation_id="orchestrations_update", summary="Update an orchestration (partial, as PATCH)",
        parameters=[ORCHESTRATION_ID], request=OrchestrationInput(partial=True),
        responses={200: OrchestrationDetail,
                   **errors({404: "orchestration_not_found"}, body=True)},
    )
    def update(self, request, orchestration_id=None):
        return self.partial_update(request, orchestration_id)

    @extend_schema(
        operation_id="orchestrations_destroy", summary="Delete an orchestration",
        description="Its entities go with it; its stored runs stay browsable.",
        parameters=[ORCHESTRATION_ID],
        responses={200: DeletedOut, **errors({404: "orchestration_not_found"})},
    )
    def destroy(self, request, orchestration_id=None):
        services.orchestration_delete(orchestration=get_orchestration_or_404(request, orchestration_id))
        return Response({"deleted": True})

    @extend_schema(
        operation_id="orchestrations_run_stream", summary="Run an orchestration, streaming its events",
        description="Checked before the stream opens and returned as JSON errors: the orchestration, "
                    "its entities (400 `no_entities`), the body, the session (404 "
                    "`session_not_found` for another owner's session), the rate limit. "
                    "An `Idempotency-Key` header (at most 200 characters) makes a retried "
                    "request return the first run's stream instead of starting another run."
                    + RUN_EVENTS,
        parameters=[ORCHESTRATION_ID, OpenApiParameter(
            "Idempotency-Key", {"type": "string", "maxLength": 200}, OpenApiParameter.HEADER,
            description="Replays the run started by an earlier request with this key.")],
        request=OrchestrationRunInput,
        responses={**SSE_RESPONSE, **errors({
            400: "no_entities", 404: ("orchestration_not_found", "session_not_found"),
            422: "idempotency_key_reused", 429: "rate_limited"}, body=True)},
    )
    def run_stream(self, request, orchestration_id=None):
        orchestration = get_orchestration_or_404(request, orchestration_id)
        data = OrchestrationRunInput(data=request.data)
        data.is_valid(raise_exception=True)
        key = request.headers.get("Idempotency-Key", "").strip()
        if len(key) > 200:
            raise ValidationFailed("The Idempotency-Key header must be at most 200 characters.",
                                   fields={"Idempotency-Key": ["must be at most 200 characters."]})
        run, created = services.run_submit(
            owner=request.user, orchestration=orchestration,
            message=data.validated_data["message"],
            session_id=data.validated_data.get("session_id"), idempotency_key=key,
        )

        return sse_response(OrchestrationRun, run.id,
                            first_events=[run.start_event] if created else None)

    @extend_schema(
        operation_id="orchestrations_runs", summary="List an orchestration's runs",
        description="Newest first. Rows carry a preview of the message; GET "
                    "/api/orchestrations/runs/{run_id} has the whole run.",
        parameters=[
            ORCHESTRATION_ID, *PAGE_PARAMETERS,
            OpenApiParameter("status", str, enum=RunStatus.values,
                             description="Only runs with this status."),
            OpenApiParameter("session_id", {"type": "string", "pattern": SESSION_ID.pattern},
                             description="Only runs of this session."),
        ],
        responses={200: OrchestrationRunListOutput,
                   **errors({404: "orchestration_not_found"}, query=True)},
    )
    def runs(self, request, orchestration_id=None):
        orchestration = get_orchestration_or_404(request, orchestration_id)
        params = ListParams(request, sort_fields=RUN_SORT_FIELDS)
        run_status = request.query_params.get("status") or None
        if run_status is not None and run_status not in RunStatus.values:
            allowed = ", ".join(RunStatus.values)
            raise ValidationFailed(f"status: must be one of: {allowed}.",
                                   fields={"status": [f"must be one of: {allowed}."]})
        session_id = request.query_params.get("session_id") or None
        if session_id is not None and not SESSION_ID.match(session_id):
            raise ValidationFailed("session_id: is not a session id.",
                                   fields={"session_id": ["is not a session id."]})
        queryset = selectors.orchestration_run_list(orchestration=orchestration, status=run_status,
                                                    session_id=session_id)
        rows = params.page(queryset)

        return Response({"runs": OrchestrationRunListItem(rows, many=True).data,
                         "total": queryset.count(), "limit": params.limit,
                         "offset": params.offset})

    @extend_schema(
        operation_id="orchestrations_sessions", summary="List an orchestration's sessions",
        description="Conversations with runs in this orchestration, most recently active first.",
        parameters=[ORCHESTRATION_ID, *PAGE_PARAMETERS],
        responses={200: SessionListOutput,
                   **errors({404: "orchestration_not_found"}, query=True)},
    )
    def sessions(self, request, orchestration_id=None):
        orchestration = get_orchestration_or_404(request, orchestration_id)
        params = ListParams(request, sort_fields=SESSION_SORT_FIELDS, default_sort="last_activity_at")
        queryset = selectors.orchestration_session_list(orchestration=orchestration)
        rows = params.page(queryset)

        return Response({"sessions": SessionOutput(rows, many=True).data,
                         "total": queryset.count(), "limit": params.limit,
                         "offset": params.offset})


class EntityViewSet(ApiViewSet):
    @extend_schema(
        operation_id="entities_create", summary="Add an agent to an orchestration",
        description="The response carries both spellings of the renamed fields (`agent_id` and "
                    "`entity_ref_id`, `role` and `role_description`).",
        parameters=[ORCHESTRATION_ID], request=EntityInput,
        responses={201: EntityOutput, **errors({
            404: ("orchestration_not_found", "agent_not_found"), 409: "entity_exists"}, body=True)},
    )
    def create(self, request, orchestration_id=None):
        orchestration = get_orchestration_or_404(request, orchestration_id)
        data = EntityInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        agent = agent_selectors.agent_get(owner=request.user, agent_id=values["agent_id"])
        if agent is None:
            raise NotFound(f"No agent with id {values['agent_id']}.", code="agent_not_found")
        entity = services.entity_add(
            orchestration=orchestration, agent=agent, role_description=values.get("role", ""),
            config=values.get("config"), position=values.get("position"),
        )
        entity = get_entity_or_404(orchestration, entity.id)

        return Response(EntityOutput(entity).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="entities_list", summary="List an orchestration's entities",
        description="Ordered by `position`.",
        parameters=[ORCHESTRATION_ID],
        responses={200: EntityListOutput, **errors({404: "orchestration_not_found"})},
    )
    def list(self, request, orchestration_id=None):
        orchestration = get_orchestration_or_404(request, orchestration_id)
        entities = selectors.entity_list(orchestration=orchestration)
        return Response({"entities": EntityOutput(entities, many=True).data})

    @extend_schema(
        operation_id="entities_retrieve", summary="Get an entity",
        parameters=[ORCHESTRATION_ID, ENTITY_ID],
        responses={200: EntityOutput,
                   **errors({404: ("orchestration_not_found", "entity_not_found")})},
    )
    def retrieve(self, request, orchestration_id=None, entity_id=None):
        orchestration = get_orchestration_or_404(request, orchestration_id)
        return Response(EntityOutput(get_entity_or_404(orchestration, entity_id)).data)

    @extend_schema(
        operation_id="entities_partial_update", summary="Update an entity (partial)",
        description="Only the fields sent change; PUT behaves the same as PATCH.",
        parameters=[ORCHESTRATION_ID, ENTITY_ID], request=EntityUpdateInput(partial=True),
        responses={200: EntityOutput, **errors(
            {404: ("orchestration_not_found", "entity_not_found")}, body=True)},
    )
    def partial_update(self, request, orchestration_id=None, entity_id=None):
        orchestration = get_orchestration_or_404(request, orchestration_id)
        entity = get_entity_or_404(orchestration, entity_id)
        data = EntityUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        services.entity_update(entity=entity, data=data.validated_data)

        return Response(EntityOutput(get_entity_or_404(orchestration, entity_id)).data)

    @extend_schema(
        operation_id="entities_update", summary="Update an entity (partial, as PATCH)",
        parameters=[ORCHESTRATION_ID, ENTITY_ID], request=EntityUpdateInput(partial=True),
        responses={200: EntityOutput, **errors(
            {404: ("orchestration_not_found", "entity_not_found")}, body=True)},
    )
    def update(self, request, orchestration_id=None, entity_id=None):
        return self.partial_update(request, orchestration_id, entity_id)

    @extend_schema(
        operation_id="entities_destroy", summary="Remove an entity from its orchestration",
        description="The agent itself is kept.",
        parameters=[ORCHESTRATION_ID, ENTITY_ID],
        responses={200: DeletedOut,
                   **errors({404: ("orchestration_not_found", "entity_not_found")})},
    )
    def destroy(self, request, orchestration_id=None, entity_id=None):
        orchestration = get_orchestration_or_404(request, orchestration_id)
        services.entity_remove(entity=get_entity_or_404(orchestration, entity_id))
        return Response({"deleted": True})


class OrchestrationRunViewSet(ApiViewSet):
    def get_authenticators(self):
        # The staff pages follow a run's events with the staff login session.
        if getattr(self, "action_map", {}).get("get") == "events":
            return [*super().get_authenticators(), StaffSessionAuthentication()]
        return super().get_authenticators()

    @extend_schema(
        operation_id="orchestration_runs_retrieve", summary="Get a stored orchestration run",
        description="`events` contains every stored event except `content_delta`; "
                    "`child_runs` contains one row per delegation.",
        parameters=[RUN_ID],
        responses={200: OrchestrationRunOutput, **errors({404: "run_not_found"})},
    )
    def retrieve(self, request, run_id=None):
        run = get_run_or_404(request, run_id)
        events = [json.loads(line) for line in agent_selectors.stored_events(run_id=run.id)]
        return Response(OrchestrationRunOutput(run, context={"events": events}).data)

    @extend_schema(
        operation_id="orchestration_runs_events", summary="Stream a run's events (resume)",
        description="Replays the stored events after `Last-Event-ID` (or `?last_event_id=`), then "
                    "follows the run live until `complete`; a finished run's stream ends after "
                    "the replay." + RUN_EVENTS,
        parameters=[RUN_ID, *LAST_EVENT_ID],
        responses={**SSE_RESPONSE, **errors({400: "validation_error", 404: "run_not_found"})},
    )
    def events(self, request, run_id=None):
        if isinstance(request.successful_authenticator, StaffSessionAuthentication):
            run = staff_run_or_404(run_id)
        else:
            run = get_run_or_404(request, run_id)
        return sse_response(OrchestrationRun, run.id, after_seq=last_event_id(request))

    @extend_schema(
        operation_id="orchestration_runs_cancel", summary="Cancel an orchestration run",
        description="A pending run is cancelled at once; a running one stops within about a "
                    "second, and its stream ends with `error` (code `cancelled`) and `complete`.",
        parameters=[RUN_ID], request=None,
        responses={200: RunCancelOutput, **errors({404: "run_not_found", 409: "run_finished"})},
    )
    def cancel(self, request, run_id=None):
        run = services.run_cancel(run=get_run_or_404(request, run_id))
        return Response({"run_id": run.id, "status": run.status,
                         "cancel_requested": run.cancel_requested_at is not None})
