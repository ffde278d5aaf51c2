"""Session fixtures: a real PostgreSQL test database, Redis, uvicorn, a Celery worker,
and the scripted model server that stands in for the LLM provider."""

import os
import secrets
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from tests.scripted_llm import ScriptedLLM
from tests.stack import WebProcess, WorkerProcess


def _require_services():
    if not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        pytest.exit("The tests need PostgreSQL: run them with `make test`, which sets DATABASE_URL.",
                    returncode=2)
    if not settings.REDIS_URL:
        pytest.exit("The tests need Redis: run them with `make test`, which sets REDIS_URL.",
                    returncode=2)


@pytest.fixture(scope="session")
def django_db_setup(django_test_environment, django_db_blocker):
    """Create the test database for the whole session.

    pytest-django creates only the databases that `django_db`-marked tests
    name; these tests use the database through their own fixtures instead.
    """
    from django.test.utils import setup_databases, teardown_databases

    _require_services()
    with django_db_blocker.unblock():
        config = setup_databases(verbosity=0, interactive=False, aliases={"default"})
    yield
    with django_db_blocker.unblock():
        teardown_databases(config, verbosity=0)


@pytest.fixture(scope="session", autouse=True)
def db_access(django_db_setup, django_db_blocker):
    """Let every test use the test database directly, outside transactions.

    The web and worker processes read the same database, so test data must be
    committed, not held in a per-test transaction. Each test creates its own
    owner, so tests do not see each other's rows.
    """
    with django_db_blocker.unblock():
        yield


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("service-logs")


@pytest.fixture(scope="session")
def service_env(db_access) -> dict:
    database = settings.DATABASES["default"]
    env = dict(os.environ)
    env["DATABASE_URL"] = (f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/"
                           f"{database['NAME']}")
    env["POWABASE_KEEPALIVE_SECONDS"] = env.get("POWABASE_KEEPALIVE_SECONDS", "15")
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="session")
def scripted_llm():
    server = ScriptedLLM().start()
    yield server
    server.stop()


@pytest.fixture
def llm(scripted_llm):
    """The scripted model server, reset for this test."""
    scripted_llm.reset()
    yield scripted_llm
    scripted_llm.reset()


@pytest.fixture(scope="session")
def web(service_env, log_dir):
    process = WebProcess("web1", service_env, log_dir).start()
    process.wait_ready()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def web2(service_env, log_dir):
    """A second web process, for clients that stream from another process than the submitter."""
    process = WebProcess("web2", service_env, log_dir).start()
    process.wait_ready()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def worker(service_env, log_dir):
    process = WorkerProcess("worker1", service_env, log_dir).start()
    process.wait_ready()
    yield process
    process.stop()


@pytest.fixture
def owner():
    # Not pytest-django's django_user_model: it pulls in the `db` fixture, whose
    # transaction would hide the row from the web and worker processes.
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(username=f"user-{secrets.token_hex(6)}")


@pytest.fixture
def api_key(owner) -> str:
    from accounts.services import apikey_create

    _key, full_key = apikey_create(owner=owner, name="tests")
    return full_key


def make_client(base_url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"},
                        timeout=httpx.Timeout(30, read=60))


@pytest.fixture
def api(web, worker, api_key):
    """An HTTP client for the first web process, with a worker running, as a fresh owner."""
    with make_client(web.url, api_key) as client:
        yield client


@pytest.fixture
def api2(web2, worker, api_key):
    """The same owner's client on the second web process."""
    with make_client(web2.url, api_key) as client:
        yield client
