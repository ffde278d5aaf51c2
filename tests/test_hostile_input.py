"""Hostile requests against the live web process: none may get a 5xx response,
every error is the JSON error shape with its code, and none may change the
database or queue a run.

No worker runs here, so a run that a request wrongly created would stay in the
database as pending, where the row counts catch it.
"""

import json
import secrets
from dataclasses import dataclass, field

import httpx
import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.services import apikey_create
from agents import services as agent_services
from agents.models import Agent, AgentRun
from orchestrations import services
from orchestrations.models import Entity, Orchestration, OrchestrationRun

LIMIT = 1024 * 1024  # POWABASE_MAX_BODY_BYTES in the test environment (the default).
MISSING = "00000000-0000-4000-8000-000000000000"


@dataclass
class World:
    key: str
    ids: dict
    owner_id: int


@pytest.fixture(scope="module")
def world(db_access) -> World:
    user_model = get_user_model()
    owner = user_model.objects.create_user(username=f"hostile-{secrets.token_hex(6)}")
    other = user_model.objects.create_user(username=f"hostile-other-{secrets.token_hex(6)}")
    _row, key = apikey_create(owner=owner)

    agent = agent_services.agent_create(owner=owner, name="Member", model="openai/member")
    spare = agent_services.agent_create(owner=owner, name="Spare", model="openai/spare")
    team = services.orchestration_create(owner=owner, name="Team")
    entity = services.entity_add(orchestration=team, agent=agent, role_description="Helps")
    empty_team = services.orchestration_create(owner=owner, name="Empty")
    other_agent = agent_services.agent_create(owner=other, name="Theirs", model="openai/theirs")
    other_team = services.orchestration_create(owner=other, name="Theirs")
    services.entity_add(orchestration=other_team, agent=other_agent)

    # Finished runs, stored as a worker would have left them.
    now = timezone.now()
    agent_run = AgentRun.objects.create(owner=owner, agent=agent, agent_name=agent.name,
                                        message="Done", status="completed", completed_at=now)
    orch_run = OrchestrationRun.objects.create(owner=owner, orchestration=team,
                                               orchestration_name=team.name, message="Done",
                                               session_id="orch_sess_mine00000000",
                                               status="completed", completed_at=now)
    OrchestrationRun.objects.create(owner=other, orchestration=other_team,
                                    orchestration_name=other_team.name, message="Secret",
                                    session_id="orch_sess_theirs000000", status="completed",
                                    completed_at=now)

    ids = {"agent": agent.id, "spare": spare.id, "team": team.id, "entity": entity.id,
           "empty_team": empty_team.id, "other_agent": other_agent.id,
           "other_team": other_team.id, "agent_run": agent_run.id, "orch_run": orch_run.id}
    return World(key=key, ids={name: str(value) for name, value in ids.items()},
                 owner_id=owner.id)


def snapshot(world: World) -> dict:
    """Row counts of every model, and every column of the owner's agents, teams and entities."""
    counts = {model._meta.label: model.objects.count() for model in apps.get_models()}
    rows = {
        "agents": list(Agent.objects.filter(owner_id=world.owner_id).order_by("id").values()),
        "teams": list(Orchestration.objects.filter(owner_id=world.owner_id).order_by("id").values()),
        "entities": list(Entity.objects.filter(orchestration__owner_id=world.owner_id)
                         .order_by("id").values()),
        "runs": list(OrchestrationRun.objects.filter(owner_id=world.owner_id).order_by("id")
                     .values("id", "status", "cancel_requested_at")),
        "agent_runs": list(AgentRun.objects.filter(owner_id=world.owner_id).order_by("id")
                           .values("id", "status", "cancel_requested_at")),
    }
    return {"counts": counts, "rows": rows}


@dataclass
class Case:
    name: str
    method: str
    path: str
    status: int
    code: str
    json_body: object = None
    content: object = None
    headers: dict = field(default_factory=dict)
    params: dict | None = None
    auth: str | None = "key"  # "key", None, or a literal Authorization/apikey header value

    def __str__(self):
        return self.name


def body(text: str) -> dict:
    """A raw JSON text body (for what json= cannot express: surrogates, NaN, syntax errors)."""
    return {"content": text.encode("utf-8", "surrogatepass"),
            "headers": {"Content-Type": "application/json"}}


def chunks(total: int):
    piece = b" " * 65536
    for _ in range(total // len(piece)):
        yield piece


DEEP = "[" * 100_000 + "]" * 100_000
NESTED = '{"name": "x", "settings": ' + "[" * 200 + "]" * 200 + "}"
LONG = "n" * 100_000

CASES = [
    # Authentication
    Case("no api key", "GET", "/api/agents", 401, "authentication_required", auth=None),
    Case("no api key on a write", "POST", "/api/agents", 401, "authentication_required",
         json_body={"name": "Sneaky"}, auth=None),
    Case("unknown bearer key", "GET", "/api/agents", 401, "invalid_api_key",
         auth="Bearer pb_0123456789_notarealsecret"),
    Case("basic auth scheme", "GET", "/api/agents", 401, "invalid_api_key",
         auth="Basic dXNlcjpwYXNz"),
    Case("garbage apikey header", "GET", "/api/orchestrations", 401, "invalid_api_key",
         auth="apikey:' OR 1=1 --"),
    # Bodies that are not a JSON object
    Case("invalid json", "POST", "/api/agents", 400, "invalid_json", **body('{"name": ')),
    Case("json array body", "POST", "/api/agents", 400, "validation_error", **body("[]")),
    Case("json string body", "POST", "/api/orchestrations", 400, "validation_error",
         **body('"team"')),
    Case("json null body", "POST", "/api/orchestrations", 400, "validation_error", **body("null")),
    Case("json number body", "PATCH", "/api/agents/{agent}", 400, "validation_error",
         **body("42")),
    Case("text/plain body", "POST", "/api/agents", 415, "unsupported_media_type",
         content=b'{"name": "x"}', headers={"Content-Type": "text/plain"}),
    Case("form body", "POST", "/api/orchestrations", 415, "unsupported_media_type",
         content=b"name=x", headers={"Content-Type": "application/x-www-form-urlencoded"}),
    Case("body without content type", "POST", "/api/agents", 415, "unsupported_media_type",
         content=b'{"name": "x"}'),
    Case("body over the limit", "POST", "/api/agents", 413, "payload_too_large",
         content=b" " * (LIMIT + 1), headers={"Content-Type": "application/json"}),
    Case("chunked body over the limit", "POST", "/api/orchestrations", 413, "payload_too_large",
         content=chunks(2 * LIMIT), headers={"Content-Type": "application/json"}),
    Case("nesting 100000 deep", "POST", "/api/agents", 400, "invalid_json", **body(DEEP)),
    Case("nesting 200 deep", "POST", "/api/agents", 400, "invalid_json", **body(NESTED)),
    Case("NaN literal", "POST", "/api/agents", 400, "invalid_json",
         **body('{"name": "x", "settings": {"temperature": NaN}}')),
    # Wrong types and unstorable text
    Case("name is a number", "POST", "/api/agents", 400, "validation_error",
         json_body={"name": 123}),
    Case("name is true", "POST", "/api/orchestrations", 400, "validation_error",
         json_body={"name": True}),
    Case("name is null on update", "PUT", "/api/orchestrations/{team}", 400, "validation_error",
         json_body={"name": None}),
    Case("name with NUL", "POST", "/api/agents", 400, "validation_error",
         json_body={"name": "bad\x00name"}),
    Case("name with lone surrogate", "POST", "/api/agents", 400, "validation_error",
         **body('{"name": "\\ud800"}')),
    Case("settings key with lone surrogate", "POST", "/api/agents", 400, "validation_error",
         **body('{"name": "x", "settings": {"\\udc00": 1}}')),
    Case("100k character name", "POST", "/api/orchestrations", 400, "validation_error",
         json_body={"name": LONG}),
    Case("100k character role", "PATCH", "/api/orchestrations/{team}/entities/{entity}", 400,
         "validation_error", json_body={"role": LONG * 2}),
    Case("temperature is text", "POST", "/api/agents", 400, "validation_error",
         json_body={"name": "x", "temperature": "hot"}),
    Case("temperature is infinite", "POST", "/api/agents", 400, "validation_error",
         **body('{"name": "x", "temperature": 1e999}')),
    Case("settings is a list", "PATCH", "/api/agents/{agent}", 400, "validation_error",
         json_body={"settings": ["temperature"]}),
    Case("unknown settings key", "PATCH", "/api/agents/{agent}", 400, "validation_error",
         json_body={"settings": {"shell": "rm -rf /"}}),
    Case("api_base not http", "POST", "/api/agents", 400, "validation_error",
         json_body={"name": "x", "settings": {"api_base": "javascript:alert(1)"}}),
    Case("empty model", "PATCH", "/api/agents/{agent}", 400, "validation_error",
         json_body={"model": "   "}),
    Case("unknown field", "PATCH", "/api/agents/{agent}", 400, "validation_error",
         json_body={"owner_id": 1}),
    Case("strategy not allowed", "POST", "/api/orchestrations", 400, "validation_error",
         json_body={"name": "x", "strategy": "chaos"}),
    Case("strategy not allowed on update", "PATCH", "/api/orchestrations/{team}", 400,
         "validation_error", json_body={"strategy": "'; DROP TABLE orchestrations;--"}),
    Case("empty coordinator model", "POST", "/api/orchestrations", 400, "validation_error",
         json_body={"name": "x", "orchestrator_config": {"model": ""}}),
    Case("max_steps out of range", "PATCH", "/api/orchestrations/{team}", 400, "validation_error",
         json_body={"settings": {"max_steps": 1_000_000_000}}),
    # List parameters
    Case("negative limit", "GET", "/api/agents", 400, "validation_error", params={"limit": "-1"}),
    Case("huge limit", "GET", "/api/orchestrations", 400, "validation_error",
         params={"limit": "99999999999999999999"}),
    Case("negative offset", "GET", "/api/agents", 400, "validation_error", params={"offset": "-5"}),
    Case("sort injection", "GET", "/api/agents", 400, "validation_error",
         params={"sort": "name; DROP TABLE agents_agent"}),
    Case("order sideways", "GET", "/api/orchestrations", 400, "validation_error",
         params={"order": "sideways"}),
    Case("q with NUL", "GET", "/api/agents", 400, "validation_error", params={"q": "a\x00b"}),
    Case("q too long", "GET", "/api/orchestrations", 400, "validation_error",
         params={"q": "q" * 300}),
    Case("unknown run status filter", "GET", "/api/orchestrations/{team}/runs", 400,
         "validation_error", params={"status": "lost"}),
    Case("malformed session filter", "GET", "/api/orchestrations/{team}/runs", 400,
         "validation_error", params={"session_id": "a b/c"}),
    Case("huge sessions offset", "GET", "/api/orchestrations/{team}/sessions", 400,
         "validation_error", params={"offset": "1e9"}),
    # Methods and routes
    Case("DELETE on the agents list", "DELETE", "/api/agents", 405, "method_not_allowed"),
    Case("PUT on the orchestrations list", "PUT", "/api/orchestrations", 405,
         "method_not_allowed", json_body={"name": "x"}),
    Case("GET on a run endpoint", "GET", "/api/agents/{agent}/run", 405, "method_not_allowed"),
    Case("PROPFIND on an agent", "PROPFIND", "/api/agents/{agent}", 405, "method_not_allowed"),
    Case("POST on a stored run", "POST", "/api/orchestrations/runs/{orch_run}", 405,
         "method_not_allowed", json_body={}),
    Case("unknown route", "GET", "/api/nope", 404, "not_found"),
    Case("too many segments", "GET", "/api/agents/{agent}/run/stream/extra", 404, "not_found"),
    Case("api root", "POST", "/api/", 404, "not_found", json_body={}),
    # Ids in paths
    Case("malformed agent id", "GET", "/api/agents/not-a-uuid", 404, "agent_not_found"),
    Case("NUL as agent id", "DELETE", "/api/agents/%00", 404, "agent_not_found"),
    Case("another owner's agent", "PATCH", "/api/agents/{other_agent}", 404, "agent_not_found",
         json_body={"name": "Mine now"}),
    Case("another owner's team", "DELETE", "/api/orchestrations/{other_team}", 404,
         "orchestration_not_found"),
    Case("malformed team id", "GET", "/api/orchestrations/12345/entities", 404,
         "orchestration_not_found"),
    Case("malformed entity id", "DELETE", "/api/orchestrations/{team}/entities/xyz", 404,
         "entity_not_found"),
    Case("unknown entity id", "PUT", "/api/orchestrations/{team}/entities/" + MISSING, 404,
         "entity_not_found", json_body={"role": "x"}),
    Case("SQL as run id", "GET", "/api/orchestrations/runs/%27%20OR%20%271%27=%271", 404,
         "run_not_found"),
    Case("NUL in agent run id", "GET", "/api/agents/runs/agent_run_%00", 404, "run_not_found"),
    Case("cancel an unknown run", "POST", "/api/orchestrations/runs/orch_run_000000000000/cancel",
         404, "run_not_found"),
    Case("cancel a finished agent run", "POST", "/api/agents/runs/{agent_run}/cancel", 409,
         "run_finished"),
    Case("cancel a finished team run", "POST", "/api/orchestrations/runs/{orch_run}/cancel", 409,
         "run_finished"),
    Case("negative Last-Event-ID", "GET", "/api/orchestrations/runs/{orch_run}/events", 400,
         "validation_error", headers={"Last-Event-ID": "-1"}),
    Case("huge Last-Event-ID", "GET", "/api/agents/runs/{agent_run}/events", 400,
         "validation_error", headers={"Last-Event-ID": "99999999999999999999"}),
    Case("text last_event_id", "GET", "/api/agents/runs/{agent_run}/events", 400,
         "validation_error", params={"last_event_id": "latest"}),
    # Entities
    Case("agent id not a uuid", "POST", "/api/orchestrations/{team}/entities", 400,
         "validation_error", json_body={"agent_id": "not-a-uuid"}),
    Case("agent id is a number", "POST", "/api/orchestrations/{team}/entities", 400,
         "validation_error", json_body={"agent_id": 12345}),
    Case("unknown agent", "POST", "/api/orchestrations/{team}/entities", 404, "agent_not_found",
         json_body={"agent_id": MISSING}),
    Case("another owner's agent as entity", "POST", "/api/orchestrations/{team}/entities", 404,
         "agent_not_found", json_body={"entity_ref_id": "{other_agent}"}),
    Case("agent already in the team", "POST", "/api/orchestrations/{team}/entities", 409,
         "entity_exists", json_body={"agent_id": "{agent}"}),
    Case("conflicting agent spellings", "POST", "/api/orchestrations/{team}/entities", 400,
         "validation_error", json_body={"agent_id": "{spare}", "entity_ref_id": "{agent}"}),
    Case("negative position", "POST", "/api/orchestrations/{team}/entities", 400,
         "validation_error", json_body={"agent_id": "{spare}", "position": -1}),
    Case("position as text", "PATCH", "/api/orchestrations/{team}/entities/{entity}", 400,
         "validation_error", json_body={"position": "1"}),
    Case("entity type not agent", "POST", "/api/orchestrations/{team}/entities", 400,
         "validation_error", json_body={"agent_id": "{spare}", "entity_type": "human"}),
    Case("entity config wrong type", "PATCH", "/api/orchestrations/{team}/entities/{entity}", 400,
         "validation_error", json_body={"config": {"max_steps": "ten"}}),
    # Runs
    Case("empty message", "POST", "/api/orchestrations/{team}/run/stream", 400,
         "validation_error", json_body={"message": ""}),
    Case("blank message", "POST", "/api/agents/{agent}/run", 400, "validation_error",
         json_body={"message": "   \n\t"}),
    Case("message is a number", "POST", "/api/agents/{agent}/run/stream", 400,
         "validation_error", json_body={"message": 5}),
    Case("message is null", "POST", "/api/orchestrations/{team}/run/stream", 400,
         "validation_error", json_body={"message": None}),
    Case("missing message", "POST", "/api/agents/{agent}/run", 400, "validation_error",
         json_body={"session_id": "orch_sess_mine00000000"}),
    Case("message with NUL", "POST", "/api/orchestrations/{team}/run/stream", 400,
         "validation_error", json_body={"message": "hi\x00"}),
    Case("message with lone surrogate", "POST", "/api/agents/{agent}/run/stream", 400,
         "validation_error", **body('{"message": "hi \\udfff"}')),
    Case("path traversal session id", "POST", "/api/orchestrations/{team}/run/stream", 400,
         "validation_error", json_body={"message": "hi", "session_id": "../../etc/passwd"}),
    Case("another owner's session", "POST", "/api/orchestrations/{team}/run/stream", 404,
         "session_not_found", json_body={"message": "hi", "session_id": "orch_sess_theirs000000"}),
    Case("idempotency key too long", "POST", "/api/orchestrations/{team}/run/stream", 400,
         "validation_error", json_body={"message": "hi"}, headers={"Idempotency-Key": "k" * 300}),
    Case("team without entities", "POST", "/api/orchestrations/{empty_team}/run/stream", 400,
         "no_entities", json_body={"message": "hi"}),
    Case("another owner's team run", "POST", "/api/orchestrations/{other_team}/run/stream", 404,
         "orchestration_not_found", json_body={"message": "hi"}),
    Case("another owner's agent run", "POST", "/api/agents/{other_agent}/run", 404,
         "agent_not_found", json_body={"message": "hi"}),
    Case("extra field on a run", "POST", "/api/agents/{agent}/run/stream", 400,
         "validation_error", json_body={"message": "hi", "stream": False},
         headers={"Accept": "text/event-stream"}),
]


def fill(value, ids: dict):
    if isinstance(value, str):
        return value.format(**ids) if "{" in value and "}" in value else value
    if isinstance(value, dict):
        return {key: fill(item, ids) for key, item in value.items()}
    return value


def send(web, world: World, case: Case) -> httpx.Response:
    headers = dict(case.headers)
    if case.auth == "key":
        headers["Authorization"] = f"Bearer {world.key}"
    elif case.auth and case.auth.startswith("apikey:"):
        headers["apikey"] = case.auth.removeprefix("apikey:")
    elif case.auth:
        headers["Authorization"] = case.auth
    kwargs = {"headers": headers, "params": case.params}
    if case.json_body is not None:
        kwargs["json"] = fill(case.json_body, world.ids)
    elif case.content is not None:
        kwargs["content"] = case.content
    path = case.path.format(**world.ids) if "{" in case.path else case.path
    with httpx.Client(base_url=web.url, timeout=30) as client:
        return client.request(case.method, path, **kwargs)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_hostile_request_changes_nothing(web, world, case):
    before = snapshot(world)

    response = send(web, world, case)

    assert response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/json"), response.text
    error = response.json()
    assert isinstance(error["error"], str) and error["error"]
    assert error["code"] == case.code, error
    assert response.status_code == case.status, error
    after = snapshot(world)
    assert after["counts"] == before["counts"]
    assert after["rows"] == before["rows"]


def test_matrix_covers_every_endpoint():
    templates = {(case.method, case.path.split("?")[0]) for case in CASES}
    covered = {path for _method, path in templates}
    for path in ("/api/agents", "/api/agents/{agent}", "/api/agents/{agent}/run",
                 "/api/agents/{agent}/run/stream", "/api/agents/runs/{agent_run}/events",
                 "/api/agents/runs/{agent_run}/cancel", "/api/orchestrations",
                 "/api/orchestrations/{team}", "/api/orchestrations/{team}/entities",
                 "/api/orchestrations/{team}/entities/{entity}",
                 "/api/orchestrations/{team}/run/stream", "/api/orchestrations/{team}/runs",
                 "/api/orchestrations/{team}/sessions", "/api/orchestrations/runs/{orch_run}",
                 "/api/orchestrations/runs/{orch_run}/events",
                 "/api/orchestrations/runs/{orch_run}/cancel"):
        assert path in covered, path
    assert len(CASES) >= 40


def test_method_not_allowed_lists_the_allowed_methods(web, world):
    with httpx.Client(base_url=web.url, headers={"Authorization": f"Bearer {world.key}"}) as client:
        response = client.delete("/api/agents")

    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


def test_sql_and_html_in_names_are_stored_verbatim(api):
    names = ["Robert'); DROP TABLE agents_agent;--", "<script>alert('x')</script>",
             "100% _real_ \\ name", "emoji \U0001f989 and \u202e right-to-left"]

    created = [api.post("/api/agents", json={"name": name, "description": name}) for name in names]
    team = api.post("/api/orchestrations", json={"name": names[1], "description": names[0]})

    assert [response.status_code for response in created] == [201] * len(names)
    for response, name in zip(created, names, strict=True):
        stored = api.get(f"/api/agents/{response.json()['id']}").json()
        assert stored["name"] == name
        assert stored["description"] == name
    assert api.get(f"/api/orchestrations/{team.json()['id']}").json()["name"] == names[1]
    assert api.get("/api/agents", params={"q": "DROP TABLE"}).json()["total"] == 1
    percent = api.get("/api/agents", params={"q": "100%"}).json()["agents"]
    assert [row["name"] for row in percent] == [names[2]]
    assert api.get("/api/agents", params={"q": "_real_"}).json()["total"] == 1
    assert api.get("/api/agents").json()["total"] == len(names)


def test_error_text_with_lone_surrogates_is_valid_json(api):
    response = api.post("/api/agents", content='{"name": "x", "\\ud800key": 1}',
                        headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    body = json.loads(response.content.decode("utf-8"))
    assert body["code"] == "validation_error"


def test_chunked_body_under_the_limit_is_read(api):
    def pieces():
        yield b'{"name": "Chunked", '
        yield b'"description": "sent without Content-Length"}'

    response = api.post("/api/agents", content=pieces(), headers={"Content-Type": "application/json"})

    assert response.status_code == 201, response.text
    assert response.json()["name"] == "Chunked"
    assert response.json()["description"] == "sent without Content-Length"
