"""A team run's shared state and budgets, and one delegation to an entity."""

import asyncio
import secrets
from collections import Counter

from .agent import model_params, run_agent
from .errors import ModelError, StopRun
from .hooks import AgentResult, RunHooks
from .specs import DEFAULT_COORDINATOR_MAX_STEPS, EntitySpec, TeamSpec
from .usage import Usage

# The same entity asked the same task this many times in one run stops the
# run: a coordinator that loops would otherwise spend until max_steps.
REPEATED_DELEGATION_LIMIT = 3


def new_child_id() -> str:
    return f"agent_run_{secrets.token_hex(6)}"


def positive_number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return None
    return value


class RunState:
    """Counters and budgets of one team run, shared by every step and delegation."""

    def __init__(self, team: TeamSpec, hooks: RunHooks):
        self.team = team
        self.hooks = hooks
        self.usage = Usage()
        # Sum of the costs that are known. The run's cost_usd is None once any
        # call is unpriced, but budgets still count what is known.
        self.known_cost_usd = 0.0
        self.coordinator_usage = Usage()
        self.entity_usage: dict[str, Usage] = {}
        # One row per coordinator model call: its step, model and usage.
        self.coordinator_calls: list[dict] = []
        self.steps = 0
        self.delegations = 0
        self.delegation_counts: Counter = Counter()
        settings = team.settings or {}
        self.max_steps = int(settings.get("max_steps") or DEFAULT_COORDINATOR_MAX_STEPS)
        self.max_delegations = positive_number(settings.get("max_delegations"))
        self.max_tokens = positive_number(settings.get("max_tokens"))
        self.max_cost_usd = positive_number(settings.get("max_cost_usd"))

    def begin_step(self) -> int:
        if self.steps >= self.max_steps:
            raise StopRun(f"The coordinator reached max_steps ({self.max_steps}) without a final answer.",
                          stop_reason="max_steps")
        self.steps += 1
        return self.steps

    def _add(self, usage: Usage) -> None:
        self.usage.add(usage)
        if usage.cost_usd is not None:
            self.known_cost_usd += usage.cost_usd

    def add_coordinator_usage(self, usage: Usage, model: str = "") -> None:
        self.coordinator_usage.add(usage)
        self._add(usage)
        self.coordinator_calls.append({"step": self.steps, "model": model, "usage": usage.as_dict()})

    def add_entity_usage(self, agent_name: str, usage: Usage) -> None:
        self.entity_usage.setdefault(agent_name, Usage()).add(usage)
        self._add(usage)

    def check_budgets(self) -> None:
        """Raise StopRun once the run's tokens or cost exceed their budget."""
        if self.max_tokens is not None and self.usage.total_tokens > self.max_tokens:
            raise StopRun(f"The run used {self.usage.total_tokens} tokens, over max_tokens "
                          f"({int(self.max_tokens)}).", stop_reason="budget_tokens")
        cost = self.known_cost_usd
        if self.max_cost_usd is not None and cost > self.max_cost_usd:
            raise StopRun(f"The run cost ${cost:.6f}, over max_cost_usd (${self.max_cost_usd}).",
                          stop_reason="budget_cost")

    def count_delegation(self, entity: EntitySpec, task: str) -> None:
        """Count a delegation before it starts; raise StopRun when a limit forbids it."""
        if self.max_delegations is not None and self.delegations >= self.max_delegations:
            raise StopRun(f"The run reached max_delegations ({int(self.max_delegations)}).",
                          stop_reason="max_delegations")
        self.delegations += 1
        self.delegation_counts[(entity.tool_name, task.strip())] += 1

    def check_repeated_delegation(self) -> None:
        """Raise StopRun once one entity got the same task REPEATED_DELEGATION_LIMIT times."""
        for (tool_name, _task), count in self.delegation_counts.items():
            if count >= REPEATED_DELEGATION_LIMIT:
                raise StopRun(f"The coordinator sent the same task through {tool_name} "
                              f"{count} times.", stop_reason="repeated_delegation")

    def breakdown(self) -> dict:
        return {
            "total": self.usage.as_dict(),
            "coordinator": self.coordinator_usage.as_dict(),
            "coordinator_calls": self.coordinator_calls,
            "entities": {name: usage.as_dict() for name, usage in self.entity_usage.items()},
        }


def entity_prompt(entity: EntitySpec, task: str, context: str | None = None) -> str:
    parts = []
    if entity.role:
        parts.append(f"Your role in this team: {entity.role}")
    if context:
        parts.append(context)
    parts.append(task)
    return "\n\n".join(parts)


async def delegate(state: RunState, entity: EntitySpec, task: str, *, call_id: str = "",
                   context: str | None = None) -> tuple[str, AgentResult]:
    """Run `entity` on `task` as a child run and report it; return (child id, result).

    A failed entity does not raise: its result carries the error so the
    coordinator (or the strategy) can decide what to do with it.
    """
    hooks = state.hooks
    child_id = new_child_id()
    await hooks.child_started(child_id=child_id, entity=entity, task=task, call_id=call_id)
    await hooks.emit("delegation_started", {
        "agent": entity.agent.name,
        "agent_id": entity.agent.id,
        "entity_id": entity.entity_id,
        "task": task,
        "child_execution_id": child_id,
        "child_run_id": child_id,
    })

    params = model_params(entity.agent.settings, overrides=entity.config)
    entity_timeout = positive_number(entity.config.get("timeout_seconds"))
    try:
        async with asyncio.timeout(entity_timeout):
            result = await run_agent(agent=entity.agent, prompt=entity_prompt(entity, task, context),
                                     hooks=hooks, model=entity.model, params=params,
                                     child_id=child_id)
    except ModelError as exc:
        result = AgentResult(status="failed", error=exc.message, error_code=exc.code,
                             model=entity.model)
    except TimeoutError:
        result = AgentResult(status="failed", error=f"{entity.agent.name} timed out after "
                             f"{entity_timeout} s.", error_code="timeout", model=entity.model)

    result.steps = result.steps or (1 if result.status == "completed" else 0)
    state.add_entity_usage(entity.agent.name, result.usage)
    await hooks.child_finished(child_id=child_id, result=result)
    await hooks.emit("delegation_completed", {
        "agent": entity.agent.name,
        "child_execution_id": child_id,
        "status": result.status,
        "steps": result.steps,
        "usage": result.usage.as_dict(),
        "content": result.content,
        "duration_ms": result.duration_ms,
        **({"error": result.error, "code": result.error_code} if result.error else {}),
    })
    return child_id, result

