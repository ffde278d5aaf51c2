"""Orchestrations and entities through the API: lists, validation, partial updates,
entity rules, a team's runs and sessions, and conversations continued by session_id."""

import pytest
from django.contrib.auth import get_user_model

from accounts.services import apikey_create
from tests.conftest import make_client
from tests.factories import create_agent, create_team, stream_run
from tests.scripted_llm import Reply


def make_stranger(web, tag: str):
    """A client for another owner, with its own API key."""
    user = get_user_model().objects.create_user(username=f"stranger-{tag}")
    _key, full_key = apikey_create(owner=user)
    return make_client(web.url, full_key)


def created(response) -> dict:
    assert response.status_code == 201, response.text
    return response.json()


def coordinator_requests(llm) -> list[dict]:
    # litellm strips the "openai/" prefix before the request leaves.
    return [request for request in llm.requests if request.get("model") == "coord"]


# Lists


def test_orchestrations_list_adds_paging_only_when_asked(api, llm):
    for name in ("Alpha", "Beta", "Gamma"):
        assert api.post("/api/orchestrations", json={"name": name}).status_code == 201

    plain = api.get("/api/orchestrations").json()
    paged = api.get("/api/orchestrations", params={"limit": 2, "offset": 1, "sort": "name",
                                                    "order": "asc"}).json()

    assert set(plain) == {"orchestrations"}
    assert [row["name"] for row in plain["orchestrations"]] == ["Gamma", "Beta", "Alpha"]
    assert set(paged) == {"orchestrations", "total", "limit", "offset"}
    assert paged["total"] == 3
    assert (paged["limit"], paged["offset"]) == (2, 1)
    assert [row["name"] for row in paged["orchestrations"]] == ["Beta", "Gamma"]


def test_orchestration_rows_carry_entity_count_and_last_run(api, llm):
    team = create_team(api, llm, name="Busy")
    api.post("/api/orchestrations", json={"name": "Idle"})
    frames = stream_run(api, team["id"])

    rows = {row["name"]: row for row in api.get("/api/orchestrations").json()["orchestrations"]}

    assert rows["Busy"]["entity_count"] == 2
    assert rows["Busy"]["last_run_at"] is not None
    run = api.get(f"/api/orchestrations/runs/{frames[0].data['run_id']}").json()
    assert rows["Busy"]["last_run_at"] == run["created_at"]
    assert rows["Idle"]["entity_count"] == 0
    assert rows["Idle"]["last_run_at"] is None


def test_agents_list_searches_sorts_and_pages(api, llm):
    for name in ("Zeta", "alpha", "Alphonse", "Beta"):
        create_agent(api, llm, name)

    searched = api.get("/api/agents", params={"q": "ALPH", "sort": "name", "order": "asc"}).json()
    paged = api.get("/api/agents", params={"limit": 1, "offset": 2, "sort": "name"}).json()

    assert [row["name"] for row in searched["agents"]] == ["Alphonse", "alpha"]
    assert searched["total"] == 2
    assert paged["total"] == 4
    assert len(paged["agents"]) == 1
    assert (paged["limit"], paged["offset"]) == (1, 2)


@pytest.mark.parametrize("params", [
    {"limit": 0}, {"limit": 101}, {"limit": -1}, {"limit": "ten"}, {"offset": -1},
    {"sort": "password"}, {"order": "up"},
])
def test_list_parameters_out_of_range_are_rejected(api, params):
    for path in ("/api/agents", "/api/orchestrations"):
        response = api.get(path, params=params)
        assert response.status_code == 400
        assert response.json()["code"] == "validation_error"
        assert set(response.json()["fields"]) == set(params)


# Validation and partial updates


def test_strategy_outside_the_allowed_values_is_rejected(api):
    response = api.post("/api/orchestrations", json={"name": "T", "strategy": "democracy"})

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "validation_error"
    for allowed in ("supervisor", "sequential", "parallel", "router"):
        assert allowed in body["fields"]["strategy"][0]
    assert api.get("/api/orchestrations").json()["orchestrations"] == []


@pytest.mark.parametrize(("field", "value"), [
    ("settings", {"max_steps": 0}),
    ("settings", {"max_steps": 101}),
    ("settings", {"max_steps": "5"}),
    ("settings", {"max_delegations": 2.5}),
    ("settings", {"timeout_seconds": -1}),
    ("settings", {"model": ""}),
    ("settings", {"model": "   "}),
    ("settings", {"warp_speed": 9}),
    ("settings", ["max_steps", 5]),
    ("orchestrator_config", {"model": 42}),
    ("orchestrator_config", {"reasoning_effort": "extreme"}),
    ("orchestrator_config", {"api_base": "file:///etc/passwd"}),
    ("orchestrator_config", {"allow_direct_answer": "yes"}),
    ("orchestrator_config", "openai/gpt-4o"),
])
def test_orchestration_config_objects_are_validated(api, field, value):
    response = api.post("/api/orchestrations", json={"name": "T", field: value})

    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert field in response.json()["fields"]
    assert api.get("/api/orchestrations").json()["orchestrations"] == []


@pytest.mark.parametrize("config", [
    {"max_steps": 0}, {"model": ""}, {"temperature": 3}, {"timeout_seconds": "soon"},
    {"tools": []},
])
def test_entity_config_is_validated(api, llm, config):
    team = api.post("/api/orchestrations", json={"name": "T"}).json()
    agent = create_agent(api, llm, "Member")

    response = api.post(f"/api/orchestrations/{team['id']}/entities",
                        json={"agent_id": agent["id"], "config": config})

    assert response.status_code == 400
    assert "config" in response.json()["fields"]
    assert api.get(f"/api/orchestrations/{team['id']}/entities").json()["entities"] == []


@pytest.mark.parametrize("settings", [
    {"temperature": -0.1}, {"max_tokens": 0}, {"api_base": "ftp://example.invalid"},
    {"fallback_model": ""}, {"max_retries": 11}, {"colour": "red"},
])
def test_agent_settings_are_validated(api, settings):
    response = api.post("/api/agents", json={"name": "A", "settings": settings})

    assert response.status_code == 400
    assert "settings" in response.json()["fields"]
    assert api.get("/api/agents").json()["total"] == 0


def test_put_and_patch_on_orchestrations_are_partial(api):
    team = api.post("/api/orchestrations", json={
        "name": "Team", "description": "First", "strategy": "router",
        "settings": {"max_steps": 5},
    }).json()

    put = api.put(f"/api/orchestrations/{team['id']}", json={"description": "Second"})
    patch = api.patch(f"/api/orchestrations/{team['id']}", json={"name": "Renamed"})

    assert put.status_code == 200
    assert patch.status_code == 200
    body = api.get(f"/api/orchestrations/{team['id']}").json()
    assert body["name"] == "Renamed"
    assert body["description"] == "Second"
    assert body["strategy"] == "router"
    assert body["settings"] == {"max_steps": 5}


def test_unknown_fields_are_named_in_the_error(api, llm):
    team = create_team(api, llm, members=(("Solo", "Does it all"),))
    entity_id = team["entities"][0]["id"]

    cases = [
        api.post("/api/orchestrations", json={"name": "T", "members": [], "owner": 1}),
        api.patch(f"/api/orchestrations/{team['id']}", json={"entities": []}),
        api.put(f"/api/orchestrations/{team['id']}/entities/{entity_id}", json={"agent": "x"}),
        api.post(f"/api/orchestrations/{team['id']}/run/stream", json={"message": "hi", "stream": 1}),
    ]

    expected = [{"members", "owner"}, {"entities"}, {"agent"}, {"stream"}]
    for response, fields in zip(cases, expected, strict=True):
        assert response.status_code == 400
        assert response.json()["code"] == "validation_error"
        assert set(response.json()["fields"]) == fields


# Entities


def test_entity_responses_carry_both_spellings(api, llm):
    team = api.post("/api/orchestrations", json={"name": "T"}).json()
    agent = create_agent(api, llm, "Member")

    created = api.post(f"/api/orchestrations/{team['id']}/entities",
                       json={"entity_ref_id": agent["id"], "role_description": "Answers"}).json()
    updated = api.patch(f"/api/orchestrations/{team['id']}/entities/{created['id']}",
                        json={"role": "Answers better"}).json()

    assert created["agent_id"] == created["entity_ref_id"] == agent["id"]
    assert created["role"] == created["role_description"] == "Answers"
    assert created["entity_type"] == "agent"
    assert updated["role"] == updated["role_description"] == "Answers better"


def test_adding_an_agent_twice_is_entity_exists(api, llm):
    team = api.post("/api/orchestrations", json={"name": "T"}).json()
    agent = create_agent(api, llm, "Member")
    first = api.post(f"/api/orchestrations/{team['id']}/entities", json={"agent_id": agent["id"]})

    again = api.post(f"/api/orchestrations/{team['id']}/entities",
                     json={"entity_ref_id": agent["id"], "role": "Other"})

    assert first.status_code == 201
    assert again.status_code == 409
    assert again.json()["code"] == "entity_exists"
    assert len(api.get(f"/api/orchestrations/{team['id']}/entities").json()["entities"]) == 1


def test_another_owners_agent_is_agent_not_found(api, llm, web):
    team = api.post("/api/orchestrations", json={"name": "T"}).json()
    with make_stranger(web, team["id"][:8]) as stranger:
        their_agent = stranger.post("/api/agents", json={"name": "Theirs"}).json()

    response = api.post(f"/api/orchestrations/{team['id']}/entities",
                        json={"agent_id": their_agent["id"]})

    assert response.status_code == 404
    assert response.json()["code"] == "agent_not_found"
    assert api.get(f"/api/orchestrations/{team['id']}/entities").json()["entities"] == []


def test_position_orders_entities_everywhere(api, llm):
    team = api.post("/api/orchestrations", json={"name": "T", "strategy": "sequential"}).json()
    ids = {}
    for name, position in (("Third", 30), ("First", 10), ("Second", 20)):
        agent = create_agent(api, llm, name)
        ids[name] = api.post(f"/api/orchestrations/{team['id']}/entities",
                             json={"agent_id": agent["id"], "position": position}).json()["id"]

    listed = api.get(f"/api/orchestrations/{team['id']}/entities").json()["entities"]
    detail = api.get(f"/api/orchestrations/{team['id']}").json()["entities"]
    assert [e["agent_name"] for e in listed] == ["First", "Second", "Third"]
    assert [e["agent_name"] for e in detail] == ["First", "Second", "Third"]

    api.patch(f"/api/orchestrations/{team['id']}/entities/{ids['Third']}", json={"position": 0})
    listed = api.get(f"/api/orchestrations/{team['id']}/entities").json()["entities"]
    assert [e["agent_name"] for e in listed] == ["Third", "First", "Second"]

    # A sequential run calls the entities in the same order.
    frames = stream_run(api, team["id"], "Pass it on")
    assert frames[-1].data["status"] == "completed"
    assert [r["model"] for r in llm.requests] == ["third", "first", "second"]


def test_unknown_and_malformed_ids_in_paths_are_404(api, llm):
    team = create_team(api, llm, members=(("Solo", "Does it all"),))
    missing = "00000000-0000-4000-8000-000000000000"

    cases = {
        f"/api/orchestrations/{missing}": "orchestration_not_found",
        "/api/orchestrations/not-a-uuid": "orchestration_not_found",
        "/api/orchestrations/not-a-uuid/entities": "orchestration_not_found",
        f"/api/orchestrations/{team['id']}/entities/{missing}": "entity_not_found",
        f"/api/orchestrations/{team['id']}/entities/123": "entity_not_found",
        "/api/orchestrations/runs/orch_run_000000000000": "run_not_found",
        "/api/orchestrations/runs/%27%20OR%201=1": "run_not_found",
        f"/api/orchestrations/{missing}/runs": "orchestration_not_found",
        "/api/orchestrations/zzz/sessions": "orchestration_not_found",
        "/api/agents/12345": "agent_not_found",
    }
    for path, code in cases.items():
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.json()["code"] == code, path


# A team's runs and sessions


def test_team_runs_list_newest_first_with_filters(api, llm):
    team = create_team(api, llm, members=(("Solo", "Does it all"),))
    first = stream_run(api, team["id"], "First question " + "x" * 300)
    llm.enqueue(Reply.error(401, "bad key", type_="authentication_error"), model="coord")
    failed = stream_run(api, team["id"], "Second question")
    session_id = first[0].data["session_id"]

    listed = api.get(f"/api/orchestrations/{team['id']}/runs").json()
    completed = api.get(f"/api/orchestrations/{team['id']}/runs",
                        params={"status": "completed"}).json()
    of_session = api.get(f"/api/orchestrations/{team['id']}/runs",
                         params={"session_id": session_id}).json()
    paged = api.get(f"/api/orchestrations/{team['id']}/runs", params={"limit": 1, "offset": 1}).json()

    assert listed["total"] == 2
    assert (listed["limit"], listed["offset"]) == (50, 0)
    assert [row["run_id"] for row in listed["runs"]] == [failed[0].data["run_id"],
                                                         first[0].data["run_id"]]
    newest, oldest = listed["runs"]
    assert newest["status"] == "failed"
    assert newest["code"] == failed[-1].data["code"]
    assert oldest["message_preview"] == ("First question " + "x" * 300)[:200]
    assert oldest["content"] == first[-1].data["content"]
    assert oldest["usage"]["total_tokens"] > 0
    assert oldest["session_id"] == session_id
    for key in ("created_at", "started_at", "completed_at", "error", "duration_ms"):
        assert key in oldest
    assert [row["run_id"] for row in completed["runs"]] == [first[0].data["run_id"]]
    assert [row["run_id"] for row in of_session["runs"]] == [first[0].data["run_id"]]
    assert paged["total"] == 2
    assert [row["run_id"] for row in paged["runs"]] == [first[0].data["run_id"]]


def test_team_runs_reject_an_unknown_status(api, llm):
    team = api.post("/api/orchestrations", json={"name": "T"}).json()

    response = api.get(f"/api/orchestrations/{team['id']}/runs", params={"status": "lost"})

    assert response.status_code == 400
    assert "pending" in response.json()["fields"]["status"][0]


def test_team_sessions_count_runs_and_last_activity(api, llm):
    team = create_team(api, llm, members=(("Solo", "Does it all"),))
    first = stream_run(api, team["id"], "Start")
    session_id = first[0].data["session_id"]
    second = stream_run(api, team["id"], "Go on", session_id=session_id)
    other = stream_run(api, team["id"], "Unrelated")

    body = api.get(f"/api/orchestrations/{team['id']}/sessions").json()

    assert body["total"] == 2
    rows = {row["session_id"]: row for row in body["sessions"]}
    assert rows[session_id]["run_count"] == 2
    assert rows[other[0].data["session_id"]]["run_count"] == 1
    assert [row["session_id"] for row in body["sessions"]] == [other[0].data["session_id"],
                                                               session_id]
    second_run = api.get(f"/api/orchestrations/runs/{second[0].data['run_id']}").json()
    assert rows[session_id]["last_activity_at"] == second_run["completed_at"]


def test_another_owners_team_runs_are_not_found(api, llm, web):
    team = create_team(api, llm, members=(("Solo", "Does it all"),))
    stream_run(api, team["id"])

    with make_stranger(web, team["id"][:8]) as stranger:
        runs = stranger.get(f"/api/orchestrations/{team['id']}/runs")
        sessions = stranger.get(f"/api/orchestrations/{team['id']}/sessions")

    assert runs.status_code == 404
    assert runs.json()["code"] == "orchestration_not_found"
    assert sessions.status_code == 404
    assert sessions.json()["code"] == "orchestration_not_found"


# Sessions


def test_session_id_continues_the_conversation(api, llm):
    team = create_team(api, llm, members=(("Solo", "Does it all"),))
    first = stream_run(api, team["id"], "My name is Ada.")
    session_id = first[0].data["session_id"]
    first_answer = first[-1].data["content"]
    assert first_answer
    llm.reset()

    second = stream_run(api, team["id"], "What is my name?", session_id=session_id)

    assert second[0].data["session_id"] == session_id
    assert second[-1].data["status"] == "completed"
    messages = coordinator_requests(llm)[0]["messages"]
    contents = [(message["role"], message.get("content")) for message in messages]
    assert ("user", "My name is Ada.") in contents
    assert ("assistant", first_answer) in contents
    assert contents.index(("user", "My name is Ada.")) < contents.index(("assistant", first_answer))
    assert contents[-1] == ("user", "What is my name?")


def test_new_session_has_no_history(api, llm):
    team = create_team(api, llm, members=(("Solo", "Does it all"),))
    stream_run(api, team["id"], "My name is Ada.")
    llm.reset()

    stream_run(api, team["id"], "What is my name?")

    contents = [message.get("content") for message in coordinator_requests(llm)[0]["messages"]]
    assert "My name is Ada." not in contents


def test_another_owners_session_id_is_not_found(api, llm, web):
    team = create_team(api, llm, members=(("Solo", "Does it all"),))
    session_id = stream_run(api, team["id"], "Secret")[0].data["session_id"]

    with make_stranger(web, team["id"][:8]) as stranger:
        their_team = stranger.post("/api/orchestrations", json={"name": "Theirs"}).json()
        agent = stranger.post("/api/agents", json={
            "name": "Spy", "model": "openai/spy", "settings": {"api_base": llm.base_url}}).json()
        stranger.post(f"/api/orchestrations/{their_team['id']}/entities",
                      json={"agent_id": agent["id"]})
        llm.reset()
        response = stranger.post(f"/api/orchestrations/{their_team['id']}/run/stream",
                                 json={"message": "What did they say?", "session_id": session_id})
        runs = stranger.get(f"/api/orchestrations/{their_team['id']}/runs").json()

    assert response.status_code == 404
    assert response.json()["code"] == "session_not_found"
    assert runs["total"] == 0
    assert llm.requests == []


# Clients written against either set of names


def test_client_using_current_docs_names_completes_a_run(api, llm):
    agent = created(api.post("/api/agents", json={
        "name": "Researcher", "model": "openai/researcher", "system_prompt": "Find facts.",
        "settings": {"api_base": llm.base_url, "temperature": 0.2, "max_tokens": 200},
    }))
    team = created(api.post("/api/orchestrations", json={
        "name": "Docs team", "description": "Built from the current docs",
        "strategy": "supervisor",
        "orchestrator_config": {"model": "openai/coord", "api_base": llm.base_url,
                                "additional_instructions": "Be short."},
        "settings": {"max_steps": 5, "max_delegations": 4, "timeout_seconds": 60},
    }))
    entity = api.post(f"/api/orchestrations/{team['id']}/entities", json={
        "entity_type": "agent", "entity_ref_id": agent["id"],
        "role_description": "Finds facts", "config": {"max_steps": 3},
    })
    assert entity.status_code == 201

    frames = stream_run(api, team["id"], "Tell me about owls")

    assert frames[-1].event == "complete"
    assert frames[-1].data["status"] == "completed"
    assert any(frame.event == "delegation_completed" for frame in frames)
    delegation = next(r for r in llm.requests if r["model"] == "researcher")
    assert delegation["messages"][0] == {"role": "system", "content": "Find facts."}


def test_client_using_older_page_names_completes_a_run(api, llm):
    agent = created(api.post("/api/agents", json={
        "name": "Writer", "model": "openai/writer", "temperature": 0.7,
        "settings": {"api_base": llm.base_url},
    }))
    assert agent["settings"]["temperature"] == 0.7
    team = created(api.post("/api/orchestrations", json={
        "name": "Old team", "orchestrator_config": {"model": "openai/coord",
                                                    "api_base": llm.base_url},
    }))
    entity = api.post(f"/api/orchestrations/{team['id']}/entities",
                      json={"agent_id": agent["id"], "role": "Writes prose"})
    assert entity.status_code == 201

    frames = stream_run(api, team["id"], "Write about owls")

    assert frames[-1].data["status"] == "completed"
    delegation = next(frame for frame in frames if frame.event == "delegation_started")
    assert delegation.data["agent"] == "Writer"
    coordinator_tools = coordinator_requests(llm)[0]["tools"]
    assert coordinator_tools[0]["function"]["description"].find("Writes prose") >= 0
