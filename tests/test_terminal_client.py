"""The terminal client: `manage.py run_orchestration` against a Celery worker, and its renderer."""

import io
import queue
import re
import signal
import subprocess
import sys
import threading
import time

from orchestrations.terminal import TerminalRenderer
from tests.factories import create_team
from tests.scripted_llm import Reply
from tests.stack import ROOT

COMMAND_TIMEOUT = 120


def run_command(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", "run_orchestration", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=COMMAND_TIMEOUT)


def test_completed_run_prints_delegations_and_exits_0(api, llm, service_env):
    team = create_team(api, llm)

    result = run_command(service_env, team["id"], "Tell me about owls")

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert re.search(r"^Run orch_run_[0-9a-f]{12}  session orch_sess_[0-9a-f]{12}$", out, re.M)
    assert "-> Researcher: researcher: Tell me about owls" in out
    assert "-> Writer: writer: Tell me about owls" in out
    assert re.search(r"<- Researcher completed in \d+\.\d s", out)
    # Each entity's answer, printed whole when its delegation completes.
    assert "[researcher] Answer to:" in out
    assert "[writer] Answer to:" in out
    # The coordinator's final answer, streamed live.
    assert "[coord] Answer to:" in out
    assert "Status:   completed, stop_reason none, 2 coordinator steps" in out
    assert re.search(r"^Usage:    \d+ tokens \(\d+ prompt, \d+ completion\), cost unknown$", out, re.M)
    run_id = re.search(r"orch_run_[0-9a-f]{12}", out).group(0)
    assert api.get(f"/api/orchestrations/runs/{run_id}").json()["status"] == "completed"
    # Not a terminal: no color codes.
    assert "\033[" not in out


def test_team_found_by_name(api, llm, service_env):
    team = create_team(api, llm, name="Owl experts")

    result = run_command(service_env, "Owl experts", "Tell me about owls")

    assert result.returncode == 0, result.stdout + result.stderr
    run_id = re.search(r"orch_run_[0-9a-f]{12}", result.stdout).group(0)
    assert api.get(f"/api/orchestrations/runs/{run_id}").json()["orchestration_id"] == team["id"]


def test_failed_run_exits_1(api, llm, service_env):
    team = create_team(api, llm)
    llm.enqueue(Reply.error(401, "Invalid key", type_="authentication_error"), model="coord")

    result = run_command(service_env, team["id"], "Tell me about owls")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Error [llm_auth_failed]:" in result.stdout
    assert "Status:   failed" in result.stdout
    assert "-> " not in result.stdout


def test_ambiguous_name_rejected(api, llm, service_env, owner):
    first = create_team(api, llm, name="Twins")
    second = create_team(api, llm, name="Twins")

    result = run_command(service_env, "Twins", "Hello", "--owner", owner.username)

    assert result.returncode == 1
    assert "2 orchestrations are named 'Twins'" in result.stderr
    assert first["id"] in result.stderr
    assert second["id"] in result.stderr


def test_ctrl_c_cancels_the_run(api, llm, service_env):
    team = create_team(api, llm)
    for model in ("researcher", "writer"):
        llm.enqueue(Reply.delay(60, Reply.text("too late")), model=model)
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_orchestration", team["id"], "Tell me about owls"],
        cwd=ROOT, env=service_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    stdout_lines: queue.Queue = queue.Queue()
    stderr_lines: list[str] = []
    threading.Thread(target=lambda: [stdout_lines.put(line) for line in process.stdout],
                     daemon=True).start()
    threading.Thread(target=lambda: stderr_lines.extend(process.stderr), daemon=True).start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while not any(line.startswith("    -> ") for line in seen) and time.monotonic() < deadline:
            try:
                seen.append(stdout_lines.get(timeout=0.5))
            except queue.Empty:
                pass
        assert any(line.startswith("    -> ") for line in seen), "".join(seen + stderr_lines)

        process.send_signal(signal.SIGINT)
        returncode = process.wait(60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)

    output = "".join(seen + stderr_lines)
    assert returncode == 130, output
    assert "Cancelling run" in "".join(stderr_lines)
    run_id = re.search(r"orch_run_[0-9a-f]{12}", output).group(0)
    assert api.get(f"/api/orchestrations/runs/{run_id}").json()["status"] == "cancelled"


RECORDED_RUN = [
    {"event": "start", "run_id": "orch_run_0123456789ab", "seq": 1, "ts": "2026-01-01T10:00:00.000Z",
     "session_id": "orch_sess_0123456789ab"},
    {"event": "orchestration_started", "seq": 2, "strategy": "supervisor", "name": "Owls",
     "entity_count": 2},
    {"event": "step_started", "seq": 3, "step": 1, "agent": None},
    {"event": "tool_call", "seq": 4, "step": 1, "tool_name": "delegate_to_researcher",
     "arguments": {"task": "Find owl facts"}, "call_id": "call_1"},
    {"event": "tool_call", "seq": 5, "step": 1, "tool_name": "delegate_to_poet",
     "arguments": {"task": "Write"}, "call_id": "call_2"},
    {"event": "delegation_started", "seq": 6, "agent": "Researcher", "task": "Find owl\nfacts",
     "child_execution_id": "agent_run_1"},
    {"event": "delegation_started", "seq": 7, "agent": "Writer", "task": "Write about owls",
     "child_execution_id": "agent_run_2"},
    {"event": "content_delta", "seq": 8, "delta": "Owls are", "agent": "Researcher",
     "child_execution_id": "agent_run_1"},
    {"event": "model_retry", "seq": 9, "agent": "Writer", "model": "openai/writer", "attempt": 1,
     "code": "llm_rate_limited", "delay_seconds": 0.5, "child_execution_id": "agent_run_2"},
    {"event": "content_delta", "seq": 10, "delta": " birds.", "agent": "Researcher",
     "child_execution_id": "agent_run_1"},
    {"event": "delegation_completed", "seq": 11, "agent": "Researcher", "status": "completed",
     "steps": 1, "usage": {"total_tokens": 42}, "content": "Owls are birds.\nThey hunt at night.",
     "duration_ms": 1250},
    {"event": "model_fallback", "seq": 12, "agent": "Writer", "from_model": "openai/writer",
     "to_model": "openai/backup", "code": "llm_unavailable"},
    {"event": "delegation_completed", "seq": 13, "agent": "Writer", "status": "failed", "steps": 0,
     "usage": {"total_tokens": 0}, "content": "", "duration_ms": 800,
     "error": "The model openai/backup timed out.", "code": "llm_timeout"},
    {"event": "tool_result", "seq": 14, "tool_name": "delegate_to_poet", "call_id": "call_2",
     "result_preview": "Error: there is no tool named 'delegate_to_poet'. Valid tools: delegate_to_x"},
    {"event": "tool_result", "seq": 15, "tool_name": "delegate_to_writer", "call_id": "call_3",
     "result_preview": "Error: Writer failed: The model openai/backup timed out."},
    {"event": "step_started", "seq": 16, "step": 2, "agent": None},
    {"event": "content_delta", "seq": 17, "delta": "Owls are ", "agent": None},
    {"event": "content_delta", "seq": 18, "delta": "night birds.", "agent": None},
    {"event": "chunk", "seq": 19, "content": "Owls are night birds."},
    {"event": "complete", "seq": 20, "ts": "2026-01-01T10:01:05.500Z", "run_id": "orch_run_0123456789ab",
     "session_id": "orch_sess_0123456789ab", "content": "Owls are night birds.", "status": "completed",
     "steps": 2, "stop_reason": None, "error": None,
     "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120, "cost_usd": None}},
]


def render(events, *, color=False) -> str:
    out = io.StringIO()
    renderer = TerminalRenderer(out, color=color)
    for event in events:
        renderer.feed(event)
    return out.getvalue()


def test_renderer_prints_recorded_run():
    expected = """\
Run orch_run_0123456789ab  session orch_sess_0123456789ab
Team "Owls": supervisor, 2 entities
Coordinator, step 1
    -> Researcher: Find owl facts
    -> Writer: Write about owls
    ~ Writer: openai/writer failed (llm_rate_limited); retry 1 in 0.5 s
    <- Researcher completed in 1.2 s, 42 tokens
        Owls are birds.
        They hunt at night.
    ~ Writer: openai/writer failed (llm_unavailable); falling back to openai/backup
    <- Writer failed in 0.8 s, 0 tokens
        [llm_timeout] The model openai/backup timed out.
    ! delegate_to_poet: Error: there is no tool named 'delegate_to_poet'. Valid tools: delegate_to_x
Coordinator, step 2
    Owls are night birds.

Status:   completed, stop_reason none, 2 coordinator steps
Usage:    120 tokens (100 prompt, 20 completion), cost unknown
Duration: 1 min 06 s
Run:      orch_run_0123456789ab  (session orch_sess_0123456789ab)
"""
    assert render(RECORDED_RUN) == expected


def test_renderer_prints_unstreamed_answer():
    events = [RECORDED_RUN[0],
              {"event": "error", "error": "The run was cancelled.", "code": "cancelled"},
              {"event": "complete", "run_id": "orch_run_0123456789ab", "content": "Partial answer",
               "status": "cancelled", "steps": 1, "stop_reason": None, "error": "The run was cancelled.",
               "code": "cancelled", "usage": {"total_tokens": 7, "cost_usd": 0.00012}}]

    out = render(events)

    assert "Error [cancelled]: The run was cancelled.\n" in out
    assert "Answer\n    Partial answer\n" in out
    assert "Status:   cancelled, stop_reason none, 1 coordinator step, error [cancelled]" in out
    assert "Usage:    7 tokens (0 prompt, 0 completion), $0.000120\n" in out


def test_renderer_colors_only_on_request():
    assert "\033[" not in render(RECORDED_RUN, color=False)
    assert "\033[1m\033[32mcompleted\033[0m" in render(RECORDED_RUN, color=True)
    # A StringIO is not a terminal, so by default there is no color.
    out = io.StringIO()
    TerminalRenderer(out).feed(RECORDED_RUN[0])
    assert "\033[" not in out.getvalue()
