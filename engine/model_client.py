"""The one place that talks to litellm.

litellm is pinned exactly in pyproject.toml because releases on PyPI were hit
by a supply-chain attack in 2026-03, so every call to it goes through this
module. It streams chat with tool calls, retries with backoff, switches to a
fallback model, detects stalls and maps provider errors to our error codes.
"""

import asyncio
import json
import logging
import os
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import litellm  # noqa: E402

from . import openai_compat  # noqa: E402
from .errors import ModelError  # noqa: E402
from .usage import Usage  # noqa: E402

logger = logging.getLogger(__name__)

# litellm runs its success logging for every streamed chunk, creating an event
# loop each time; none of its callbacks are used here.
litellm.disable_streaming_logging = True
litellm.suppress_debug_info = True
litellm.turn_off_message_logging = True
litellm.telemetry = False
litellm.drop_params = True

DEFAULT_TIMEOUT_SECONDS = 120.0
DEFAULT_MAX_RETRIES = 2
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 8.0


@dataclass
class ModelParams:
    temperature: float | None = None
    max_tokens: int | None = None
    api_base: str | None = None
    # Seconds allowed for the first byte and between two streamed chunks.
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    fallback_model: str | None = None
    max_retries: int = DEFAULT_MAX_RETRIES
    reasoning_effort: str | None = None


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str

    def parsed_arguments(self) -> dict | None:
        """Return the arguments as a dict, or None when they are not a JSON object."""
        try:
            value = json.loads(self.arguments or "{}")
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


@dataclass
class ChatResult:
    content: str
    tool_calls: list[ToolCall]
    finish_reason: str
    usage: Usage
    model: str
    attempts: list[dict] = field(default_factory=list)


DeltaCallback = Callable[[str], Awaitable[None]]
RetryCallback = Callable[[dict], Awaitable[None]]


def _classify(exc: BaseException, model: str) -> ModelError:
    """Map a litellm or network exception to a ModelError with our code.

    The message never contains the provider's body or any key: provider
    bodies can echo request headers.
    """
    status = getattr(exc, "status_code", None)
    where = f"model {model}"
    if isinstance(exc, (asyncio.TimeoutError, litellm.Timeout)):
        return ModelError(f"The {where} timed out.", code="llm_timeout", retryable=True)
    if isinstance(exc, litellm.RateLimitError):
        retry_after = _retry_after(exc)
        return ModelError(f"The {where} is rate-limited (HTTP 429).", code="llm_rate_limited",
                          retryable=True, retry_after=retry_after)
    if isinstance(exc, litellm.ContextWindowExceededError):
        return ModelError(f"The conversation is too long for the {where}.",
                          code="llm_context_exceeded")
    if isinstance(exc, (litellm.AuthenticationError, litellm.PermissionDeniedError)):
        return ModelError(f"The provider rejected the credentials for the {where} (HTTP {status}).",
                          code="llm_auth_failed")
    if isinstance(exc, litellm.APIConnectionError) or (
        isinstance(exc, litellm.InternalServerError) and "connection error" in str(exc).lower()
    ):
        # litellm 1.110.2 reports a refused or reset connection as an
        # InternalServerError with the message "Connection error".
        return ModelError(f"The connection to the {where} failed.", code="llm_unavailable",
                          retryable=True)
    if isinstance(exc, (litellm.InternalServerError, litellm.ServiceUnavailableError,
                        litellm.BadGatewayError)):
        return ModelError(f"The {where} is unavailable (HTTP {status or 'connection error'}).",
                          code="llm_unavailable", retryable=True)
    if isinstance(exc, (litellm.BadRequestError, litellm.NotFoundError,
                        litellm.UnprocessableEntityError)):
        return ModelError(f"The provider rejected the request to the {where} (HTTP {status}).",
                          code="llm_bad_response")
    if isinstance(exc, (ConnectionError, OSError)):
        return ModelError(f"The connection to the {where} failed.", code="llm_unavailable",
                          retryable=True)
    if isinstance(status, int) and status >= 500:
        return ModelError(f"The {where} is unavailable (HTTP {status}).", code="llm_unavailable",
                          retryable=True)
    if isinstance(exc, litellm.APIError):
        return ModelError(f"The {where} returned an error (HTTP {status}).", code="llm_unavailable",
                          retryable=True)
    return ModelError(f"The {where} returned a response that could not be read.",
                      code="llm_bad_response")


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    try:
        return float(headers.get("retry-after"))
    except (TypeError, ValueError):
        return None


def backoff_delay(attempt: int, retry_after: float | None = None) -> float:
    """Return seconds to wait before retry number `attempt` (1-based), with jitter."""
    if retry_after is not None and 0 <= retry_after <= BACKOFF_MAX_SECONDS:
        return retry_after
    delay = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * (2 ** (attempt - 1)))
    return delay + random.uniform(0, delay / 2)


# Models that litellm's cost map does not price: looking one up raises, which
# is slow, so each is tried once per process.
_unpriced_models: set[str] = set()


def call_cost(model: str, usage: Usage) -> float | None:
    """Return the call's cost in USD from litellm's local cost map, or None if unpriced."""
    if model in _unpriced_models:
        return None
    for candidate in (model, model.split("/", 1)[-1]):
        try:
            prompt_cost, completion_cost = litellm.cost_per_token(
                model=candidate,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
            )
        except Exception:  # litellm raises several types for an unknown model
            continue
        return float(prompt_cost) + float(completion_cost)
    _unpriced_models.add(model)
    return None


def _usage_from(raw, model: str) -> Usage:
    if raw is None:
        return Usage(calls=1, cost_usd=None)
    prompt = int(getattr(raw, "prompt_tokens", 0) or 0)
    completion = int(getattr(raw, "completion_tokens", 0) or 0)
    details = getattr(raw, "completion_tokens_details", None)
    prompt_details = getattr(raw, "prompt_tokens_details", None)
    usage = Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        reasoning_tokens=int(getattr(details, "reasoning_tokens", 0) or 0),
        cached_tokens=int(getattr(prompt_details, "cached_tokens", 0) or 0),
        total_tokens=int(getattr(raw, "total_tokens", 0) or prompt + completion),
        calls=1,
    )
    usage.cost_usd = call_cost(model, usage)
    return usage


async def _stream_direct(model: str, messages: list[dict], tools: list[dict] | None,
                         tool_choice, params: ModelParams,
                         on_delta: DeltaCallback | None) -> ChatResult:
    body: dict = {"model": model.split("/", 1)[1], "messages": messages, "stream": True,
                  "stream_options": {"include_usage": True}}
    if tools:
        body["tools"] = tools
        if tool_choice is not None:
            body["tool_choice"] = tool_choice
    for name in ("temperature", "max_tokens", "reasoning_effort"):
        value = getattr(params, name)
        if value is not None:
            body[name] = value

    async def ignore_delta(text: str) -> None:
        pass

    content, calls, finish_reason, raw_usage = await openai_compat.stream_chat(
        model=model, body=body, api_base=params.api_base or "", timeout=params.timeout_seconds,
        on_delta=on_delta or ignore_delta,
    )
    tool_calls = [ToolCall(id=c["id"] or f"call_{index}", name=c["name"], arguments=c["arguments"])
                  for index, c in enumerate(calls) if c["name"]]
    if tool_calls and finish_reason == "stop":
        finish_reason = "tool_calls"
    usage = Usage(calls=1, cost_usd=None)
    if raw_usage:
        prompt = int(raw_usage.get("prompt_tokens") or 0)
        completion = int(raw_usage.get("completion_tokens") or 0)
        usage = Usage(
            prompt_tokens=prompt, completion_tokens=completion,
            reasoning_tokens=int((raw_usage.get("completion_tokens_details") or {})
                                 .get("reasoning_tokens") or 0),
            cached_tokens=int((raw_usage.get("prompt_tokens_details") or {})
                              .get("cached_tokens") or 0),
            total_tokens=int(raw_usage.get("total_tokens") or prompt + completion), calls=1,
        )
        usage.cost_usd = call_cost(model, usage)
    return ChatResult(content=content, tool_calls=tool_calls, finish_reason=finish_reason,
                      usage=usage, model=model)


async def _stream_once(model: str, messages: list[dict], tools: list[dict] | None,
                       tool_choice, params: ModelParams,
                       on_delta: DeltaCallback | None) -> ChatResult:
    if openai_compat.direct_transport_enabled(model, params.api_base):
        return await _stream_direct(model, messages, tools, tool_choice, params, on_delta)

    kwargs = {
        "model": model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
        "timeout": params.timeout_seconds,
        # Retries are ours (with events and a fallback); the OpenAI SDK under
        # litellm would otherwise retry 429 and 5xx twice on its own.
        "num_retries": 0,
        "max_retries": 0,
    }
    if tools:
        kwargs["tools"] = tools
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
    if params.temperature is not None:
        kwargs["temperature"] = params.temperature
    if params.max_tokens is not None:
        kwargs["max_tokens"] = params.max_tokens
    if params.api_base:
        kwargs["api_base"] = params.api_base
        # OpenAI-compatible local servers need some key; the provider's real
        # key, if any, comes from the environment as litellm reads it.
        if model.startswith("openai/") and not os.environ.get("OPENAI_API_KEY"):
            kwargs["api_key"] = "not-needed"
    if params.reasoning_effort:
        kwargs["reasoning_effort"] = params.reasoning_effort

    response = await asyncio.wait_for(litellm.acompletion(**kwargs), params.timeout_seconds)
    content_parts: list[str] = []
    calls: dict[int, dict] = {}
    finish_reason = "stop"
    raw_usage = None
    iterator = response.__aiter__()
    try:
        while True:
            try:
                chunk = await asyncio.wait_for(iterator.__anext__(), params.timeout_seconds)
            except StopAsyncIteration:
                break
            chunk_usage = getattr(chunk, "usage", None)
            if chunk_usage is not None:
                raw_usage = chunk_usage
            for choice in chunk.choices or []:
                delta = choice.delta
                text = getattr(delta, "content", None)
                if text:
                    content_parts.append(text)
                    if on_delta is not None:
                        await on_delta(text)
                for tool_delta in getattr(delta, "tool_calls", None) or []:
                    _merge_tool_delta(calls, tool_delta)
                if choice.finish_reason:
                    finish_reason = choice.finish_reason
    finally:
        await _close_stream(response)

    tool_calls = [
        ToolCall(id=c["id"] or f"call_{index}", name=c["name"], arguments=c["arguments"])
        for index, c in sorted(calls.items())
        if c["name"]
    ]
    if tool_calls and finish_reason == "stop":
        finish_reason = "tool_calls"
    return ChatResult(
        content="".join(content_parts),
        tool_calls=tool_calls,
        finish_reason=finish_reason,
        usage=_usage_from(raw_usage, model),
        model=model,
    )


def _merge_tool_delta(calls: dict[int, dict], tool_delta) -> None:
    index = getattr(tool_delta, "index", None)
    if index is None:
        index = len(calls)
    entry = calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
    if getattr(tool_delta, "id", None):
        entry["id"] = tool_delta.id
    function = getattr(tool_delta, "function", None)
    if function is not None:
        if getattr(function, "name", None):
            entry["name"] = function.name
        if getattr(function, "arguments", None):
            entry["arguments"] += function.arguments


async def _close_stream(response) -> None:
    """Close the provider stream so a cancelled run frees its connection at once."""
    try:
        aclose = getattr(response, "aclose", None)
        if aclose is not None:
            await aclose()
    except Exception:  # closing is best effort; the run's outcome is already decided
        logger.debug("closing a model stream failed", exc_info=True)


async def chat(*, model: str, messages: list[dict], params: ModelParams,
               tools: list[dict] | None = None, tool_choice=None,
               on_delta: DeltaCallback | None = None,
               on_retry: RetryCallback | None = None) -> ChatResult:
    """Stream one chat completion, retrying transient errors and then the fallback model.

    Raises ModelError when every attempt failed. Deltas of an attempt that
    failed part-way have already gone out through `on_delta`. The `model_retry`
    event that follows them marks that text as abandoned, and the final content
    holds only the successful attempt's text.
    """
    models = [model]
    if params.fallback_model and params.fallback_model != model:
        models.append(params.fallback_model)

    last_error: ModelError | None = None
    for model_index, current in enumerate(models):
        if model_index > 0 and on_retry is not None:
            await on_retry({"kind": "fallback", "from_model": model, "to_model": current,
                            "code": last_error.code if last_error else None})
        for attempt in range(params.max_retries + 1):
            try:
                return await _stream_once(current, messages, tools, tool_choice, params, on_delta)
            except asyncio.CancelledError:
                raise
            except ModelError as exc:
                last_error = exc
            except Exception as exc:  # litellm and httpx raise many types; classify them all
                last_error = _classify(exc, current)

            if not last_error.retryable or attempt == params.max_retries:
                break
            delay = backoff_delay(attempt + 1, last_error.retry_after)
            if on_retry is not None:
                await on_retry({"kind": "retry", "model": current, "attempt": attempt + 1,
                                "code": last_error.code, "delay_seconds": round(delay, 3)})
            await asyncio.sleep(delay)

    assert last_error is not None
    raise last_error
