"""List and detail endpoints run the same number of SQL queries for 1 row as for 50.

These run in-process through Django's test client against the test database,
so every query the view makes is captured. Rows are built with the services
or directly as stored runs; no run is queued.
"""

import secrets

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.services import apikey_create
from agents import services as agent_services
from agents.events import encode_event
from agents.models import AgentRun, RunEvent
from orchestrations import services
from orchestrations.models import ChildRun, OrchestrationRun

USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "reasoning_tokens": 0, "cached_tokens": 0,
         "total_tokens": 5, "cost_usd": None}


@pytest.fixture
def client(owner):
    _key, full_key = apikey_create(owner=owner)
    client = Client(headers={"authorization": f"Bearer {full_key}"})
    # The first request of a key records its last use; later ones within a minute do not.
    assert client.get("/api/agents").status_code == 200
    return client


def measure(client, path: str) -> tuple[int, dict]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200, response.content
    return len(queries.captured_queries), response.json()


def assert_constant(client, path: str, add_rows, rows_in) -> None:
    """Measure `path` with 1 row and with 50; both must take the same number of queries."""
    add_rows(1)
    small, small_body = measure(client, path)
    add_rows(49)
    large, large_body = measure(client, path)

    assert len(rows_in(small_body)) == 1
    assert len(rows_in(large_body)) == 50
    assert small > 1
    assert small == large, f"{path}: {small} queries for 1 row, {large} for 50"


def make_agent(owner, name="Agent"):
    return agent_services.agent_create(owner=owner, name=f"{name}-{secrets.token_hex(3)}",
                                       model="openai/counted")


def make_run(owner, orchestration, *, session_id=None) -> OrchestrationRun:
    now = timezone.now()
    return OrchestrationRun.objects.create(
        owner=owner, orchestration=orchestration, orchestration_name=orchestration.name,
        strategy=orchestration.strategy, session_id=session_id or f"orch_sess_{secrets.token_hex(6)}",
        status="completed", message="Question", content="Answer", usage=USAGE,
        started_at=now, completed_at=now,
    )


def add_events(run_id: str, count: int) -> None:
    first = RunEvent.objects.filter(run_id=run_id).count() + 1
    RunEvent.objects.bulk_create([
        RunEvent(run_id=run_id, seq=seq, event="tool_result",
                 data=encode_event("tool_result", run_id, seq, {"step": seq}))
        for seq in range(first, first + count)
    ])


def test_agents_list(owner, client):
    def add(count):
        for _ in range(count):
            make_agent(owner)

    assert_constant(client, "/api/agents?limit=100", add, lambda body: body["agents"])


@pytest.mark.parametrize("query", ["", "?limit=100"])
def test_orchestrations_list(owner, client, query):
    def add(count):
        for _ in range(count):
            team = services.orchestration_create(owner=owner, name="Team")
            for _member in range(2):
                services.entity_add(orchestration=team, agent=make_agent(owner))
            make_run(owner, team)
            make_run(owner, team)

    assert_constant(client, f"/api/orchestrations{query}", add, lambda body: body["orchestrations"])


def test_orchestration_detail(owner, client):
    team = services.orchestration_create(owner=owner, name="Team")

    def add(count):
        for _ in range(count):
            services.entity_add(orchestration=team, agent=make_agent(owner))

    assert_constant(client, f"/api/orchestrations/{team.id}", add, lambda body: body["entities"])


def test_entities_list(owner, client):
    team = services.orchestration_create(owner=owner, name="Team")

    def add(count):
        for _ in range(count):
            services.entity_add(orchestration=team, agent=make_agent(owner))

    assert_constant(client, f"/api/orchestrations/{team.id}/entities", add,
                    lambda body: body["entities"])


def test_orchestration_run_detail(owner, client):
    team = services.orchestration_create(owner=owner, name="Team")
    agent = make_agent(owner)
    run = make_run(owner, team)

    def add(count):
        for _ in range(count):
            ChildRun.objects.create(parent=run, agent=agent, agent_name=agent.name, task="Do it",
                                    status="completed", content="Done", usage=USAGE)
        add_events(run.id, count)

    assert_constant(client, f"/api/orchestrations/runs/{run.id}", add,
                    lambda body: body["child_runs"])


def test_agent_run_detail(owner, client):
    agent = make_agent(owner)
    run = AgentRun.objects.create(owner=owner, agent=agent, agent_name=agent.name,
                                  message="Question", status="completed", usage=USAGE)

    assert_constant(client, f"/api/agents/runs/{run.id}", lambda count: add_events(run.id, count),
                    lambda body: body["events"])


def test_team_runs_list(owner, client):
    team = services.orchestration_create(owner=owner, name="Team")

    def add(count):
        for _ in range(count):
            make_run(owner, team)

    assert_constant(client, f"/api/orchestrations/{team.id}/runs?limit=100", add,
                    lambda body: body["runs"])


def test_team_sessions_list(owner, client):
    team = services.orchestration_create(owner=owner, name="Team")

    def add(count):
        for _ in range(count):
            make_run(owner, team)

    assert_constant(client, f"/api/orchestrations/{team.id}/sessions?limit=100", add,
                    lambda body: body["sessions"])
