"""Carrying out a standalone agent run."""

import functools

from django.utils import timezone

from engine.agent import model_params, run_agent
from engine.specs import AgentSpec

from .execution import HostedExecution, default_model
from .models import AgentRun, RunStatus, db_text


class AgentExecution(HostedExecution):
    model = AgentRun

    async def perform(self, hooks):
        agent = self.run.config_snapshot.get("agent") or {}
        spec = AgentSpec(id=agent.get("id"), name=agent.get("name") or self.run.agent_name,
                         model=agent.get("model") or default_model(),
                         system_prompt=agent.get("system_prompt") or "",
                         settings=agent.get("settings") or {})
        return await run_agent(agent=spec, prompt=self.run.message, hooks=hooks,
                               params=model_params(spec.settings), step_events=True)

    async def finish(self, hooks, outcome, status, error, code, stop_reason):
        from engine.usage import Usage

        content = outcome.content if outcome is not None else ""
        usage = outcome.usage if outcome is not None else Usage()
        steps = outcome.steps if outcome is not None else 0
        # Stored with the closing events, which are published after it commits.
        self.recorder.write(functools.partial(
            self._store, status=status, content=content, steps=steps, usage=usage, error=error,
            code=code, stop_reason=stop_reason,
            model=outcome.model if outcome is not None else self.run.model))
        await self.emit_terminal(status=status, content=content, steps=steps, usage=usage,
                                 error=error, code=code, stop_reason=stop_reason)

    def _store(self, *, status, content, steps, usage, error, code, stop_reason, model):
        AgentRun.objects.filter(pk=self.run_id, status=RunStatus.RUNNING).update(
            status=status, content=db_text(content), steps=steps, usage=usage.as_dict(),
            error=db_text(error),
            error_code=code, stop_reason=stop_reason, model=model, completed_at=timezone.now(),
        )


async def execute_agent_run(run_id: str) -> str:
    return await AgentExecution(run_id).execute()
