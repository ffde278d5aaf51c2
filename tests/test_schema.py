"""The OpenAPI schema: valid, public, complete, and true to the running service.

schemathesis fuzzes every operation of the live web process with generated
requests, valid and invalid, and checks each response against the schema.

The run endpoints (run, run/stream) and the event streams are left out of the
fuzzing: a generated run would call the agent's model, and the agents a fuzzer
creates may name any `api_base`. The fuzzed requests therefore reach no model
endpoint at all; the run endpoints have their own tests with the scripted model.
"""

import json

import httpx
import pytest
import schemathesis
from django.core.management import call_command
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

NOT_FUZZED = r"(/run|/run/stream|/events)$"
SSE_OPERATIONS = ("agents_run_stream", "agent_runs_events", "orchestrations_run_stream",
                  "orchestration_runs_events")


def load_schema(web) -> dict:
    response = httpx.get(f"{web.url}/api/schema", params={"format": "json"})
    assert response.status_code == 200, response.text
    return response.json()


def operations(schema: dict):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_schema_generation_has_no_warnings(tmp_path):
    target = tmp_path / "schema.yaml"

    call_command("spectacular", validate=True, fail_on_warn=True, file=str(target))

    assert target.read_text().startswith("openapi: 3.")


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer pb_not_a_real_key"},
                                     {"apikey": "nonsense"}])
def test_schema_and_docs_are_public(web, headers):
    schema = httpx.get(f"{web.url}/api/schema/", params={"format": "json"}, headers=headers)
    yaml = httpx.get(f"{web.url}/api/schema/", headers=headers)
    docs = httpx.get(f"{web.url}/api/docs/", headers=headers)

    assert schema.status_code == 200
    assert schema.json()["openapi"].startswith("3.")
    assert yaml.status_code == 200
    assert yaml.text.startswith("openapi: 3.")
    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")
    assert "swagger" in docs.text.lower()


def test_schema_endpoints_are_read_only(web):
    for path in ("/api/schema/", "/api/docs/"):
        response = httpx.post(f"{web.url}{path}", json={})
        assert response.status_code == 405
        assert response.json()["code"] == "method_not_allowed"


def test_every_operation_documents_auth_and_its_errors(web):
    schema = load_schema(web)
    schemes = schema["components"]["securitySchemes"]

    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert schemes["apikeyAuth"] == {**schemes["apikeyAuth"], "type": "apiKey", "in": "header",
                                     "name": "apikey"}
    error = schema["components"]["schemas"]["Error"]
    assert set(error["properties"]) == {"error", "code", "fields"}
    assert set(error["required"]) == {"error", "code"}
    count = 0
    for path, method, operation in operations(schema):
        count += 1
        label = f"{method.upper()} {path}"
        assert operation["security"][:2] == [{"bearerAuth": []}, {"apikeyAuth": []}], label
        assert operation.get("summary"), label
        assert "401" in operation["responses"], label
        errors = {status: response for status, response in operation["responses"].items()
                  if status.startswith(("4", "5"))}
        for status, response in errors.items():
            body_schema = response["content"]["application/json"]["schema"]
            assert body_schema == {"$ref": "#/components/schemas/Error"}, (label, status)
            assert "`" in response["description"], (label, status)
        if "{" in path:
            assert "404" in operation["responses"], label
        if method in ("post", "put", "patch") and "requestBody" in operation:
            assert {"400", "413", "415"} <= set(errors), label
    assert count == 29


def test_sse_operations_document_the_event_stream(web):
    schema = load_schema(web)
    by_id = {operation["operationId"]: operation for _path, _method, operation in operations(schema)}

    for operation_id in SSE_OPERATIONS:
        ok = by_id[operation_id]["responses"]["200"]
        assert list(ok["content"]) == ["text/event-stream"], operation_id
        for event in ("start", "step_started", "content_delta", "step_completed", "chunk",
                      "complete", "error"):
            assert f"`{event}`" in ok["description"], (operation_id, event)
    team_stream = by_id["orchestrations_run_stream"]["responses"]["200"]["description"]
    for event in ("orchestration_started", "tool_call", "delegation_started",
                  "delegation_completed", "tool_result", "orchestration_completed"):
        assert f"`{event}`" in team_stream, event


def test_request_bodies_reject_unknown_properties(web):
    schema = load_schema(web)
    components = schema["components"]["schemas"]

    for name in ("AgentInput", "PatchedAgentInput", "OrchestrationInput", "EntityInput",
                 "PatchedEntityUpdateInput", "RunMessageInput", "OrchestrationRunInput"):
        assert components[name]["additionalProperties"] is False, name
    entity = components["EntityInput"]
    assert {"agent_id", "entity_ref_id", "role", "role_description"} <= set(entity["properties"])
    assert entity["anyOf"] == [{"required": ["agent_id"]}, {"required": ["entity_ref_id"]}]
    settings_schema = components["OrchestrationInput"]["properties"]["settings"]
    assert settings_schema["properties"]["max_steps"] == {"type": "integer", "minimum": 1,
                                                          "maximum": 100, "nullable": True}
    assert json.dumps(components["AgentInput"]["properties"]["settings"]).count("api_base") == 1


# Fuzzing


def generated_schema() -> dict:
    """Return the schema as this code generates it, the document the web process serves."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    schema = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(schema, renderer_context={}))


def test_live_schema_is_the_generated_one(web):
    assert load_schema(web) == generated_schema()


# The schema is built at collection time, because the fuzzed tests are made from it.
# The live process serves the same document (checked above) and gets the requests.
fuzzed = schemathesis.openapi.from_dict(generated_schema()).exclude(path_regex=NOT_FUZZED)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance, negative_data_rejection]


@fuzzed.parametrize()
@settings(max_examples=20, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_fuzzed_requests_conform_to_the_schema(case, web, owner, api_key):
    from agents.models import AgentRun
    from orchestrations.models import OrchestrationRun

    case.call_and_validate(base_url=web.url, headers={"Authorization": f"Bearer {api_key}"},
                           checks=CHECKS)

    assert not OrchestrationRun.objects.filter(owner=owner).exists()
    assert not AgentRun.objects.filter(owner=owner).exists()
