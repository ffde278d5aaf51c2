import json

from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.response import Response

from agents import selectors as agent_selectors
from agents.streaming import sse_response
from powabase.api import ListParams, parse_uuid
from powabase.errors import NotFound, ValidationFailed

from .. import selectors, services
from ..models import Entity, OrchestrationRun
from .serializers import (
    EntityInput,
    EntityOutput,
    EntityUpdateInput,
    OrchestrationDetail,
    OrchestrationInput,
    OrchestrationListItem,
    OrchestrationRunInput,
    OrchestrationRunOutput,
)

ORCHESTRATION_SORT_FIELDS = ("created_at", "updated_at", "name")


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
    run = selectors.run_get(owner=request.user, run_id=run_id)
    if run is None:
        raise NotFound(f"No orchestration run with id {run_id}.", code="run_not_found")
    return run


class OrchestrationViewSet(viewsets.ViewSet):
    @extend_schema(request=OrchestrationInput, responses={201: OrchestrationDetail})
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

    @extend_schema(responses={200: OrchestrationListItem(many=True)})
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

    @extend_schema(responses={200: OrchestrationDetail})
    def retrieve(self, request, pk=None):
        return Response(OrchestrationDetail(get_orchestration_or_404(request, pk)).data)

    @extend_schema(request=OrchestrationInput, responses={200: OrchestrationDetail})
    def partial_update(self, request, pk=None):
        orchestration = get_orchestration_or_404(request, pk)
        data = OrchestrationInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        services.orchestration_update(orchestration=orchestration, data=data.validated_data)
        orchestration = get_orchestration_or_404(request, pk)
        return Response(OrchestrationDetail(orchestration).data)

    update = partial_update

    def destroy(self, request, pk=None):
        services.orchestration_delete(orchestration=get_orchestration_or_404(request, pk))
        return Response({"deleted": True})

    @extend_schema(request=OrchestrationRunInput, responses={(200, "text/event-stream"): str})
    def run_stream(self, request, pk=None):
        orchestration = get_orchestration_or_404(request, pk)
        data = OrchestrationRunInput(data=request.data)
        data.is_valid(raise_exception=True)
        key = request.headers.get("Idempotency-Key", "").strip()
        if len(key) > 200:
            raise ValidationFailed("The Idempotency-Key header must be at most 200 characters.",
                                   fields={"Idempotency-Key": ["must be at most 200 characters."]})
        run, _created = services.run_submit(
            owner=request.user, orchestration=orchestration,
            message=data.validated_data["message"],
            session_id=data.validated_data.get("session_id"), idempotency_key=key,
        )
        return sse_response(OrchestrationRun, run.id)


class EntityViewSet(viewsets.ViewSet):
    @extend_schema(request=EntityInput, responses={201: EntityOutput})
    def create(self, request, orchestration_pk=None):
        orchestration = get_orchestration_or_404(request, orchestration_pk)
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

    @extend_schema(responses={200: EntityOutput(many=True)})
    def list(self, request, orchestration_pk=None):
        orchestration = get_orchestration_or_404(request, orchestration_pk)
        entities = selectors.entity_list(orchestration=orchestration)
        return Response({"entities": EntityOutput(entities, many=True).data})

    @extend_schema(responses={200: EntityOutput})
    def retrieve(self, request, orchestration_pk=None, pk=None):
        orchestration = get_orchestration_or_404(request, orchestration_pk)
        return Response(EntityOutput(get_entity_or_404(orchestration, pk)).data)

    @extend_schema(request=EntityUpdateInput, responses={200: EntityOutput})
    def partial_update(self, request, orchestration_pk=None, pk=None):
        orchestration = get_orchestration_or_404(request, orchestration_pk)
        entity = get_entity_or_404(orchestration, pk)
        data = EntityUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        services.entity_update(entity=entity, data=data.validated_data)
        return Response(EntityOutput(get_entity_or_404(orchestration, pk)).data)

    update = partial_update

    def destroy(self, request, orchestration_pk=None, pk=None):
        orchestration = get_orchestration_or_404(request, orchestration_pk)
        services.entity_remove(entity=get_entity_or_404(orchestration, pk))
        return Response({"deleted": True})


class OrchestrationRunViewSet(viewsets.ViewSet):
    @extend_schema(responses={200: OrchestrationRunOutput})
    def retrieve(self, request, run_id=None):
        run = get_run_or_404(request, run_id)
        events = [json.loads(line) for line in agent_selectors.stored_events(run_id=run.id)]
        return Response(OrchestrationRunOutput(run, context={"events": events}).data)

    @extend_schema(responses={(200, "text/event-stream"): str})
    def events(self, request, run_id=None):
        run = get_run_or_404(request, run_id)
        return sse_response(OrchestrationRun, run.id, after_seq=last_event_id(request))

    @extend_schema(request=None, responses={200: OrchestrationRunOutput})
    def cancel(self, request, run_id=None):
        run = services.run_cancel(run=get_run_or_404(request, run_id))
        return Response({"run_id": run.id, "status": run.status,
                         "cancel_requested": run.cancel_requested_at is not None})


def last_event_id(request) -> int:
    """Return the seq to resume after, from `Last-Event-ID` or `?last_event_id=`."""
    raw = request.headers.get("Last-Event-ID") or request.query_params.get("last_event_id") or "0"
    try:
        value = int(raw)
    except ValueError:
        raise ValidationFailed("Last-Event-ID must be a whole number (an event's id).",
                               fields={"Last-Event-ID": ["must be a whole number."]}) from None
    if value < 0:
        raise ValidationFailed("Last-Event-ID must not be negative.",
                               fields={"Last-Event-ID": ["must not be negative."]})
    return value
