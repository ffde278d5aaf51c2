"""Standalone agents through the API: CRUD, blocking and streamed runs, stored runs,
resuming a run's stream, and cancelling a run."""

from tests.factories import create_agent, create_team
from tests.scripted_llm import Reply
from tests.sse import event_names, iter_frames, read_stream


def run_stream(api, agent_id: str, message: str = "Hello", **body):
    with api.stream("POST", f"/api/agents/{agent_id}/run/stream",
                    json={"message": message, **body}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return read_stream(response)


def test_create_stores_top_level_temperature_in_settings(api, llm):
    agent = create_agent(api, llm, "Warm", temperature=0.3)

    assert agent["settings"] == {"api_base": llm.base_url, "temperature": 0.3}
    assert "temperature" not in agent


def test_update_merges_top_level_temperature_into_stored_settings(api, llm):
    agent = create_agent(api, llm, "Warm", settings={"max_tokens": 50})

    updated = api.patch(f"/api/agents/{agent['id']}", json={"temperature": 1.5})

    assert updated.status_code == 200
    assert updated.json()["settings"] == {"api_base": llm.base_url, "max_tokens": 50,
                                          "temperature": 1.5}


def test_put_and_patch_change_only_the_fields_sent(api, llm):
    agent = create_agent(api, llm, "Partial", system_prompt="Be brief.")

    put = api.put(f"/api/agents/{agent['id']}", json={"description": "Writes summaries"})
    patch = api.patch(f"/api/agents/{agent['id']}", json={"model": "openai/other"})

    assert put.status_code == 200
    assert patch.status_code == 200
    body = api.get(f"/api/agents/{agent['id']}").json()
    assert body["name"] == "Partial"
    assert body["system_prompt"] == "Be brief."
    assert body["description"] == "Writes summaries"
    assert body["model"] == "openai/other"


def test_unknown_fields_are_rejected_by_name(api, llm):
    agent = create_agent(api, llm, "Strict")

    created = api.post("/api/agents", json={"name": "X", "colour": "red", "size": 3})
    updated = api.patch(f"/api/agents/{agent['id']}", json={"colour": "red"})

    assert created.status_code == 400
    assert created.json()["code"] == "validation_error"
    assert set(created.json()["fields"]) == {"colour", "size"}
    assert updated.status_code == 400
    assert set(updated.json()["fields"]) == {"colour"}
    assert api.get("/api/agents").json()["total"] == 1


def test_delete_agent_in_use_is_rejected(api, llm):
    team = create_team(api, llm, members=(("Keeper", "Keeps things"),), name="Vault")
    agent_id = team["entities"][0]["agent_id"]

    refused = api.delete(f"/api/agents/{agent_id}")

    assert refused.status_code == 409
    assert refused.json()["code"] == "agent_in_use"
    assert "Vault" in refused.json()["error"]
    assert api.get(f"/api/agents/{agent_id}").status_code == 200
    assert len(api.get(f"/api/orchestrations/{team['id']}/entities").json()["entities"]) == 1


def test_delete_of_an_unused_agent(api, llm):
    agent = create_agent(api, llm, "Loner")

    deleted = api.delete(f"/api/agents/{agent['id']}")

    assert deleted.status_code == 200
    assert deleted.json() == {"message": "Agent deleted"}
    assert api.get(f"/api/agents/{agent['id']}").json()["code"] == "agent_not_found"


def test_blocking_run_answers_with_the_content(api, llm):
    agent = create_agent(api, llm, "Solo")
    llm.enqueue(Reply.text("Owls are birds.", usage=(12, 4)), model="solo")

    response = api.post(f"/api/agents/{agent['id']}/run", json={"message": "Owls?"})

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "completed"
    assert body["content"] == "Owls are birds."
    assert body["run_id"].startswith("agent_run_")
    assert body["usage"]["prompt_tokens"] == 12
    assert body["usage"]["completion_tokens"] == 4
    assert body["error"] is None


def test_run_stream_emits_the_agent_event_set(api, llm):
    agent = create_agent(api, llm, "Solo")
    llm.enqueue(Reply.text("One two three four", chunks=4), model="solo")

    frames = run_stream(api, agent["id"], "Count")

    names = event_names(frames)
    assert names[0] == "start"
    assert names[1] == "step_started"
    deltas = [frame for frame in frames if frame.event == "content_delta"]
    assert "".join(frame.data["delta"] for frame in deltas) == "One two three four"
    assert names[-3:] == ["step_completed", "chunk", "complete"]
    assert set(names) == {"start", "step_started", "content_delta", "step_completed", "chunk",
                          "complete"}
    assert [frame.id for frame in frames] == list(range(1, len(frames) + 1))
    assert all(frame.data["event"] == frame.event for frame in frames)
    assert frames[-2].data["content"] == "One two three four"
    assert frames[-1].data["status"] == "completed"


def test_run_stream_model_failure_ends_with_error(api, llm):
    agent = create_agent(api, llm, "Fragile", settings={"max_retries": 0})
    llm.enqueue(Reply.error(400, "bad request", type_="invalid_request_error"), model="fragile")

    frames = run_stream(api, agent["id"])

    assert event_names(frames)[-2:] == ["error", "complete"]
    assert frames[-2].data["code"]
    assert frames[-1].data["status"] == "failed"


def test_stored_run_has_the_events_without_deltas(api, llm):
    agent = create_agent(api, llm, "Solo")
    frames = run_stream(api, agent["id"], "Store me")
    run_id = frames[0].data["run_id"]

    response = api.get(f"/api/agents/runs/{run_id}")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "completed"
    assert body["message"] == "Store me"
    assert body["content"] == frames[-1].data["content"]
    assert body["agent_id"] == agent["id"]
    stored = [event["event"] for event in body["events"]]
    assert "content_delta" not in stored
    assert stored == [name for name in event_names(frames) if name != "content_delta"]


def test_unknown_run_is_run_not_found(api):
    for run_id in ("agent_run_000000000000", "nonsense", "orch_run_zzz"):
        response = api.get(f"/api/agents/runs/{run_id}")
        assert response.status_code == 404
        assert response.json()["code"] == "run_not_found"


def test_events_resume_after_last_event_id(api, llm):
    agent = create_agent(api, llm, "Solo")
    frames = run_stream(api, agent["id"])
    run_id = frames[0].data["run_id"]

    with api.stream("GET", f"/api/agents/runs/{run_id}/events",
                    headers={"Last-Event-ID": "2"}) as response:
        assert response.status_code == 200
        by_header = read_stream(response)
    with api.stream("GET", f"/api/agents/runs/{run_id}/events?last_event_id=3") as response:
        by_query = read_stream(response)

    assert [frame.id for frame in by_header] == [frame.id for frame in frames[2:]]
    assert [frame.raw_data for frame in by_header] == [frame.raw_data for frame in frames[2:]]
    assert [frame.id for frame in by_query] == [frame.id for frame in frames[3:]]
    assert by_header[-1].event == "complete"


def test_events_reject_a_malformed_last_event_id(api, llm):
    agent = create_agent(api, llm, "Solo")
    run_id = run_stream(api, agent["id"])[0].data["run_id"]

    response = api.get(f"/api/agents/runs/{run_id}/events", headers={"Last-Event-ID": "soon"})

    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"


def test_cancel_of_a_finished_run_is_run_finished(api, llm):
    agent = create_agent(api, llm, "Solo")
    run_id = run_stream(api, agent["id"])[0].data["run_id"]

    response = api.post(f"/api/agents/runs/{run_id}/cancel")

    assert response.status_code == 409
    assert response.json()["code"] == "run_finished"
    assert api.get(f"/api/agents/runs/{run_id}").json()["status"] == "completed"


def test_cancel_stops_running_run(api, llm):
    agent = create_agent(api, llm, "Slow")
    llm.enqueue(Reply.delay(30, Reply.text("Too late")), model="slow")
    frames = []
    cancel = None

    with api.stream("POST", f"/api/agents/{agent['id']}/run/stream",
                    json={"message": "Take your time"}) as response:
        assert response.status_code == 200
        for frame in iter_frames(response.iter_lines()):
            frames.append(frame)
            if frame.event == "step_started":
                # The run is waiting on the model now (the stream keeps its own connection).
                cancel = api.post(f"/api/agents/runs/{frames[0].data['run_id']}/cancel")

    assert cancel is not None and cancel.status_code == 200
    assert cancel.json()["cancel_requested"] is True
    assert event_names(frames)[-2:] == ["error", "complete"]
    assert frames[-2].data["code"] == "cancelled"
    assert frames[-1].data["status"] == "cancelled"
    stored = api.get(f"/api/agents/runs/{frames[0].data['run_id']}").json()
    assert stored["status"] == "cancelled"
    assert stored["code"] == "cancelled"


def test_cancel_ends_pending_run_at_once(api, owner):
    from agents.events import encode_event
    from agents.models import Agent, AgentRun, RunEvent

    # A run that no worker has claimed yet: built here, never queued.
    agent = Agent.objects.create(owner=owner, name="Idle", model="openai/idle")
    run = AgentRun.objects.create(owner=owner, agent=agent, agent_name=agent.name, message="Wait")
    RunEvent.objects.create(run_id=run.id, seq=1, event="start",
                            data=encode_event("start", run.id, 1, {"run_id": run.id}))

    response = api.post(f"/api/agents/runs/{run.id}/cancel")

    assert response.status_code == 200
    assert response.json() == {"run_id": run.id, "status": "cancelled", "cancel_requested": True}
    with api.stream("GET", f"/api/agents/runs/{run.id}/events") as stream:
        frames = read_stream(stream)
    assert event_names(frames) == ["start", "error", "complete"]
    assert frames[-1].data["status"] == "cancelled"
    again = api.post(f"/api/agents/runs/{run.id}/cancel")
    assert again.status_code == 409
    assert again.json()["code"] == "run_finished"


def test_another_owners_agent_and_run_are_not_found(api, llm, web):
    from django.contrib.auth import get_user_model

    from accounts.services import apikey_create
    from tests.conftest import make_client

    agent = create_agent(api, llm, "Mine")
    run_id = run_stream(api, agent["id"])[0].data["run_id"]
    stranger = get_user_model().objects.create_user(username=f"stranger-{agent['id'][:8]}")
    _key, full_key = apikey_create(owner=stranger)

    with make_client(web.url, full_key) as other:
        assert other.get(f"/api/agents/{agent['id']}").json()["code"] == "agent_not_found"
        assert other.post(f"/api/agents/{agent['id']}/run",
                          json={"message": "hi"}).json()["code"] == "agent_not_found"
        assert other.get(f"/api/agents/runs/{run_id}").json()["code"] == "run_not_found"
        assert other.post(f"/api/agents/runs/{run_id}/cancel").json()["code"] == "run_not_found"
        assert other.get("/api/agents").json()["total"] == 0
