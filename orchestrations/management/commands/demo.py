"""`make demo`: a three-agent team answers one question, printed live in the terminal.

With POWABASE_DEFAULT_MODEL set (and the provider's key in the environment,
as litellm reads it), every agent and the coordinator use that model and the
coordinator chooses its delegations itself.

Without it, the demo runs offline: it starts llama.cpp on 127.0.0.1 with
SmolLM2-135M-Instruct, a model small enough to ship in a wheel. That model
cannot choose tools by itself, so the team uses the `forced` delegation mode:
the coordinator writes a task for every member, the members answer
concurrently, and the coordinator writes the final answer from theirs.
"""

import os
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.services import user_get_or_create
from agents.models import Agent
from agents.services import agent_create, agent_update
from orchestrations.demo_model import (
    MODEL_ALIAS,
    DemoModelMissing,
    LocalModelServer,
    llama_server_available,
    model_file,
)
from orchestrations.models import Entity, Orchestration
from orchestrations.services import (
    entity_add,
    entity_update,
    orchestration_create,
    orchestration_update,
    run_submit,
)
from orchestrations.terminal import TerminalRenderer, use_color

from .run_orchestration import CommandOutput, RunFollower, follow_with_cancel, quiet_run_logs

DEMO_USERNAME = "demo"
TEAM_NAME = "Demo team"
QUESTION = "Why is the sky blue during the day but red at sunset?"
# Enough for a few sentences each, so the offline run takes about a minute on 2 cores.
LOCAL_MAX_TOKENS = 200

MEMBERS = [
    {
        "name": "Researcher",
        "role": "Finds the scientific facts that answer a question.",
        "system_prompt": "You are a researcher. Answer with three short bullet points of facts.",
    },
    {
        "name": "Writer",
        "role": "Explains a topic in simple words for a general reader.",
        "system_prompt": "You are a science writer. Explain the topic in one short paragraph for a "
                         "curious reader.",
    },
    {
        "name": "Critic",
        "role": "Reviews explanations and points out a common mistake.",
        "system_prompt": "You are a reviewer. Name one common misconception about the topic and "
                         "correct it, in two sentences.",
    },
]


class Command(BaseCommand):
    help = ("Create a small demo team (researcher, writer, critic), ask it a question and print "
            "the run live. Uses POWABASE_DEFAULT_MODEL when set, else a bundled offline model.")

    def add_arguments(self, parser):
        parser.add_argument("--question", default=QUESTION, help="The question to ask the team.")
        parser.add_argument("--offline", action="store_true",
                            help="Use the bundled offline model even when POWABASE_DEFAULT_MODEL is set.")

    def handle(self, *args, question, offline, verbosity, **options):
        if verbosity < 2:
            quiet_run_logs()
        out = CommandOutput(self.stdout)
        self.color = use_color(out)
        call_command("migrate", interactive=False, verbosity=0)
        owner = user_get_or_create(username=DEMO_USERNAME)

        provider_model = os.environ.get("POWABASE_DEFAULT_MODEL", "").strip()
        if provider_model and not offline:
            self.say(f"Model: {provider_model} (from POWABASE_DEFAULT_MODEL) for every agent "
                     "and the coordinator.")
            team = demo_team(owner, model=provider_model, api_base=None, delegation_mode="auto",
                             max_tokens=None)
            sys.exit(self.run_team(team, question))

        code = self.run_offline(owner, question)
        sys.exit(code)

    def run_offline(self, owner, question: str) -> int:
        if not llama_server_available():
            raise CommandError("llama-cpp-python is not installed. Run `make demo` (or "
                               "`make install-demo`), or set POWABASE_DEFAULT_MODEL to use a provider.")
        try:
            path = model_file()
        except DemoModelMissing as exc:
            raise CommandError(str(exc)) from None

        self.say("No POWABASE_DEFAULT_MODEL set: running offline with SmolLM2-135M-Instruct on "
                 "llama.cpp. This tiny model shows the mechanics, not answer quality.")
        server = LocalModelServer(path, log_path=settings.VAR_DIR / "demo-model-server.log")
        try:
            server.start()
            # litellm takes seconds to import, so import it while the model loads.
            import engine.model_client  # noqa: F401

            try:
                server.wait_ready()
            except RuntimeError as exc:
                raise CommandError(str(exc)) from None
            self.say(f"Model server: {server.api_base} (pid {server.process.pid})", dim=True)
            team = demo_team(owner, model=f"openai/{MODEL_ALIAS}", api_base=server.api_base,
                             delegation_mode="forced", max_tokens=LOCAL_MAX_TOKENS)
            return self.run_team(team, question)
        finally:
            server.stop()

    def run_team(self, team: Orchestration, question: str) -> int:
        self.say(f'Team "{team.name}" (owner {team.owner.username}):')
        for entity in team.entities.select_related("agent").order_by("position"):
            self.say(f"  {entity.agent.name}: {entity.role_description}", dim=True)
        self.say(f"Question: {question}")
        self.stdout.write("")

        # An in-process run would import litellm on its first model call.
        # Importing it here keeps those seconds out of the run's duration.
        import engine.model_client  # noqa: F401

        run, _created = run_submit(owner=team.owner, orchestration=team, message=question)
        notices = CommandOutput(self.stderr)
        renderer = TerminalRenderer(CommandOutput(self.stdout))
        return follow_with_cancel(RunFollower(run, renderer, notices=notices), notices=notices)

    def say(self, text: str, *, dim: bool = False) -> None:
        if dim and self.color:
            text = f"\033[2m{text}\033[0m"
        self.stdout.write(text)


@transaction.atomic
def demo_team(owner, *, model: str, api_base: str | None, delegation_mode: str,
              max_tokens: int | None) -> Orchestration:
    """Create the demo team, or bring the existing one up to date with this model."""
    # Greedy decoding: a rerun of the demo prints much the same answers.
    agent_settings = {"temperature": 0}
    if api_base:
        agent_settings["api_base"] = api_base
    if max_tokens:
        agent_settings["max_tokens"] = max_tokens
    orchestrator_config = {"model": model, "delegation_mode": delegation_mode, **agent_settings}
    team_settings = {"max_steps": 6, "timeout_seconds": 600}

    team = Orchestration.objects.filter(owner=owner, name=TEAM_NAME).order_by("created_at").first()
    if team is None:
        team = orchestration_create(
            owner=owner, name=TEAM_NAME, description="A researcher, a writer and a critic.",
            orchestrator_config=orchestrator_config, settings_=team_settings,
        )
    else:
        team = orchestration_update(orchestration=team, data={
            "strategy": "supervisor", "orchestrator_config": orchestrator_config,
            "settings": team_settings,
        })

    for position, member in enumerate(MEMBERS):
        fields = {"model": model, "system_prompt": member["system_prompt"],
                  "description": member["role"], "settings": agent_settings}
        agent = Agent.objects.filter(owner=owner, name=member["name"]).order_by("created_at").first()
        if agent is None:
            agent = agent_create(owner=owner, name=member["name"], model=model,
                                 system_prompt=member["system_prompt"],
                                 description=member["role"], settings_=agent_settings)
        else:
            agent = agent_update(agent=agent, data=fields)
        entity = Entity.objects.filter(orchestration=team, agent=agent).first()
        if entity is None:
            entity_add(orchestration=team, agent=agent, role_description=member["role"],
                       position=position)
        else:
            entity_update(entity=entity, data={"role": member["role"], "position": position})
    return team
