"""The supervisor strategy: a coordinator that delegates through tool calls."""

import asyncio
import json
import time

from .agent import model_params
from .hooks import TeamOutcome
from .model_client import ChatResult, ToolCall, chat
from .specs import EntitySpec, TeamSpec
from .state import RunState, delegate

RESULT_PREVIEW_CHARS = 200


def coordinator_prompt(team: TeamSpec) -> str:
    lines = [
        f'You coordinate the team "{team.name}". Split the user\'s request into subtasks and '
        "delegate each one to the team member whose role fits, by calling that member's tool "
        "with a clear, self-contained task. Call several tools in one turn when the subtasks "
        "are independent. When you have what you need, write the final answer for the user "
        "yourself, without calling a tool.",
        "",
        "Team members:",
    ]
    for entity in team.entities:
        lines.append(f"- {entity.tool_name} ({entity.agent.name}): {entity.role or 'no role given'}")
    extra = (team.orchestrator_config or {}).get("additional_instructions")
    if extra:
        lines += ["", str(extra)]
    return "\n".join(lines)


def delegation_tool(entity: EntitySpec) -> dict:
    return {
        "type": "function",
        "function": {
            "name": entity.tool_name,
            "description": (f"Delegate a task to {entity.agent.name}. Role: "
                            f"{entity.role or 'no role given'}")[:1024],
            "parameters": {
                "type": "object",
                "properties": {
                    "task": {"type": "string", "description": "The task, stated completely."},
                },
                "required": ["task"],
            },
        },
    }


def coordinator_params(team: TeamSpec):
    config = team.orchestrator_config or {}
    settings = {**(team.settings or {})}
    for key in ("api_base", "temperature", "max_tokens", "reasoning_effort", "fallback_model"):
        if config.get(key) is not None:
            settings[key] = config[key]
    return model_params(settings)


class Coordinator:
    """One supervisor run: the coordinator's message history and its steps."""

    def __init__(self, team: TeamSpec, message: str, state: RunState, history: list[dict]):
        self.team = team
        self.state = state
        self.hooks = state.hooks
        self.model = team.coordinator_model
        self.params = coordinator_params(team)
        self.tools_by_name = {entity.tool_name: entity for entity in team.entities}
        self.message = message
        self.messages = [
            {"role": "system", "content": coordinator_prompt(team)},
            *history,
            {"role": "user", "content": message},
        ]

    async def _on_delta(self, text: str) -> None:
        await self.hooks.emit("content_delta", {"delta": text, "agent": None})

    async def _on_retry(self, info: dict) -> None:
        await self.hooks.model_retry(agent=None, info=info)

    async def call(self, messages, tools=None, tool_choice=None, stream_text=True) -> ChatResult:
        result = await chat(model=self.model, messages=messages, params=self.params, tools=tools,
                            tool_choice=tool_choice,
                            on_delta=self._on_delta if stream_text else None,
                            on_retry=self._on_retry)
        if result.model != self.model:
            # The fallback returned this result after the primary model failed
            # every retry, so later steps of this run call the fallback first
            # instead of paying for the same failing retries again.
            self.model = result.model
        self.state.add_coordinator_usage(result.usage, result.model)
        self.state.check_budgets()
        return result

    async def run(self) -> TeamOutcome:
        if self.team.delegation_mode == "forced":
            return await self._run_forced()

        tools = [delegation_tool(entity) for entity in self.team.entities]
        while True:
            step = self.state.begin_step()
            await self.hooks.emit("step_started", {"step": step, "agent": None})
            result = await self.call(self.messages, tools=tools)
            if not result.tool_calls:
                await self.hooks.emit("step_completed", {
                    "step": step, "finish_reason": result.finish_reason, "has_tool_calls": False,
                })
                return TeamOutcome(content=result.content, model=self.model)

            self.messages.append(_assistant_message(result))
            await self._run_tool_calls(step, result.tool_calls)
            await self.hooks.emit("step_completed", {
                "step": step, "finish_reason": result.finish_reason, "has_tool_calls": True,
            })
            self.state.check_repeated_delegation()

    async def _run_tool_calls(self, step: int, calls: list[ToolCall],
                              context: str | None = None) -> None:
        """Emit the calls, run the valid ones concurrently, and append their results in order.

        `context`, when given, is put before each task in the entity's prompt.
        """
        planned = []
        for call in calls:
            arguments = call.parsed_arguments()
            await self.hooks.emit("tool_call", {
                "step": step, "tool_name": call.name,
                "arguments": arguments if arguments is not None else {"raw": call.arguments},
                "call_id": call.id,
            })
            entity, task, problem = self._check_call(call, arguments)
            if problem is None:
                self.state.count_delegation(entity, task)
            planned.append((call, entity, task, problem))

        async def perform(call, entity, task, problem):
            started = time.monotonic()
            if problem is not None:
                return problem, started
            _child_id, result = await delegate(self.state, entity, task, call_id=call.id,
                                               context=context)
            if result.status != "completed":
                return f"Error: {entity.agent.name} failed: {result.error}", started
            return result.content, started

        outcomes = await asyncio.gather(*(perform(*item) for item in planned))
        for (call, _entity, _task, _problem), (text, started) in zip(planned, outcomes, strict=True):
            self.messages.append({"role": "tool", "tool_call_id": call.id, "content": text})
            await self.hooks.emit("tool_result", {
                "step": step, "tool_name": call.name, "call_id": call.id,
                "result_preview": text[:RESULT_PREVIEW_CHARS],
                "duration_ms": int((time.monotonic() - started) * 1000),
            })
        self.state.check_budgets()

    def _check_call(self, call: ToolCall, arguments: dict | None):
        valid = ", ".join(self.tools_by_name) or "none"
        entity = self.tools_by_name.get(call.name)
        if entity is None:
            return None, "", f"Error: there is no tool named {call.name!r}. Valid tools: {valid}."
        task = arguments.get("task") if arguments else None
        if not isinstance(task, str) or not task.strip():
            return None, "", (f"Error: {call.name} needs a non-empty string argument 'task'. "
                              f"Valid tools: {valid}.")
        return entity, task.strip(), None

    async def _run_forced(self) -> TeamOutcome:
        """Delegate to every entity by naming each tool, then write the answer.

        For models that cannot choose tools themselves: one step asks the model,
        once per entity and concurrently, to fill in that entity's task; a
        second step writes the final answer from the entities' results.
        """
        step = self.state.begin_step()
        await self.hooks.emit("step_started", {"step": step, "agent": None})

        async def plan(entity: EntitySpec) -> ToolCall:
            # Naming the member and its role makes each planned task fit that
            # member. With the shared history alone, a small model writes the
            # same task for every member.
            ask = {"role": "user", "content": (
                f"Write the task for {entity.agent.name} ({entity.role or 'no role given'}): "
                f"what should {entity.agent.name} do for this request: {self.message}")}
            result = await self.call(
                [*self.messages, ask], tools=[delegation_tool(entity)],
                tool_choice={"type": "function", "function": {"name": entity.tool_name}},
                stream_text=False,
            )
            call = next((c for c in result.tool_calls if c.name == entity.tool_name), None)
            arguments = call.parsed_arguments() if call else None
            if call is None or not arguments or not str(arguments.get("task") or "").strip():
                # The model filled in no usable task: give the entity the user's message.
                return ToolCall(id=call.id if call else f"call_{entity.tool_name}",
                                name=entity.tool_name, arguments=_json_task(self.message))
            return call

        calls = list(await asyncio.gather(*(plan(entity) for entity in self.team.entities)))
        for index, call in enumerate(calls):
            call.id = call.id or f"call_{index}"
        self.messages.append({
            "role": "assistant", "content": None,
            "tool_calls": [_tool_call_message(call) for call in calls],
        })
        # A model that cannot pick tools often writes a vague task ("The sky"),
        # so each entity also receives the user's request.
        await self._run_tool_calls(step, calls, context=f"The user's request: {self.message}")
        await self.hooks.emit("step_completed", {"step": step, "finish_reason": "tool_calls",
                                                 "has_tool_calls": True})

        step = self.state.begin_step()
        await self.hooks.emit("step_started", {"step": step, "agent": None})
        findings = "\n\n".join(
            f"{self.tools_by_name[m['tool_call_id_name']].agent.name}: {m['content']}"
            for m in self._tool_results_with_names()
        )
        synthesis = [
            {"role": "system", "content": coordinator_prompt(self.team)},
            {"role": "user", "content": (f"{self.message}\n\nYour team's findings:\n\n{findings}\n\n"
                                         "Write the final answer for the user.")},
        ]
        result = await self.call(synthesis)
        await self.hooks.emit("step_completed", {"step": step, "finish_reason": result.finish_reason,
                                                 "has_tool_calls": False})
        return TeamOutcome(content=result.content, model=self.model)

    def _tool_results_with_names(self):
        names_by_call = {}
        for message in self.messages:
            for call in message.get("tool_calls") or []:
                names_by_call[call["id"]] = call["function"]["name"]
        for message in self.messages:
            if message.get("role") == "tool":
                name = names_by_call.get(message["tool_call_id"])
                if name in self.tools_by_name:
                    yield {**message, "tool_call_id_name": name}


def _json_task(task: str) -> str:
    return json.dumps({"task": task})


def _tool_call_message(call: ToolCall) -> dict:
    return {"id": call.id, "type": "function",
            "function": {"name": call.name, "arguments": call.arguments or "{}"}}


def _assistant_message(result: ChatResult) -> dict:
    return {
        "role": "assistant",
        "content": result.content or None,
        "tool_calls": [_tool_call_message(call) for call in result.tool_calls],
    }


async def run_supervisor(team: TeamSpec, message: str, state: RunState,
                         history: list[dict]) -> TeamOutcome:
    return await Coordinator(team, message, state, history).run()
