"""Settings for Powabase Orchestrations, read from the environment.

With neither DATABASE_URL nor REDIS_URL set, the service runs embedded:
SQLite in WAL mode and runs executed in the web process. With both set, it
runs in production shape: PostgreSQL, Redis, Celery workers.
"""

import warnings
from pathlib import Path
from urllib.parse import urlparse

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from .env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("POWABASE_VAR_DIR") or BASE_DIR / "var")

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG and env_str("DATABASE_URL"):
        raise ImproperlyConfigured("SECRET_KEY must be set when DATABASE_URL is set.")
    # Embedded default only: a fixed development key, never used in production
    # because the check above requires SECRET_KEY there.
    SECRET_KEY = "embedded-development-key-not-for-production-use-0123456789"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "corsheaders",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_eventstream",
    "accounts",
    "agents",
    "orchestrations",
]

MIDDLEWARE = [
    "powabase.middleware.ApiErrorMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "powabase.middleware.StaticFilesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "powabase.urls"
ASGI_APPLICATION = "powabase.asgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: PostgreSQL from DATABASE_URL, otherwise SQLite in WAL mode.
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL)}
    # A bounded psycopg pool per process: request threads and the run host's
    # database threads borrow a connection and give it back when they close it.
    # Set POWABASE_DB_POOL_MAX_SIZE=0 to open one connection per use instead
    # (behind PgBouncer in transaction mode, for example).
    _pool_max = env_int("POWABASE_DB_POOL_MAX_SIZE", 20)
    if _pool_max:
        DATABASES["default"]["OPTIONS"] = {
            **DATABASES["default"].get("OPTIONS", {}),
            "pool": {"min_size": 1, "max_size": _pool_max, "timeout": 10},
        }
        DATABASES["default"]["CONN_MAX_AGE"] = 0
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "powabase.sqlite3",
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis carries Celery's queue and the event relay between processes.
REDIS_URL = env_str("REDIS_URL")
EMBEDDED = not REDIS_URL

# "celery" queues runs for workers; "inprocess" runs them on a background
# event loop inside the web process (the embedded default).
POWABASE_RUN_EXECUTION = env_str("POWABASE_RUN_EXECUTION", "inprocess" if EMBEDDED else "celery")
if POWABASE_RUN_EXECUTION not in {"celery", "inprocess"}:
    raise ImproperlyConfigured(
        f"POWABASE_RUN_EXECUTION must be celery or inprocess, got {POWABASE_RUN_EXECUTION!r}."
    )
if POWABASE_RUN_EXECUTION == "celery" and not REDIS_URL:
    raise ImproperlyConfigured("POWABASE_RUN_EXECUTION=celery needs REDIS_URL.")

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_TASK_DEFAULT_QUEUE = env_str("POWABASE_CELERY_QUEUE", "powabase-runs")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A run may take many minutes; redeliver an unacknowledged task only after
# this long, so a slow run is not handed to a second worker.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("POWABASE_VISIBILITY_TIMEOUT", 3600)}

# The reaper fails runs whose heartbeat is older than POWABASE_REAPER_STALE_SECONDS.
# Celery beat runs it every POWABASE_REAPER_INTERVAL_SECONDS (`celery -A powabase
# beat`, or a worker started with -B); the embedded run host runs it itself.
POWABASE_HEARTBEAT_SECONDS = env_int("POWABASE_HEARTBEAT_SECONDS", 10, minimum=1)
POWABASE_REAPER_STALE_SECONDS = env_int("POWABASE_REAPER_STALE_SECONDS", 45, minimum=2)
POWABASE_REAPER_INTERVAL_SECONDS = env_int("POWABASE_REAPER_INTERVAL_SECONDS", 15, minimum=1)
if POWABASE_REAPER_STALE_SECONDS <= POWABASE_HEARTBEAT_SECONDS:
    raise ImproperlyConfigured("POWABASE_REAPER_STALE_SECONDS must be larger than "
                               "POWABASE_HEARTBEAT_SECONDS, or live runs would be reaped.")
CELERY_BEAT_SCHEDULE = {
    "reap-lost-runs": {
        "task": "orchestrations.reap_lost_runs",
        "schedule": float(POWABASE_REAPER_INTERVAL_SECONDS),
    },
}

if REDIS_URL:
    _redis = urlparse(REDIS_URL)
    EVENTSTREAM_REDIS = {
        "host": _redis.hostname or "127.0.0.1",
        "port": _redis.port or 6379,
        "db": int((_redis.path or "/0").lstrip("/") or 0),
    }
    if _redis.password:
        EVENTSTREAM_REDIS["password"] = _redis.password

# django-eventstream publishes every event on one Redis pub/sub channel that
# ignores the database number, so our channel names carry this prefix.
POWABASE_EVENT_CHANNEL_PREFIX = env_str("POWABASE_EVENT_CHANNEL_PREFIX", "powabase")

# The cache backs the per-key rate limit, so with Redis every web process
# counts against the same limit; embedded, one process keeps it in memory.
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                          "LOCATION": REDIS_URL, "KEY_PREFIX": POWABASE_EVENT_CHANNEL_PREFIX}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

POWABASE_DEFAULT_MODEL = env_str("POWABASE_DEFAULT_MODEL", "openai/gpt-4o-mini")
# Seconds without an event after which a stream sends a keepalive comment.
POWABASE_KEEPALIVE_SECONDS = env_int("POWABASE_KEEPALIVE_SECONDS", 15, minimum=1)
# Run submissions allowed per API key, as DRF rates: "120/min", "10/s", "1000/hour".
POWABASE_RUN_RATE = env_str("POWABASE_RUN_RATE", "120/min")
# Largest accepted request body, in bytes.
POWABASE_MAX_BODY_BYTES = env_int("POWABASE_MAX_BODY_BYTES", 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = POWABASE_MAX_BODY_BYTES
# Threads that run database work for the runs hosted by one process. Each
# uses at most one database connection at a time.
POWABASE_DB_THREADS = env_int("POWABASE_DB_THREADS", 8, minimum=1)
# Requests a web process runs at once until their response starts; more wait
# in arrival order (powabase.admission). 0 turns the limit off.
POWABASE_REQUEST_CONCURRENCY = env_int("POWABASE_REQUEST_CONCURRENCY", 8, minimum=0)
# Seconds a hosted run keeps retrying a lost database connection before it fails.
POWABASE_DB_RETRY_SECONDS = env_int("POWABASE_DB_RETRY_SECONDS", 30)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
# WhiteNoise serves static files (staff pages, admin) from the finders' directories,
# so uvicorn serves them with DEBUG off and no collectstatic step. It warns about a
# STATIC_ROOT that collectstatic never filled; that is the normal case here.
WHITENOISE_USE_FINDERS = True
warnings.filterwarnings("ignore", message="No directory at: ")

LOGIN_URL = "/admin/login/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["powabase.api.SafeJSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "powabase.api.JsonOnlyNegotiation",
    "EXCEPTION_HANDLER": "powabase.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Powabase Orchestrations API",
    "DESCRIPTION": "Agents, teams of agents, and their streamed runs.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI's scripts come from the drf-spectacular-sidecar package, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "accounts": {"level": LOG_LEVEL},
        "agents": {"level": LOG_LEVEL},
        "orchestrations": {"level": LOG_LEVEL},
        "engine": {"level": LOG_LEVEL},
        "powabase": {"level": LOG_LEVEL},
        # litellm logs request bodies (prompts) at INFO and DEBUG.
        "LiteLLM": {"level": "WARNING"},
        "LiteLLM Proxy": {"level": "WARNING"},
        "LiteLLM Router": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
    },
}

# Cross-origin browser access to the API is closed unless origins are listed.
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS")
CORS_URLS_REGEX = r"^/api/.*$"
CORS_ALLOW_HEADERS = ["authorization", "apikey", "content-type", "idempotency-key", "last-event-id"]
CORS_EXPOSE_HEADERS = ["retry-after"]

# Production (a database URL and DEBUG off) is served behind TLS: secure
# cookies, HSTS and the HTTPS redirect are on unless turned off here.
if not DEBUG and DATABASE_URL:
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
