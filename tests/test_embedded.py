"""The embedded default: no DATABASE_URL and no REDIS_URL, SQLite and runs in the web process."""

import sqlite3
import subprocess
import sys

import httpx

from tests.factories import create_team, stream_run
from tests.sse import event_names
from tests.stack import ROOT, WebProcess


def _embedded_env(service_env, var_dir) -> dict:
    env = {name: value for name, value in service_env.items()
           if name not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "POWABASE_RUN_EXECUTION")}
    env["POWABASE_VAR_DIR"] = str(var_dir)
    return env


def test_embedded_mode_runs_a_team(service_env, log_dir, llm, tmp_path):
    env = _embedded_env(service_env, tmp_path / "var")
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput"], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=300)
    created = subprocess.run([*manage, "createapikey", "embedded-user"], cwd=ROOT, env=env,
                             check=True, capture_output=True, text=True, timeout=120)
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("pb_")
    assert (tmp_path / "var" / "powabase.sqlite3").exists()

    web = WebProcess("web-embedded", env, log_dir).start()
    try:
        web.wait_ready()
        with httpx.Client(base_url=web.url, headers={"apikey": key}, timeout=60) as api:
            team = create_team(api, llm)
            frames = stream_run(api, team["id"])
            run = api.get(f"/api/orchestrations/runs/{frames[0].data['run_id']}").json()
    finally:
        web.stop()

    names = event_names(frames)
    assert names.count("delegation_started") == 2
    assert frames[-1].data["status"] == "completed"
    assert [f.id for f in frames] == list(range(1, len(frames) + 1))
    assert run["status"] == "completed"
    assert len(run["child_runs"]) == 2
    with sqlite3.connect(tmp_path / "var" / "powabase.sqlite3") as database:
        assert database.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
