"""Runs and streams under faults: cancel, disconnect, worker death, Redis restart,
PostgreSQL down, idempotent submission and keepalives."""

import contextlib
import secrets
import signal
import subprocess
import threading
import time

import httpx
import pytest

from tests.conftest import make_client
from tests.factories import create_team
from tests.scripted_llm import Reply
from tests.sse import iter_frames, read_stream
from tests.stack import ServiceProcess, WebProcess, WorkerProcess, free_port


@contextlib.contextmanager
def private_stack(service_env, log_dir, *, workers=1, **overrides):
    """A web process and workers on their own Celery queue, with extra settings."""
    tag = secrets.token_hex(4)
    env = {**service_env, "POWABASE_CELERY_QUEUE": f"powabase-test-{tag}", **overrides}
    web = WebProcess(f"web-{tag}", env, log_dir).start()
    started = [web]
    try:
        web.wait_ready()
        for index in range(workers):
            worker = WorkerProcess(f"worker-{tag}-{index}", env, log_dir).start()
            started.append(worker)
            worker.wait_ready()
        yield env, web, started[1:]
    finally:
        for process in started:
            process.kill()


def _wait_for(predicate, timeout: float, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def _run(api, run_id):
    return api.get(f"/api/orchestrations/runs/{run_id}").json()


def test_cancel_stops_model_calls(api, llm):
    team = create_team(api, llm)
    llm.enqueue(Reply.tool_calls([("delegate_to_researcher", {"task": "slow"}),
                                  ("delegate_to_writer", {"task": "slow"})]), model="coord")
    llm.enqueue(Reply.text("r" * 400, chunks=200, interval=0.05), model="researcher")
    llm.enqueue(Reply.text("w" * 400, chunks=200, interval=0.05), model="writer")

    with api.stream("POST", f"/api/orchestrations/{team['id']}/run/stream",
                    json={"message": "Go"}) as response:
        frames = []
        cancelled_at = None
        for frame in iter_frames(response.iter_lines()):
            frames.append(frame)
            if frame.event == "content_delta" and frame.data["agent"] and cancelled_at is None:
                run_id = frame.data["run_id"]
                answer = api.post(f"/api/orchestrations/runs/{run_id}/cancel")
                assert answer.status_code == 200
                cancelled_at = time.monotonic()
                requests_at_cancel = llm.request_count
        ended_at = time.monotonic()

    assert frames[-1].event == "complete"
    assert frames[-1].data["status"] == "cancelled"
    assert ended_at - cancelled_at < 2.0
    time.sleep(1.0)
    assert llm.request_count == requests_at_cancel
    run = _run(api, run_id)
    assert run["status"] == "cancelled"
    assert {child["status"] for child in run["child_runs"]} == {"cancelled"}
    again = api.post(f"/api/orchestrations/runs/{run_id}/cancel")
    assert again.status_code == 409
    assert again.json()["code"] == "run_finished"


def test_disconnect_does_not_stop_run(api, llm):
    team = create_team(api, llm)
    llm.latency = 0.3
    with api.stream("POST", f"/api/orchestrations/{team['id']}/run/stream",
                    json={"message": "Keep going"}) as response:
        first = read_stream(response, stop_after=2)
    run_id = first[0].data["run_id"]

    run = _wait_for(lambda: (r := _run(api, run_id))["status"] != "running" and r, timeout=30)

    assert run["status"] == "completed"
    assert len(run["child_runs"]) == 2


def test_idempotency_key_makes_one_run(api, llm):
    team = create_team(api, llm)
    llm.latency = 0.2
    key = f"key-{secrets.token_hex(4)}"
    results = []

    def submit():
        with api.stream("POST", f"/api/orchestrations/{team['id']}/run/stream",
                        json={"message": "Pay once"}, headers={"Idempotency-Key": key}) as response:
            results.append((response.status_code, read_stream(response)))

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert [status for status, _frames in results] == [200, 200]
    run_ids = {frames[0].data["run_id"] for _status, frames in results}
    assert len(run_ids) == 1
    for _status, frames in results:
        assert frames[-1].event == "complete"
        assert [f.id for f in frames] == list(range(1, len(frames) + 1))
    assert [r["model"] for r in llm.requests].count("coord") == 2

    reused = api.post(f"/api/orchestrations/{team['id']}/run/stream",
                      json={"message": "Something else"}, headers={"Idempotency-Key": key})
    assert reused.status_code == 422
    assert reused.json()["code"] == "idempotency_key_reused"


def test_keepalive_during_silence(service_env, log_dir, llm, api_key):
    with private_stack(service_env, log_dir, POWABASE_KEEPALIVE_SECONDS="1") as (_env, web, _w):
        with make_client(web.url, api_key) as api:
            team = create_team(api, llm)
            llm.enqueue(Reply.delay(3.0, Reply.tool_calls([("delegate_to_writer", {"task": "t"})])),
                        model="coord")
            with api.stream("POST", f"/api/orchestrations/{team['id']}/run/stream",
                            json={"message": "Wait"}) as response:
                lines = list(response.iter_lines())

    assert ": keepalive" in lines
    assert "event: complete" in lines


def test_worker_killed_mid_delegation(service_env, log_dir, llm, api_key):
    fast_reaper = {"POWABASE_HEARTBEAT_SECONDS": "1", "POWABASE_REAPER_STALE_SECONDS": "4",
                   "POWABASE_REAPER_INTERVAL_SECONDS": "1"}
    with private_stack(service_env, log_dir, **fast_reaper) as (env, web, workers):
        with make_client(web.url, api_key) as api:
            team = create_team(api, llm)
            llm.enqueue(Reply.tool_calls([("delegate_to_researcher", {"task": "long"})]),
                        model="coord")
            llm.enqueue(Reply.text("r" * 2000, chunks=1000, interval=0.05), model="researcher")
            with api.stream("POST", f"/api/orchestrations/{team['id']}/run/stream",
                            json={"message": "Die"}) as response:
                for frame in iter_frames(response.iter_lines()):
                    if frame.event == "content_delta" and frame.data["agent"] == "Researcher":
                        run_id = frame.data["run_id"]
                        last_seen = frame.id
                        break
            workers[0].process.send_signal(signal.SIGKILL)
            workers[0].process.wait(10)

            # A second worker runs the reaper tasks that Celery beat schedules.
            tag = secrets.token_hex(3)
            survivor = WorkerProcess(f"survivor-{tag}", env, log_dir).start()
            beat = ServiceProcess(f"beat-{tag}", [str(survivor.args[0]), "-A", "powabase", "beat",
                                                   "--schedule", str(log_dir / f"beat-{tag}.db")],
                                  env, log_dir).start()
            try:
                survivor.wait_ready()
                started = time.monotonic()
                with api.stream("GET", f"/api/orchestrations/runs/{run_id}/events",
                                headers={"Last-Event-ID": str(last_seen)}) as response:
                    rest = read_stream(response)
                waited = time.monotonic() - started
                run = _run(api, run_id)
            finally:
                beat.kill()
                survivor.kill()

    assert rest[-1].event == "complete"
    assert rest[-1].data["status"] == "failed"
    assert rest[-1].data["code"] == "worker_lost"
    assert waited < 120
    assert run["status"] == "failed"
    assert run["code"] == "worker_lost"
    assert all(child["status"] != "running" for child in run["child_runs"])
    ids = [f.id for f in rest]
    assert ids == list(range(last_seen + 1, last_seen + 1 + len(ids)))


def test_redis_restart_mid_run(service_env, log_dir, llm, api_key, tmp_path):
    port = free_port()
    redis_args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                  "--appendonly", "no", "--dir", str(tmp_path)]
    redis = subprocess.Popen(redis_args, stdout=subprocess.DEVNULL)
    try:
        _wait_for(lambda: _redis_up(port), timeout=10)
        overrides = {"REDIS_URL": f"redis://127.0.0.1:{port}/0"}
        with private_stack(service_env, log_dir, **overrides) as (_env, web, _workers):
            with make_client(web.url, api_key) as api:
                team = create_team(api, llm)
                llm.enqueue(Reply.tool_calls([("delegate_to_researcher", {"task": "t"})]),
                            model="coord")
                llm.enqueue(Reply.text("r" * 300, chunks=100, interval=0.05), model="researcher")
                with api.stream("POST", f"/api/orchestrations/{team['id']}/run/stream",
                                json={"message": "Survive"}) as response:
                    head = []
                    for frame in iter_frames(response.iter_lines()):
                        head.append(frame)
                        if frame.event == "content_delta" and frame.data["agent"]:
                            break
                run_id = head[0].data["run_id"]

                redis.kill()
                redis.wait(10)
                time.sleep(1.0)
                redis = subprocess.Popen(redis_args, stdout=subprocess.DEVNULL)
                _wait_for(lambda: _redis_up(port), timeout=10)

                with api.stream("GET", f"/api/orchestrations/runs/{run_id}/events",
                                headers={"Last-Event-ID": str(head[-1].id)}) as response:
                    rest = read_stream(response)
                run = _run(api, run_id)
    finally:
        redis.kill()
        redis.wait(10)

    frames = head + rest
    assert [f.id for f in frames] == list(range(1, len(frames) + 1))
    assert frames[-1].event == "complete"
    assert frames[-1].data["status"] == "completed"
    assert run["status"] == "completed"
    deltas = "".join(f.data["delta"] for f in frames
                     if f.event == "content_delta" and f.data["agent"] == "Researcher")
    assert deltas == "r" * 300


def _redis_up(port: int) -> bool:
    try:
        return subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True,
                              timeout=2).stdout.strip() == b"PONG"
    except subprocess.TimeoutExpired:
        return False


def test_database_down_answers_503(service_env, log_dir, api_key):
    env = {**service_env, "DATABASE_URL": f"postgres://postgres@127.0.0.1:{free_port()}/nothing"}
    web = WebProcess(f"web-nodb-{secrets.token_hex(3)}", env, log_dir).start()
    try:
        web.wait_ready()
        with make_client(web.url, api_key) as api:
            responses = [api.get("/api/agents"),
                         api.post("/api/orchestrations", json={"name": "x"}),
                         api.get("/api/orchestrations/runs/orch_run_000000000000")]
    finally:
        web.kill()

    for response in responses:
        assert response.status_code == 503
        assert response.headers["content-type"].startswith("application/json")
        assert response.json()["code"] == "service_unavailable"


@pytest.mark.parametrize("header", ["Authorization", "apikey"])
def test_revoked_key_is_rejected(api, owner, header):
    from accounts.models import ApiKey
    from accounts.services import apikey_create, apikey_revoke

    key_row, key = apikey_create(owner=owner)
    value = f"Bearer {key}" if header == "Authorization" else key
    url = str(api.base_url).rstrip("/") + "/api/agents"
    assert httpx.get(url, headers={header: value}).status_code == 200

    apikey_revoke(api_key=ApiKey.objects.get(pk=key_row.pk))
    rejected = httpx.get(url, headers={header: value})

    assert rejected.status_code == 401
    assert rejected.json()["code"] == "invalid_api_key"





def test_disconnect_releases_listener(api, llm):
    team = create_team(api, llm)
    llm.enqueue(Reply.delay(5.0, Reply.text("late")), model="coord")
    with api.stream("POST", f"/api/orchestrations/{team['id']}/run/stream",
                    json={"message": "Leave early"}) as response:
        # Keep the iterator referenced: dropping it would close the connection.
        frames = iter_frames(response.iter_lines())
        first = next(frames)
        assert first.event == "start"
        assert api.get("/healthz").json()["open_streams"] == 1
        response.close()

    released = _wait_for(lambda: api.get("/healthz").json()["open_streams"] == 0, timeout=5)
    run = _wait_for(lambda: (r := _run(api, first.data["run_id"]))["status"] == "completed" and r,
                    timeout=30)

    assert released
    assert run["status"] == "completed"
