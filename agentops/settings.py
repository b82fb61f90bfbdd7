"""agentops settings: everything comes from the environment, with defaults that work on a laptop.

Embedded defaults: SQLite and a file-based Celery broker, both under AGENTOPS_DATA_DIR (./var).
DATABASE_URL and CELERY_BROKER_URL switch to PostgreSQL and Redis/RabbitMQ.
"""

import json
import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: str) -> bool:
    value = os.environ.get(name, default).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use 1/0, true/false).")


def envint(name: str, default: str) -> int:
    value = os.environ.get(name, default)
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer.") from None


def database_from_url(url: str, data_dir: Path) -> dict:
    """Translate DATABASE_URL into a Django DATABASES entry; raise naming the variable if bad."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        # sqlite:///relative/path or sqlite:////absolute/path; empty path means the embedded file.
        path = unquote(parts.path[1:]) if parts.path.startswith("/") else unquote(parts.path)
        name = Path(path) if path else data_dir / "agentops.sqlite3"
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(name),
            # A web process and workers write at once: WAL lets readers go on while one writes,
            # IMMEDIATE takes the write lock at BEGIN (no upgrade deadlocks), and the timeout
            # makes a writer wait for the lock instead of failing.
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": (
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;"
                ),
            },
            "TEST": {"NAME": str(data_dir / "test.sqlite3")},
        }
    if scheme in ("postgres", "postgresql", "pgsql"):
        if not parts.path.strip("/"):
            raise ImproperlyConfigured(f"DATABASE_URL={url!r} names no database.")
        options = dict(parse_qsl(parts.query))
        config = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "OPTIONS": options,
        }
        # A database that is down is answered 503 within about two seconds, not after a TCP
        # timeout: the connection attempt and the wait for a pooled connection are bounded.
        wait = envint("DATABASE_CONNECT_TIMEOUT", "2")
        options.setdefault("connect_timeout", wait)
        # A worker runs many runs on threads; a per-process pool lets them share a few
        # connections instead of holding one each (PostgreSQL allows ~100 by default).
        pool_max = envint("DATABASE_POOL_MAX", "20")
        if pool_max > 0:
            pool_wait = envint("DATABASE_POOL_TIMEOUT", str(wait))
            options.setdefault("pool", {"min_size": 1, "max_size": pool_max, "timeout": pool_wait})
            config["CONN_MAX_AGE"] = 0
        else:
            config["CONN_MAX_AGE"] = envint("DATABASE_CONN_MAX_AGE", "60")
        # A connection is checked before use: one that a PostgreSQL restart closed is replaced
        # instead of failing the request or the run that took it.
        config["CONN_HEALTH_CHECKS"] = True
        return config
    raise ImproperlyConfigured(
        f"DATABASE_URL={url!r}: unknown scheme {scheme!r} (use sqlite:/// or postgres://)."
    )


BROKER_SCHEMES = ("filesystem", "redis", "rediss", "amqp", "amqps", "pyamqp", "memory")


def broker_from_url(url: str) -> str:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in BROKER_SCHEMES:
        raise ImproperlyConfigured(
            f"CELERY_BROKER_URL={url!r}: unknown scheme {scheme!r} "
            f"(use one of {', '.join(BROKER_SCHEMES)})."
        )
    if scheme == "filesystem" and not parts.netloc:
        # The file transport ignores the host, but kombu warns on every connection without one.
        return "filesystem://localhost/"
    return url


DATA_DIR = Path(os.environ.get("AGENTOPS_DATA_DIR", BASE_DIR / "var")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = envbool("DEBUG", "1")
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG=0.")
    SECRET_KEY = "dev-only-insecure-key-set-SECRET_KEY-in-production"

ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "").split(",") if h.strip()]
if not ALLOWED_HOSTS:
    ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"] if not DEBUG else ["*"]
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "axes",
    "ninja",  # serves the API docs page's scripts from here (the CSP allows no other origin)
    "runs",
    "ingest",
]

MIDDLEWARE = [
    "agentops.middleware.chunked_body_refused",
    "agentops.middleware.content_security_policy",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "runs.roles.LoginRequiredPagesMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "agentops.urls"
WSGI_APPLICATION = "agentops.wsgi.application"

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
                "runs.roles.navigation",
            ],
        },
    },
]

DATABASES = {"default": database_from_url(os.environ.get("DATABASE_URL", "sqlite:///"), DATA_DIR)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
# Login throttling (django-axes): a username at one address is locked for a while after so many
# wrong passwords in a row; every failure and lockout is logged. The address is the connection's
# (REMOTE_ADDR), which a client cannot forge with a header.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = envint("AGENTOPS_LOGIN_FAILURE_LIMIT", "5")
AXES_COOLOFF_TIME = timedelta(minutes=envint("AGENTOPS_LOGIN_LOCKOUT_MINUTES", "15"))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_IPWARE_META_PRECEDENCE_ORDER = ("REMOTE_ADDR",)
AXES_SENSITIVE_PARAMETERS: list = []  # the log names the username and address (never a password)
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Serve straight from the app folders when collectstatic has not run (the embedded setup).
WHITENOISE_USE_FINDERS = True

if not DEBUG:
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", "1")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", "31536000")
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", "1")
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# The cache is shared by every web process: per-key throttling counts there. Redis when the
# broker is Redis (or CACHE_URL says so), else a folder in the data dir (one machine).
_cache_url = os.environ.get("CACHE_URL", "")
if not _cache_url and os.environ.get("CELERY_BROKER_URL", "").startswith(("redis://", "rediss://")):
    _cache_url = os.environ["CELERY_BROKER_URL"]
if _cache_url.startswith(("redis://", "rediss://")):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": _cache_url,
            "KEY_PREFIX": "agentops",
            # A cache that is down answers at once or within a second: requests go on without it.
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(DATA_DIR / "cache"),
        }
    }

# Ingest limits (README "Ingest"): a body, items per batch, bytes per item, requests per key.
AGENTOPS_INGEST_MAX_BODY_BYTES = envint("AGENTOPS_INGEST_MAX_BODY_BYTES", str(8 * 1024 * 1024))
AGENTOPS_INGEST_MAX_ITEMS = envint("AGENTOPS_INGEST_MAX_ITEMS", "1000")
AGENTOPS_INGEST_MAX_ITEM_BYTES = envint("AGENTOPS_INGEST_MAX_ITEM_BYTES", str(64 * 1024))
AGENTOPS_INGEST_RATE_PER_SECOND = envint("AGENTOPS_INGEST_RATE_PER_SECOND", "200")
DATA_UPLOAD_MAX_MEMORY_SIZE = AGENTOPS_INGEST_MAX_BODY_BYTES


def envjsonlist(name: str) -> list[str]:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ImproperlyConfigured(f"{name} must be a JSON array of strings.")
    return value


# Extra regular expressions whose matches are masked before anything an agent wrote is stored.
AGENTOPS_SECRET_PATTERNS = envjsonlist("AGENTOPS_SECRET_PATTERNS")

# --- Celery -------------------------------------------------------------------------------
CELERY_BROKER_URL = broker_from_url(os.environ.get("CELERY_BROKER_URL", "filesystem://"))
if os.environ.get("CELERY_BROKER_URL", CELERY_BROKER_URL) != CELERY_BROKER_URL:
    os.environ["CELERY_BROKER_URL"] = CELERY_BROKER_URL  # Celery reads the variable before us
BROKER_DIR = DATA_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "store_processed": False,
    }
else:
    # Redis redelivers a task whose ack has not come back within the visibility timeout; it must
    # exceed the longest run (the hard time limit) or a healthy run would be started twice.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600 * 2}
    if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        # A broker host that is gone fails a send within seconds (the run waits in the outbox)
        # instead of holding the request for the operating system's TCP timeout.
        CELERY_BROKER_TRANSPORT_OPTIONS["socket_connect_timeout"] = 2

if "CELERY_RESULT_BACKEND" in os.environ:
    CELERY_RESULT_BACKEND = os.environ["CELERY_RESULT_BACKEND"] or None
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_RESULT_BACKEND = CELERY_BROKER_URL
elif CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_RESULT_BACKEND = f"file://{DATA_DIR / 'results'}"
    (DATA_DIR / "results").mkdir(parents=True, exist_ok=True)
else:
    CELERY_RESULT_BACKEND = "rpc://"
# One result backend per worker process, not one per thread: a Redis backend built per thread (a
# run each on the threads pool) cost every run ~1 ms of set-up, and Redis clients and the file
# backend are thread-safe (the rpc:// backend's AMQP channel is not).
CELERY_RESULT_BACKEND_THREAD_SAFE = str(CELERY_RESULT_BACKEND or "").startswith(
    ("redis://", "rediss://", "file://")
)

# The queue runs go to; tests give each session its own so parallel suites never share work.
AGENTOPS_QUEUE = os.environ.get("AGENTOPS_QUEUE", "agentops")
CELERY_TASK_DEFAULT_QUEUE = AGENTOPS_QUEUE
# Runs are long and limit-bound: acknowledge after the run (a lost worker means redelivery, which
# the runner detects), take one message at a time, and keep Celery's limits as a backstop only.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = envint("AGENTOPS_TASK_SOFT_TIME_LIMIT", "3600")
CELERY_TASK_TIME_LIMIT = envint("AGENTOPS_TASK_TIME_LIMIT", "3660")
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")

# A running run's heartbeat is stamped every interval; one older than STALE means its worker died.
AGENTOPS_HEARTBEAT_INTERVAL = float(envint("AGENTOPS_HEARTBEAT_INTERVAL_MS", "1000")) / 1000
AGENTOPS_HEARTBEAT_STALE_SECONDS = envint("AGENTOPS_HEARTBEAT_STALE_SECONDS", "30")
# How long a worker's run waits for one of its process's pooled connections (the web side
# answers 503 after DATABASE_POOL_TIMEOUT instead): a thousand runs share DATABASE_POOL_MAX
# connections, and a run must not fail because the others held them for a moment.
AGENTOPS_WORKER_DB_WAIT = envint("AGENTOPS_WORKER_DB_WAIT", "60")
# A run silent this long is shown as such ("no heartbeat for 12 s") until the reaper ends it.
AGENTOPS_HEARTBEAT_SILENT_SECONDS = max(5, int(AGENTOPS_HEARTBEAT_INTERVAL * 5))
AGENTOPS_REAP_EVERY_SECONDS = envint("AGENTOPS_REAP_EVERY_SECONDS", "15")
# Retention (README "Operator commands"): finished runs older than this many days are deleted
# daily by beat (`manage.py prune`); 0, the default, keeps everything.
AGENTOPS_RETENTION_DAYS = envint("AGENTOPS_RETENTION_DAYS", "0")
if AGENTOPS_RETENTION_DAYS < 0:
    raise ImproperlyConfigured("AGENTOPS_RETENTION_DAYS must be 0 (off) or a number of days.")
# Modules that register user agents and tools (comma-separated), imported at start-up.
AGENTOPS_AGENT_MODULES = [
    m.strip() for m in os.environ.get("AGENTOPS_AGENT_MODULES", "").split(",") if m.strip()
]
OPENAI_BASE_URL = os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1")
OPENAI_API_KEY = os.environ.get("OPENAI_API_KEY", "")
ANTHROPIC_BASE_URL = os.environ.get("ANTHROPIC_BASE_URL", "https://api.anthropic.com")
ANTHROPIC_API_KEY = os.environ.get("ANTHROPIC_API_KEY", "")

# Where people open this service: the run links webhooks send start with it.
AGENTOPS_BASE_URL = os.environ.get("AGENTOPS_BASE_URL", "http://localhost:8000").rstrip("/")
# Outgoing webhooks: each attempt's network timeout (connect, and each read); the first retry
# after a failed attempt, doubling up to the most; giving up a day after the event; an endpoint
# disabled after this many failed attempts in a row; the queue their tasks go to.
AGENTOPS_WEBHOOK_TIMEOUT_SECONDS = envint("AGENTOPS_WEBHOOK_TIMEOUT_SECONDS", "5")
AGENTOPS_WEBHOOK_RETRY_MS = envint("AGENTOPS_WEBHOOK_RETRY_MS", "10000")
AGENTOPS_WEBHOOK_RETRY_MAX_SECONDS = envint("AGENTOPS_WEBHOOK_RETRY_MAX_SECONDS", "3600")
AGENTOPS_WEBHOOK_GIVE_UP_SECONDS = envint("AGENTOPS_WEBHOOK_GIVE_UP_SECONDS", str(24 * 3600))
AGENTOPS_WEBHOOK_DISABLE_AFTER = envint("AGENTOPS_WEBHOOK_DISABLE_AFTER", "20")
AGENTOPS_WEBHOOK_QUEUE = os.environ.get("AGENTOPS_WEBHOOK_QUEUE", "")  # "": AGENTOPS_QUEUE

# How often beat sums the runs of past hours for the overview and agents page (runs.services.
# rollups); hours not summed yet are counted from the runs themselves: speed, not correctness.
AGENTOPS_ROLLUP_EVERY_SECONDS = envint("AGENTOPS_ROLLUP_EVERY_SECONDS", "60")

# Every periodic task, each with an `expires` so a backlog (beat up, workers down) cannot pile up.
# Reaping lost runs and re-dispatching queued ones is not among them: beat does that in its own
# process (runs.services.housekeeping), so it does not wait for a live worker.
CELERY_BEAT_SCHEDULE = {
    "sum-run-hours": {
        "task": "runs.rollups",
        "schedule": AGENTOPS_ROLLUP_EVERY_SECONDS,
        "options": {"expires": AGENTOPS_ROLLUP_EVERY_SECONDS},
    },
    "send-due-webhooks": {
        "task": "runs.webhooks_sweep",
        "schedule": AGENTOPS_REAP_EVERY_SECONDS,
        "options": {"expires": AGENTOPS_REAP_EVERY_SECONDS},
    },
}

if AGENTOPS_RETENTION_DAYS:
    # Daily at a quiet hour (UTC); a prune that has not started within the hour is dropped,
    # the next day's takes its runs.
    CELERY_BEAT_SCHEDULE["prune-old-runs"] = {
        "task": "runs.prune",
        "schedule": crontab(hour=3, minute=30),
        "options": {"expires": 3600},
    }

AGENTOPS_WORKER_POOL = os.environ.get("AGENTOPS_WORKER_POOL", "threads")
AGENTOPS_WORKER_CONCURRENCY = envint("AGENTOPS_WORKER_CONCURRENCY", "8")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"one_line_refusals": {"()": "agentops.log.OneLineRefusals"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        # Django's own console handler (DEBUG only) would print each of its lines a second time.
        "django": {"handlers": [], "level": "INFO"},
        "django.db.backends": {"level": "WARNING"},
        "django.request": {"filters": ["one_line_refusals"]},
    },
}

# The file transport needs its folders before the first publish or poll.
for _key in ("data_folder_in", "control_folder", "processed_folder"):
    if _key in CELERY_BROKER_TRANSPORT_OPTIONS:
        Path(CELERY_BROKER_TRANSPORT_OPTIONS[_key]).mkdir(parents=True, exist_ok=True)
