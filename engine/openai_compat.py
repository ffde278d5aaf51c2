"""A direct streaming client for OpenAI-compatible endpoints (vLLM, Ollama, llama.cpp, ...).

litellm spends about 15 ms of CPU per streamed call on this machine (its
response wrappers, success logging and cost bookkeeping, measured with
cProfile), which bounds how many runs one worker process can carry. With
POWABASE_MODEL_TRANSPORT=direct, calls to `openai/...` models that name an
`api_base` go through one pooled aiohttp session per event loop instead; every
other model still goes through litellm. Errors map to the same codes.
"""

import asyncio
import atexit
import json
import os
import weakref

import aiohttp

from .errors import ModelError

# Connections kept open per event loop, over all endpoints. With 200 calls in
# flight, aiohttp spent about 0.2 ms of CPU per call and httpx 0.29 about 1 ms
# even with its pool split 16 ways (bench/client_burst.py, 2-core machine).
MAX_CONNECTIONS = 1000
USER_AGENT = "powabase-orchestrations (direct transport)"

# Event loop -> its pooled session. Weak keys: a new loop may reuse a dead one's id.
_sessions: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession]" = (
    weakref.WeakKeyDictionary())


def direct_transport_enabled(model: str, api_base: str | None) -> bool:
    return (
        os.environ.get("POWABASE_MODEL_TRANSPORT", "litellm") == "direct"
        and model.startswith("openai/")
        and bool(api_base)
    )


def _session() -> aiohttp.ClientSession:
    """Return this event loop's pooled session."""
    loop = asyncio.get_running_loop()
    session = _sessions.get(loop)
    if session is None or session.closed:
        # trust_env=False: no proxy or netrc from the environment, so calls go
        # to the api_base the operator configured and nowhere else.
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS, limit_per_host=0),
            trust_env=False, headers={"User-Agent": USER_AGENT},
            # Room for a long SSE line (a large tool call in one chunk).
            read_bufsize=1 << 20,
        )
        _sessions[loop] = session
    return session


async def close_session() -> None:
    """Close the running loop's pooled session; call it before the loop ends (asyncio.run)."""
    session = _sessions.pop(asyncio.get_running_loop(), None)
    if session is not None:
        await session.close()


@atexit.register
def _close_sessions_at_exit() -> None:
    """Close the sessions of loops still running (the run host's), so none is reported unclosed."""
    for loop, session in list(_sessions.items()):
        if session.closed or not loop.is_running():
            continue
        try:
            asyncio.run_coroutine_threadsafe(session.close(), loop).result(timeout=2)
        except Exception:  # exiting anyway: a slow or failed close changes nothing
            pass


def _error_for_status(status: int, body: bytes, model: str, retry_after: str | None) -> ModelError:
    where = f"model {model}"
    if status == 429:
        try:
            delay = float(retry_after) if retry_after is not None else None
        except ValueError:
            delay = None
        return ModelError(f"The {where} is rate-limited (HTTP 429).", code="llm_rate_limited",
                          retryable=True, retry_after=delay)
    if status in (401, 403):
        return ModelError(f"The provider rejected the credentials for the {where} (HTTP {status}).",
                          code="llm_auth_failed")
    text = body[:2000].decode("utf-8", "replace").lower()
    if status == 400 and "context" in text and ("length" in text or "maximum" in text):
        return ModelError(f"The conversation is too long for the {where}.",
                          code="llm_context_exceeded")
    if status >= 500:
        return ModelError(f"The {where} is unavailable (HTTP {status}).", code="llm_unavailable",
                          retryable=True)
    return ModelError(f"The provider rejected the request to the {where} (HTTP {status}).",
                      code="llm_bad_response")


async def stream_chat(*, model: str, body: dict, api_base: str, timeout: float, on_delta):
    """POST a streaming chat completion; return (content, tool call dicts, finish reason, usage dict).

    Raises ModelError for HTTP errors, timeouts (no byte for `timeout`
    seconds) and unreadable responses.
    """
    url = api_base.rstrip("/") + "/chat/completions"
    key = os.environ.get("OPENAI_API_KEY") or "not-needed"
    headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
    content: list[str] = []
    calls: dict[int, dict] = {}
    finish_reason = "stop"
    usage = None
    try:
        async with _session().post(
            url, json=body, headers=headers,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout),
        ) as response:
            if response.status >= 400:
                raw = await response.content.read(4096)
                raise _error_for_status(response.status, raw, model,
                                        response.headers.get("retry-after"))
            async for raw_line in response.content:
                line = raw_line.decode("utf-8").strip()
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                chunk = json.loads(payload)
                if chunk.get("usage"):
                    usage = chunk["usage"]
                for choice in chunk.get("choices") or []:
                    delta = choice.get("delta") or {}
                    text = delta.get("content")
                    if text:
                        content.append(text)
                        await on_delta(text)
                    for tool_delta in delta.get("tool_calls") or []:
                        index = tool_delta.get("index", len(calls))
                        entry = calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
                        if tool_delta.get("id"):
                            entry["id"] = tool_delta["id"]
                        function = tool_delta.get("function") or {}
                        if function.get("name"):
                            entry["name"] = function["name"]
                        if function.get("arguments"):
                            entry["arguments"] += function["arguments"]
                    if choice.get("finish_reason"):
                        finish_reason = choice["finish_reason"]
    except (TimeoutError, aiohttp.ServerTimeoutError):
        raise ModelError(f"The model {model} timed out.", code="llm_timeout", retryable=True) from None
    except aiohttp.ClientError:
        raise ModelError(f"The connection to the model {model} failed.", code="llm_unavailable",
                         retryable=True) from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ModelError(f"The model {model} returned a response that could not be read.",
                         code="llm_bad_response") from None
    return "".join(content), [calls[i] for i in sorted(calls)], finish_reason, usage
