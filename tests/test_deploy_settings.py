"""The production settings pass Django's deployment checks."""

import secrets
import subprocess
import sys

from tests.stack import ROOT


def test_check_deploy_is_clean(service_env):
    env = {**service_env, "SECRET_KEY": secrets.token_urlsafe(50), "DEBUG": "false"}
    for name in ("SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT"):
        env.pop(name, None)

    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level",
                             "WARNING"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_cors_closed_by_default(web):
    import httpx

    response = httpx.options(f"{web.url}/api/agents", headers={
        "Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"})

    assert "access-control-allow-origin" not in response.headers
