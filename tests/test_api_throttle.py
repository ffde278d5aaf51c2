"""Run submissions are rate limited per API key (in-process, so the rate can be lowered)."""

import uuid

import pytest
from django.test import Client, override_settings

from accounts.services import apikey_create
from orchestrations import services

RUN_PATHS = ("/api/agents/{agent}/run", "/api/agents/{agent}/run/stream",
             "/api/orchestrations/{team}/run/stream")


@pytest.fixture
def key(owner) -> str:
    _row, full_key = apikey_create(owner=owner)
    return full_key


def client_for(key: str) -> Client:
    return Client(headers={"authorization": f"Bearer {key}"})


def submit(client, path: str):
    # An unknown agent or team: the throttle counts the request, and no run is created.
    path = path.format(agent=uuid.uuid4(), team=uuid.uuid4())
    return client.post(path, data={"message": "hi"}, content_type="application/json")


@override_settings(POWABASE_RUN_RATE="3/min")
def test_run_submissions_over_the_rate_are_rate_limited(key):
    client = client_for(key)

    answers = [submit(client, path) for path in RUN_PATHS]
    limited = submit(client, RUN_PATHS[0])

    assert [response.status_code for response in answers] == [404, 404, 404]
    assert limited.status_code == 429
    assert limited.json()["code"] == "rate_limited"
    assert 1 <= int(limited["Retry-After"]) <= 61


@override_settings(POWABASE_RUN_RATE="1/min")
def test_rate_limit_is_per_api_key(owner, key):
    _row, other_key = apikey_create(owner=owner)

    first = submit(client_for(key), RUN_PATHS[0])
    limited = submit(client_for(key), RUN_PATHS[2])
    other = submit(client_for(other_key), RUN_PATHS[2])

    assert first.status_code == 404
    assert limited.status_code == 429
    assert other.status_code == 404


@override_settings(POWABASE_RUN_RATE="1/min")
def test_other_endpoints_are_not_rate_limited(owner, key):
    client = client_for(key)
    team = services.orchestration_create(owner=owner, name="Team")

    submit(client, RUN_PATHS[0])
    reads = [client.get("/api/agents"), client.get(f"/api/orchestrations/{team.id}"),
             client.get(f"/api/orchestrations/{team.id}/runs")]
    writes = [client.post("/api/agents", data={"name": "New"}, content_type="application/json")]

    assert [response.status_code for response in reads] == [200, 200, 200]
    assert [response.status_code for response in writes] == [201]
    assert submit(client, RUN_PATHS[1]).status_code == 429
