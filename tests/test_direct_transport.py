"""The direct OpenAI-compatible transport (POWABASE_MODEL_TRANSPORT=direct): the same
events, usage and error codes as the litellm path, through a worker that uses it."""

import time

import pytest

from tests.conftest import make_client
from tests.factories import create_team, stream_run
from tests.scripted_llm import Reply
from tests.sse import event_names
from tests.test_faults import private_stack


@pytest.fixture(scope="module")
def direct_stack(service_env, log_dir):
    with private_stack(service_env, log_dir, POWABASE_MODEL_TRANSPORT="direct") as stack:
        yield stack


@pytest.fixture
def direct_api(direct_stack, api_key):
    _env, web, _workers = direct_stack
    with make_client(web.url, api_key) as client:
        yield client


def test_direct_supervisor_run(direct_api, llm):
    team = create_team(direct_api, llm)
    llm.enqueue(Reply.tool_calls([("delegate_to_researcher", {"task": "find"}),
                                  ("delegate_to_writer", {"task": "write"})], usage=(100, 20)),
                model="coord")
    llm.enqueue(Reply.text("final words", chunks=5, usage=(200, 10)), model="coord")

    frames = stream_run(direct_api, team["id"])

    names = event_names(frames)
    assert names.count("delegation_started") == 2
    assert frames[-1].data["status"] == "completed"
    assert frames[-1].data["content"] == "final words"
    deltas = "".join(f.data["delta"] for f in frames
                     if f.event == "content_delta" and f.data["agent"] is None)
    assert deltas == "final words"
    calls = [f.data for f in frames if f.event == "tool_call"]
    assert [c["arguments"] for c in calls] == [{"task": "find"}, {"task": "write"}]
    assert set(llm.user_agents) == {"powabase-orchestrations (direct transport)"}
    usage = frames[-1].data["usage"]
    assert usage["prompt_tokens"] >= 300
    assert usage["completion_tokens"] >= 30


def test_direct_error_codes(direct_api, llm):
    team = create_team(direct_api, llm)
    llm.enqueue(Reply.error(401, "bad key sk-secret", type_="authentication_error"), model="coord")

    frames = stream_run(direct_api, team["id"])

    error = [f.data for f in frames if f.event == "error"][0]
    assert error["code"] == "llm_auth_failed"
    assert "sk-secret" not in error["error"]


def test_direct_rate_limit_then_fallback(direct_api, llm):
    team = create_team(direct_api, llm, settings={"fallback_model": "openai/backup"})
    llm.set_handler(lambda request: (
        Reply.error(429, "slow down", type_="rate_limit_error") if request["model"] == "coord"
        else Reply.text(f"answer from {request['model']}")))

    frames = stream_run(direct_api, team["id"])

    assert "model_retry" in event_names(frames)
    assert "model_fallback" in event_names(frames)
    assert frames[-1].data["content"] == "answer from backup"


def test_direct_stall_times_out(direct_api, llm):
    team = create_team(direct_api, llm, settings={"timeout_seconds": 2})
    llm.set_handler(lambda request: Reply.stall(30))

    started = time.monotonic()
    frames = stream_run(direct_api, team["id"])
    elapsed = time.monotonic() - started

    error = [f.data for f in frames if f.event == "error"][0]
    assert error["code"] == "llm_timeout"
    assert elapsed < 2 + 2


def test_direct_refused_connection(direct_api, llm):
    import socket

    # A port on 127.0.0.1 that was free a moment ago and has no listener now.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    team = create_team(direct_api, llm, orchestrator_config={
        "api_base": f"http://127.0.0.1:{closed_port}/v1"}, settings={"max_retries": 0})

    frames = stream_run(direct_api, team["id"])

    error = [f.data for f in frames if f.event == "error"][0]
    assert error["code"] == "llm_unavailable"
    assert frames[-1].data["status"] == "failed"
