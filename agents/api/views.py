import json
import time

from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.response import Response

from powabase.api import ListParams, parse_uuid
from powabase.errors import NotFound

from .. import selectors, services
from ..models import AgentRun
from ..streaming import sse_response
from .serializers import AgentInput, AgentListOutput, AgentOutput, AgentRunOutput, RunMessageInput

AGENT_SORT_FIELDS = ("created_at", "updated_at", "name", "model")
# Seconds the non-streaming run endpoint waits for the run to finish.
BLOCKING_RUN_TIMEOUT = 600


def get_agent_or_404(request, agent_id):
    agent = selectors.agent_get(owner=request.user, agent_id=parse_uuid(agent_id))
    if agent is None:
        raise NotFound(f"No agent with id {agent_id}.", code="agent_not_found")
    return agent


class AgentViewSet(viewsets.ViewSet):
    @extend_schema(request=AgentInput, responses={201: AgentOutput})
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

    @extend_schema(responses={200: AgentListOutput})
    def list(self, request):
        params = ListParams(request, sort_fields=AGENT_SORT_FIELDS)
        queryset = selectors.agent_list(owner=request.user, q=params.q, sort=params.sort,
                                        order=params.order)
        agents = params.page(queryset)
        return Response({"agents": AgentOutput(agents, many=True).data, "total": queryset.count(),
                         "limit": params.limit, "offset": params.offset})

    @extend_schema(responses={200: AgentOutput})
    def retrieve(self, request, pk=None):
        return Response(AgentOutput(get_agent_or_404(request, pk)).data)

    @extend_schema(request=AgentInput, responses={200: AgentOutput})
    def partial_update(self, request, pk=None):
        agent = get_agent_or_404(request, pk)
        data = AgentInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        agent = services.agent_update(agent=agent, data=data.validated_data)
        return Response(AgentOutput(agent).data)

    update = partial_update

    def destroy(self, request, pk=None):
        services.agent_delete(agent=get_agent_or_404(request, pk))
        return Response({"message": "Agent deleted"})

    @extend_schema(request=RunMessageInput, responses={200: AgentRunOutput})
    def run(self, request, pk=None):
        agent = get_agent_or_404(request, pk)
        data = RunMessageInput(data=request.data)
        data.is_valid(raise_exception=True)
        run = services.agent_run_submit(owner=request.user, agent=agent,
                                        message=data.validated_data["message"])
        run = _wait_for_run(run.id)
        return Response({"run_id": run.id, "content": run.content, "status": run.status,
                         "usage": run.usage or None, "error": run.error or None,
                         "code": run.error_code or None})

    @extend_schema(request=RunMessageInput, responses={(200, "text/event-stream"): str})
    def run_stream(self, request, pk=None):
        agent = get_agent_or_404(request, pk)
        data = RunMessageInput(data=request.data)
        data.is_valid(raise_exception=True)
        run = services.agent_run_submit(owner=request.user, agent=agent,
                                        message=data.validated_data["message"])
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


class AgentRunViewSet(viewsets.ViewSet):
    @extend_schema(responses={200: AgentRunOutput})
    def retrieve(self, request, run_id=None):
        run = selectors.agent_run_get(owner=request.user, run_id=run_id)
        if run is None:
            raise NotFound(f"No agent run with id {run_id}.", code="run_not_found")
        events = [json.loads(line) for line in selectors.stored_events(run_id=run.id)]
        return Response(AgentRunOutput(run, context={"events": events}).data)

