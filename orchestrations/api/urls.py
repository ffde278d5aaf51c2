from powabase.routing import route

from .views import EntityViewSet, OrchestrationRunViewSet, OrchestrationViewSet

orchestrations = OrchestrationViewSet.as_view({"get": "list", "post": "create"})
orchestration = OrchestrationViewSet.as_view({"get": "retrieve", "put": "update",
                                              "patch": "partial_update", "delete": "destroy"})
run_stream = OrchestrationViewSet.as_view({"post": "run_stream"})
team_runs = OrchestrationViewSet.as_view({"get": "runs"})
team_sessions = OrchestrationViewSet.as_view({"get": "sessions"})
entities = EntityViewSet.as_view({"get": "list", "post": "create"})
entity = EntityViewSet.as_view({"get": "retrieve", "put": "update", "patch": "partial_update",
                                "delete": "destroy"})
run_detail = OrchestrationRunViewSet.as_view({"get": "retrieve"})
run_events = OrchestrationRunViewSet.as_view({"get": "events"})
run_cancel = OrchestrationRunViewSet.as_view({"post": "cancel"})

ORCH_ID = r"(?P<orchestration_id>[^/]+)"
ENTITY_ID = r"(?P<entity_id>[^/]+)"
RUN_ID = r"(?P<run_id>[^/]+)"

urlpatterns = [
    *route(r"orchestrations", orchestrations, "orchestration-list"),
    *route(rf"orchestrations/runs/{RUN_ID}", run_detail, "orchestration-run-detail"),
    *route(rf"orchestrations/runs/{RUN_ID}/events", run_events, "orchestration-run-events"),
    *route(rf"orchestrations/runs/{RUN_ID}/cancel", run_cancel, "orchestration-run-cancel"),
    *route(rf"orchestrations/{ORCH_ID}", orchestration, "orchestration-detail"),
    *route(rf"orchestrations/{ORCH_ID}/run/stream", run_stream, "orchestration-run-stream"),
    *route(rf"orchestrations/{ORCH_ID}/runs", team_runs, "orchestration-runs"),
    *route(rf"orchestrations/{ORCH_ID}/sessions", team_sessions, "orchestration-sessions"),
    *route(rf"orchestrations/{ORCH_ID}/entities", entities, "entity-list"),
    *route(rf"orchestrations/{ORCH_ID}/entities/{ENTITY_ID}", entity, "entity-detail"),
]
