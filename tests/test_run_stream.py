"""The run stream: frame format, ordering, replay and relay across web processes."""

import contextlib
import json
import threading
import time
from datetime import datetime

from tests.factories import create_team, stream_run
from tests.scripted_llm import Reply
from tests.sse import event_names, iter_frames, read_stream


def _ts(frame) -> float:
    return datetime.fromisoformat(frame.data["ts"].replace("Z", "+00:00")).timestamp()


def _delegate_all(*tasks):
    return Reply.tool_calls([(f"delegate_to_{name}", {"task": task}) for name, task in tasks])


def test_frames_repeat_type_and_are_one_line(api, llm):
    team = create_team(api, llm)
    with api.stream("POST", f"/api/orchestrations/{team['id']}/run/stream",
                    json={"message": "line one\nline two\r\nevent: forged\ndata: {}"}) as response:
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        assert "content-length" not in response.headers
        assert "content-encoding" not in response.headers
        raw = response.read().decode()

    blocks = [block for block in raw.split("\n\n") if block.strip()]
    for block in blocks:
        lines = block.split("\n")
        assert lines[0].startswith("id: ")
        assert lines[1].startswith("event: ")
        assert lines[2].startswith("data: ")
        assert len(lines) == 3
        data = json.loads(lines[2][len("data: "):])
        assert data["event"] == lines[1][len("event: "):]
        assert data["seq"] == int(lines[0][len("id: "):])
    assert "event: forged" not in [block.split("\n")[1] for block in blocks]


def test_fifty_fast_deltas_reach_other_process(api, api2, llm):
    team = create_team(api, llm)
    llm.enqueue(_delegate_all(("researcher", "find"), ("writer", "write")), model="coord")
    llm.enqueue(Reply.text("x" * 240, chunks=80), model="coord")
    # The entities answer after a pause, so the second client is connected before their deltas.
    llm.enqueue(Reply.delay(1.0, Reply.text("r" * 120, chunks=60)), model="researcher")
    llm.enqueue(Reply.delay(1.0, Reply.text("w" * 120, chunks=60)), model="writer")

    with api.stream("POST", f"/api/orchestrations/{team['id']}/run/stream",
                    json={"message": "Go"}) as response:
        first = next(iter_frames(response.iter_lines()))
    run_id = first.data["run_id"]

    # A client on the other web process follows the run live from the first event.
    with api2.stream("GET", f"/api/orchestrations/runs/{run_id}/events") as response:
        assert response.status_code == 200
        frames = read_stream(response)

    ids = [frame.id for frame in frames]
    assert ids == list(range(1, len(ids) + 1))
    names = event_names(frames)
    assert names[-1] == "complete"
    assert names.count("content_delta") >= 200
    assert frames[-1].data["status"] == "completed"
    deltas = "".join(f.data["delta"] for f in frames
                     if f.event == "content_delta" and f.data["agent"] is None)
    assert deltas == "x" * 240


def test_late_client_replays_same_frames(api, api2, llm):
    team = create_team(api, llm)
    with api.stream("POST", f"/api/orchestrations/{team['id']}/run/stream",
                    json={"message": "Replay me"}) as response:
        live = read_stream(response)
    run_id = live[0].data["run_id"]

    with api2.stream("GET", f"/api/orchestrations/runs/{run_id}/events") as response:
        replayed = read_stream(response)

    assert [f.raw_data for f in replayed] == [f.raw_data for f in live]


def test_delegations_of_one_turn_run_concurrently(api, llm):
    team = create_team(api, llm, members=(("Alpha", "First"), ("Beta", "Second"),
                                          ("Gamma", "Third")))
    llm.enqueue(_delegate_all(("alpha", "a"), ("beta", "b"), ("gamma", "c")), model="coord")
    llm.enqueue(Reply.text("Done."), model="coord")
    for name in ("alpha", "beta", "gamma"):
        llm.enqueue(Reply.delay(1.0, Reply.text(f"{name} answer")), model=name)

    frames = stream_run(api, team["id"])

    started = [_ts(f) for f in frames if f.event == "delegation_started"]
    completed = [_ts(f) for f in frames if f.event == "delegation_completed"]
    assert len(started) == 3
    assert len(completed) == 3
    # Three 1-second entities one after another would take over 3 seconds.
    assert max(completed) - min(started) < 2.0
    assert frames[-1].data["status"] == "completed"


def test_invalid_tool_calls_cost_no_entity_call(api, llm):
    team = create_team(api, llm)
    llm.enqueue(Reply.tool_calls([("delegate_to_nobody", {"task": "x"}),
                                  ("delegate_to_researcher", {"task": "   "}),
                                  ("delegate_to_writer", {})]), model="coord")
    llm.enqueue(Reply.text("I answered myself."), model="coord")

    frames = stream_run(api, team["id"])

    results = [f.data for f in frames if f.event == "tool_result"]
    assert len(results) == 3
    for result in results:
        assert result["result_preview"].startswith("Error:")
        assert "delegate_to_researcher" in result["result_preview"]
        assert "delegate_to_writer" in result["result_preview"]
    assert "delegation_started" not in event_names(frames)
    models = [request["model"] for request in llm.requests]
    assert models == ["coord", "coord"]
    second_turn = llm.requests[1]["messages"]
    assert [m["role"] for m in second_turn].count("tool") == 3
    assert frames[-1].data["status"] == "completed"
    assert frames[-1].data["content"] == "I answered myself."


def test_max_steps_ends_run_failed(api, llm):
    team = create_team(api, llm, settings={"max_steps": 2})
    llm.set_handler(lambda request: (
        Reply.tool_calls([("delegate_to_researcher", {"task": f"step {len(request['messages'])}"})])
        if request["model"] == "coord" else Reply.text("more")))

    frames = stream_run(api, team["id"])

    complete = frames[-1].data
    assert complete["status"] == "failed"
    assert complete["stop_reason"] == "max_steps"
    assert [r["model"] for r in llm.requests].count("coord") == 2
    run = api.get(f"/api/orchestrations/runs/{complete['run_id']}").json()
    assert run["status"] == "failed"
    assert run["stop_reason"] == "max_steps"


def test_provider_error_fails_with_code(api, llm):
    team = create_team(api, llm)
    llm.enqueue(Reply.error(401, "bad key sk-secret-123", type_="authentication_error"),
                model="coord")

    frames = stream_run(api, team["id"])

    names = event_names(frames)
    assert names[-2:] == ["error", "complete"]
    error = frames[-2].data
    assert error["code"] == "llm_auth_failed"
    assert "sk-secret" not in error["error"]
    assert frames[-1].data["status"] == "failed"
    run = api.get(f"/api/orchestrations/runs/{frames[-1].data['run_id']}").json()
    assert run["code"] == "llm_auth_failed"
    assert "sk-secret" not in json.dumps(run)


def test_resume_after_last_event_id(api, llm):
    team = create_team(api, llm)
    llm.latency = 0.3
    with api.stream("POST", f"/api/orchestrations/{team['id']}/run/stream",
                    json={"message": "Resume"}) as response:
        head = read_stream(response, stop_after=3)
    run_id = head[0].data["run_id"]
    # Let the run finish while no client is connected.
    deadline = time.monotonic() + 30
    while api.get(f"/api/orchestrations/runs/{run_id}").json()["status"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.2)

    with api.stream("GET", f"/api/orchestrations/runs/{run_id}/events",
                    headers={"Last-Event-ID": str(head[-1].id)}) as response:
        rest = read_stream(response)

    ids = [f.id for f in head + rest]
    assert ids == list(range(1, len(ids) + 1))
    assert rest[-1].event == "complete"

    with api.stream("GET", f"/api/orchestrations/runs/{run_id}/events?last_event_id=3") as response:
        again = read_stream(response)
    assert [f.raw_data for f in again] == [f.raw_data for f in rest]


def test_many_concurrent_streams_complete(api, llm):
    team = create_team(api, llm)
    llm.latency = 0.1
    results: list = [None] * 12

    def run(index):
        results[index] = stream_run(api, team["id"], message=f"question {index}")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(results))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    for frames in results:
        assert frames is not None
        assert [f.id for f in frames] == list(range(1, len(frames) + 1))
        assert frames[-1].data["status"] == "completed"


def test_nul_characters_from_model_are_stored(api, llm):
    # PostgreSQL text columns cannot hold NUL; a model may still send one.
    team = create_team(api, llm)
    llm.enqueue(Reply.tool_calls([("delegate_to_researcher", {"task": "find\x00this"})]),
                model="coord")
    llm.enqueue(Reply.text("fact\x00one"), model="researcher")
    llm.enqueue(Reply.text("final\x00words"), model="coord")

    frames = stream_run(api, team["id"])
    run = api.get(f"/api/orchestrations/runs/{frames[0].data['run_id']}").json()

    assert frames[-1].data["status"] == "completed"
    assert frames[-1].data["content"] == "final\x00words"
    assert run["status"] == "completed"
    assert run["content"] == "final\ufffdwords"
    child = run["child_runs"][0]
    assert child["status"] == "completed"
    assert child["content"] == "fact\ufffdone"
    assert child["task"] == "find\ufffdthis"


def _thread_count(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("Threads:"))


def test_open_streams_hold_no_request_threads(api, web, llm):
    team = create_team(api, llm)
    llm.set_handler(lambda request: Reply.delay(4.0, Reply.text("late")))
    baseline = _thread_count(web.process.pid)

    with contextlib.ExitStack() as streams:
        # Keep the frame iterators referenced: dropping one closes its stream.
        readers = []
        for index in range(20):
            response = streams.enter_context(api.stream(
                "POST", f"/api/orchestrations/{team['id']}/run/stream",
                json={"message": f"Wait {index}"}))
            readers.append(iter_frames(response.iter_lines()))
            assert next(readers[-1]).event == "start"
        time.sleep(0.5)
        during = _thread_count(web.process.pid)

    # A thread per open stream would add 20; the server's shared pools add a few.
    assert during - baseline < 10
