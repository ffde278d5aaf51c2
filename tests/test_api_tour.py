"""The public API page's request examples, in the page's order, against the real stack:
uvicorn, a Celery worker, PostgreSQL, Redis, and an OpenAI-compatible model endpoint."""

from tests.factories import create_agent
from tests.sse import event_names, read_stream


def test_page_examples_in_order(api, llm):
    # Create
    created = api.post("/api/orchestrations", json={"name": "Team", "strategy": "supervisor"})
    assert created.status_code == 201
    team = created.json()
    assert team["name"] == "Team"
    assert team["strategy"] == "supervisor"
    orch_id = team["id"]

    # Point the coordinator at the scripted endpoint, as an operator would.
    configured = api.patch(f"/api/orchestrations/{orch_id}", json={
        "orchestrator_config": {"model": "openai/coord", "api_base": llm.base_url},
    })
    assert configured.status_code == 200

    # List
    listed = api.get("/api/orchestrations")
    assert listed.status_code == 200
    assert [row["id"] for row in listed.json()["orchestrations"]] == [orch_id]

    # Get
    fetched = api.get(f"/api/orchestrations/{orch_id}")
    assert fetched.status_code == 200
    assert fetched.json()["entities"] == []

    # Running before any entity exists is refused with no_entities.
    refused = api.post(f"/api/orchestrations/{orch_id}/run/stream", json={"message": "Hello"})
    assert refused.status_code == 400
    assert refused.json()["code"] == "no_entities"

    # Update
    updated = api.put(f"/api/orchestrations/{orch_id}", json={"name": "Updated"})
    assert updated.status_code == 200
    assert updated.json()["name"] == "Updated"

    # Add two entities
    billing = create_agent(api, llm, "Billing")
    support = create_agent(api, llm, "Support")
    first = api.post(f"/api/orchestrations/{orch_id}/entities",
                     json={"agent_id": billing["id"], "role": "Handles billing"})
    assert first.status_code == 201
    second = api.post(f"/api/orchestrations/{orch_id}/entities",
                      json={"agent_id": support["id"], "role": "Handles support"})
    assert second.status_code == 201
    entity_id = first.json()["id"]

    # List entities
    entities = api.get(f"/api/orchestrations/{orch_id}/entities")
    assert entities.status_code == 200
    assert [e["role"] for e in entities.json()["entities"]] == ["Handles billing", "Handles support"]

    # Update an entity
    renamed = api.put(f"/api/orchestrations/{orch_id}/entities/{entity_id}",
                      json={"role": "Updated role"})
    assert renamed.status_code == 200
    assert renamed.json()["role"] == "Updated role"
    assert renamed.json()["role_description"] == "Updated role"

    # Run with streaming
    with api.stream("POST", f"/api/orchestrations/{orch_id}/run/stream",
                    json={"message": "Hello"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        frames = read_stream(response)
    names = event_names(frames)
    assert names[0] == "start"
    assert names[-1] == "complete"
    started = [i for i, name in enumerate(names) if name == "delegation_started"]
    completed = [i for i, name in enumerate(names) if name == "delegation_completed"]
    assert len(started) == 2
    assert len(completed) == 2
    assert max(started) < min(completed)
    complete = frames[-1].data
    assert complete["status"] == "completed"
    assert [frame.id for frame in frames] == list(range(1, len(frames) + 1))
    run_id = frames[0].data["run_id"]
    assert run_id.startswith("orch_run_")

    # litellm's client (the OpenAI SDK under it) made every model call.
    assert all(agent.startswith("AsyncOpenAI/Python") for agent in llm.user_agents)

    # Get the run
    run = api.get(f"/api/orchestrations/runs/{run_id}")
    assert run.status_code == 200
    body = run.json()
    assert body["status"] == "completed"
    assert body["content"] == complete["content"]
    assert len(body["child_runs"]) == 2
    assert {child["agent"] for child in body["child_runs"]} == {"Billing", "Support"}
    assert all(child["status"] == "completed" for child in body["child_runs"])

    # Delete an entity
    removed = api.delete(f"/api/orchestrations/{orch_id}/entities/{entity_id}")
    assert removed.status_code == 200
    assert removed.json() == {"deleted": True}

    # Delete the orchestration
    deleted = api.delete(f"/api/orchestrations/{orch_id}")
    assert deleted.status_code == 200
    assert deleted.json() == {"deleted": True}

    # Gone: orchestration_not_found; the run stays browsable.
    missing = api.get(f"/api/orchestrations/{orch_id}")
    assert missing.status_code == 404
    assert missing.json()["code"] == "orchestration_not_found"
    kept = api.get(f"/api/orchestrations/runs/{run_id}")
    assert kept.status_code == 200
    assert kept.json()["orchestration_id"] is None
    assert kept.json()["content"] == complete["content"]
