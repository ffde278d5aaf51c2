from powabase.routing import route

from .views import AgentRunViewSet, AgentViewSet

agents = AgentViewSet.as_view({"get": "list", "post": "create"})
agent = AgentViewSet.as_view({"get": "retrieve", "put": "update", "patch": "partial_update",
                              "delete": "destroy"})
agent_run = AgentViewSet.as_view({"post": "run"})
agent_run_stream = AgentViewSet.as_view({"post": "run_stream"})
run_detail = AgentRunViewSet.as_view({"get": "retrieve"})
run_events = AgentRunViewSet.as_view({"get": "events"})
run_cancel = AgentRunViewSet.as_view({"post": "cancel"})

AGENT_ID = r"(?P<agent_id>[^/]+)"
RUN_ID = r"(?P<run_id>[^/]+)"

urlpatterns = [
    *route(r"agents", agents, "agent-list"),
    *route(rf"agents/runs/{RUN_ID}", run_detail, "agent-run-detail"),
    *route(rf"agents/runs/{RUN_ID}/events", run_events, "agent-run-events"),
    *route(rf"agents/runs/{RUN_ID}/cancel", run_cancel, "agent-run-cancel"),
    *route(rf"agents/{AGENT_ID}", agent, "agent-detail"),
    *route(rf"agents/{AGENT_ID}/run", agent_run, "agent-run"),
    *route(rf"agents/{AGENT_ID}/run/stream", agent_run_stream, "agent-run-stream"),
]
