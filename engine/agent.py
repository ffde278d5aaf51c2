"""One agent answering one prompt: the unit that entities and standalone agent runs share."""

import time

from .hooks import AgentResult, RunHooks
from .model_client import DEFAULT_TIMEOUT_SECONDS, ModelParams, chat
from .specs import AgentSpec


def model_params(settings: dict, *, overrides: dict | None = None) -> ModelParams:
    """Build call parameters from an agent's `settings`, then an entity's `config` on top."""
    merged = dict(settings or {})
    for key, value in (overrides or {}).items():
        if value is not None:
            merged[key] = value
    return ModelParams(
        temperature=merged.get("temperature"),
        max_tokens=merged.get("max_tokens"),
        api_base=merged.get("api_base") or None,
        timeout_seconds=float(merged.get("timeout_seconds") or DEFAULT_TIMEOUT_SECONDS),
        fallback_model=merged.get("fallback_model") or None,
        max_retries=int(merged.get("max_retries", 2)),
        reasoning_effort=merged.get("reasoning_effort") or None,
    )


def agent_messages(agent: AgentSpec, prompt: str, history: list[dict] | None = None) -> list[dict]:
    messages = []
    if agent.system_prompt:
        messages.append({"role": "system", "content": agent.system_prompt})
    messages.extend(history or [])
    messages.append({"role": "user", "content": prompt})
    return messages


async def run_agent(*, agent: AgentSpec, prompt: str, hooks: RunHooks, model: str | None = None,
                    params: ModelParams | None = None, history: list[dict] | None = None,
                    child_id: str | None = None, step_events: bool = False,
                    step_offset: int = 0) -> AgentResult:
    """Run the agent on `prompt` and stream its tokens through `hooks`.

    Agents carry no tools of their own, so one model call answers; `max_steps`
    only bounds agents with tools. A failed call raises ModelError to the
    caller, which decides whether that fails the whole run.
    """
    model = model or agent.model
    params = params or model_params(agent.settings)
    started = time.monotonic()
    label = None if step_events and child_id is None else agent.name

    async def on_delta(text: str) -> None:
        fields = {"delta": text, "agent": agent.name}
        if child_id is not None:
            fields["child_execution_id"] = child_id
        await hooks.emit("content_delta", fields)

    async def on_retry(info: dict) -> None:
        await hooks.model_retry(agent=label, info={**info, "child_execution_id": child_id})

    step = step_offset + 1
    if step_events:
        await hooks.emit("step_started", {"step": step, "agent": agent.name})
    result = await chat(
        model=model,
        messages=agent_messages(agent, prompt, history),
        params=params,
        on_delta=on_delta,
        on_retry=on_retry,
    )
    if step_events:
        await hooks.emit("step_completed", {"step": step, "finish_reason": result.finish_reason,
                                            "has_tool_calls": False})

    return AgentResult(
        content=result.content,
        status="completed",
        steps=1,
        usage=result.usage,
        model=result.model,
        duration_ms=int((time.monotonic() - started) * 1000),
    )
