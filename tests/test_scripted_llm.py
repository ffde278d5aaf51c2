"""Tests for the scripted LLM server, driven through litellm's real OpenAI client.

These tests need neither Django nor the database, and tests/conftest.py needs both, so
run them alone with
``.venv/bin/python -m pytest --noconftest -p no:django tests/test_scripted_llm.py``.
"""

import os

# litellm reads both at import time. Without the first, litellm 1.110.2 fetches its
# model cost map from GitHub. The second keeps huggingface_hub, which litellm can
# use for tokenizers, offline.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import asyncio  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import aiohttp  # noqa: E402
import httpx  # noqa: E402
import litellm  # noqa: E402
import pytest  # noqa: E402

from tests.scripted_llm import Reply, ScriptedLLM, supervisor_handler  # noqa: E402

# Stops litellm from printing "Provider List" banners and debug hints on errors.
litellm.suppress_debug_info = True

REPO_ROOT = Path(__file__).resolve().parent.parent

MESSAGES = [{"role": "user", "content": "Write a short poem about the sea and the sky, please"}]

DELEGATE_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": f"delegate_to_{agent}",
            "description": f"Hand a task to the {agent} agent.",
            "parameters": {
                "type": "object",
                "properties": {"task": {"type": "string"}},
                "required": ["task"],
            },
        },
    }
    for agent in ("writer", "critic", "editor")
]

FINAL_ANSWER_TOOL = {
    "type": "function",
    "function": {
        "name": "final_answer",
        "parameters": {
            "type": "object",
            "properties": {"answer": {"type": "string"}, "confidence": {"type": "number"}},
            "required": ["answer", "confidence"],
        },
    },
}


# Defined here rather than taken from tests/conftest.py, so the file also runs with
# --noconftest. Under the full suite they shadow the conftest fixtures of the same names.
@pytest.fixture(scope="module")
def server():
    with ScriptedLLM() as llm:
        yield llm


@pytest.fixture
def llm(server):
    server.reset()
    yield server
    server.reset()


def complete(llm, **kwargs):
    """Call litellm.completion against the scripted server as model ``openai/coord``."""
    arguments = {
        "model": "openai/coord",
        "api_base": llm.base_url,
        "api_key": "test",
        "messages": MESSAGES,
    }
    arguments.update(kwargs)
    return litellm.completion(**arguments)


def stream_chunks(llm, **kwargs):
    return list(complete(llm, stream=True, **kwargs))


def raw_events(response_text):
    """Parse an SSE body into the list of ``data:`` payloads, JSON-decoded except ``[DONE]``."""
    events = []
    for block in response_text.split("\n\n"):
        if not block.strip():
            continue
        assert block.startswith("data: "), f"unexpected SSE block: {block!r}"
        payload = block.removeprefix("data: ")
        events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


def streamed_content(response_text):
    """Join the content deltas of an SSE body."""
    return "".join(
        event["choices"][0]["delta"].get("content") or ""
        for event in raw_events(response_text)
        if event != "[DONE]" and event["choices"]
    )


def post_raw(llm, body, **kwargs):
    return httpx.post(f"{llm.base_url}/chat/completions", json=body, timeout=10, **kwargs)


# ---------------------------------------------------------------------------
# Text


def test_stream_text_reassembles(llm):
    text = "Hello world from the scripted server"
    llm.enqueue(Reply.text(text, chunks=5))

    chunks = stream_chunks(llm)

    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(deltas) == text
    assert len(deltas) == 5
    built = litellm.stream_chunk_builder(chunks, messages=MESSAGES)
    assert built.choices[0].message.content == text
    assert built.choices[0].finish_reason == "stop"


def test_stream_wire_format(llm):
    llm.enqueue(Reply.text("one two three", chunks=3, usage=(4, 3)))
    body = {
        "model": "coord",
        "stream": True,
        "messages": MESSAGES,
        "stream_options": {"include_usage": True},
    }

    response = post_raw(llm, body)

    assert response.headers["content-type"].startswith("text/event-stream")
    events = raw_events(response.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert all(chunk["model"] == "coord" for chunk in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    # Content is split by characters into pieces whose lengths differ by at most 1.
    assert [c["choices"][0]["delta"]["content"] for c in chunks[1:4]] == ["one t", "wo t", "hree"]
    assert chunks[4]["choices"][0]["finish_reason"] == "stop"
    assert chunks[5]["choices"] == []
    assert chunks[5]["usage"] == {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}


def test_stream_without_usage_option(llm):
    response = post_raw(llm, {"model": "coord", "stream": True, "messages": MESSAGES})

    chunks = raw_events(response.text)[:-1]
    assert all(chunk["choices"] for chunk in chunks)
    assert all("usage" not in chunk for chunk in chunks)


def test_non_stream_text_and_usage(llm):
    llm.enqueue(Reply.text("Plain answer", usage=(11, 7)))

    response = complete(llm)

    assert response.choices[0].message.content == "Plain answer"
    assert response.choices[0].finish_reason == "stop"
    assert response.usage.prompt_tokens == 11
    assert response.usage.completion_tokens == 7
    assert response.usage.total_tokens == 18


def test_default_usage_counts_words(llm):
    llm.enqueue(Reply.text("three word answer"))

    response = post_raw(llm, {"model": "coord", "messages": MESSAGES}).json()

    assert response["object"] == "chat.completion"
    assert response["model"] == "coord"
    prompt_words = len(MESSAGES[0]["content"].split())
    assert response["usage"] == {
        "prompt_tokens": prompt_words,
        "completion_tokens": 3,
        "total_tokens": prompt_words + 3,
    }


def test_stream_usage_reaches_litellm(llm):
    llm.enqueue(Reply.text("counted", usage=(21, 5)))

    chunks = stream_chunks(llm, stream_options={"include_usage": True})

    built = litellm.stream_chunk_builder(chunks, messages=MESSAGES)
    assert built.usage.prompt_tokens == 21
    assert built.usage.completion_tokens == 5


# ---------------------------------------------------------------------------
# Tool calls


def test_split_tool_calls_reassemble(llm):
    calls = [
        ("delegate_to_writer", {"task": "Draft a poem about the sea", "style": {"rhyme": True}}),
        ("delegate_to_critic", {"task": "Critique the draft — be kind", "points": [1, 2, 3]}),
        ("delegate_to_editor", {"task": 'Fix "quotes" and \\ backslashes'}),
    ]
    llm.enqueue(Reply.tool_calls(calls, split=True))

    chunks = stream_chunks(llm, tools=DELEGATE_TOOLS, stream_options={"include_usage": True})

    built = litellm.stream_chunk_builder(chunks, messages=MESSAGES)
    choice = built.choices[0]
    assert choice.finish_reason == "tool_calls"
    tool_calls = choice.message.tool_calls
    assert [call.id for call in tool_calls] == ["call_1", "call_2", "call_3"]
    assert [call.function.name for call in tool_calls] == [name for name, _ in calls]
    assert [json.loads(call.function.arguments) for call in tool_calls] == [
        arguments for _, arguments in calls
    ]
    assert built.usage.completion_tokens > 0


def test_split_tool_calls_wire_format(llm):
    arguments = {"task": "A task long enough to be split into several fragments"}
    llm.enqueue(Reply.tool_calls([("delegate_to_writer", arguments)] * 2, chunks=4))

    response = post_raw(llm, {"model": "coord", "stream": True, "messages": MESSAGES})

    chunks = raw_events(response.text)[:-1]
    call_deltas = [delta for chunk in chunks for delta in chunk["choices"][0]["delta"].get("tool_calls", [])]
    heads = [delta for delta in call_deltas if "id" in delta]
    fragments = [delta for delta in call_deltas if "id" not in delta]
    assert [head["index"] for head in heads] == [0, 1]
    assert all(head["function"] == {"name": "delegate_to_writer", "arguments": ""} for head in heads)
    assert all(set(fragment) == {"index", "function"} for fragment in fragments)
    assert all(set(fragment["function"]) == {"arguments"} for fragment in fragments)
    for index in (0, 1):
        pieces = [f["function"]["arguments"] for f in fragments if f["index"] == index]
        assert len(pieces) == 4
        assert json.loads("".join(pieces)) == arguments
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_unsplit_tool_calls_send_arguments_whole(llm):
    llm.enqueue(Reply.tool_calls([("lookup", {"q": "x"}, "call_custom")], split=False))

    response = post_raw(llm, {"model": "coord", "stream": True, "messages": MESSAGES})

    call_deltas = [
        delta
        for chunk in raw_events(response.text)[:-1]
        for delta in chunk["choices"][0]["delta"].get("tool_calls", [])
    ]
    assert call_deltas == [
        {
            "index": 0,
            "id": "call_custom",
            "type": "function",
            "function": {"name": "lookup", "arguments": '{"q": "x"}'},
        }
    ]


def test_non_stream_tool_calls(llm):
    llm.enqueue(
        Reply.tool_calls(
            [("delegate_to_writer", {"task": "a"}), ("delegate_to_critic", {"task": "b"})],
            content="Delegating now.",
        )
    )

    response = complete(llm, tools=DELEGATE_TOOLS)

    message = response.choices[0].message
    assert response.choices[0].finish_reason == "tool_calls"
    assert message.content == "Delegating now."
    assert [call.function.name for call in message.tool_calls] == [
        "delegate_to_writer",
        "delegate_to_critic",
    ]
    assert [json.loads(call.function.arguments) for call in message.tool_calls] == [
        {"task": "a"},
        {"task": "b"},
    ]


# ---------------------------------------------------------------------------
# Errors, stalls and resets


def test_rate_limit_raises_rate_limit_error(llm):
    llm.enqueue(Reply.error(429, "Slow down", retry_after=7))

    with pytest.raises(litellm.RateLimitError, match="Slow down"):
        complete(llm, max_retries=0)

    assert llm.request_count == 1


def test_error_wire_format(llm):
    llm.enqueue(
        Reply.error(429, "Slow down", type_="rate_limit_error", code="rate_limit_exceeded", retry_after=7)
    )

    response = post_raw(llm, {"model": "coord", "messages": MESSAGES})

    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json() == {
        "error": {
            "message": "Slow down",
            "type": "rate_limit_error",
            "code": "rate_limit_exceeded",
            "param": None,
        }
    }


def test_client_retries_rate_limit(llm):
    # The openai SDK under litellm retries a 429 twice and honors Retry-After.
    llm.enqueue(Reply.error(429, "Slow down", retry_after=0.05))

    response = complete(llm)

    assert response.choices[0].message.content.startswith("[coord] Answer to:")
    assert llm.request_count == 2


def test_server_error_raises_internal_error(llm):
    llm.set_handler(lambda request: Reply.error(500, "Upstream broke", type_="server_error"))

    with pytest.raises(litellm.InternalServerError, match="Upstream broke"):
        complete(llm, max_retries=0)

    assert llm.request_count == 1


def test_stall_times_out_stream(llm):
    llm.enqueue(Reply.stall(5))
    started = time.monotonic()

    with pytest.raises(litellm.Timeout):
        stream_chunks(llm, timeout=1)

    elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 2.0
    assert llm.request_count == 1


def test_stall_times_out_non_stream(llm):
    llm.enqueue(Reply.stall(5))
    started = time.monotonic()

    with pytest.raises(litellm.Timeout):
        complete(llm, timeout=1, max_retries=0)

    elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 2.0


def test_stall_sends_headers_then_closes(llm):
    llm.enqueue(Reply.stall(0.3))
    started = time.monotonic()

    with httpx.stream(
        "POST",
        f"{llm.base_url}/chat/completions",
        json={"model": "coord", "messages": MESSAGES},
        timeout=5,
    ) as response:
        headers_after = time.monotonic() - started
        assert response.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            response.read()

    assert headers_after < 0.25
    assert time.monotonic() - started >= 0.3


def test_reset_connection_fails_request(llm):
    llm.enqueue(Reply.reset_connection())

    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        post_raw(llm, {"model": "coord", "messages": MESSAGES})


def test_reset_connection_through_litellm(llm):
    # litellm 1.110.2 reports the openai SDK's APIConnectionError as InternalServerError.
    llm.set_handler(lambda request: Reply.reset_connection())

    with pytest.raises(litellm.InternalServerError, match="Connection error"):
        complete(llm, max_retries=0)


def test_handler_exception_returns_500(llm):
    def broken_handler(request):
        raise KeyError("missing")

    llm.set_handler(broken_handler)

    response = post_raw(llm, {"model": "coord", "messages": MESSAGES})

    assert response.status_code == 500
    assert "KeyError" in response.json()["error"]["message"]
    assert len(llm.handler_errors) == 1
    assert isinstance(llm.handler_errors[0], KeyError)


def test_invalid_json_returns_400(llm):
    response = httpx.post(f"{llm.base_url}/chat/completions", content=b"{not json", timeout=5)

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert llm.request_count == 0


# ---------------------------------------------------------------------------
# Queues, log and default handler


def test_enqueue_per_model(llm):
    llm.enqueue(Reply.text("coord one"), Reply.text("coord two"), model="coord")
    llm.enqueue(Reply.text("worker one"), model="openai/worker")
    llm.enqueue(Reply.text("shared"))
    assert llm.pending_replies == 4

    def answer(model):
        return complete(llm, model=f"openai/{model}").choices[0].message.content

    assert answer("worker") == "worker one"
    assert answer("coord") == "coord one"
    assert answer("worker") == "shared"
    assert answer("coord") == "coord two"
    assert answer("coord").startswith("[coord] Answer to:")
    assert llm.pending_replies == 0


def test_request_log(llm):
    complete(llm, messages=[{"role": "user", "content": "first"}])
    stream_chunks(llm, model="openai/worker", messages=[{"role": "user", "content": "second"}])

    requests = llm.requests
    assert llm.request_count == 2
    assert [request["model"] for request in requests] == ["coord", "worker"]
    assert [request["messages"][-1]["content"] for request in requests] == ["first", "second"]
    assert requests[1]["stream"] is True

    llm.reset()
    assert llm.requests == []
    assert llm.request_count == 0


def test_default_handler_delegates_all(llm):
    response = complete(llm, tools=[*DELEGATE_TOOLS, FINAL_ANSWER_TOOL])

    tool_calls = response.choices[0].message.tool_calls
    assert [call.function.name for call in tool_calls] == [
        "delegate_to_writer",
        "delegate_to_critic",
        "delegate_to_editor",
    ]
    tasks = [json.loads(call.function.arguments)["task"] for call in tool_calls]
    assert tasks[0] == "writer: Write a short poem about the sea and the sky, please"


def test_default_handler_named_tool_choice(llm):
    tools = [*DELEGATE_TOOLS, FINAL_ANSWER_TOOL]
    named = {"type": "function", "function": {"name": "delegate_to_critic"}}

    chunks = stream_chunks(llm, tools=tools, tool_choice=named)

    tool_calls = litellm.stream_chunk_builder(chunks, messages=MESSAGES).choices[0].message.tool_calls
    assert [call.function.name for call in tool_calls] == ["delegate_to_critic"]
    assert json.loads(tool_calls[0].function.arguments) == {
        "task": "Write a short poem about the sea and the sky, please"
    }


def test_default_handler_named_tool_fills_schema(llm):
    named = {"type": "function", "function": {"name": "final_answer"}}

    response = complete(llm, tools=[FINAL_ANSWER_TOOL], tool_choice=named)

    tool_calls = response.choices[0].message.tool_calls
    assert [call.function.name for call in tool_calls] == ["final_answer"]
    arguments = json.loads(tool_calls[0].function.arguments)
    assert arguments == {"answer": MESSAGES[0]["content"], "confidence": 0}


def test_default_handler_answers_tool_results(llm):
    messages = [
        *MESSAGES,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "delegate_to_writer", "arguments": '{"task": "x"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "A poem."},
    ]

    chunks = stream_chunks(llm, messages=messages, tools=DELEGATE_TOOLS)

    contents = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(contents) == "[coord] Answer to: Write a short poem about the sea and the"
    assert len(contents) == 8


def test_supervisor_handler_tool_choice_modes():
    request = {"model": "m", "messages": MESSAGES, "tools": [FINAL_ANSWER_TOOL]}

    assert supervisor_handler({**request, "tool_choice": "none"}).kind == "text"
    assert supervisor_handler({**request, "tool_choice": "auto"}).kind == "text"
    required = supervisor_handler({**request, "tool_choice": "required"})
    assert required.kind == "tool_calls"
    assert [name for name, _, _ in required.calls] == ["final_answer"]


def test_supervisor_handler_reads_content_parts():
    request = {
        "model": "m",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "From parts"}]}],
    }

    reply = supervisor_handler(request)

    assert reply.content == "[m] Answer to: From parts"


# ---------------------------------------------------------------------------
# Timing and load


def test_latency_and_delay(llm):
    llm.latency = 0.2
    llm.enqueue(Reply.delay(0.2, Reply.text("late")))

    started = time.monotonic()
    post_raw(llm, {"model": "coord", "messages": MESSAGES})
    delayed = time.monotonic() - started
    started = time.monotonic()
    post_raw(llm, {"model": "coord", "messages": MESSAGES})
    plain = time.monotonic() - started

    assert 0.4 <= delayed < 0.8
    assert 0.2 <= plain < 0.4


def test_chunk_interval_spaces_stream(llm):
    # 7 chunks (role, 5 content, finish) leave 6 gaps of 0.05 s.
    llm.enqueue(Reply.text("abcdefghij", chunks=5, interval=0.05))
    arrivals = []
    started = time.monotonic()

    with httpx.stream(
        "POST",
        f"{llm.base_url}/chat/completions",
        json={"model": "coord", "stream": True, "messages": MESSAGES},
        timeout=5,
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.monotonic() - started)

    assert len(arrivals) == 8
    assert arrivals[-1] >= 0.3
    assert arrivals[0] < 0.15


def test_reset_restores_latency(llm):
    llm.latency = 0.5
    llm.chunk_interval = 0.1

    llm.reset()

    assert llm.latency == 0.0
    assert llm.chunk_interval == 0.0


def test_streams_not_delayed_by_nagle(llm):
    # Nagle's algorithm with delayed ACKs would add about 40 ms to each response.
    durations = []
    with httpx.Client(timeout=5) as client:
        for _ in range(20):
            started = time.monotonic()
            response = client.post(
                f"{llm.base_url}/chat/completions",
                json={"model": "coord", "stream": True, "messages": MESSAGES},
            )
            assert response.text.endswith("data: [DONE]\n\n")
            durations.append(time.monotonic() - started)

    assert statistics.median(durations) < 0.03


def test_500_concurrent_streams(llm):
    llm.latency = 0.2

    async def run_streams(count):
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one(index):
                body = {
                    "model": "coord",
                    "stream": True,
                    "messages": [{"role": "user", "content": f"question {index}"}],
                }
                async with session.post(f"{llm.base_url}/chat/completions", json=body) as response:
                    return await response.text()

            return await asyncio.gather(*(one(index) for index in range(count)))

    started = time.monotonic()
    bodies = asyncio.run(run_streams(500))
    elapsed = time.monotonic() - started

    assert all(body.endswith("data: [DONE]\n\n") for body in bodies)
    assert streamed_content(bodies[499]) == "[coord] Answer to: question 499"
    assert llm.request_count == 500
    # Served one at a time, 500 responses with 0.2 s latency would take 100 s.
    assert elapsed < 5


def test_acompletion_concurrent_streams(llm):
    llm.latency = 0.2

    async def one(index):
        stream = await litellm.acompletion(
            model="openai/coord",
            api_base=llm.base_url,
            api_key="test",
            messages=[{"role": "user", "content": f"question {index}"}],
            stream=True,
        )
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    async def run_all():
        return await asyncio.gather(*(one(index) for index in range(50)))

    started = time.monotonic()
    answers = asyncio.run(run_all())
    elapsed = time.monotonic() - started

    assert answers == [f"[coord] Answer to: question {index}" for index in range(50)]
    assert elapsed < 3


# ---------------------------------------------------------------------------
# Other endpoints and the command line


def test_models_endpoint(llm):
    complete(llm)

    response = httpx.get(f"{llm.base_url}/models", timeout=5)

    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    assert [model["id"] for model in body["data"]] == ["coord"]


def test_server_context_manager_stops():
    with ScriptedLLM() as llm:
        base_url = llm.base_url
        assert httpx.get(f"{base_url}/models", timeout=5).status_code == 200

    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/models", timeout=5)


def test_command_line_serves_until_sigterm():
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.scripted_llm", "--port", "0", "--latency", "0"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        base_url = line.removeprefix("listening on ")

        response = httpx.post(
            f"{base_url}/chat/completions",
            json={"model": "bench", "messages": MESSAGES},
            timeout=5,
        )
        assert response.json()["choices"][0]["message"]["content"].startswith("[bench]")

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert process.stdout.read() == ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
