"""Settings for Beamline Console, read from the environment through django-environ.

Every setting has a safe default for production except ``SECRET_KEY``. With ``DEBUG``
on, a development key is generated once and kept under ``var/``.
"""
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from .secret_key import development_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("BEAMLINE_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it in the environment, or set DEBUG=true for a "
            "generated development key."
        )
    SECRET_KEY = development_secret_key(VAR_DIR)

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_prometheus",
    "beamline_console",
    "registry",
    "authors",
    "rollout",
    "executor",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "beamline_console.urls"

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

WSGI_APPLICATION = "beamline_console.wsgi.application"
ASGI_APPLICATION = "beamline_console.asgi.application"

# SQLite when DATABASE_URL is unset, so the console starts on a machine with no
# database server; PostgreSQL (psycopg 3) in CI and in production.
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'beamline_console.sqlite3'}")
}
DATABASES["default"].setdefault("ATOMIC_REQUESTS", False)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the executor read while the console writes.
    DATABASES["default"].setdefault("OPTIONS", {})["init_command"] = "PRAGMA journal_mode=WAL;"
    DATABASES["default"]["OPTIONS"].setdefault("timeout", 20)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=str(VAR_DIR / "static"))

LOGIN_URL = "/admin/login/"

# Security: strict unless DEBUG is on; each can be relaxed from the environment,
# for instance behind a proxy that terminates TLS.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if env.bool("USE_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "registry.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["registry.permissions.HasApiScope"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "registry.api_errors.exception_handler",
    "DEFAULT_PAGINATION_CLASS": None,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Beamline Console API",
    "DESCRIPTION": "Extension registry, routing policies and parallel execution of the Beamline router's extensions pipeline.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and Redoc from the drf-spectacular-sidecar package, so the docs load without internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# NATS: the executor's transport and the channel for change notices. Empty means the
# console publishes no change notices; executors then rely on polling the revision.
NATS_URL = env.str("NATS_URL", default="")

# The executor service (`manage.py run_executor`).
EXECUTOR_MAX_IN_FLIGHT = env.int("EXECUTOR_MAX_IN_FLIGHT", default=1024)
EXECUTOR_SNAPSHOT_POLL_SECONDS = env.float("EXECUTOR_SNAPSHOT_POLL_SECONDS", default=2.0)
# The executor's own Prometheus endpoint (docs/OBSERVABILITY.md); port 0 turns it off.
EXECUTOR_METRICS_PORT = env.int("EXECUTOR_METRICS_PORT", default=9464)
EXECUTOR_METRICS_ADDRESS = env.str("EXECUTOR_METRICS_ADDRESS", default="127.0.0.1")
# Evidence for the rollout: executors write their aggregated windows this often, and compare
# this share of parallel executions with a sequential run after replying (0 turns it off).
EXECUTOR_EVIDENCE_FLUSH_SECONDS = env.float("EXECUTOR_EVIDENCE_FLUSH_SECONDS", default=5.0)
EXECUTOR_SHADOW_SAMPLE_RATE = env.float("EXECUTOR_SHADOW_SAMPLE_RATE", default=0.1)
EXECUTION_HTTP_TIMEOUT_S = env.float("EXECUTION_HTTP_TIMEOUT_S", default=30.0)

# Celery: Redis or RabbitMQ in production; a file broker under var/ otherwise, so a fresh
# machine needs no broker server.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL == "filesystem://":
    _celery_dir = VAR_DIR / "celery-broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_celery_dir),
        "data_folder_out": str(_celery_dir),
        "processed_folder": str(_celery_dir / "processed"),
        "control_folder": str(_celery_dir / "control"),
        "store_processed": False,
    }
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TIMEZONE = TIME_ZONE

# The rollout: how often the automatic rollback evaluates the evidence, over which window, and
# what its triggers need. See docs/EXTENSIONS_RUNBOOK.md.
ROLLOUT_EVALUATION_INTERVAL_S = env.float("ROLLOUT_EVALUATION_INTERVAL_S", default=60.0)
ROLLOUT_EVALUATION_WINDOW_S = env.int("ROLLOUT_EVALUATION_WINDOW_S", default=900)
ROLLOUT_MIN_SAMPLES = env.int("ROLLOUT_MIN_SAMPLES", default=100)
ROLLOUT_MIN_SHADOW_COMPARISONS = env.int("ROLLOUT_MIN_SHADOW_COMPARISONS", default=10)
ROLLOUT_ERROR_RATE_TOLERANCE_PCT = env.float("ROLLOUT_ERROR_RATE_TOLERANCE_PCT", default=10.0)
ROLLOUT_P95_TOLERANCE_PCT = env.float("ROLLOUT_P95_TOLERANCE_PCT", default=20.0)
ROLLOUT_TARGET_LATENCY_REDUCTION_PCT = env.float("ROLLOUT_TARGET_LATENCY_REDUCTION_PCT", default=50.0)
# The verification looks at executions from this long after the rollback, once executors reloaded.
ROLLOUT_VERIFICATION_DELAY_S = env.float("ROLLOUT_VERIFICATION_DELAY_S", default=120.0)
ROLLOUT_VERIFICATION_GRACE_S = env.float("ROLLOUT_VERIFICATION_GRACE_S", default=5.0)
ROLLOUT_VERIFICATION_ATTEMPTS = env.int("ROLLOUT_VERIFICATION_ATTEMPTS", default=5)
CELERY_BEAT_SCHEDULE: dict = {
    "evaluate-rollouts": {
        "task": "rollout.tasks.evaluate_rollouts",
        "schedule": ROLLOUT_EVALUATION_INTERVAL_S,
    },
}

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "timestamp", "levelname": "level", "name": "logger"},
            "datefmt": "%Y-%m-%dT%H:%M:%S%z",
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
    },
}
