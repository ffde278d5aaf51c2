"""Running a team with its strategy."""

import asyncio

from .errors import StopRun
from .hooks import RunHooks
from .specs import TeamSpec
from .state import RunState, positive_number
from .strategies import STRATEGIES


async def run_team(team: TeamSpec, message: str, hooks: RunHooks,
                   history: list[dict] | None = None):
    """Run `team` on `message` with its strategy; return a TeamOutcome.

    Raises StopRun when a limit stops the run, ModelError when a model call
    the run depends on fails, and CancelledError when the run is cancelled.
    """
    state = RunState(team, hooks)
    await hooks.emit("orchestration_started", {
        "strategy": team.strategy, "name": team.name, "entity_count": len(team.entities),
    })
    strategy = STRATEGIES[team.strategy]
    timeout = positive_number((team.settings or {}).get("timeout_seconds"))
    try:
        async with asyncio.timeout(timeout):
            outcome = await strategy(team, message, state, history or [])
    except TimeoutError:
        # Everything a run waits on is a model call (the coordinator's or an
        # entity's), so the code is llm_timeout.
        stop = StopRun(f"The run exceeded timeout_seconds ({timeout} s) while waiting for a model.",
                       stop_reason="timeout")
        stop.code = "llm_timeout"
        raise stop from None
    finally:
        hooks.final_state = state

    outcome.steps = outcome.steps or state.steps
    outcome.usage = state.usage
    outcome.breakdown = state.breakdown()
    return outcome
