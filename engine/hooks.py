"""The interface between the engine and the code that stores and streams a run."""

from dataclasses import dataclass, field
from typing import Any

from .usage import Usage


@dataclass
class AgentResult:
    content: str = ""
    status: str = "completed"
    steps: int = 0
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    error: str = ""
    error_code: str = ""
    duration_ms: int = 0


@dataclass
class TeamOutcome:
    content: str
    status: str = "completed"
    steps: int = 0
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    stop_reason: str = ""
    partial: bool = False
    error: str = ""
    error_code: str = ""
    breakdown: dict = field(default_factory=dict)


class RunHooks:
    """Receives what a run does. The service stores and publishes it; tests may record it.

    `final_state` is set by the engine when a team run ends, however it ends,
    so the caller can read the usage of a run that was stopped.

    Every method is awaited by the engine in the order things happen, so an
    implementation can assign event sequence numbers as they arrive.
    """

    final_state: Any = None

    async def emit(self, event: str, fields: dict) -> None:
        pass

    async def child_started(self, *, child_id: str, entity, task: str, call_id: str) -> None:
        pass

    async def child_finished(self, *, child_id: str, result: AgentResult) -> None:
        pass

    async def model_retry(self, *, agent: str | None, info: dict) -> None:
        pass
