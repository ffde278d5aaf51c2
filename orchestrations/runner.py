"""Carrying out an orchestration run: snapshot to engine specs, child runs, outcome."""

import functools
import logging

from django.utils import timezone

from agents.execution import HostedExecution, RecordingHooks, default_model
from agents.models import RunStatus, db_text
from engine.hooks import AgentResult
from engine.specs import AgentSpec, EntitySpec, TeamSpec, assign_tool_names
from engine.team import run_team
from engine.usage import Usage

from .models import ChildRun, OrchestrationRun
from .selectors import session_history

logger = logging.getLogger(__name__)


def team_spec_from_snapshot(snapshot: dict) -> TeamSpec:
    team = snapshot.get("orchestration") or {}
    entities = []
    for item in snapshot.get("entities") or []:
        agent = item["agent"]
        entities.append(EntitySpec(
            entity_id=item.get("entity_id"),
            agent=AgentSpec(id=agent.get("id"), name=agent["name"],
                            model=agent.get("model") or default_model(),
                            system_prompt=agent.get("system_prompt") or "",
                            settings=agent.get("settings") or {}),
            role=item.get("role_description") or "",
            config=item.get("config") or {},
            position=item.get("position") or 0,
        ))
    assign_tool_names(entities)
    return TeamSpec(
        id=team.get("id"),
        name=team.get("name") or "",
        strategy=team.get("strategy") or "supervisor",
        entities=entities,
        default_model=default_model(),
        orchestrator_config=team.get("orchestrator_config") or {},
        settings=team.get("settings") or {},
    )


class TeamHooks(RecordingHooks):
    """Child-run rows are written with the run's events, in order, without waiting."""

    async def child_started(self, *, child_id: str, entity, task: str, call_id: str) -> None:
        row = ChildRun(id=child_id, parent_id=self.execution.run_id,
                       agent_id=entity.agent.id, agent_name=entity.agent.name,
                       entity_id=entity.entity_id, task=db_text(task), message=db_text(task),
                       call_id=call_id or "", model=entity.model,
                       status=RunStatus.RUNNING, started_at=timezone.now())
        # ignore_conflicts: a write retried after a lost connection stays one row.
        self.execution.recorder.write(
            functools.partial(ChildRun.objects.bulk_create, [row], ignore_conflicts=True))

    async def child_finished(self, *, child_id: str, result: AgentResult) -> None:
        self.execution.recorder.write(functools.partial(
            ChildRun.objects.filter(pk=child_id).update,
            status=result.status, content=db_text(result.content), steps=result.steps,
            usage=result.usage.as_dict(), model=result.model, error=db_text(result.error),
            error_code=result.error_code, completed_at=timezone.now(),
        ))


class OrchestrationExecution(HostedExecution):
    model = OrchestrationRun

    def make_hooks(self):
        return TeamHooks(self)

    history: list = []

    def load(self) -> None:
        run = self.run
        if run.session_id:
            self.history = session_history(owner_id=run.owner_id, session_id=run.session_id,
                                           before=run.created_at)

    async def perform(self, hooks):
        team = team_spec_from_snapshot(self.run.config_snapshot)
        return await run_team(team, self.run.message, hooks, history=self.history)

    async def finish(self, hooks, outcome, status, error, code, stop_reason):
        state = hooks.final_state
        usage = state.usage if state is not None else Usage()
        steps = state.steps if state is not None else 0
        content = outcome.content if outcome is not None else ""
        partial = bool(outcome.partial) if outcome is not None else False
        breakdown = state.breakdown() if state is not None else {}
        model = (outcome.model if outcome is not None else "") or self.run.model

        # Stored in the same transaction as the closing events, which are
        # published only after it commits: a client that reads the run after
        # `complete` finds the outcome.
        self.recorder.write(functools.partial(
            self._store, status=status, content=content, steps=steps, usage=usage, error=error,
            code=code, stop_reason=stop_reason, partial=partial, breakdown=breakdown,
            model=model))
        await self.recorder.emit("orchestration_completed", {
            "status": status, "steps": steps, "usage": usage.as_dict(),
            **({"partial": True} if partial else {}),
        })
        await self.emit_terminal(status=status, content=content, steps=steps, usage=usage,
                                 error=error, code=code, stop_reason=stop_reason,
                                 extra={"partial": partial} if partial else None)

    def _store(self, *, status, content, steps, usage, error, code, stop_reason, partial,
               breakdown, model):
        now = timezone.now()
        OrchestrationRun.objects.filter(pk=self.run_id, status=RunStatus.RUNNING).update(
            status=status, content=db_text(content), steps=steps, usage=usage.as_dict(),
            error=db_text(error),
            error_code=code, stop_reason=stop_reason, partial=partial, usage_breakdown=breakdown,
            model=model, completed_at=now,
        )
        if status != RunStatus.COMPLETED:
            # Delegations still open when the run ended will never finish.
            ChildRun.objects.filter(parent_id=self.run_id, status=RunStatus.RUNNING).update(
                status=RunStatus.CANCELLED if status == RunStatus.CANCELLED else RunStatus.FAILED,
                completed_at=now,
            )


async def execute_orchestration_run(run_id: str) -> str:
    return await OrchestrationExecution(run_id).execute()
