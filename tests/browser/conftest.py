"""Headless Chromium for the browser tests: Debian's chromium package driven by Playwright.

Playwright never downloads a browser here; CI installs /usr/bin/chromium with apt.
"""

import os
import secrets
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connections
from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]
PASSWORD = "staff-password-for-tests"


@pytest.fixture(scope="module")
def chromium():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(autouse=True)
def orm_beside_playwright(service_env, monkeypatch):
    """Let the tests use the ORM while Playwright's sync API is active.

    Playwright marks its asyncio loop as running in this thread, so Django would
    reject the tests' ORM calls as coming from async code, although they are plain
    blocking calls. service_env is built first, so the web processes do not inherit
    the setting. With a loop running, Django keeps a separate connection per
    context, which is closed here, or it would block dropping the test database.
    """
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    yield
    connections.close_all()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory) -> Path:
    """Where pages are photographed: POWABASE_SCREENSHOT_DIR (docs/screenshots for the
    committed set), otherwise a temporary directory."""
    configured = os.environ.get("POWABASE_SCREENSHOT_DIR")
    if configured:
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture
def staff_user():
    return get_user_model().objects.create_user(
        username=f"staff-{secrets.token_hex(4)}", password=PASSWORD, is_staff=True, is_superuser=True,
    )


@pytest.fixture
def page(chromium, web):
    context = chromium.new_context(base_url=web.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    yield page
    context.close()


def log_in(page, user) -> None:
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
