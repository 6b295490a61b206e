"""Parley settings, read once from the environment (see README: Configuration).

Development (`make run`) sets DJANGO_DEBUG=1 and the server URLs itself.
Production sets DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS, DATABASE_URL and
REDIS_URL; everything else has a safe default.
"""

from decimal import Decimal
from pathlib import Path

import dj_database_url
from celery.schedules import crontab

from config.env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "insecure-dev-only-key" if DEBUG else None)
ALLOWED_HOSTS = env_list(
    "DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "config.admin_site.ParleyAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django.contrib.humanize",
    "channels",
    "ontology",
    "agents",
    "chat",
    "billing",
    "api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "ontology.middleware.RefuseUnstorableCharactersMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "ontology.middleware.ActiveGroupMiddleware",
    "django_ratelimit.middleware.RatelimitMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = None

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
                "ontology.context_processors.active_group",
                "ontology.context_processors.theme",
                "billing.context_processors.budget",
            ],
        },
    },
]

# --- Data stores ---------------------------------------------------------------

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL"), engine="django.db.backends.postgresql"
    )
}
_prepare_threshold = env_int("DATABASE_PREPARE_THRESHOLD", 5)
DATABASES["default"]["OPTIONS"] = {
    "server_side_binding": env_bool("DATABASE_SERVER_SIDE_BINDING", True),
    # psycopg prepares a statement on its connection once it has run this many times, so
    # the hot paths' queries are planned once per connection, not on every request (an API
    # token's check: 0.85 ms to 0.27 ms). Django leaves it off unless asked; -1 turns it
    # off (a pooler in transaction mode cannot keep prepared statements).
    "prepare_threshold": None if _prepare_threshold < 0 else _prepare_threshold,
}
if env_bool("DATABASE_POOL", True):
    DATABASES["default"]["OPTIONS"] |= {
        "pool": {
            "min_size": env_int("DATABASE_POOL_MIN_SIZE", 1),
            "max_size": env_int("DATABASE_POOL_MAX_SIZE", 20),
        }
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")

# A cache call (rate limits, run locks) waits at most this long for Redis: behind a network
# partition it fails (the socket answers "unavailable") instead of hanging.
PARLEY_REDIS_TIMEOUT = env_float("PARLEY_REDIS_TIMEOUT", 5.0)
CACHES = {
    "default": {
        "BACKEND": "config.cache.SharedRedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "parley",
        "OPTIONS": {
            "socket_connect_timeout": PARLEY_REDIS_TIMEOUT,
            "socket_timeout": PARLEY_REDIS_TIMEOUT,
            "health_check_interval": 30,
        },
    }
}

# Threads per process for database work from async code (requests and runs); with the run
# log's own writer thread they should stay within DATABASE_POOL_MAX_SIZE.
PARLEY_DB_THREADS = env_int("PARLEY_DB_THREADS", 12)
# Streamed text goes out in frames: the first token at once, then what arrived, at most
# one frame per this many milliseconds (0: every token as its own event).
PARLEY_STREAM_FRAME_MS = env_int("PARLEY_STREAM_FRAME_MS", 50)
# A serving process's full garbage collection is considered once per this many collections
# of the second generation (Python's own: 10); 0 keeps Python's (config.asgi).
PARLEY_GC_FULL_AFTER = env_int("PARLEY_GC_FULL_AFTER", 100)
# Redis connections per channel-layer pool (one pool per process and event loop); a call
# beyond them waits for a free one.
PARLEY_CHANNEL_LAYER_CONNECTIONS = env_int("PARLEY_CHANNEL_LAYER_CONNECTIONS", 200)
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "chat.layers.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": "parley:asgi", "capacity": 1000},
    }
}

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A message a worker took and never acknowledged (its main process died) goes back to the
# queue after this many seconds (Redis has no other way to know); the run waiting for a
# tool call notices a dead worker sooner and sends the call again
# (PARLEY_TOOL_WORKER_CHECK_SECONDS). A task still running past it is delivered twice, so
# every task is idempotent (a tool call runs under a lock on its row).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("PARLEY_BROKER_VISIBILITY_TIMEOUT", 300),
    "unacked_restore_throttle": 1,  # look for such messages every 10 s, not every 100 s
}
PARLEY_TOOL_WORKER_CHECK_SECONDS = env_float("PARLEY_TOOL_WORKER_CHECK_SECONDS", 1.0)
# A Server-Sent Events stream quiet this long gets a comment line, so proxies keep it open.
PARLEY_SSE_KEEP_ALIVE_SECONDS = env_float("PARLEY_SSE_KEEP_ALIVE_SECONDS", 15.0)

# --- Auth ------------------------------------------------------------------------

AUTH_USER_MODEL = "ontology.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Security (safe by default; `manage.py check --deploy` is clean with DEBUG off) ---

SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("DJANGO_BEHIND_TLS_PROXY", False) else None
)
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
# Sessions are kept in PostgreSQL and read through the cache (Redis): a socket opening reads
# its session there, not in a query, and the database when Redis is away (config.sessions).
# Signing out elsewhere does not rely on deleting them (ontology.accounts: the user's session
# generation is part of every session's check).
SESSION_ENGINE = "config.sessions"
CSRF_COOKIE_HTTPONLY = False  # the chat page's JS reads the token for fetch()
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- i18n / static ------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "config.staticfiles.StaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# --- Logging -------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},  # the providers' transport: a line per model call
    },
}

# An invitation's link works this many days after it was (re)sent.
PARLEY_INVITATION_DAYS = env_int("PARLEY_INVITATION_DAYS", 7)
EMAIL_BACKEND = env_str("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
# For django.core.mail.backends.filebased.EmailBackend: one file per message (the tests).
EMAIL_FILE_PATH = env_str("DJANGO_EMAIL_FILE_PATH", "")
EMAIL_HOST = env_str("DJANGO_EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("DJANGO_EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("DJANGO_EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("DJANGO_EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("DJANGO_EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DJANGO_DEFAULT_FROM_EMAIL", "parley@localhost")

CELERY_TASK_ROUTES = {
    "agents.run_tool": {"queue": "tools"},
    "agents.ingest_source": {"queue": "embeddings"},
    "agents.build_embedding_index": {"queue": "embeddings"},
}
# `make run` starts beat; in production run one `celery -A config beat` next to the workers.
CELERY_BEAT_SCHEDULE = {
    # Re-sums the last PARLEY_ROLLUP_DAYS complete days (idempotent), so a missed hour heals.
    "billing-usage-rollup": {"task": "billing.usage_rollup_recent", "schedule": crontab(minute=5)},
    "billing-reservations-cleanup": {
        "task": "billing.reservations_cleanup",
        "schedule": crontab(minute=35),
    },
}

# --- Parley --------------------------------------------------------------------------

PARLEY_DEMO_SEED_ALLOWED = env_bool("PARLEY_DEMO_SEED_ALLOWED", DEBUG)

# Provider API keys and endpoints. A group may also store its own key (encrypted) in the admin.
PARLEY_PROVIDER_API_KEYS = {
    "openai": env_str("OPENAI_API_KEY", ""),
    "anthropic": env_str("ANTHROPIC_API_KEY", ""),
    "deepseek": env_str("DEEPSEEK_API_KEY", ""),
    "groq": env_str("GROQ_API_KEY", ""),
    "mistral": env_str("MISTRAL_API_KEY", ""),
    "xai": env_str("XAI_API_KEY", ""),
    "gemini": env_str("GEMINI_API_KEY", ""),
    "local": env_str("LOCAL_LLM_API_KEY", "local"),
    "simulator": "simulator",
    "simulator-anthropic": "simulator",
}
PARLEY_PROVIDER_BASE_URLS = {
    "openai": env_str("OPENAI_BASE_URL", ""),
    "anthropic": env_str("ANTHROPIC_BASE_URL", ""),
    "local": env_str("LOCAL_LLM_BASE_URL", ""),
}
# The provider simulator (`manage.py simulate_provider`); `make run` starts one when no key is set.
PARLEY_SIMULATOR_URL = env_str("PARLEY_SIMULATOR_URL", "")
if PARLEY_SIMULATOR_URL:
    PARLEY_PROVIDER_BASE_URLS["simulator"] = PARLEY_SIMULATOR_URL.rstrip("/") + "/v1"
    PARLEY_PROVIDER_BASE_URLS["simulator-anthropic"] = PARLEY_SIMULATOR_URL.rstrip("/")

# Key for encrypting per-group provider keys at rest; derived from SECRET_KEY when unset.
PARLEY_ENCRYPTION_KEY = env_str("PARLEY_ENCRYPTION_KEY", "")

# Chat: the largest message a user may send, and messages per minute by plan (user / group):
# the defaults of the plans' message rates (PARLEY_PLAN_DEFAULTS), editable in the admin.
PARLEY_MAX_MESSAGE_CHARS = env_int("PARLEY_MAX_MESSAGE_CHARS", 32_000)
# Thread titles: "provider/model" for the title call; empty uses the thread's agent's model.
PARLEY_TITLE_MODEL = env_str("PARLEY_TITLE_MODEL", "")
# Titles are made on a Celery worker (queue "default"), not in the web process streaming
# answers; 0 makes them in the run's own process, as when the broker refuses the task.
PARLEY_TITLES_ON_WORKER = env_bool("PARLEY_TITLES_ON_WORKER", True)
PARLEY_MESSAGE_RATE_LIMITS = {
    "free": {
        "user": env_str("PARLEY_RATE_FREE_USER", "10/m"),
        "group": env_str("PARLEY_RATE_FREE_GROUP", "60/m"),
    },
    "team": {
        "user": env_str("PARLEY_RATE_TEAM_USER", "30/m"),
        "group": env_str("PARLEY_RATE_TEAM_GROUP", "300/m"),
    },
    "business": {
        "user": env_str("PARLEY_RATE_BUSINESS_USER", "60/m"),
        "group": env_str("PARLEY_RATE_BUSINESS_GROUP", "1200/m"),
    },
    "enterprise": {
        "user": env_str("PARLEY_RATE_ENTERPRISE_USER", "120/m"),
        "group": env_str("PARLEY_RATE_ENTERPRISE_GROUP", "6000/m"),
    },
}
RATELIMIT_USE_CACHE = "default"
# A view limited with django-ratelimit's own @ratelimit(block=True) answers 429, not 403.
RATELIMIT_VIEW = "billing.ratelimits.ratelimited_view"
# HTTP endpoints that cost money or write (billing.ratelimits.limit_requests), by bucket.
PARLEY_HTTP_RATE_LIMITS = {
    "login": {
        "ip": env_str("PARLEY_RATE_LOGIN_IP", "30/m"),
        "username": env_str("PARLEY_RATE_LOGIN_USERNAME", "10/m"),
    },
    # Invitations sent (and resent) by an organisation's owners and admins.
    "invite": {
        "user": env_str("PARLEY_RATE_INVITE_USER", "20/m"),
        "group": env_str("PARLEY_RATE_INVITE_GROUP", "60/m"),
    },
    "upload": {
        "user": env_str("PARLEY_RATE_UPLOAD_USER", "20/m"),
        "group": env_str("PARLEY_RATE_UPLOAD_GROUP", "120/m"),
    },
    # Chat page writes: new threads, renames, feedback (messages go over the WebSocket).
    "chat": {
        "user": env_str("PARLEY_RATE_CHAT_USER", "60/m"),
        "group": env_str("PARLEY_RATE_CHAT_GROUP", "1200/m"),
    },
    # Every request a program makes with an API token (messages also count against the
    # plan's message limits, as in the browser).
    "api": {
        "user": env_str("PARLEY_RATE_API_USER", "600/m"),
        "group": env_str("PARLEY_RATE_API_GROUP", "6000/m"),
    },
}

# Plans. The first billing migration creates one row per plan from these values; after
# that superusers edit the plans in the admin. A plan without a row falls back to these.
# Budgets are US dollars (or tokens) per calendar month; None means no limit.
PARLEY_PLAN_DEFAULTS = {
    "free": {
        "monthly_budget": Decimal("5.00"),
        "monthly_token_budget": None,
        "max_upload_mb": 10,
        "max_agents": 5,
    },
    "team": {
        "monthly_budget": Decimal("200.00"),
        "monthly_token_budget": None,
        "max_upload_mb": 25,
        "max_agents": 25,
    },
    "business": {
        "monthly_budget": Decimal("2000.00"),
        "monthly_token_budget": None,
        "max_upload_mb": 50,
        "max_agents": 100,
    },
    "enterprise": {
        "monthly_budget": None,
        "monthly_token_budget": None,
        "max_upload_mb": 100,
        "max_agents": None,
    },
}
for _code, _plan in PARLEY_PLAN_DEFAULTS.items():
    _plan["message_rate_user"] = PARLEY_MESSAGE_RATE_LIMITS[_code]["user"]
    _plan["message_rate_group"] = PARLEY_MESSAGE_RATE_LIMITS[_code]["group"]
del _code, _plan
# A reservation never settled (its process died) stops holding budget after this many seconds.
PARLEY_BUDGET_RESERVATION_TTL = env_int("PARLEY_BUDGET_RESERVATION_TTL", 1800)
# Owners and admins see a warning banner from this share of the monthly budget.
PARLEY_BUDGET_WARNING_SHARE = env_float("PARLEY_BUDGET_WARNING_SHARE", 0.8)
# Each process keeps the plans it read this long (rates and budgets are read per message);
# a plan edited in the admin applies everywhere within it (at once in the editing process).
PARLEY_PLAN_CACHE_SECONDS = env_float("PARLEY_PLAN_CACHE_SECONDS", 5.0)
# Complete days the hourly roll-up job re-sums from the ledger.
PARLEY_ROLLUP_DAYS = env_int("PARLEY_ROLLUP_DAYS", 3)

# Threads per process that wait for tool results from Celery.
PARLEY_TOOL_WAIT_THREADS = env_int("PARLEY_TOOL_WAIT_THREADS", 64)
# Group-supplied provider base URLs may point at private addresses only when this is on.
PARLEY_ALLOW_PRIVATE_BASE_URLS = env_bool("PARLEY_ALLOW_PRIVATE_BASE_URLS", DEBUG)

# Agent loop policy: retries before the first token, with exponential backoff and jitter.
PARLEY_RETRY_ATTEMPTS = env_int("PARLEY_RETRY_ATTEMPTS", 3)
PARLEY_RETRY_BASE_DELAY = env_float("PARLEY_RETRY_BASE_DELAY", 0.5)
PARLEY_RETRY_MAX_DELAY = env_float("PARLEY_RETRY_MAX_DELAY", 8.0)

# --- Knowledge and retrieval ----------------------------------------------------------

# A group's embedding model unless it picks another: local MiniLM (no network) without an
# OpenAI key. Agents may override it per agent.
PARLEY_EMBEDDING_MODEL = env_str(
    "PARLEY_EMBEDDING_MODEL",
    "text-embedding-3-small" if PARLEY_PROVIDER_API_KEYS["openai"] else "all-MiniLM-L6-v2",
)
PARLEY_EMBEDDING_BATCH_SIZE = env_int("PARLEY_EMBEDDING_BATCH_SIZE", 32)
PARLEY_CHUNK_TOKENS = env_int("PARLEY_CHUNK_TOKENS", 200)
PARLEY_CHUNK_OVERLAP = env_int("PARLEY_CHUNK_OVERLAP", 40)
# Limits on what a group may add.
PARLEY_KNOWLEDGE_MAX_FILE_BYTES = env_int("PARLEY_KNOWLEDGE_MAX_FILE_BYTES", 10 * 1024 * 1024)
PARLEY_KNOWLEDGE_MAX_FILES = env_int("PARLEY_KNOWLEDGE_MAX_FILES", 20)
PARLEY_KNOWLEDGE_MAX_URLS = env_int("PARLEY_KNOWLEDGE_MAX_URLS", 20)
PARLEY_KNOWLEDGE_MAX_SOURCES = env_int("PARLEY_KNOWLEDGE_MAX_SOURCES", 1000)
PARLEY_KNOWLEDGE_MAX_CHUNKS = env_int("PARLEY_KNOWLEDGE_MAX_CHUNKS", 5000)
# Text a source may hold once extracted: reading stops past it, before memory grows.
PARLEY_KNOWLEDGE_MAX_TEXT_CHARS = env_int(
    "PARLEY_KNOWLEDGE_MAX_TEXT_CHARS", PARLEY_KNOWLEDGE_MAX_CHUNKS * PARLEY_CHUNK_TOKENS * 5
)
# URL sources are fetched by the ingestion job; off keeps them stored but unfetched.
PARLEY_KNOWLEDGE_FETCH_URLS = env_bool("PARLEY_KNOWLEDGE_FETCH_URLS", True)
PARLEY_KNOWLEDGE_FETCH_TIMEOUT = env_float("PARLEY_KNOWLEDGE_FETCH_TIMEOUT", 20.0)
# Hybrid search: candidates per path, HNSW search breadth, and the fusion of the two paths,
# score = weight / (k + rank) summed over paths. k=1 with the keyword path at a quarter of
# the vector's weight never lets keywords overturn the vector's first hit, and matching any
# word lets them reorder and add below it: the best measured on both labelled sets
# (docs/benchmarks.md, "Retrieval quality"); plain RRF (k=60, equal weights) was worse.
PARLEY_RETRIEVAL_CANDIDATES = env_int("PARLEY_RETRIEVAL_CANDIDATES", 40)
PARLEY_RETRIEVAL_EF_SEARCH = env_int("PARLEY_RETRIEVAL_EF_SEARCH", 100)
PARLEY_RETRIEVAL_RRF_K = env_int("PARLEY_RETRIEVAL_RRF_K", 1)
PARLEY_RETRIEVAL_VECTOR_WEIGHT = env_float("PARLEY_RETRIEVAL_VECTOR_WEIGHT", 1.0)
PARLEY_RETRIEVAL_KEYWORD_WEIGHT = env_float("PARLEY_RETRIEVAL_KEYWORD_WEIGHT", 0.25)
PARLEY_RETRIEVAL_KEYWORD_ANY_WORD = env_bool("PARLEY_RETRIEVAL_KEYWORD_ANY_WORD", True)
