"""Staff pages in headless Chromium against the real stack: uvicorn, a Celery worker,
PostgreSQL, Redis, and the scripted model server.

Each page is photographed. Set POWABASE_SCREENSHOT_DIR=docs/screenshots to refresh
the committed pictures; otherwise they go to a temporary directory.
"""

import datetime
import json
import secrets

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from playwright.sync_api import expect

from orchestrations.models import Orchestration, OrchestrationRun
from tests.browser.conftest import PASSWORD, log_in
from tests.factories import create_team, stream_run
from tests.test_staff_pages import SCRIPT_NAME, make_run, make_team

pytestmark = pytest.mark.browser

STAFF_PAGES = ["/runs/", "/console/", "/usage/"]
# Seconds between streamed chunks of every scripted reply, so tokens visibly
# arrive one by one before the run completes.
SLOW_CHUNKS = 0.25


def pick_autocomplete(page, row, text: str) -> None:
    """Choose `text` in the admin's autocomplete (select2) widget inside `row`."""
    page.locator(f"{row} .select2-selection").click()
    page.locator(".select2-container--open .select2-search__field").fill(text)
    page.locator(".select2-results__option", has_text=text).first.click()


def add_agent_in_admin(page, owner, name: str, llm) -> None:
    page.goto("/admin/agents/agent/add/")
    pick_autocomplete(page, ".field-owner", owner.username)
    page.fill("#id_name", name)
    page.fill("#id_model", f"openai/{name.lower()}")
    page.fill("#id_system_prompt", f"You are the team's {name.lower()}.")
    page.fill("#id_settings", f'{{"api_base": "{llm.base_url}", "temperature": 0.2}}')
    page.click("input[name=_save]")
    expect(page.locator(".messagelist .success")).to_contain_text(name)


def start_run_from_console(page, team, message: str) -> str:
    page.goto(f"/console/?team={team.id}")
    page.fill("#id_message", message)
    page.click("form.console button[type=submit]")
    page.wait_for_url("**/runs/orch_run_*/")
    return page.url.rstrip("/").rsplit("/", 1)[-1]


def test_staff_configures_team_and_watches_run(page, staff_user, worker, llm, screenshot_dir):
    llm.chunk_interval = SLOW_CHUNKS
    log_in(page, staff_user)

    # Agents and a team with two entities, configured in the admin.
    add_agent_in_admin(page, staff_user, "Researcher", llm)
    add_agent_in_admin(page, staff_user, "Writer", llm)

    team_name = f"Owl desk {secrets.token_hex(2)}"
    page.goto("/admin/orchestrations/orchestration/add/")
    pick_autocomplete(page, ".field-owner", staff_user.username)
    page.fill("#id_name", team_name)
    page.select_option("#id_strategy", "supervisor")
    page.fill("#id_orchestrator_config", f'{{"model": "openai/coord", "api_base": "{llm.base_url}"}}')
    page.fill("#id_settings", '{"max_steps": 5}')
    pick_autocomplete(page, "#entities-0 .field-agent", "Researcher")
    page.fill("#id_entities-0-role_description", "Finds facts about the question")
    page.click(".add-row a")
    pick_autocomplete(page, "#entities-1 .field-agent", "Writer")
    page.fill("#id_entities-1-position", "1")
    page.fill("#id_entities-1-role_description", "Writes the final prose")
    page.click("input[name=_continue]")
    expect(page.locator(".messagelist .success")).to_contain_text(team_name)
    page.screenshot(path=screenshot_dir / "admin-orchestration.png", full_page=True)
    team = Orchestration.objects.get(owner=staff_user, name=team_name)
    assert [entity.agent.name for entity in team.entities.order_by("position")] == ["Researcher", "Writer"]
    page.goto(f"/admin/agents/agent/?q={staff_user.username}")
    expect(page.locator("#result_list")).to_contain_text(team_name)
    page.screenshot(path=screenshot_dir / "admin-agents.png")

    # A run started from the console opens live.
    page.goto(f"/console/?team={team.id}")
    expect(page.locator("#id_team")).to_have_value(str(team.id))
    page.fill("#id_message", "What do owls eat?")
    page.screenshot(path=screenshot_dir / "console.png")
    page.click("form.console button[type=submit]")
    page.wait_for_url("**/runs/orch_run_*/")
    run_id = page.url.rstrip("/").rsplit("/", 1)[-1]

    # Delegations open and their tokens stream in while the run is still running.
    page.wait_for_function("""() => {
        const status = document.getElementById('run-status').textContent;
        const answers = [...document.querySelectorAll('#children .child-answer.streaming')];
        return status === 'running' && answers.some((a) => a.textContent.length > 0);
    }""")
    # Then the coordinator's reply streams, still before the run completes.
    page.wait_for_function("""() => {
        const answer = document.getElementById('answer');
        const status = document.getElementById('run-status').textContent;
        return status === 'running' && answer.classList.contains('streaming')
            && answer.textContent.length > 0;
    }""")
    page.screenshot(path=screenshot_dir / "run-live.png", full_page=True)

    expect(page.locator("#run-status")).to_have_text("completed", timeout=60_000)
    expect(page.locator("#run[data-finished='true']")).to_be_attached()

    run = OrchestrationRun.objects.get(pk=run_id)
    children = list(run.child_runs.order_by("created_at"))
    assert run.status == "completed"
    assert len(children) == 2
    expect(page.locator("#answer")).to_have_text(run.content)
    expect(page.locator("li.child")).to_have_count(2)
    for child in children:
        node = page.locator(f"li.child[data-child-id='{child.id}']")
        assert child.task
        assert child.content
        expect(node.locator(".child-agent")).to_have_text(child.agent_name)
        expect(node.locator(".child-task")).to_have_text(child.task)
        expect(node.locator(".child-answer")).to_have_text(child.content)
        expect(node.locator(".child-status")).to_have_text("completed")
    expect(page.locator("#timeline tr[data-seq]").last).to_contain_text("complete")
    page.screenshot(path=screenshot_dir / "run-detail.png", full_page=True)

    # The run is in the list, and its row opens its page.
    page.goto("/runs/")
    row = page.locator(f"tr[data-run-id='{run_id}']")
    expect(row.locator(".status")).to_have_text("completed")
    expect(row).to_contain_text(team_name)
    page.screenshot(path=screenshot_dir / "runs-list.png")
    row.locator("td.message a").click()
    page.wait_for_url(f"**/runs/{run_id}/")
    expect(page.locator("#run-message")).to_have_text("What do owls eat?")

    page.goto("/usage/")
    expect(page.locator("#usage-teams")).to_contain_text(team_name)
    expect(page.locator("#usage-agents")).to_contain_text("Researcher")
    page.screenshot(path=screenshot_dir / "usage.png", full_page=True)

    page.goto(f"/admin/orchestrations/orchestrationrun/{run_id}/change/")
    expect(page.locator("body")).to_contain_text("delegation_completed")
    page.screenshot(path=screenshot_dir / "admin-run.png", full_page=True)


def test_admin_action_runs_test_message(page, staff_user, worker, llm, screenshot_dir):
    team = make_team(staff_user, name=f"Action team {secrets.token_hex(2)}", api_base=llm.base_url)
    log_in(page, staff_user)

    page.goto(f"/admin/orchestrations/orchestration/?q={team.name}")
    page.locator(f"input[name=_selected_action][value='{team.id}']").check()
    page.select_option("select[name=action]", "run_test_message")
    page.click("button[name=index]")
    page.fill("#id_message", "Hello from the admin action")
    page.screenshot(path=screenshot_dir / "admin-test-message.png")
    page.click("input[type=submit][value=Run]")

    page.wait_for_url("**/runs/orch_run_*/")
    expect(page.locator("#run-status")).to_have_text("completed", timeout=60_000)
    expect(page.locator("#run-message")).to_have_text("Hello from the admin action")


def test_api_run_appears_in_runs_list(page, staff_user, api, llm):
    team = create_team(api, llm, name=f"API team {secrets.token_hex(2)}")
    log_in(page, staff_user)
    page.goto(f"/runs/?team={team['id']}")
    expect(page.locator("td.empty")).to_have_text("No runs match.")

    frames = stream_run(api, team["id"])

    assert frames[-1].event == "complete"
    run_id = frames[-1].data["run_id"]
    # The page reloads its table twice a second, so it shows the run within a second.
    expect(page.locator(f"tr[data-run-id='{run_id}'] .status")).to_have_text("completed", timeout=1000)


def test_live_view_resumes_after_reconnect(page, staff_user, worker, llm):
    llm.chunk_interval = 0.1
    team = make_team(staff_user, api_base=llm.base_url)
    intercepted = []

    def drop_first_connection(route, request):
        intercepted.append(request.url)
        if len(intercepted) > 1:
            route.continue_()
            return
        # The first connection delivers only a `start` event with id 1 and ends, as a
        # dropped connection would; the browser then reconnects by itself.
        run_id = request.url.split("/runs/", 1)[1].split("/", 1)[0]
        start = json.dumps({"event": "start", "run_id": run_id, "seq": 1,
                            "ts": datetime.datetime.now(datetime.UTC).isoformat()})
        route.fulfill(status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
                      body=f"retry: 200\n\nid: 1\nevent: start\ndata: {start}\n\n")

    # Route handlers do not show the Last-Event-ID header that Chromium adds, so the
    # headers that went out on the network are read from the DevTools protocol.
    urls, sent_headers = {}, []
    devtools = page.context.new_cdp_session(page)
    devtools.send("Network.enable")
    devtools.on("Network.requestWillBeSent",
                lambda event: urls.__setitem__(event["requestId"], event["request"]["url"]))
    devtools.on("Network.requestWillBeSentExtraInfo",
                lambda event: sent_headers.append((event["requestId"], event["headers"])))
    page.route("**/api/orchestrations/runs/*/events*", drop_first_connection)
    log_in(page, staff_user)
    run_id = start_run_from_console(page, team, "Resume me")

    expect(page.locator("#run-status")).to_have_text("completed", timeout=60_000)
    expect(page.locator("#run[data-finished='true']")).to_be_attached()
    # Long enough for a reconnect after `complete` (retry is 200 ms), which must not happen.
    page.wait_for_timeout(600)

    assert len(intercepted) == 2
    resumed = [{name.lower(): value for name, value in headers.items()}
               for request_id, headers in sent_headers if "/events" in urls.get(request_id, "")]
    assert [headers.get("last-event-id") for headers in resumed] == ["1"]
    run = OrchestrationRun.objects.get(pk=run_id)
    for child in run.child_runs.all():
        answer = page.locator(f"li.child[data-child-id='{child.id}'] .child-answer")
        expect(answer).to_have_text(child.content)
    expect(page.locator("#answer")).to_have_text(run.content)


def test_non_staff_user_is_sent_to_login(page, web):
    user = get_user_model().objects.create_user(username=f"user-{secrets.token_hex(4)}",
                                                password=PASSWORD)
    run = make_run(make_team(user))

    page.goto("/admin/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator(".errornote")).to_contain_text("staff account")

    client = Client()
    client.force_login(user)
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value,
                               "url": web.url}])
    for path in [*STAFF_PAGES, f"/runs/{run.id}/", "/admin/", "/admin/agents/agent/"]:
        page.goto(path)
        assert "/admin/login/" in page.url, path
    events = page.request.get(f"/api/orchestrations/runs/{run.id}/events")
    assert events.status == 401


def test_markup_in_names_renders_as_text(page, staff_user, worker, llm):
    team = make_team(staff_user, name=SCRIPT_NAME, members=(SCRIPT_NAME, "Writer"),
                     api_base=llm.base_url)
    stored = make_run(team, message=SCRIPT_NAME, children=[(SCRIPT_NAME, SCRIPT_NAME, SCRIPT_NAME, 3)])
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    log_in(page, staff_user)

    for path in (f"/runs/{stored.id}/", f"/runs/?team={team.id}", "/usage/",
                 f"/admin/orchestrations/orchestration/{team.id}/change/"):
        page.goto(path)
        expect(page.get_by_text(SCRIPT_NAME).filter(visible=True).first).to_be_visible()

    # The live view writes streamed names and text into the page as text too.
    run_id = start_run_from_console(page, team, SCRIPT_NAME)
    expect(page.locator("#run-status")).to_have_text("completed", timeout=60_000)
    run = OrchestrationRun.objects.get(pk=run_id)
    agents = sorted(child.agent_name for child in run.child_runs.all())
    assert agents == sorted([SCRIPT_NAME, "Writer"])
    expect(page.locator(".child-agent", has_text=SCRIPT_NAME)).to_have_count(1)
    assert dialogs == []
