"""The sequential, parallel and router strategies, and the table of all strategies."""

import asyncio

from .errors import EngineError
from .hooks import TeamOutcome
from .specs import TeamSpec
from .state import RunState, delegate
from .supervisor import Coordinator, delegation_tool, run_supervisor

DIRECT_ANSWER_TOOL = "answer_directly"


async def run_sequential(team: TeamSpec, message: str, state: RunState,
                         history: list[dict]) -> TeamOutcome:
    """Pass the message through the entities in position order, each building on the last."""
    previous_agent, previous_output = None, None
    for index, entity in enumerate(team.entities, start=1):
        state.begin_step()
        await state.hooks.emit("sequential_step", {"step": index, "agent": entity.agent.name})
        if previous_output is None:
            task = message
        else:
            task = (f"Original request:\n{message}\n\nOutput of the previous step "
                    f"({previous_agent}):\n{previous_output}")
        state.count_delegation(entity, task)
        _child_id, result = await delegate(state, entity, task)
        if result.status != "completed":
            raise EngineError(f"Step {index} ({entity.agent.name}) failed: {result.error}",
                              code=result.error_code or "entity_failed")
        state.check_budgets()
        previous_agent, previous_output = entity.agent.name, result.content

    return TeamOutcome(content=previous_output or "", model=team.entities[-1].model)


async def run_parallel(team: TeamSpec, message: str, state: RunState,
                       history: list[dict]) -> TeamOutcome:
    """Give every entity the message at once, then merge their outputs on the coordinator's model."""
    state.begin_step()
    for entity in team.entities:
        state.count_delegation(entity, message)
    results = await asyncio.gather(*(delegate(state, entity, message) for entity in team.entities))
    state.check_budgets()

    succeeded = [(e, r) for e, (_c, r) in zip(team.entities, results, strict=True)
                 if r.status == "completed"]
    failed = [(e, r) for e, (_c, r) in zip(team.entities, results, strict=True)
              if r.status != "completed"]
    if not succeeded:
        first_entity, first_result = failed[0]
        raise EngineError(f"Every entity failed; {first_entity.agent.name}: {first_result.error}",
                          code=first_result.error_code or "entity_failed")

    coordinator = Coordinator(team, message, state, history)
    step = state.begin_step()
    await state.hooks.emit("step_started", {"step": step, "agent": None})
    sections = "\n\n".join(f"## {e.agent.name} ({e.role or 'no role'})\n{r.content}"
                           for e, r in succeeded)
    missing = ""
    if failed:
        names = ", ".join(e.agent.name for e, _r in failed)
        missing = (f"\n\nThese team members failed and their parts are missing: {names}. "
                   "Say in the answer which parts are missing.")
    merge_messages = [
        {"role": "system", "content": "You merge the answers of a team into one reply for the user. "
                                      "Keep what is right, remove repetition, resolve conflicts."},
        *history,
        {"role": "user", "content": f"Request:\n{message}\n\nTeam answers:\n\n{sections}{missing}"},
    ]
    result = await coordinator.call(merge_messages)
    await state.hooks.emit("step_completed", {"step": step, "finish_reason": result.finish_reason,
                                              "has_tool_calls": False})
    return TeamOutcome(content=result.content, model=coordinator.model, partial=bool(failed))


async def run_router(team: TeamSpec, message: str, state: RunState,
                     history: list[dict]) -> TeamOutcome:
    """Let the coordinator pick exactly one entity, whose answer is the reply."""
    coordinator = Coordinator(team, message, state, history)
    allow_direct = bool((team.orchestrator_config or {}).get("allow_direct_answer"))
    tools = [delegation_tool(entity) for entity in team.entities]
    if allow_direct:
        tools.append({"type": "function", "function": {
            "name": DIRECT_ANSWER_TOOL,
            "description": "Answer the user yourself when no team member's role fits.",
            "parameters": {"type": "object", "properties": {"answer": {"type": "string"}},
                           "required": ["answer"]},
        }})
    routing_messages = [
        {"role": "system", "content": coordinator.messages[0]["content"]
         + "\n\nChoose exactly one team member for the whole request by calling its tool once."},
        *coordinator.messages[1:],
    ]

    step = state.begin_step()
    await state.hooks.emit("step_started", {"step": step, "agent": None})
    result = await coordinator.call(routing_messages, tools=tools, tool_choice="required",
                                    stream_text=False)
    call = result.tool_calls[0] if result.tool_calls else None
    if call is None:
        raise EngineError("The coordinator chose no team member.", code="llm_bad_response")
    arguments = call.parsed_arguments() or {}
    await state.hooks.emit("tool_call", {"step": step, "tool_name": call.name,
                                         "arguments": arguments, "call_id": call.id})

    if call.name == DIRECT_ANSWER_TOOL and allow_direct:
        answer = str(arguments.get("answer") or "")
        await state.hooks.emit("content_delta", {"delta": answer, "agent": None})
        await state.hooks.emit("step_completed", {"step": step, "finish_reason": "tool_calls",
                                                  "has_tool_calls": True})
        return TeamOutcome(content=answer, model=coordinator.model)

    entity = coordinator.tools_by_name.get(call.name)
    if entity is None:
        raise EngineError(f"The coordinator chose {call.name!r}, which is not a team member.",
                          code="llm_bad_response")
    task = str(arguments.get("task") or "").strip() or message
    state.count_delegation(entity, task)
    _child_id, entity_result = await delegate(state, entity, task)
    await state.hooks.emit("tool_result", {
        "step": step, "tool_name": call.name, "call_id": call.id,
        "result_preview": (entity_result.content or entity_result.error)[:200],
        "duration_ms": entity_result.duration_ms,
    })
    await state.hooks.emit("step_completed", {"step": step, "finish_reason": "tool_calls",
                                              "has_tool_calls": True})
    if entity_result.status != "completed":
        raise EngineError(f"{entity.agent.name} failed: {entity_result.error}",
                          code=entity_result.error_code or "entity_failed")
    state.check_budgets()
    return TeamOutcome(content=entity_result.content, model=entity.model)


STRATEGIES = {
    "supervisor": run_supervisor,
    "sequential": run_sequential,
    "parallel": run_parallel,
    "router": run_router,
}

__all__ = ["STRATEGIES"]
