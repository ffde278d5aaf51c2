"""The staff pages and the admin, through their URLs with Django's test client.

The client runs the real URL routing, middleware, views and templates in the
test process against the test database. The run events endpoint is a stream,
so its tests use a real web process.
"""

import datetime
import re
import secrets
import time
from pathlib import Path

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import ApiKey
from accounts.services import apikey_authenticate
from agents.events import encode_event
from agents.models import Agent, AgentRun, RunEvent
from orchestrations.models import ChildRun, Entity, Orchestration, OrchestrationRun

SCRIPT_NAME = '<script>alert("x")</script>'
STAFF_PAGES = ["/runs/", "/console/", "/usage/"]


def make_user(*, staff: bool, password: str | None = None):
    return get_user_model().objects.create_user(
        username=f"{'staff' if staff else 'user'}-{secrets.token_hex(5)}", password=password,
        is_staff=staff, is_superuser=staff,
    )


@pytest.fixture
def staff():
    return make_user(staff=True)


@pytest.fixture
def staff_client(staff):
    client = Client()
    client.force_login(staff)
    return client


def make_team(owner, *, name="Team", members=("Researcher", "Writer"), api_base="http://127.0.0.1:9"):
    team = Orchestration.objects.create(
        owner=owner, name=name, orchestrator_config={"model": "openai/coord", "api_base": api_base},
    )
    for position, member in enumerate(members):
        agent = Agent.objects.create(owner=owner, name=member, model=f"openai/{member.lower()}",
                                     settings={"api_base": api_base})
        Entity.objects.create(orchestration=team, agent=agent, role_description=f"{member} role",
                              position=position)
    return team


def usage(total: int, cost: float | None = 0.001) -> dict:
    return {"prompt_tokens": total // 2, "completion_tokens": total - total // 2, "reasoning_tokens": 0,
            "cached_tokens": 0, "total_tokens": total, "cost_usd": cost}


def make_run(team, *, message="Tell me about owls", status="completed", total=30, created_at=None,
             children=(), error="", error_code=""):
    """A stored run as a worker leaves it: children, usage, breakdown and events."""
    now = timezone.now()
    run = OrchestrationRun.objects.create(
        owner=team.owner, orchestration=team, orchestration_name=team.name, strategy=team.strategy,
        message=message, status=status, content=f"Answer to {message}", usage=usage(total),
        started_at=now, completed_at=now + datetime.timedelta(seconds=2), model="openai/coord",
        config_snapshot={"orchestration": {"name": team.name}}, error=error, error_code=error_code,
        session_id=f"orch_sess_{secrets.token_hex(6)}",
    )
    entities = {}
    for agent_name, task, answer, child_total in children:
        child = ChildRun.objects.create(
            parent=run, agent_name=agent_name, task=task, content=answer, status="completed",
            usage=usage(child_total), started_at=now, completed_at=now + datetime.timedelta(seconds=1),
        )
        entities[agent_name] = child.usage
    coordinator = total - sum(child[3] for child in children)
    run.usage_breakdown = {"coordinator": usage(coordinator), "entities": entities}
    run.save(update_fields=["usage_breakdown"])
    if created_at is not None:
        OrchestrationRun.objects.filter(pk=run.pk).update(created_at=created_at)
        run.refresh_from_db()
    events = [("start", {"run_id": run.id, "session_id": run.session_id}),
              ("orchestration_started", {"strategy": "supervisor", "name": team.name, "entity_count": 2})]
    for agent_name, task, answer, _total in children:
        events.append(("delegation_started", {"agent": agent_name, "task": task}))
        events.append(("content_delta", {"delta": "tok", "agent": agent_name}))
        events.append(("delegation_completed", {"agent": agent_name, "status": "completed",
                                                "content": answer, "duration_ms": 1000}))
    if error:
        events.append(("error", {"error": error, "code": error_code}))
    events.append(("complete", {"run_id": run.id, "status": status, "content": run.content,
                                "error": error or None}))
    RunEvent.objects.bulk_create(
        RunEvent(run_id=run.id, seq=seq, event=event, data=encode_event(event, run.id, seq, fields))
        for seq, (event, fields) in enumerate(events, start=1)
    )
    return run


def query_count(client, url) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, response.content[:500]
    return len(queries)


# ---------------------------------------------------------------------------
# Access


def test_staff_pages_require_staff_login(staff):
    run = make_run(make_team(staff))
    pages = [*STAFF_PAGES, f"/runs/{run.id}/"]
    anonymous = Client()
    non_staff = Client()
    non_staff.force_login(make_user(staff=False))

    for client in (anonymous, non_staff):
        for page in pages:
            response = client.get(page)
            assert response.status_code == 302, page
            assert response["Location"].startswith("/admin/login/?next="), page
        for page in ("/console/", f"/runs/{run.id}/cancel"):
            response = client.post(page, {"team": str(run.orchestration_id), "message": "hi"})
            assert response.status_code == 302, page
            assert response["Location"].startswith("/admin/login/"), page
        admin = client.get("/admin/")
        assert admin.status_code == 302
        assert admin["Location"].startswith("/admin/login/")
        assert client.get("/admin/orchestrations/orchestrationrun/").status_code == 302
    assert OrchestrationRun.objects.filter(orchestration_id=run.orchestration_id).count() == 1


def test_root_redirects_to_runs(staff_client):
    response = staff_client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/runs/"


def test_console_post_needs_a_csrf_token(staff):
    team = make_team(staff)
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)

    response = client.post("/console/", {"team": str(team.id), "message": "hi"})

    assert response.status_code == 403
    assert not OrchestrationRun.objects.filter(orchestration=team).exists()


# ---------------------------------------------------------------------------
# Runs list


def test_runs_list_newest_first(staff_client, staff):
    team = make_team(staff, name=f"Owls {secrets.token_hex(3)}")
    older = make_run(team, message="first question", total=12,
                     created_at=timezone.now() - datetime.timedelta(minutes=5))
    newer = make_run(team, message="second question " + "x" * 300, total=34)

    response = staff_client.get(f"/runs/?team={team.id}")

    html = response.content.decode()
    assert html.index(newer.id) < html.index(older.id)
    assert "second question" in html
    assert "x" * 200 not in html
    assert ">34<" in html
    assert "2.0 s" in html
    assert "$0.001000" in html


def test_runs_list_filters(staff_client, staff):
    team = make_team(staff, name=f"Filter {secrets.token_hex(3)}")
    other_team = make_team(staff, name=f"Other {secrets.token_hex(3)}")
    failed = make_run(team, message="the badger question", status="failed")
    old = make_run(team, message="an old owl question",
                   created_at=timezone.now() - datetime.timedelta(days=10))
    other = make_run(other_team, message="the badger question")

    def ids(query):
        html = staff_client.get(f"/runs/?{query}").content.decode()
        return {run_id for run_id in (failed.id, old.id, other.id) if run_id in html}

    assert ids(f"team={team.id}") == {failed.id, old.id}
    assert ids(f"team={team.id}&status=failed") == {failed.id}
    assert ids("q=BADGER") == {failed.id, other.id}
    since = (timezone.now() - datetime.timedelta(days=2)).date().isoformat()
    assert ids(f"team={team.id}&since={since}") == {failed.id}
    until = (timezone.now() - datetime.timedelta(days=9)).date().isoformat()
    assert ids(f"team={team.id}&until={until}") == {old.id}


def test_runs_list_queries_constant(staff_client, staff):
    team = make_team(staff)
    make_run(team)
    few = query_count(staff_client, f"/runs/?team={team.id}")
    for _ in range(8):
        make_run(team, children=[("Researcher", "find", "found", 5)])
    many = query_count(staff_client, f"/runs/?team={team.id}")

    assert many == few


def test_runs_list_paginates(staff_client, staff):
    team = make_team(staff)
    runs = [make_run(team, message=f"question {n}") for n in range(27)]

    first = staff_client.get(f"/runs/?team={team.id}").content.decode()
    second = staff_client.get(f"/runs/?team={team.id}&page=2").content.decode()

    assert "Page 1 of 2" in first
    assert runs[-1].id in first
    assert runs[0].id not in first
    assert runs[0].id in second
    assert runs[-1].id not in second


def test_runs_list_fragment_is_only_the_table(staff_client, staff):
    team = make_team(staff)
    run = make_run(team)

    html = staff_client.get(f"/runs/?fragment=1&team={team.id}").content.decode()

    assert run.id in html
    assert "<html" not in html
    assert html.lstrip().startswith("<table")


# ---------------------------------------------------------------------------
# Run page


def test_run_page_shows_whole_record(staff_client, staff):
    team = make_team(staff)
    run = make_run(team, status="failed", error="The model stopped answering.", error_code="model_stalled",
                   children=[("Researcher", "Find owl facts", "Owls hunt at night.", 7),
                             ("Writer", "Write it up", "A short owl essay.", 9)])

    response = staff_client.get(f"/runs/{run.id}/")

    html = response.content.decode()
    for text in ("Find owl facts", "Owls hunt at night.", "Write it up", "A short owl essay.",
                 "model_stalled", "The model stopped answering.", "Tell me about owls",
                 "Answer to Tell me about owls", "delegation_started", "orchestration_started",
                 "&quot;orchestration&quot;"):
        assert text in html, text
    # Token deltas are not timeline rows.
    assert "content_delta" not in html
    assert 'data-finished="true"' in html


def test_run_page_queries_constant(staff_client, staff):
    team = make_team(staff)
    small = make_run(team, children=[("Researcher", "a", "b", 3)])
    large = make_run(team, children=[(f"Agent {n}", "a", "b", 3) for n in range(10)])

    assert query_count(staff_client, f"/runs/{small.id}/") == query_count(staff_client, f"/runs/{large.id}/")


def test_unknown_run_page_is_404(staff_client):
    assert staff_client.get("/runs/orch_run_000000000000/").status_code == 404


def test_names_with_markup_render_as_text(staff_client, staff):
    team = make_team(staff, name=SCRIPT_NAME, members=(SCRIPT_NAME,))
    run = make_run(team, message=SCRIPT_NAME, children=[(SCRIPT_NAME, SCRIPT_NAME, SCRIPT_NAME, 3)])
    escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"

    pages = [f"/runs/{run.id}/", f"/runs/?team={team.id}", "/console/",
             f"/usage/?since={timezone.now().date()}&until={timezone.now().date()}",
             f"/admin/orchestrations/orchestrationrun/{run.id}/change/",
             f"/admin/orchestrations/orchestration/{team.id}/change/",
             "/admin/agents/agent/"]
    for page in pages:
        html = staff_client.get(page).content.decode()
        assert SCRIPT_NAME not in html, page
        assert escaped in html, page


# ---------------------------------------------------------------------------
# Console


def test_console_lists_all_teams(staff_client):
    someone = make_user(staff=False)
    team = make_team(someone, name=f"Someone's team {secrets.token_hex(3)}")

    html = staff_client.get(f"/console/?team={team.id}").content.decode()

    assert re.search(rf'<option value="{team.id}" selected>', html)
    assert someone.username in html


def test_console_reports_no_entities(staff_client, staff):
    team = make_team(staff, members=())

    response = staff_client.post("/console/", {"team": str(team.id), "message": "hi"})

    assert response.status_code == 400
    assert "no_entities" in response.content.decode()
    assert not OrchestrationRun.objects.filter(orchestration=team).exists()


def test_console_rejects_an_empty_message(staff_client, staff):
    team = make_team(staff)

    response = staff_client.post("/console/", {"team": str(team.id), "message": "   "})

    assert response.status_code == 400
    assert "Type a message." in response.content.decode()


# ---------------------------------------------------------------------------
# Usage


def test_usage_totals_per_team_agent_day(staff_client, staff):
    # A period of its own, far in the past, so other tests' runs stay out of it.
    day = datetime.date(2001, 3, 1)
    noon = datetime.datetime.combine(day, datetime.time(12), tzinfo=datetime.UTC)
    team = make_team(staff, name="Usage team")
    make_run(team, total=100, created_at=noon,
             children=[("Researcher", "a", "b", 30), ("Writer", "c", "d", 20)])
    make_run(team, total=40, created_at=noon + datetime.timedelta(days=1),
             children=[("Researcher", "a", "b", 10)])
    agent = Agent.objects.filter(owner=staff, name="Writer").first()
    alone = AgentRun.objects.create(owner=staff, agent=agent, agent_name="Writer", status="completed",
                                    usage=usage(5, None))
    AgentRun.objects.filter(pk=alone.pk).update(created_at=noon)

    response = staff_client.get("/usage/?since=2001-03-01&until=2001-03-03")
    report = response.context["report"]

    assert report.total.total_tokens == 145
    assert report.total.runs == 3
    assert report.total.cost_unknown
    assert [(t.label, t.total_tokens, t.runs) for t in report.teams] == [("Usage team", 140, 2)]
    agents = {t.label: t.total_tokens for t in report.agents}
    assert agents == {"Coordinator of Usage team": 80, "Researcher": 40, "Writer": 20, "Writer (alone)": 5}
    assert [(d.isoformat(), t.total_tokens) for d, t in report.days] == [
        ("2001-03-01", 105), ("2001-03-02", 40), ("2001-03-03", 0)]
    html = response.content.decode()
    assert html.count('class="bar"') == 3
    assert 'id="total-cost">≥ $0.002000<' in html
    assert "<td>Writer (alone)</td><td class=\"num\">1</td>" in html
    assert report.agents[-1].cost_display == "unknown"


def test_usage_rejects_long_period(staff_client):
    response = staff_client.get("/usage/?since=2000-01-01&until=2003-01-01")

    assert response.status_code == 200
    assert "at most 366 days" in response.content.decode()


# ---------------------------------------------------------------------------
# Admin


def test_admin_forms_use_api_rules(staff_client, staff):
    response = staff_client.post("/admin/agents/agent/add/", {
        "owner": staff.pk, "name": "Hot", "model": "openai/x", "settings": '{"temperature": 5}',
    })
    assert response.status_code == 200
    assert "temperature: must be at most 2" in response.content.decode()

    response = staff_client.post("/admin/orchestrations/orchestration/add/", {
        "owner": staff.pk, "name": "Bad", "strategy": "swarm", "orchestrator_config": '{"colour": 1}',
        "settings": "{}", "entities-TOTAL_FORMS": "0", "entities-INITIAL_FORMS": "0",
    })
    html = response.content.decode()
    assert response.status_code == 200
    assert "Select a valid choice. swarm is not one of the available choices." in html
    assert "colour: is not a known key" in html
    assert not Orchestration.objects.filter(owner=staff, name="Bad").exists()


def test_admin_saves_ordered_entities(staff_client, staff):
    first = Agent.objects.create(owner=staff, name="First", model="openai/first")
    second = Agent.objects.create(owner=staff, name="Second", model="openai/second")

    response = staff_client.post("/admin/orchestrations/orchestration/add/", {
        "owner": staff.pk, "name": "Admin team", "strategy": "sequential",
        "orchestrator_config": '{"model": "openai/coord"}', "settings": '{"max_steps": 5}',
        "entities-TOTAL_FORMS": "2", "entities-INITIAL_FORMS": "0",
        "entities-0-agent": str(second.pk), "entities-0-position": "1", "entities-0-config": "{}",
        "entities-0-role_description": "goes second",
        "entities-1-agent": str(first.pk), "entities-1-position": "0",
        "entities-1-config": '{"max_steps": 3}', "entities-1-role_description": "goes first",
    })

    assert response.status_code == 302, response.content.decode()[:2000]
    team = Orchestration.objects.get(owner=staff, name="Admin team")
    assert team.strategy == "sequential"
    assert [(e.agent.name, e.config) for e in team.entities.order_by("position")] == [
        ("First", {"max_steps": 3}), ("Second", {})]
    html = staff_client.get(f"/admin/orchestrations/orchestration/{team.id}/change/").content.decode()
    assert html.index("goes first") < html.index("goes second")


def test_admin_rejects_invalid_entities(staff_client, staff):
    mine = Agent.objects.create(owner=staff, name="Mine", model="openai/mine")
    theirs = Agent.objects.create(owner=make_user(staff=False), name="Theirs", model="openai/theirs")

    response = staff_client.post("/admin/orchestrations/orchestration/add/", {
        "owner": staff.pk, "name": "Mixed", "strategy": "supervisor", "orchestrator_config": "{}",
        "settings": "{}", "entities-TOTAL_FORMS": "2", "entities-INITIAL_FORMS": "0",
        "entities-0-agent": str(mine.pk), "entities-0-position": "0",
        "entities-0-config": '{"max_steps": 0}',
        "entities-1-agent": str(theirs.pk), "entities-1-position": "1", "entities-1-config": "{}",
    })

    html = response.content.decode()
    assert response.status_code == 200
    assert "max_steps: must be at least 1" in html
    assert "belongs to another owner" in html
    assert not Orchestration.objects.filter(owner=staff, name="Mixed").exists()


def test_admin_agent_list_teams_column(staff_client, staff):
    make_team(staff, name="Team A")
    few = query_count(staff_client, "/admin/agents/agent/")
    for n in range(5):
        make_team(staff, name=f"Team {n}", members=(f"Member {n}a", f"Member {n}b"))
    many = query_count(staff_client, "/admin/agents/agent/")

    html = staff_client.get("/admin/agents/agent/?q=Member+3a").content.decode()
    assert "Team 3" in html
    assert many == few


def test_admin_run_pages_are_read_only(staff_client, staff):
    run = make_run(make_team(staff), children=[("Researcher", "Find owl facts", "Owls hunt.", 7)])
    url = f"/admin/orchestrations/orchestrationrun/{run.id}/change/"

    html = staff_client.get(url).content.decode()

    for text in ("Find owl facts", "Owls hunt.", "delegation_completed", "2.0 s", "$0.001000"):
        assert text in html, text
    assert staff_client.post(url, {"status": "failed"}).status_code == 403
    assert staff_client.get("/admin/orchestrations/orchestrationrun/add/").status_code == 403
    assert staff_client.post(f"/admin/orchestrations/orchestrationrun/{run.id}/delete/",
                             {"post": "yes"}).status_code == 403
    run.refresh_from_db()
    assert run.status == "completed"
    assert staff_client.get("/admin/orchestrations/orchestrationrun/").status_code == 200
    assert staff_client.get("/admin/agents/agentrun/").status_code == 200


def test_admin_api_key_shown_once_then_revoked(staff_client, staff):
    owner = make_user(staff=False)

    response = staff_client.post("/admin/accounts/apikey/add/", {"owner": owner.pk, "name": "ci"})

    assert response.status_code == 200
    full_key = re.search(r'value="(pb_[0-9a-f]+_[^"]+)"', response.content.decode()).group(1)
    api_key = apikey_authenticate(full_key)
    assert api_key is not None
    assert api_key.owner == owner
    listing = staff_client.get(f"/admin/accounts/apikey/?q={api_key.lookup}").content.decode()
    assert api_key.prefix in listing
    assert full_key not in listing
    assert full_key not in staff_client.get(f"/admin/accounts/apikey/{api_key.pk}/change/").content.decode()

    staff_client.post("/admin/accounts/apikey/", {"action": "revoke", "_selected_action": [api_key.pk]})

    assert ApiKey.objects.get(pk=api_key.pk).revoked_at is not None
    assert apikey_authenticate(full_key) is None


def test_admin_test_message_action(staff_client, staff, worker, llm):
    team = make_team(staff, api_base=llm.base_url)

    form = staff_client.post("/admin/orchestrations/orchestration/", {
        "action": "run_test_message", "_selected_action": [str(team.id)], "index": "0",
    })
    assert form.status_code == 200
    assert "Run a test message" in form.content.decode()

    response = staff_client.post("/admin/orchestrations/orchestration/", {
        "action": "run_test_message", "_selected_action": [str(team.id)], "post": "yes",
        "message": "Hello from the admin",
    })

    run = OrchestrationRun.objects.get(orchestration=team)
    assert response.status_code == 302
    assert response["Location"] == f"/runs/{run.id}/"
    assert run.owner == staff
    assert run.message == "Hello from the admin"
    deadline = time.monotonic() + 60
    while not run.is_finished and time.monotonic() < deadline:
        time.sleep(0.2)
        run.refresh_from_db()
    assert run.status == "completed"


# ---------------------------------------------------------------------------
# The run events endpoint with a login session


def session_cookie(user) -> dict:
    client = Client()
    client.force_login(user)
    return {"sessionid": client.cookies["sessionid"].value}


def test_events_accept_staff_session(web):
    someone = make_user(staff=False)
    run = make_run(make_team(someone))
    url = f"{web.url}/api/orchestrations/runs/{run.id}/events"

    with httpx.Client(cookies=session_cookie(make_user(staff=True)), timeout=30) as client:
        response = client.get(url, headers={"Accept": "text/event-stream"})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "event: complete" in response.text
        resumed = client.get(url, headers={"Last-Event-ID": "2"})
        assert resumed.text.startswith("id: 3\n")
        # The session opens only the events stream, and only for reading.
        assert client.get(f"{web.url}/api/orchestrations/runs/{run.id}").status_code == 401
        assert client.post(f"{web.url}/api/orchestrations/runs/{run.id}/cancel").status_code == 401


def test_events_reject_non_staff_session(web):
    someone = make_user(staff=False)
    run = make_run(make_team(someone))

    with httpx.Client(cookies=session_cookie(someone), timeout=30) as client:
        response = client.get(f"{web.url}/api/orchestrations/runs/{run.id}/events")

    assert response.status_code == 401
    assert response.json()["code"] == "authentication_required"


def test_static_files_served_by_web_process(web):
    with httpx.Client(base_url=web.url, trust_env=False, timeout=10) as client:
        found = client.get("/static/staff/staff.css")
        admin_css = client.get("/static/admin/css/base.css")
        missing = client.get("/static/staff/no-such-file.css")

    assert found.status_code == 200
    assert found.headers["content-type"].startswith("text/css")
    assert found.content == (Path(__file__).resolve().parent.parent
                             / "static" / "staff" / "staff.css").read_bytes()
    assert admin_css.status_code == 200
    assert missing.status_code == 404
