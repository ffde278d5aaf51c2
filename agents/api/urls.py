from powabase.routing import route

from .views import AgentRunViewSet, AgentViewSet

agents = AgentViewSet.as_view({"get": "list", "post": "create"})
agent = AgentViewSet.as_view({"get": "retrieve", "put": "update", "patch": "partial_update",
                              "delete": "destroy"})
agent_run = AgentViewSet.as_view({"post": "run"})
agent_run_stream = AgentViewSet.as_view({"post": "run_stream"})
agent_run_detail = AgentRunViewSet.as_view({"get": "retrieve"})

urlpatterns = [
    route(r"agents", agents, "agent-list"),
    route(r"agents/runs/(?P<run_id>[^/]+)", agent_run_detail, "agent-run-detail"),
    route(r"agents/(?P<pk>[^/]+)", agent, "agent-detail"),
    route(r"agents/(?P<pk>[^/]+)/run", agent_run, "agent-run"),
    route(r"agents/(?P<pk>[^/]+)/run/stream", agent_run_stream, "agent-run-stream"),
]
