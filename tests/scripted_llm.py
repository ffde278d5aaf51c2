"""Scripted OpenAI-compatible chat completions server for tests and benchmarks.

Tests point litellm at ``ScriptedLLM().base_url`` with a model such as
``"openai/coord"``, so litellm's real OpenAI client path (the ``openai`` SDK
over httpx) runs against canned replies. The server is an aiohttp application
on 127.0.0.1 that runs in a daemon thread with its own event loop, so it serves
synchronous and asynchronous test code alike.

Replies are chosen per request in this order: the FIFO queue for the request's
``model`` field, then the shared FIFO queue, then the handler (by default
``supervisor_handler``).

Run ``python -m tests.scripted_llm --port 8911 --latency 0.2`` to serve the
default handler for load tests until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import json
import logging
import signal
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

__all__ = ["Reply", "ScriptedLLM", "supervisor_handler"]

logger = logging.getLogger(__name__)

Handler = Callable[[dict], "Reply"]

# Prefix that litellm strips before it sends the request ("openai/coord" arrives as "coord").
_PROVIDER_PREFIX = "openai/"

# aiohttp waits up to this many seconds twice in stop(): for in-flight responses to
# finish, then for them to exit after their requests are cancelled. stop() then
# cancels the handler tasks that are left.
_SHUTDOWN_TIMEOUT = 0.25

# Listen backlog. aiohttp's default of 128 drops SYNs when hundreds of clients
# connect at once, and each dropped SYN costs the client a 1 s retransmit.
# The kernel caps the value at net.core.somaxconn.
_LISTEN_BACKLOG = 2048


@dataclass(frozen=True)
class Reply:
    """One scripted response. Build it with the class methods, not the constructor.

    ``interval`` is the pause in seconds between streamed chunks. ``None`` means
    the server's ``chunk_interval``, which defaults to 0.
    """

    kind: str
    content: str | None = None
    chunks: int = 1
    calls: tuple[tuple[str, str, str | None], ...] = ()
    split: bool = True
    usage: tuple[int, int] | None = None
    finish_reason: str = "stop"
    status: int = 200
    message: str = ""
    error_type: str = ""
    code: str | None = None
    retry_after: float | None = None
    headers: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0
    inner: Reply | None = None
    interval: float | None = None

    @classmethod
    def text(
        cls,
        content: str,
        chunks: int = 5,
        usage: tuple[int, int] | None = None,
        finish_reason: str = "stop",
        interval: float | None = None,
    ) -> Reply:
        """Build an assistant text reply, streamed as ``chunks`` deltas of about equal length.

        ``usage`` is ``(prompt_tokens, completion_tokens)``. Without it the server
        counts words (see ``ScriptedLLM``).
        """
        if chunks < 1:
            raise ValueError(f"chunks must be at least 1, got {chunks}")
        return cls(
            kind="text",
            content=content,
            chunks=chunks,
            usage=usage,
            finish_reason=finish_reason,
            interval=interval,
        )

    @classmethod
    def tool_calls(
        cls,
        calls: Iterable[tuple[str, dict | str] | tuple[str, dict | str, str]],
        content: str | None = None,
        split: bool = True,
        chunks: int = 4,
        usage: tuple[int, int] | None = None,
        finish_reason: str = "tool_calls",
        interval: float | None = None,
    ) -> Reply:
        """Build one assistant turn with parallel tool calls.

        Each call is ``(name, arguments)`` or ``(name, arguments, id)``. A dict
        is sent as JSON and a string is sent verbatim, so a test can send
        malformed arguments. Calls without an id get ``call_<n>``, numbered per
        server from 1 in the order the server sends them.

        When streamed with ``split=True``, the first chunk of each call carries
        ``index``, ``id``, ``type`` and ``name`` with empty arguments. Each of the
        next ``chunks`` chunks carries only ``index`` and a fragment of the
        arguments, the way the OpenAI API streams them. With ``split=False`` the
        first chunk carries the whole arguments string. ``content`` is streamed
        before the calls, also in ``chunks`` deltas.
        """
        if chunks < 1:
            raise ValueError(f"chunks must be at least 1, got {chunks}")
        normalized = []
        for call in calls:
            if len(call) == 2:
                name, arguments = call
                call_id = None
            elif len(call) == 3:
                name, arguments, call_id = call
            else:
                raise ValueError(
                    f"each tool call must be (name, arguments) or (name, arguments, id), got {call!r}"
                )
            if not isinstance(arguments, str):
                arguments = json.dumps(arguments)
            normalized.append((name, arguments, call_id))
        if not normalized:
            raise ValueError("Reply.tool_calls needs at least one call")
        return cls(
            kind="tool_calls",
            content=content,
            chunks=chunks,
            calls=tuple(normalized),
            split=split,
            usage=usage,
            finish_reason=finish_reason,
            interval=interval,
        )

    @classmethod
    def error(
        cls,
        status: int,
        message: str = "Scripted error",
        type_: str = "rate_limit_error",
        retry_after: float | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        interval: float | None = None,
    ) -> Reply:
        """Build an OpenAI-style error: ``{"error": {"message", "type", "code", "param"}}``.

        ``retry_after`` sets the ``Retry-After`` header in seconds. ``headers``
        adds more headers, for example ``{"x-should-retry": "false"}``, which
        stops the openai SDK from retrying.
        """
        if status < 400:
            raise ValueError(f"error status must be 400 or higher, got {status}")
        return cls(
            kind="error",
            status=status,
            message=message,
            error_type=type_,
            code=code,
            retry_after=retry_after,
            headers=tuple((headers or {}).items()),
            interval=interval,
        )

    @classmethod
    def stall(cls, seconds: float, interval: float | None = None) -> Reply:
        """Send status and headers (for a stream also the role chunk), then nothing
        for ``seconds``, then close the connection without finishing the body."""
        return cls(kind="stall", seconds=seconds, interval=interval)

    @classmethod
    def delay(cls, seconds: float, reply: Reply, interval: float | None = None) -> Reply:
        """Send ``reply`` after ``seconds`` on top of the server's ``latency``."""
        return cls(kind="delay", seconds=seconds, inner=reply, interval=interval)

    @classmethod
    def reset_connection(cls, interval: float | None = None) -> Reply:
        """Close the socket with a TCP RST before any byte of the response."""
        return cls(kind="reset", interval=interval)


# ---------------------------------------------------------------------------
# Default handler


def _message_text(message: dict) -> str:
    """Return the text of a message whose content is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        ]
        return " ".join(texts)
    return ""


def _last_user_text(request: dict) -> str:
    for message in reversed(request.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return _message_text(message)
    return ""


def _tool_name(tool: dict) -> str:
    return (tool.get("function") or {}).get("name", "")


def _arguments_for_tool(tool: dict | None, task: str) -> dict:
    """Build arguments that fit the tool's JSON schema, with ``task`` in every string field.

    Tools without declared properties, or with a ``task`` property, get ``{"task": task}``.
    """
    parameters = ((tool or {}).get("function") or {}).get("parameters") or {}
    properties = parameters.get("properties") or {}
    if not properties or "task" in properties:
        return {"task": task}

    placeholders = {"integer": 0, "number": 0, "boolean": False, "array": [], "object": {}}
    required = parameters.get("required") or list(properties)
    arguments = {}
    for name in required:
        schema = properties.get(name) or {}
        arguments[name] = placeholders.get(schema.get("type"), task)
    return arguments


def supervisor_handler(request: dict) -> Reply:
    """Imitate a supervisor agent: delegate when tools are offered, else reply with text.

    - With ``tools`` and no ``role: "tool"`` message yet: a ``tool_choice`` that names a
      function gets one call to it. Otherwise every tool whose name starts with
      ``delegate_to_`` gets one parallel call with ``{"task": ...}``, derived
      from the last user message.
    - Otherwise: ``"[<model>] Answer to: <first 40 characters of the last user message>"``,
      streamed in 8 chunks.

    ``tool_choice: "none"`` always gets text. ``tool_choice: "required"`` without
    ``delegate_to_`` tools gets a call to the first tool.
    """
    model = request.get("model", "")
    user_text = _last_user_text(request)
    tools = [tool for tool in request.get("tools") or [] if isinstance(tool, dict)]
    messages = request.get("messages") or []
    has_tool_results = any(
        isinstance(message, dict) and message.get("role") == "tool" for message in messages
    )
    tool_choice = request.get("tool_choice")

    if tools and not has_tool_results and tool_choice != "none":
        snippet = " ".join(user_text.split())[:60]

        if isinstance(tool_choice, dict):
            name = (tool_choice.get("function") or {}).get("name")
            if name:
                tool = next((t for t in tools if _tool_name(t) == name), None)
                return Reply.tool_calls([(name, _arguments_for_tool(tool, snippet))])

        delegate_calls = []
        for tool in tools:
            name = _tool_name(tool)
            if name.startswith("delegate_to_"):
                agent = name.removeprefix("delegate_to_")
                delegate_calls.append((name, {"task": f"{agent}: {snippet}"}))
        if delegate_calls:
            return Reply.tool_calls(delegate_calls)

        if tool_choice == "required":
            first = tools[0]
            return Reply.tool_calls([(_tool_name(first), _arguments_for_tool(first, snippet))])

    return Reply.text(f"[{model}] Answer to: {user_text[:40]}", chunks=8)


# ---------------------------------------------------------------------------
# Response rendering


def _split_evenly(text: str, parts: int) -> list[str]:
    """Split ``text`` into at most ``parts`` pieces whose lengths differ by at most 1."""
    if not text:
        return []
    parts = max(1, min(parts, len(text)))
    size, extra = divmod(len(text), parts)
    pieces = []
    start = 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        pieces.append(text[start:end])
        start = end
    return pieces


def _count_words(text: str) -> int:
    return len(text.split())


def _prompt_tokens(request: dict) -> int:
    """Estimate prompt tokens as the word count of all message texts and tool-call arguments."""
    total = 0
    for message in request.get("messages") or []:
        if not isinstance(message, dict):
            continue
        total += _count_words(_message_text(message))
        for call in message.get("tool_calls") or []:
            arguments = (call.get("function") or {}).get("arguments") if isinstance(call, dict) else None
            if isinstance(arguments, str):
                total += _count_words(arguments)
    return max(total, 1)


def _usage(reply: Reply, request: dict) -> dict:
    if reply.usage is not None:
        prompt, completion = reply.usage
    else:
        prompt = _prompt_tokens(request)
        completion = _count_words(reply.content or "")
        completion += sum(_count_words(arguments) for _, arguments, _ in reply.calls)
        completion = max(completion, 1)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _sse(payload: dict | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


def _set_tcp_nodelay(request: web.BaseRequest) -> None:
    """Disable Nagle's algorithm, which with delayed ACKs adds about 40 ms per small write.

    asyncio (CPython 3.11 selector_events) already sets TCP_NODELAY on TCP transports,
    so this only guards against a change.
    """
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _error_body(message: str, error_type: str, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": error_type, "code": code, "param": None}}


class _Turn:
    """Response state of one chat completion request: its ids, model and chunk interval."""

    def __init__(self, request: dict, interval: float) -> None:
        self.request = request
        self.model = request.get("model", "")
        self.completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.interval = interval

    def chunk(self, delta: dict | None, finish_reason: str | None = None) -> dict:
        choices = []
        if delta is not None:
            choices.append({"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason})
        return {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": choices,
        }

    def stream_events(self, reply: Reply, call_ids: list[str]) -> list[dict]:
        """Return the chunks of a streamed text or tool-call reply, without usage and [DONE]."""
        first_delta: dict[str, Any] = {"role": "assistant", "content": ""}
        if reply.kind == "tool_calls" and not reply.content:
            first_delta["content"] = None
        events = [self.chunk(first_delta)]

        for piece in _split_evenly(reply.content or "", reply.chunks):
            events.append(self.chunk({"content": piece}))

        for index, ((name, arguments, _), call_id) in enumerate(zip(reply.calls, call_ids, strict=True)):
            head = {
                "index": index,
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": "" if reply.split else arguments},
            }
            events.append(self.chunk({"tool_calls": [head]}))
            if reply.split:
                for fragment in _split_evenly(arguments, reply.chunks):
                    fragment_delta = {"index": index, "function": {"arguments": fragment}}
                    events.append(self.chunk({"tool_calls": [fragment_delta]}))

        events.append(self.chunk({}, finish_reason=reply.finish_reason))
        return events

    def completion(self, reply: Reply, call_ids: list[str]) -> dict:
        message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None}
        if reply.calls:
            message["tool_calls"] = [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
                for (name, arguments, _), call_id in zip(reply.calls, call_ids, strict=True)
            ]
        return {
            "id": self.completion_id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": _usage(reply, self.request),
        }


# ---------------------------------------------------------------------------
# Server


class ScriptedLLM:
    """OpenAI-compatible ``/v1/chat/completions`` and ``/v1/models`` server on 127.0.0.1.

    ``latency`` is the delay in seconds before the first byte of every response
    and ``chunk_interval`` the default pause between streamed chunks. Both may
    be changed at any time, from any thread. ``reset()`` restores the values
    given here.

    Without a ``usage`` on the reply, usage counts words: prompt tokens are the
    words of all messages, completion tokens the words of the content and the
    tool-call arguments.

    ``record_requests=False`` keeps ``requests`` empty (``request_count`` still
    counts), so long benchmarks do not grow memory.
    """

    def __init__(
        self,
        latency: float = 0.0,
        chunk_interval: float = 0.0,
        port: int = 0,
        record_requests: bool = True,
    ) -> None:
        self.latency = latency
        self.chunk_interval = chunk_interval
        self._initial_latency = latency
        self._initial_chunk_interval = chunk_interval
        self._requested_port = port
        self._record_requests = record_requests

        self._lock = threading.Lock()
        self._handler: Handler | None = None
        self._shared_queue: collections.deque[Reply] = collections.deque()
        self._model_queues: dict[str, collections.deque[Reply]] = {}
        self._requests: list[dict] = []
        # The User-Agent of every request, in arrival order, to tell clients apart.
        self._user_agents: list[str] = []
        self._request_count = 0
        self._call_ids = itertools.count(1)
        self._handler_errors: list[BaseException] = []

        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> ScriptedLLM:
        """Start serving in a daemon thread and return once the port is bound."""
        if self._thread is not None:
            raise RuntimeError("ScriptedLLM is already running. Call stop() before start().")

        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        startup_error: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._start_site())
            except BaseException as exc:  # re-raised in the starting thread
                startup_error.append(exc)
                ready.set()
                self._loop.close()
                return
            ready.set()
            try:
                self._loop.run_forever()
            finally:
                self._loop.close()

        self._thread = threading.Thread(target=run, name="scripted-llm", daemon=True)
        self._thread.start()
        ready.wait()
        if startup_error:
            self._thread.join()
            self._thread = None
            self._loop = None
            raise RuntimeError(
                f"ScriptedLLM failed to listen on 127.0.0.1:{self._requested_port}"
            ) from startup_error[0]
        return self

    def stop(self) -> None:
        """Stop the server. Responses still running after about 0.5 s are cancelled."""
        if self._thread is None or self._loop is None:
            return
        shutdown = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        shutdown.result(timeout=2 * _SHUTDOWN_TIMEOUT + 10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._thread = None
        self._loop = None
        self._runner = None
        self.port = None

    def __enter__(self) -> ScriptedLLM:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def _start_site(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_get("/v1/models", self._list_models)
        app.router.add_get("/v1/models/{model:.+}", self._get_model)
        # handler_cancellation cancels a response when its client disconnects,
        # so stalls and slow streams that the client gave up on stop at once.
        self._runner = web.AppRunner(
            app,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=_SHUTDOWN_TIMEOUT,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._requested_port, backlog=_LISTEN_BACKLOG)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        leftover = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in leftover:
            task.cancel()
        await asyncio.gather(*leftover, return_exceptions=True)

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("ScriptedLLM is not running. Call start() first.")
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting ----------------------------------------------------------

    def set_handler(self, handler: Handler | None) -> None:
        """Set the function that builds replies once the queues are empty.

        It is called on the server's event loop with the parsed request body and
        must return a ``Reply`` without blocking, because every response waits
        while it runs. Use ``Reply.delay`` for slow replies. ``None`` restores
        ``supervisor_handler``. If the handler raises, the client gets a 500 and the
        exception is stored in ``handler_errors``.
        """
        with self._lock:
            self._handler = handler

    def enqueue(self, *replies: Reply, model: str | None = None) -> None:
        """Queue replies that are sent in FIFO order before the handler is consulted.

        With ``model``, the replies go only to requests whose ``model`` field
        matches. litellm sends ``"openai/coord"`` as ``"coord"``, and either spelling
        is accepted here.
        """
        for reply in replies:
            if not isinstance(reply, Reply):
                raise TypeError(f"enqueue() expects Reply objects, got {type(reply).__name__}")
        with self._lock:
            if model is None:
                self._shared_queue.extend(replies)
            else:
                key = model.removeprefix(_PROVIDER_PREFIX)
                self._model_queues.setdefault(key, collections.deque()).extend(replies)

    def reset(self) -> None:
        """Clear the queues, the request log and the handler errors.

        Also restores the default handler, the call-id counter and the
        constructor's ``latency`` and ``chunk_interval``.
        """
        with self._lock:
            self._handler = None
            self._shared_queue.clear()
            self._model_queues.clear()
            self._requests.clear()
            self._user_agents.clear()
            self._request_count = 0
            self._call_ids = itertools.count(1)
            self._handler_errors.clear()
            self.latency = self._initial_latency
            self.chunk_interval = self._initial_chunk_interval

    @property
    def requests(self) -> list[dict]:
        """Copy of the received chat completion request bodies, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def user_agents(self) -> list[str]:
        """The User-Agent header of every request so far (a copy)."""
        with self._lock:
            return list(self._user_agents)

    @property
    def request_count(self) -> int:
        with self._lock:
            return self._request_count

    @property
    def pending_replies(self) -> int:
        """Number of queued replies not yet sent, over all queues."""
        with self._lock:
            return len(self._shared_queue) + sum(len(queue) for queue in self._model_queues.values())

    @property
    def handler_errors(self) -> list[BaseException]:
        """Exceptions raised by the handler, each of which got a 500 response."""
        with self._lock:
            return list(self._handler_errors)

    # -- request handling ---------------------------------------------------

    def _record_and_pick(self, body: dict) -> tuple[Reply | None, Handler]:
        """Log the request and pop its queued reply, or return the handler to call."""
        model = body.get("model")
        with self._lock:
            self._request_count += 1
            if self._record_requests:
                self._requests.append(body)
            queue = self._model_queues.get(model) if isinstance(model, str) else None
            if queue:
                return queue.popleft(), self._handler or supervisor_handler
            if self._shared_queue:
                return self._shared_queue.popleft(), self._handler or supervisor_handler
            return None, self._handler or supervisor_handler

    def _next_call_ids(self, reply: Reply) -> list[str]:
        with self._lock:
            return [call_id or f"call_{next(self._call_ids)}" for _, _, call_id in reply.calls]

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        _set_tcp_nodelay(request)
        try:
            body = await request.json()
        except ValueError as exc:
            return web.json_response(
                _error_body(f"Request body is not valid JSON: {exc}", "invalid_request_error"),
                status=400,
            )
        if not isinstance(body, dict):
            return web.json_response(
                _error_body("Request body must be a JSON object", "invalid_request_error"),
                status=400,
            )

        with self._lock:
            self._user_agents.append(request.headers.get("User-Agent", ""))
        reply, handler = self._record_and_pick(body)
        if reply is None:
            try:
                reply = handler(body)
                if not isinstance(reply, Reply):
                    raise TypeError(f"handler returned {type(reply).__name__}, expected Reply")
            except Exception as exc:
                logger.exception("Scripted LLM handler failed for model %r", body.get("model"))
                with self._lock:
                    self._handler_errors.append(exc)
                await asyncio.sleep(self.latency)
                return web.json_response(
                    _error_body(f"Scripted LLM handler failed: {exc!r}", "server_error"),
                    status=500,
                )

        await asyncio.sleep(self.latency)
        interval = reply.interval
        while reply.kind == "delay":
            await asyncio.sleep(reply.seconds)
            reply = reply.inner
            if reply.interval is not None:
                interval = reply.interval
        if interval is None:
            interval = self.chunk_interval
        turn = _Turn(body, interval)
        stream = bool(body.get("stream"))

        if reply.kind == "reset":
            return await self._reset(request)
        if reply.kind == "error":
            return self._error_response(reply)
        if reply.kind == "stall":
            return await self._stall(request, turn, reply, stream)

        call_ids = self._next_call_ids(reply)
        if not stream:
            return web.json_response(turn.completion(reply, call_ids))
        return await self._stream(request, turn, reply, call_ids)

    async def _stream(
        self, request: web.Request, turn: _Turn, reply: Reply, call_ids: list[str]
    ) -> web.StreamResponse:
        response = self._sse_response()
        await response.prepare(request)

        events = turn.stream_events(reply, call_ids)
        stream_options = turn.request.get("stream_options") or {}
        if isinstance(stream_options, dict) and stream_options.get("include_usage"):
            for event in events:
                event["usage"] = None
            usage_event = turn.chunk(None)
            usage_event["usage"] = _usage(reply, turn.request)
            events.append(usage_event)

        for position, event in enumerate(events):
            if position and turn.interval > 0:
                await asyncio.sleep(turn.interval)
            await response.write(_sse(event))
        await response.write(_sse("[DONE]"))
        await response.write_eof()
        return response

    @staticmethod
    def _sse_response() -> web.StreamResponse:
        return web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "x-request-id": f"req_{uuid.uuid4().hex[:24]}",
            },
        )

    @staticmethod
    def _error_response(reply: Reply) -> web.Response:
        headers = dict(reply.headers)
        if reply.retry_after is not None:
            retry_after = reply.retry_after
            headers["Retry-After"] = str(int(retry_after) if float(retry_after).is_integer() else retry_after)
        return web.json_response(
            _error_body(reply.message, reply.error_type, reply.code),
            status=reply.status,
            headers=headers,
        )

    async def _stall(
        self, request: web.Request, turn: _Turn, reply: Reply, stream: bool
    ) -> web.StreamResponse:
        if stream:
            response = self._sse_response()
            await response.prepare(request)
            first = turn.chunk({"role": "assistant", "content": ""})
            await response.write(_sse(first))
        else:
            response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
            await response.prepare(request)
            # aiohttp buffers headers until the first body write, and an empty write flushes them.
            await response.write(b"")
        await asyncio.sleep(reply.seconds)
        if request.transport is not None:
            request.transport.close()
        return response

    @staticmethod
    async def _reset(request: web.Request) -> web.StreamResponse:
        transport = request.transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None:
            # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        if transport is not None:
            transport.abort()
        return web.Response(status=500)

    async def _list_models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [self._model_card(m) for m in self._known_models()]}
        )

    async def _get_model(self, request: web.Request) -> web.Response:
        return web.json_response(self._model_card(request.match_info["model"]))

    def _known_models(self) -> list[str]:
        """Models seen in requests or queued for, or ``["scripted"]`` before any."""
        with self._lock:
            names = {body.get("model") for body in self._requests}
            names.update(self._model_queues)
        names = sorted(name for name in names if isinstance(name, str) and name)
        return names or ["scripted"]

    @staticmethod
    def _model_card(model: str) -> dict:
        return {"id": model, "object": "model", "created": 0, "owned_by": "scripted-llm"}


# ---------------------------------------------------------------------------
# Command line


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.scripted_llm",
        description="Serve the scripted OpenAI-compatible LLM with the supervisor handler "
        "on 127.0.0.1 until SIGINT or SIGTERM.",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=8911,
        help="TCP port on 127.0.0.1 (default 8911, 0 picks a free one)",
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=0.2,
        help="seconds before the first byte of each response (default 0.2)",
    )
    parser.add_argument(
        "--chunk-interval",
        type=float,
        default=0.0,
        help="seconds between streamed chunks (default 0)",
    )
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Block the stop signals before the server thread starts, so that the thread
    # inherits the mask and sigwait() below is the only place they are delivered.
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)

    llm = ScriptedLLM(
        latency=args.latency,
        chunk_interval=args.chunk_interval,
        port=args.port,
        record_requests=False,
    )
    llm.start()
    print(f"listening on {llm.base_url}", flush=True)
    logger.info(
        "Serving with latency %.3f s and chunk interval %.3f s",
        args.latency,
        args.chunk_interval,
    )
    try:
        received = signal.sigwait(stop_signals)
        logger.info("Received %s, stopping", signal.Signals(received).name)
    finally:
        llm.stop()
        logger.info("Stopped after %d chat completion requests", llm.request_count)


if __name__ == "__main__":
    main()
