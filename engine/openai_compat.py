"""A direct streaming client for OpenAI-compatible endpoints (vLLM, Ollama, llama.cpp, ...).

litellm spends about 15 ms of CPU per streamed call on this machine (its
response wrappers, success logging and cost bookkeeping, measured with
cProfile), which bounds how many runs one worker process can carry. With
POWABASE_MODEL_TRANSPORT=direct, calls to `openai/...` models that name an
`api_base` go through one pooled httpx client per event loop instead; every
other model still goes through litellm. Errors map to the same codes.
"""

import asyncio
import itertools
import json
import os

import httpx

from .errors import ModelError

# Connections kept open per event loop to each endpoint, spread over
# POOL_SHARDS clients. httpcore 1.x scans every connection of a pool whenever a
# request is queued or a response released. With 200 calls in flight, one pool
# of 1000 cost about 21 ms of CPU per call and 16 pools of 62 about 1 ms
# (bench/client_burst.py, 2-core machine).
MAX_CONNECTIONS = 1000
POOL_SHARDS = 16
USER_AGENT = "powabase-orchestrations (direct transport)"

_clients: dict[int, list[httpx.AsyncClient]] = {}
_turn = itertools.count()


def direct_transport_enabled(model: str, api_base: str | None) -> bool:
    return (
        os.environ.get("POWABASE_MODEL_TRANSPORT", "litellm") == "direct"
        and model.startswith("openai/")
        and bool(api_base)
    )


def _client() -> httpx.AsyncClient:
    """Return the next of this event loop's pooled clients, in turn."""
    loop = asyncio.get_running_loop()
    shards = _clients.get(id(loop))
    if shards is None or shards[0].is_closed:
        size = MAX_CONNECTIONS // POOL_SHARDS
        shards = [
            httpx.AsyncClient(limits=httpx.Limits(max_connections=size,
                                                  max_keepalive_connections=size))
            for _ in range(POOL_SHARDS)
        ]
        _clients[id(loop)] = shards
    return shards[next(_turn) % POOL_SHARDS]


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
    headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream",
               "User-Agent": USER_AGENT}
    content: list[str] = []
    calls: dict[int, dict] = {}
    finish_reason = "stop"
    usage = None
    try:
        async with _client().stream("POST", url, json=body, headers=headers,
                                    timeout=httpx.Timeout(timeout)) as response:
            if response.status_code >= 400:
                raw = await response.aread()
                raise _error_for_status(response.status_code, raw, model,
                                        response.headers.get("retry-after"))
            async for line in response.aiter_lines():
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
    except httpx.TimeoutException:
        raise ModelError(f"The model {model} timed out.", code="llm_timeout", retryable=True) from None
    except httpx.TransportError:
        raise ModelError(f"The connection to the model {model} failed.", code="llm_unavailable",
                         retryable=True) from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ModelError(f"The model {model} returned a response that could not be read.",
                         code="llm_bad_response") from None
    return "".join(content), [calls[i] for i in sorted(calls)], finish_reason, usage
