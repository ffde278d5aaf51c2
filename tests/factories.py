"""Building teams through the API, as a client would."""


def create_agent(api, llm, name: str, *, model: str | None = None, **fields) -> dict:
    body = {"name": name, "model": model or f"openai/{name.lower()}",
            "settings": {"api_base": llm.base_url, **fields.pop("settings", {})}, **fields}
    response = api.post("/api/agents", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def create_team(api, llm, *, members=(("Researcher", "Finds facts"), ("Writer", "Writes prose")),
                strategy: str = "supervisor", orchestrator_config: dict | None = None,
                settings: dict | None = None, name: str = "Team") -> dict:
    config = {"model": "openai/coord", "api_base": llm.base_url, **(orchestrator_config or {})}
    response = api.post("/api/orchestrations", json={
        "name": name, "strategy": strategy, "orchestrator_config": config,
        "settings": settings or {},
    })
    assert response.status_code == 201, response.text
    team = response.json()
    for member_name, role in members:
        agent = create_agent(api, llm, member_name)
        added = api.post(f"/api/orchestrations/{team['id']}/entities",
                         json={"agent_id": agent["id"], "role": role})
        assert added.status_code == 201, added.text
    return api.get(f"/api/orchestrations/{team['id']}").json()


def stream_run(api, team_id: str, message: str = "Tell me about owls", **body):
    """Start a run and return its frames, read until the stream closes."""
    from tests.sse import read_stream

    with api.stream("POST", f"/api/orchestrations/{team_id}/run/stream",
                    json={"message": message, **body}) as response:
        assert response.status_code == 200, response.read()
        return read_stream(response)
