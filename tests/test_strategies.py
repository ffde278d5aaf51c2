"""Strategies, budgets, usage and cost, and provider faults, through the real stack."""

import time

from tests.factories import create_team, stream_run
from tests.scripted_llm import Reply
from tests.sse import event_names

THREE = (("Alpha", "First step"), ("Beta", "Second step"), ("Gamma", "Third step"))


def _user_text(request) -> str:
    return "\n".join(str(m.get("content") or "") for m in request["messages"] if m["role"] == "user")


def test_sequential_passes_output_along(api, llm):
    team = create_team(api, llm, members=THREE, strategy="sequential")
    for name in ("alpha", "beta", "gamma"):
        llm.enqueue(Reply.text(f"output-of-{name}"), model=name)

    frames = stream_run(api, team["id"], message="Original question")

    steps = [f.data for f in frames if f.event == "sequential_step"]
    assert [(s["step"], s["agent"]) for s in steps] == [(1, "Alpha"), (2, "Beta"), (3, "Gamma")]
    requests = {r["model"]: _user_text(r) for r in llm.requests}
    assert "Original question" in requests["alpha"]
    assert "output-of-alpha" in requests["beta"]
    assert "Original question" in requests["beta"]
    assert "output-of-beta" in requests["gamma"]
    assert frames[-1].data["status"] == "completed"
    assert frames[-1].data["content"] == "output-of-gamma"


def test_sequential_failure_names_entity(api, llm):
    team = create_team(api, llm, members=THREE, strategy="sequential")
    llm.enqueue(Reply.text("fine"), model="alpha")
    llm.enqueue(Reply.error(400, "bad request"), model="beta")

    frames = stream_run(api, team["id"])

    complete = frames[-1].data
    assert complete["status"] == "failed"
    assert "Beta" in complete["error"]
    assert "gamma" not in [r["model"] for r in llm.requests]


def test_parallel_runs_entities_at_once_and_merges_once(api, llm):
    team = create_team(api, llm, members=THREE, strategy="parallel")
    for name in ("alpha", "beta", "gamma"):
        llm.enqueue(Reply.delay(1.0, Reply.text(f"part from {name}")), model=name)
    llm.enqueue(Reply.text("merged answer"), model="coord")

    started = time.monotonic()
    frames = stream_run(api, team["id"])
    elapsed = time.monotonic() - started

    coordinator_calls = [r for r in llm.requests if r["model"] == "coord"]
    assert len(coordinator_calls) == 1
    merge_prompt = _user_text(coordinator_calls[0])
    for name in ("alpha", "beta", "gamma"):
        assert f"part from {name}" in merge_prompt
    assert frames[-1].data["status"] == "completed"
    assert frames[-1].data["content"] == "merged answer"
    # Three 1-second entities in sequence would take over 3 seconds.
    assert elapsed < 2.5


def test_parallel_partial_when_one_fails(api, llm):
    team = create_team(api, llm, members=THREE, strategy="parallel")
    llm.enqueue(Reply.text("part a"), model="alpha")
    llm.enqueue(Reply.error(400, "rejected"), model="beta")
    llm.enqueue(Reply.text("part c"), model="gamma")
    llm.enqueue(Reply.text("merged without beta"), model="coord")

    frames = stream_run(api, team["id"])

    complete = frames[-1].data
    assert complete["status"] == "completed"
    assert complete["partial"] is True
    merge_prompt = _user_text([r for r in llm.requests if r["model"] == "coord"][0])
    assert "Beta" in merge_prompt
    run = api.get(f"/api/orchestrations/runs/{complete['run_id']}").json()
    assert run["partial"] is True
    failed = [c for c in run["child_runs"] if c["status"] == "failed"]
    assert [c["agent"] for c in failed] == ["Beta"]
    assert failed[0]["error"]


def test_router_makes_exactly_two_calls(api, llm):
    team = create_team(api, llm, members=THREE, strategy="router")
    llm.enqueue(Reply.tool_calls([("delegate_to_beta", {"task": "handle it"})]), model="coord")
    llm.enqueue(Reply.text("beta handled it", chunks=4), model="beta")

    frames = stream_run(api, team["id"])

    assert [r["model"] for r in llm.requests] == ["coord", "beta"]
    assert frames[-1].data["content"] == "beta handled it"
    deltas = [f.data for f in frames if f.event == "content_delta"]
    assert "".join(d["delta"] for d in deltas) == "beta handled it"
    assert {d["agent"] for d in deltas} == {"Beta"}


def test_router_direct_answer_when_allowed(api, llm):
    team = create_team(api, llm, members=THREE, strategy="router",
                       orchestrator_config={"allow_direct_answer": True})
    llm.enqueue(Reply.tool_calls([("answer_directly", {"answer": "Hello there."})]), model="coord")

    frames = stream_run(api, team["id"], message="Hi")

    assert len(llm.requests) == 1
    assert frames[-1].data["content"] == "Hello there."
    assert "delegation_started" not in event_names(frames)


def test_repeated_delegation_stops_run(api, llm):
    team = create_team(api, llm)
    llm.set_handler(lambda request: (
        Reply.tool_calls([("delegate_to_researcher", {"task": "same task"})])
        if request["model"] == "coord" else Reply.text("same answer")))

    frames = stream_run(api, team["id"])

    complete = frames[-1].data
    assert complete["stop_reason"] == "repeated_delegation"
    assert event_names(frames).count("delegation_started") == 3
    assert [r["model"] for r in llm.requests].count("researcher") == 3
    assert [r["model"] for r in llm.requests].count("coord") == 3


def _priced_handler(request):
    # gpt-4o-mini is in litellm's local cost map, so every call has a known cost.
    system = next((m["content"] for m in request["messages"] if m["role"] == "system"), "")
    if system.startswith("You coordinate"):
        turn = sum(1 for m in request["messages"] if m["role"] == "tool")
        return Reply.tool_calls([("delegate_to_researcher", {"task": f"task {turn}"})],
                                usage=(100_000, 10_000))
    return Reply.text("an answer", usage=(50_000, 5_000))


def _priced_team(api, llm, **fields):
    team = create_team(api, llm, members=(("Researcher", "Finds facts"),),
                       orchestrator_config={"model": "openai/gpt-4o-mini"}, **fields)
    entity = team["entities"][0]
    updated = api.patch(f"/api/orchestrations/{team['id']}/entities/{entity['id']}",
                        json={"config": {"model": "openai/gpt-4o-mini"}})
    assert updated.status_code == 200
    return team


def test_max_cost_stops_run(api, llm):
    team = _priced_team(api, llm, settings={"max_cost_usd": 0.05})
    llm.set_handler(_priced_handler)

    frames = stream_run(api, team["id"])

    complete = frames[-1].data
    assert complete["stop_reason"] == "budget_cost"
    assert complete["usage"]["cost_usd"] > 0.05
    # Each coordinator call costs $0.021 and each entity call $0.0105: the
    # budget is crossed on the third call, and nothing runs after that.
    assert len(llm.requests) == 3


def test_usage_is_sum_of_calls(api, llm):
    team = _priced_team(api, llm)
    replies = iter([Reply.tool_calls([("delegate_to_researcher", {"task": "t"})], usage=(1000, 100)),
                    Reply.text("final", usage=(2000, 200))])
    llm.set_handler(lambda request: (
        next(replies) if str(request["messages"][0]["content"]).startswith("You coordinate")
        else Reply.text("entity answer", usage=(300, 30))))

    frames = stream_run(api, team["id"])
    run = api.get(f"/api/orchestrations/runs/{frames[-1].data['run_id']}").json()

    usage = run["usage"]
    assert usage["prompt_tokens"] == 1000 + 2000 + 300
    assert usage["completion_tokens"] == 100 + 200 + 30
    assert usage["total_tokens"] == 3630
    calls = run["usage_breakdown"]["coordinator_calls"]
    assert [c["usage"]["prompt_tokens"] for c in calls] == [1000, 2000]
    child_cost = run["child_runs"][0]["usage"]["cost_usd"]
    per_call = sum(c["usage"]["cost_usd"] for c in calls) + child_cost
    assert abs(usage["cost_usd"] - per_call) < 1e-9
    assert usage["cost_usd"] > 0
    completed = [f.data for f in frames if f.event == "delegation_completed"][0]
    assert completed["usage"]["prompt_tokens"] == 300
    assert frames[-1].data["usage"] == usage


def test_unknown_model_cost_is_null(api, llm):
    team = create_team(api, llm)

    frames = stream_run(api, team["id"])

    assert frames[-1].data["status"] == "completed"
    assert frames[-1].data["usage"]["cost_usd"] is None
    run = api.get(f"/api/orchestrations/runs/{frames[-1].data['run_id']}").json()
    assert all(child["usage"]["cost_usd"] is None for child in run["child_runs"])


def test_max_cost_counts_known_costs_beside_unknown(api, llm):
    # The coordinator is priced, the entity's model is not: the budget still
    # counts what is known, so an unpriced model cannot hide the spending.
    team = create_team(api, llm, members=(("Researcher", "Finds facts"),),
                       orchestrator_config={"model": "openai/gpt-4o-mini"},
                       settings={"max_cost_usd": 0.03})
    llm.set_handler(_priced_handler)

    frames = stream_run(api, team["id"])

    assert frames[-1].data["stop_reason"] == "budget_cost"
    assert frames[-1].data["usage"]["cost_usd"] is None


def test_rate_limit_then_success_retries(api, llm):
    team = create_team(api, llm)
    llm.enqueue(Reply.error(429, "slow down", type_="rate_limit_error"), model="coord")

    frames = stream_run(api, team["id"])

    retries = [f.data for f in frames if f.event == "model_retry"]
    assert len(retries) == 1
    assert retries[0]["code"] == "llm_rate_limited"
    assert frames[-1].data["status"] == "completed"


def test_fallback_model_after_rate_limits(api, llm):
    team = create_team(api, llm, settings={"fallback_model": "openai/backup"})
    llm.set_handler(lambda request: (
        Reply.error(429, "slow down", type_="rate_limit_error") if request["model"] == "coord"
        else Reply.tool_calls([("delegate_to_writer", {"task": "w"})])
        if request["model"] == "backup" and not any(m["role"] == "tool" for m in request["messages"])
        else Reply.text(f"answer from {request['model']}")))

    frames = stream_run(api, team["id"])

    assert event_names(frames).count("model_fallback") >= 1
    fallback = [f.data for f in frames if f.event == "model_fallback"][0]
    assert fallback["to_model"] == "openai/backup"
    assert frames[-1].data["status"] == "completed"
    assert frames[-1].data["content"] == "answer from backup"
    # The primary is tried (with its retries) only in the first step; the
    # second step goes straight to the fallback.
    assert [r["model"] for r in llm.requests].count("coord") == 3
    assert event_names(frames).count("model_fallback") == 1


def test_stalled_endpoint_times_out(api, llm):
    team = create_team(api, llm, settings={"timeout_seconds": 2})
    llm.set_handler(lambda request: Reply.stall(30))

    started = time.monotonic()
    frames = stream_run(api, team["id"])
    elapsed = time.monotonic() - started

    error = [f.data for f in frames if f.event == "error"][0]
    assert error["code"] == "llm_timeout"
    assert frames[-1].data["status"] == "failed"
    assert elapsed < 2 + 2


def test_entity_model_override(api, llm):
    team = create_team(api, llm, members=(("Researcher", "Finds facts"),))
    entity = team["entities"][0]
    api.patch(f"/api/orchestrations/{team['id']}/entities/{entity['id']}",
              json={"config": {"model": "openai/special"}})
    llm.enqueue(Reply.tool_calls([("delegate_to_researcher", {"task": "t"})]), model="coord")
    llm.enqueue(Reply.text("done"), model="coord")

    stream_run(api, team["id"])

    assert "special" in [r["model"] for r in llm.requests]
    assert "researcher" not in [r["model"] for r in llm.requests]


def test_additional_instructions_reach_coordinator(api, llm):
    team = create_team(api, llm, orchestrator_config={"additional_instructions": "Answer in French."})

    stream_run(api, team["id"])

    system = llm.requests[0]["messages"][0]["content"]
    assert "Answer in French." in system


def test_forced_delegation_names_each_tool(api, llm):
    team = create_team(api, llm, members=THREE,
                       orchestrator_config={"delegation_mode": "forced"})

    frames = stream_run(api, team["id"], message="Explain tides")

    coordinator = [r for r in llm.requests if r["model"] == "coord"]
    planned = sorted(r["tool_choice"]["function"]["name"] for r in coordinator if r.get("tools"))
    assert planned == ["delegate_to_alpha", "delegate_to_beta", "delegate_to_gamma"]
    for request in coordinator:
        if request.get("tools"):
            assert len(request["tools"]) == 1
    final = [r for r in coordinator if not r.get("tools")]
    assert len(final) == 1
    assert "Explain tides" in _user_text(final[0])
    assert event_names(frames).count("delegation_started") == 3
    for name in ("alpha", "beta", "gamma"):
        entity_request = [r for r in llm.requests if r["model"] == name][0]
        assert "Explain tides" in _user_text(entity_request)
    assert frames[-1].data["status"] == "completed"
