from powabase.routing import route

from .views import EntityViewSet, OrchestrationRunViewSet, OrchestrationViewSet

orchestrations = OrchestrationViewSet.as_view({"get": "list", "post": "create"})
orchestration = OrchestrationViewSet.as_view({"get": "retrieve", "put": "update",
                                              "patch": "partial_update", "delete": "destroy"})
run_stream = OrchestrationViewSet.as_view({"post": "run_stream"})
entities = EntityViewSet.as_view({"get": "list", "post": "create"})
entity = EntityViewSet.as_view({"get": "retrieve", "put": "update", "patch": "partial_update",
                                "delete": "destroy"})
run_detail = OrchestrationRunViewSet.as_view({"get": "retrieve"})
run_events = OrchestrationRunViewSet.as_view({"get": "events"})
run_cancel = OrchestrationRunViewSet.as_view({"post": "cancel"})

ID = r"(?P<pk>[^/]+)"
ORCH_ID = r"(?P<orchestration_pk>[^/]+)"
RUN_ID = r"(?P<run_id>[^/]+)"

urlpatterns = [
    route(r"orchestrations", orchestrations, "orchestration-list"),
    route(rf"orchestrations/runs/{RUN_ID}", run_detail, "orchestration-run-detail"),
    route(rf"orchestrations/runs/{RUN_ID}/events", run_events, "orchestration-run-events"),
    route(rf"orchestrations/runs/{RUN_ID}/cancel", run_cancel, "orchestration-run-cancel"),
    route(rf"orchestrations/{ID}", orchestration, "orchestration-detail"),
    route(rf"orchestrations/{ID}/run/stream", run_stream, "orchestration-run-stream"),
    route(rf"orchestrations/{ORCH_ID}/entities", entities, "entity-list"),
    route(rf"orchestrations/{ORCH_ID}/entities/{ID}", entity, "entity-detail"),
]
