"""Plain descriptions of what a run executes, built from stored config."""

import re
from dataclasses import dataclass, field

DEFAULT_ENTITY_MAX_STEPS = 10
DEFAULT_AGENT_MAX_STEPS = 25
DEFAULT_COORDINATOR_MAX_STEPS = 25


@dataclass
class AgentSpec:
    id: str | None
    name: str
    model: str
    system_prompt: str = ""
    settings: dict = field(default_factory=dict)


@dataclass
class EntitySpec:
    entity_id: str | None
    agent: AgentSpec
    role: str = ""
    config: dict = field(default_factory=dict)
    position: int = 0
    tool_name: str = ""

    @property
    def model(self) -> str:
        return self.config.get("model") or self.agent.model


@dataclass
class TeamSpec:
    id: str | None
    name: str
    strategy: str
    entities: list[EntitySpec]
    default_model: str
    orchestrator_config: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    @property
    def coordinator_model(self) -> str:
        return (
            self.orchestrator_config.get("model")
            or self.settings.get("model")
            or self.default_model
        )

    @property
    def delegation_mode(self) -> str:
        """`auto` lets the coordinator choose tools; `forced` names each tool call.

        Small local models often cannot choose a tool on their own but do fill
        in a call when the request names the function.
        """
        return self.orchestrator_config.get("delegation_mode") or "auto"


def tool_name_for(agent_name: str) -> str:
    """Return `delegate_to_<name>` within OpenAI's tool-name alphabet and 64-character limit."""
    slug = re.sub(r"[^a-zA-Z0-9_-]+", "_", agent_name.strip()).strip("_").lower() or "agent"
    return f"delegate_to_{slug}"[:64]


def assign_tool_names(entities: list[EntitySpec]) -> None:
    """Give every entity a distinct tool name, numbering agents whose names collide."""
    taken: set[str] = set()
    for entity in entities:
        base = tool_name_for(entity.agent.name)
        name = base
        counter = 2
        while name in taken:
            suffix = f"_{counter}"
            name = base[: 64 - len(suffix)] + suffix
            counter += 1
        entity.tool_name = name
        taken.add(name)
